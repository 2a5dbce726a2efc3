"""Faults on demand, each undoable. Active faults are recorded in <subcloud>/faults.json with
what undo needs (e.g. the value a registry field had)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labctl import content, dcmanager, hosts, regfile, stxcontent
from labctl.paths import SC_NAME, Paths
from labctl.util import LabError, alive, atomic_write, read_pid, run, stop_pids

Handler = Callable[["Context", list[str]], dict[str, Any]]


@dataclass
class Context:
    paths: Paths
    name: str
    record: dict[str, Any]  # what `apply` stored for this fault (for undo); {} when none

    @property
    def host(self) -> hosts.LabHost:
        if self.name == SC_NAME:
            return content.system_controller(content.sc_release(self.paths))
        entry = regfile.entries(self.paths).get(self.name, {})
        return hosts.LabHost(
            self.name, str(entry.get("software_version")), str(entry.get("system_mode", "simplex"))
        )

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def veth(self) -> str:
        return self.host.veth

    @property
    def sp(self) -> Any:
        return self.paths.host(self.name)

    def nsenter(self, *command: str) -> None:
        hosts.nsenter(self.paths, self.name, *command)

    def subcloud_only(self, fault: str) -> None:
        if self.name == SC_NAME:
            raise LabError(f"{fault} applies to subclouds, not to the system controller")


def _one_arg(args: list[str], default: str, what: str) -> str:
    if len(args) > 1:
        raise LabError(f"too many arguments: expected at most one {what}")
    return args[0] if args else default


def _no_args(args: list[str]) -> None:
    if args:
        raise LabError(f"unexpected arguments: {' '.join(args)}")


# ---------------------------------------------------------------------------- network


def link_down(ctx: Context, args: list[str]) -> dict[str, Any]:
    _no_args(args)
    run(["ip", "link", "set", ctx.veth, "down"])
    return {}


def link_down_undo(ctx: Context) -> None:
    run(["ip", "link", "set", ctx.veth, "up"])


_RATE = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")


def slow_link(ctx: Context, args: list[str]) -> dict[str, Any]:
    rate = _one_arg(args, "8mbit", "RATE (e.g. 8mbit)")
    if not _RATE.match(rate):
        raise LabError(f"invalid rate {rate!r} (examples: 512kbit, 8mbit)")
    run(
        [
            "tc",
            "qdisc",
            "replace",
            "dev",
            ctx.veth,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ]
    )
    return {"rate": rate}


def slow_link_undo(ctx: Context) -> None:
    shown = run(["tc", "qdisc", "show", "dev", ctx.veth, "root"], check=False).stdout
    if "tbf" in shown:
        run(["tc", "qdisc", "del", "dev", ctx.veth, "root"])


# ---------------------------------------------------------------------------- disk


def disk_full(ctx: Context, args: list[str]) -> dict[str, Any]:
    ctx.subcloud_only("disk-full")
    size = _one_arg(args, "1M", "SIZE (e.g. 1M)")
    if not re.match(r"^\d+[kKmMgG]?$", size):
        raise LabError(f"invalid size {size!r} (examples: 512k, 1M)")
    if ctx.record:
        ctx.nsenter("umount", "/opt/platform-backup")
    ctx.nsenter(
        "mount",
        "-t",
        "tmpfs",
        "-o",
        f"size={size},mode=0755",
        "lab-disk-full",
        "/opt/platform-backup",
    )
    return {"size": size}


def disk_full_undo(ctx: Context) -> None:
    ctx.nsenter("umount", "--lazy", "/opt/platform-backup")


def registry_full(ctx: Context, args: list[str]) -> dict[str, Any]:
    """The local registry's storage full: a SIZE tmpfs (default 64k) over the subcloud's
    /var/lib/docker-distribution (what was stored there is hidden until the undo)."""
    ctx.subcloud_only("registry-full")
    size = _one_arg(args, "64k", "SIZE (e.g. 64k)")
    if not re.match(r"^\d+[kKmMgG]?$", size):
        raise LabError(f"invalid size {size!r} (examples: 64k, 1M)")
    if ctx.record:
        ctx.nsenter("umount", "/var/lib/docker-distribution")
    ctx.nsenter(
        "mount",
        "-t",
        "tmpfs",
        "-o",
        f"size={size},mode=0755",
        "lab-registry-full",
        "/var/lib/docker-distribution",
    )
    return {"size": size}


def registry_full_undo(ctx: Context) -> None:
    ctx.nsenter("umount", "--lazy", "/var/lib/docker-distribution")


# ---------------------------------------------------------------------------- platform state


ALARMS = {
    "mgmt": {
        "alarm_id": "250.001",
        "reason": "controller-0 Configuration is out-of-date. (applied: 2 target: 3)",
        "entity": "host=controller-0",
        "severity": "major",
        "mgmt_affecting": True,
    },
    "non-mgmt": {
        "alarm_id": "100.101",
        "reason": "Platform CPU threshold exceeded ; threshold 90.00%, actual 95.00%",
        "entity": "host=controller-0",
        "severity": "minor",
        "mgmt_affecting": False,
    },
}


def alarm(ctx: Context, args: list[str]) -> dict[str, Any]:
    kind = _one_arg(args, "mgmt", "kind (mgmt or non-mgmt)")
    if kind not in ALARMS:
        raise LabError(f"unknown alarm kind {kind!r}: choose mgmt or non-mgmt")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    atomic_write(ctx.sp.state / "alarms.json", json.dumps([{**ALARMS[kind], "timestamp": stamp}]))
    return {"kind": kind}


def alarm_undo(ctx: Context) -> None:
    atomic_write(ctx.sp.state / "alarms.json", "[]\n")


def sw_operation(ctx: Context, args: list[str]) -> dict[str, Any]:
    """A software deployment in progress: `software deploy show` lists it and, on a subcloud,
    `software list` shows the next patch level deploying (its metadata in deploying/, as USM keeps
    it: UP:software/states.py:53-70) - what the prestage playbook refuses (STARLINGX.md §5
    'Playbook, transient'); on the SC: the refusal of §5 'SC deploying'."""
    state = _one_arg(args, "deploy-host", "deploy STATE")
    release = ctx.host.release
    deploy = {
        "from_release": f"{release}.0",
        "to_release": f"{release}.1",
        "rr": True,
        "state": state,
    }
    atomic_write(ctx.sp.state / "deploy.json", json.dumps(deploy))
    if ctx.name != SC_NAME:
        directory, _layout = stxcontent.metadata_dir_for(ctx.sp.opt / "software", release)
        meta = stxcontent.ReleaseMeta(f"starlingx-{release}.1", f"{release}.1", "deploying")
        atomic_write(
            directory / "deploying" / f"{meta.id}-metadata.xml",
            stxcontent.legacy_metadata_xml(meta),
        )
    return deploy


def sw_operation_undo(ctx: Context) -> None:
    (ctx.sp.state / "deploy.json").unlink(missing_ok=True)
    if ctx.name != SC_NAME:
        release = ctx.host.release
        directory, _layout = stxcontent.metadata_dir_for(ctx.sp.opt / "software", release)
        (directory / "deploying" / f"starlingx-{release}.1-metadata.xml").unlink(missing_ok=True)


def standby(ctx: Context, args: list[str]) -> dict[str, Any]:
    _no_args(args)
    ctx.subcloud_only("standby")
    mode = ctx.host.system_mode
    if mode != "duplex":
        raise LabError(f"{ctx.name} is {mode}: standby needs a duplex subcloud")
    atomic_write(ctx.sp.state / "controllers.json", '{"controller-0": "standby"}\n')
    return {}


def standby_undo(ctx: Context) -> None:
    atomic_write(ctx.sp.state / "controllers.json", '{"controller-0": "active"}\n')


def release(ctx: Context, args: list[str]) -> dict[str, Any]:
    ctx.subcloud_only("release")
    if len(args) != 1 or not re.match(r"^\d\d\.\d\d$", args[0]):
        raise LabError("release needs one MM.mm VERSION, e.g. 24.09")
    previous = ctx.record.get("previous") or ctx.host.release
    _set_release(ctx, args[0])
    return {"release": args[0], "previous": previous}


def release_undo(ctx: Context) -> None:
    _set_release(ctx, ctx.record["previous"])


def _set_release(ctx: Context, version: str) -> None:
    host = ctx.host
    hosts.set_release(ctx.paths, hosts.LabHost(host.name, version, host.system_mode))
    regfile.set_field(ctx.paths, ctx.name, "software_version", version)


# ---------------------------------------------------------------------------- registry


def registry_down(ctx: Context, args: list[str]) -> dict[str, Any]:
    _no_args(args)
    pid = read_pid(ctx.sp.registry_pid)
    if pid is not None and alive(pid):
        stop_pids([pid])
    return {}


def registry_down_undo(ctx: Context) -> None:
    hosts.restart_registry(ctx.paths, ctx.host)


def feed_down(ctx: Context, args: list[str]) -> dict[str, Any]:
    """The system controller's feed endpoint stops (https 8443 and http 8080)."""
    _no_args(args)
    if ctx.name != SC_NAME:
        raise LabError("feed-down applies to the system controller")
    pid = read_pid(ctx.sp.ctl / "feed.pid")
    if pid is not None and alive(pid):
        stop_pids([pid])
    return {}


def feed_down_undo(ctx: Context) -> None:
    hosts.restart_daemon(ctx.paths, ctx.host, "feed")


def dcmanager_down(ctx: Context, args: list[str]) -> dict[str, Any]:
    """The system controller's Keystone and dcmanager API stop (ports 5000 and 8119)."""
    _no_args(args)
    if ctx.name != SC_NAME:
        raise LabError("dcmanager-down applies to the system controller")
    pid = read_pid(ctx.sp.ctl / "dcmanager.pid")
    if pid is not None and alive(pid):
        stop_pids([pid])
    return {}


def dcmanager_down_undo(ctx: Context) -> None:
    hosts.restart_daemon(ctx.paths, ctx.host, "dcmanager")


def token_expiry(ctx: Context, args: list[str]) -> dict[str, Any]:
    """Every Keystone token the system controller issued so far is rejected (401) from now on:
    a client re-authenticates once. Nothing to undo (new tokens work)."""
    _no_args(args)
    if ctx.name != SC_NAME:
        raise LabError("token-expiry applies to the system controller")
    pid = read_pid(ctx.sp.ctl / "dcmanager.pid")
    if pid is None or not alive(pid):
        raise LabError("the system controller's dcmanager API is not running")
    dcmanager.revoke_tokens(pid)
    return {"at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def token_expiry_undo(ctx: Context) -> None:
    return None


def _registry_field(
    field: str, value: str, normal: str, *, takes_value: bool = False
) -> tuple[Handler, Callable[[Context], None]]:
    """A fault that sets one registry field (value, or the one argument when takes_value)."""

    def apply(ctx: Context, args: list[str]) -> dict[str, Any]:
        ctx.subcloud_only(field)
        new = _one_arg(args, value, field) if takes_value else value
        if not takes_value:
            _no_args(args)
        previous = regfile.set_field(ctx.paths, ctx.name, field, new)
        return {"field": field, "value": new, "previous": ctx.record.get("previous", previous)}

    def undo(ctx: Context) -> None:
        regfile.set_field(ctx.paths, ctx.name, field, normal)

    return apply, undo


_offline = _registry_field("availability", "offline", "online")
_unmanaged = _registry_field("management", "unmanaged", "managed")
_deploying = _registry_field("deploy_status", "installing", "complete", takes_value=True)

# name -> (apply, undo, usage of its arguments)
FAULTS: dict[str, tuple[Handler, Callable[[Context], None], str]] = {
    "link-down": (link_down, link_down_undo, ""),
    "slow-link": (slow_link, slow_link_undo, "[RATE=8mbit]"),
    "disk-full": (disk_full, disk_full_undo, "[SIZE=1M]"),
    "registry-full": (registry_full, registry_full_undo, "[SIZE=64k]"),
    "alarm": (alarm, alarm_undo, "[mgmt|non-mgmt]"),
    "sw-operation": (sw_operation, sw_operation_undo, "[STATE=deploy-host]"),
    "registry-down": (registry_down, registry_down_undo, ""),
    "feed-down": (feed_down, feed_down_undo, ""),
    "dcmanager-down": (dcmanager_down, dcmanager_down_undo, ""),
    "token-expiry": (token_expiry, token_expiry_undo, ""),
    "offline": (*_offline, ""),
    "unmanaged": (*_unmanaged, ""),
    "deploy-in-progress": (*_deploying, "[DEPLOY_STATUS=installing]"),
    "standby": (standby, standby_undo, ""),
    "release": (release, release_undo, "VERSION"),
}


def active(paths: Paths, name: str) -> dict[str, Any]:
    """The faults active on host name, with what each recorded."""
    return _load(paths, name)


def _load(paths: Paths, name: str) -> dict[str, Any]:
    path = paths.host(name).faults
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def apply(paths: Paths, fault: str, name: str, args: list[str], undo: bool) -> str:
    """Apply (or undo) fault on subcloud name; returns a one-line summary."""
    if fault not in FAULTS:
        raise LabError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    known = name == SC_NAME or name in regfile.entries(paths)
    if not known or not paths.host(name).root.exists():
        raise LabError(f"{name} is not a host of this lab (subcloudN or {SC_NAME})")
    do, undo_fn, _ = FAULTS[fault]
    active = _load(paths, name)
    ctx = Context(paths, name, active.get(fault, {}))
    if undo:
        if args:
            raise LabError("--undo takes no arguments")
        if fault in active or fault in (
            "link-down",
            "slow-link",
            "registry-down",
            "feed-down",
            "dcmanager-down",
        ):
            undo_fn(ctx)
        active.pop(fault, None)
        summary = f"{fault} on {name}: undone"
    else:
        record = do(ctx, args)
        active[fault] = record
        detail = ", ".join(f"{k}={v}" for k, v in record.items() if k != "previous")
        summary = f"{fault} on {name}: applied" + (f" ({detail})" if detail else "")
    atomic_write(paths.host(name).faults, json.dumps(active, indent=2) + "\n")
    return summary
