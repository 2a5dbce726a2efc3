"""Faults on demand, each undoable. Active faults are recorded in <subcloud>/faults.json with
what undo needs (e.g. the value a registry field had)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labctl import regfile, registries, subclouds
from labctl.paths import REGISTRY_PORT, Paths, subcloud_address, subcloud_index, veth_name
from labctl.util import LabError, alive, atomic_write, read_pid, run, stop_pids

Handler = Callable[["Context", list[str]], dict[str, Any]]


@dataclass
class Context:
    paths: Paths
    name: str
    record: dict[str, Any]  # what `apply` stored for this fault (for undo); {} when none

    @property
    def index(self) -> int:
        return subcloud_index(self.name)

    @property
    def address(self) -> str:
        return subcloud_address(self.index)

    @property
    def veth(self) -> str:
        return veth_name(self.index)

    @property
    def sp(self) -> Any:
        return self.paths.subcloud(self.name)

    def nsenter(self, *command: str) -> None:
        pid = subclouds.require_init_pid(self.paths, self.name)
        run(["nsenter", "-t", str(pid), "-m", "--", *command])


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
    run(["tc", "qdisc", "replace", "dev", ctx.veth, "root", "tbf", "rate", rate,
         "burst", "32kbit", "latency", "400ms"])  # fmt: skip
    return {"rate": rate}


def slow_link_undo(ctx: Context) -> None:
    shown = run(["tc", "qdisc", "show", "dev", ctx.veth, "root"], check=False).stdout
    if "tbf" in shown:
        run(["tc", "qdisc", "del", "dev", ctx.veth, "root"])


# ---------------------------------------------------------------------------- disk


def disk_full(ctx: Context, args: list[str]) -> dict[str, Any]:
    size = _one_arg(args, "1M", "SIZE (e.g. 1M)")
    if not re.match(r"^\d+[kKmMgG]?$", size):
        raise LabError(f"invalid size {size!r} (examples: 512k, 1M)")
    if ctx.record:
        ctx.nsenter("umount", "/opt/platform-backup")
    ctx.nsenter("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "lab-disk-full",
                "/opt/platform-backup")  # fmt: skip
    return {"size": size}


def disk_full_undo(ctx: Context) -> None:
    ctx.nsenter("umount", "--lazy", "/opt/platform-backup")


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
    state = _one_arg(args, "deploy-host", "deploy STATE")
    release = regfile.entries(ctx.paths).get(ctx.name, {}).get("software_version", "24.09")
    deploy = {"from_release": f"{release}.0", "to_release": f"{release}.1", "rr": True,
              "state": state}  # fmt: skip
    atomic_write(ctx.sp.state / "deploy.json", json.dumps(deploy))
    return deploy


def sw_operation_undo(ctx: Context) -> None:
    (ctx.sp.state / "deploy.json").unlink(missing_ok=True)


def standby(ctx: Context, args: list[str]) -> dict[str, Any]:
    _no_args(args)
    mode = regfile.entries(ctx.paths).get(ctx.name, {}).get("system_mode")
    if mode != "duplex":
        raise LabError(f"{ctx.name} is {mode}: standby needs a duplex subcloud")
    atomic_write(ctx.sp.state / "controllers.json", '{"controller-0": "standby"}\n')
    return {}


def standby_undo(ctx: Context) -> None:
    atomic_write(ctx.sp.state / "controllers.json", '{"controller-0": "active"}\n')


def release(ctx: Context, args: list[str]) -> dict[str, Any]:
    if len(args) != 1 or not re.match(r"^\d\d\.\d\d$", args[0]):
        raise LabError("release needs one MM.mm VERSION, e.g. 24.09")
    previous = ctx.record.get("previous") or _current_release(ctx)
    _set_release(ctx, args[0])
    return {"release": args[0], "previous": previous}


def release_undo(ctx: Context) -> None:
    _set_release(ctx, ctx.record["previous"])


def _current_release(ctx: Context) -> str:
    return str(regfile.entries(ctx.paths)[ctx.name]["software_version"])


def _set_release(ctx: Context, version: str) -> None:
    entry = regfile.entries(ctx.paths)[ctx.name]
    sc = subclouds.Subcloud(ctx.name, version, str(entry.get("system_mode", "simplex")))
    subclouds.set_release(ctx.sp, sc)
    regfile.set_field(ctx.paths, ctx.name, "software_version", version)


# ---------------------------------------------------------------------------- registry


def registry_down(ctx: Context, args: list[str]) -> dict[str, Any]:
    _no_args(args)
    pid = read_pid(ctx.sp.registry_pid)
    if pid is not None and alive(pid):
        stop_pids([pid])
    return {}


def registry_down_undo(ctx: Context) -> None:
    sp = ctx.sp
    if registries.running_pid(sp.registry_pid, sp.registry_config) is not None:
        return
    init = subclouds.require_init_pid(ctx.paths, ctx.name)
    pid = registries.start(sp.registry_config, sp.ctl / "registry.log", sp.registry_pid,
                           enter_pid=init)  # fmt: skip
    registries.wait_listening(ctx.address, REGISTRY_PORT, pid)


def _registry_field(
    field: str, value: str, normal: str, *, takes_value: bool = False
) -> tuple[Handler, Callable[[Context], None]]:
    """A fault that sets one registry field (value, or the one argument when takes_value)."""

    def apply(ctx: Context, args: list[str]) -> dict[str, Any]:
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
    "alarm": (alarm, alarm_undo, "[mgmt|non-mgmt]"),
    "sw-operation": (sw_operation, sw_operation_undo, "[STATE=deploy-host]"),
    "registry-down": (registry_down, registry_down_undo, ""),
    "offline": (*_offline, ""),
    "unmanaged": (*_unmanaged, ""),
    "deploy-in-progress": (*_deploying, "[DEPLOY_STATUS=installing]"),
    "standby": (standby, standby_undo, ""),
    "release": (release, release_undo, "VERSION"),
}


def _load(paths: Paths, name: str) -> dict[str, Any]:
    path = paths.subcloud(name).faults
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def apply(paths: Paths, fault: str, name: str, args: list[str], undo: bool) -> str:
    """Apply (or undo) fault on subcloud name; returns a one-line summary."""
    if fault not in FAULTS:
        raise LabError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    if name not in regfile.entries(paths) or not paths.subcloud(name).root.exists():
        raise LabError(f"{name} is not a subcloud of this lab")
    do, undo_fn, _ = FAULTS[fault]
    active = _load(paths, name)
    ctx = Context(paths, name, active.get(fault, {}))
    if undo:
        if args:
            raise LabError("--undo takes no arguments")
        if fault in active or fault in ("link-down", "slow-link", "registry-down"):
            undo_fn(ctx)
        active.pop(fault, None)
        summary = f"{fault} on {name}: undone"
    else:
        record = do(ctx, args)
        active[fault] = record
        detail = ", ".join(f"{k}={v}" for k, v in record.items() if k != "previous")
        summary = f"{fault} on {name}: applied" + (f" ({detail})" if detail else "")
    atomic_write(paths.subcloud(name).faults, json.dumps(active, indent=2) + "\n")
    return summary
