# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The prestage strategy: how it is created (SPEC §2.1), how it and its steps change (§2.2, §2.3).

Pure data and rules, no I/O: the state store persists it, the CLI and the plugins drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    RELEASE_FORMAT_ERROR,
    is_major_release,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import (
    initial_skip_reason,
    release_failure,
    subcloud_release_failure,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import (
    APPLY_TYPES,
    Registry,
    Subcloud,
)

LOG = logging.getLogger(__name__)

STRATEGY_TYPE = "prestage"

# Strategy states
INITIAL = "initial"
APPLYING = "applying"
ABORT_REQUESTED = "abort requested"
ABORTING = "aborting"
COMPLETE = "complete"
FAILED = "failed"
ABORTED = "aborted"
DELETING = "deleting"
STRATEGY_STATES = (
    INITIAL,
    APPLYING,
    ABORT_REQUESTED,
    ABORTING,
    COMPLETE,
    FAILED,
    ABORTED,
    DELETING,
)
STRATEGY_FINAL = frozenset({COMPLETE, FAILED, ABORTED})
DELETABLE = frozenset({INITIAL, COMPLETE, ABORTED, FAILED})
# States in which an orchestrator is (or should be) running the strategy.
RUNNING_STATES = frozenset({APPLYING, ABORT_REQUESTED, ABORTING})

# Step states, in the order a step goes through them
STEP_INITIAL = "initial"
STEP_PRECHECK = "prestage-precheck"
STEP_PACKAGES = "prestaging-packages"
STEP_IMAGES = "prestaging-images"
STEP_COMPLETE = "complete"
STEP_FAILED = "failed"
STEP_ABORTED = "aborted"
STEP_STATES = (
    STEP_INITIAL, STEP_PRECHECK, STEP_PACKAGES, STEP_IMAGES, STEP_COMPLETE, STEP_FAILED,
    STEP_ABORTED,
)  # fmt: skip
STEP_IN_PROGRESS = frozenset({STEP_PRECHECK, STEP_PACKAGES, STEP_IMAGES})
STEP_FINAL = frozenset({STEP_COMPLETE, STEP_FAILED, STEP_ABORTED})
# The phase a task belongs to -> the step state it shows (DESIGN §3.4).
PHASE_STEP_STATES = {"precheck": STEP_PRECHECK, "packages": STEP_PACKAGES, "images": STEP_IMAGES}
_STEP_ORDER = {state: index for index, state in enumerate(STEP_STATES)}

MAX_PARALLEL_RANGE = (1, 250)
DEFAULT_MAX_PARALLEL = 2
DETAILS_MAX_LEN = 1000

MSG_EXISTS = f"Strategy of type: '{STRATEGY_TYPE}' already exists"
MSG_NOT_FOUND = f"Strategy of type '{STRATEGY_TYPE}' not found"
MSG_NO_STEPS = "Strategy has no steps to apply"
MSG_STEP_NOT_FOUND = "Strategy step not found"
MSG_BOTH_TYPES = "Options --for-install and --for-sw-deploy cannot be combined"
MSG_GROUP_AND_CLOUD = "The cloud_name and group options are mutually exclusive."
MSG_GROUP_AND_APPLY_TYPE = (
    "The --subcloud-apply-type is not supported when --group option is applied."
)
MSG_GROUP_AND_MAX_PARALLEL = (
    "The --max-parallel-subclouds options is not supported when --group option is applied."
)

# The rows of every strategy table (create/apply/show/abort/delete), in dcmanager's order.
STRATEGY_FIELDS = (
    "strategy type",
    "subcloud apply type",
    "max parallel subclouds",
    "stop on failure",
    "prestage software version",
    "state",
    "created_at",
    "updated_at",
)
STEP_FIELDS = ("cloud", "stage", "state", "details", "started_at", "finished_at")
STEP_DETAIL_FIELDS = (*STEP_FIELDS, "created_at", "updated_at")
# `strategy-step show`'s row for a step that ran more than once (after a crash)
STEP_ATTEMPTS_FIELD = "earlier attempts"
# `strategy-step show`'s rows for a step that has started: how long it and each phase took
STEP_DURATION_FIELDS = ("duration", "phase durations")

SCHEMA = 1


def step_rank(state: str) -> int:
    """Position of a step state in the order steps go through them."""
    return _STEP_ORDER[state]


def now() -> str:
    """A timestamp as dcmanager prints them (UTC, microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def max_parallel_error(value: Any) -> str:
    low, high = MAX_PARALLEL_RANGE
    return (
        f"Invalid max-parallel-subclouds value: {value}. For prestage, the value must be "
        f"between {low} and {high}."
    )


# --------------------------------------------------------------------------- data


@dataclass
class Stage:
    number: int
    group: str | None
    subcloud_apply_type: str | None
    max_parallel_subclouds: int

    @property
    def window(self) -> int:
        """How many subclouds of this stage may be in progress at once."""
        return 1 if self.subcloud_apply_type == "serial" else self.max_parallel_subclouds


@dataclass
class Phase:
    """A step's transition: the state it entered, seconds after the step started (its
    started_at). Offsets keep the per-step history small: 5,000 steps write it every flush."""

    state: str
    offset: float


def seconds_text(seconds: float) -> str:
    """A duration as operators read it: 42.1 s, 3 min 07 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def phases_to_list(phases: list[Phase]) -> list[list[Any]]:
    return [[p.state, p.offset] for p in phases]


def parse_time(text: str | None) -> datetime | None:
    """A timestamp of now() (or dcmanager's, without microseconds) back as a UTC datetime."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


@dataclass
class Attempt:
    """An earlier attempt of a step that did not finish (its orchestrator stopped): the times it
    ran, the state it had reached and why it ended. Kept in the state file as a small list per
    step; a later record (e.g. the times of each phase) can add keys without breaking readers."""

    attempt: int
    started_at: str | None
    finished_at: str | None
    state: str
    reason: str
    # the attempt's transitions (see Step.phases)
    phases: list[Phase] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "started-at": self.started_at,
            "finished-at": self.finished_at,
            "state": self.state,
            "reason": self.reason,
            **({"phases": phases_to_list(self.phases)} if self.phases else {}),
        }

    def text(self) -> str:
        """One line for `strategy-step show`."""
        return (
            f"attempt {self.attempt}: {self.state} from {self.started_at or '-'} to "
            f"{self.finished_at or '-'}: {self.reason}"
        )


@dataclass
class Step:
    cloud: str
    stage: int
    state: str = STEP_INITIAL
    details: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    created_at: str = ""
    updated_at: str | None = None
    # Earlier attempts of this step, oldest first (see Attempt): empty until a run is resumed.
    attempts: list[Attempt] = field(default_factory=list)
    # Every state this attempt entered, in order, with its time (the run's picture is drawn
    # from them); the first is at offset 0, the step's started_at.
    phases: list[Phase] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in STEP_FINAL

    @property
    def in_progress(self) -> bool:
        return self.state in STEP_IN_PROGRESS

    @property
    def skipped(self) -> bool:
        """Precheck skipped it (dcmanager ends such a step complete, saying so in details)."""
        return self.state == STEP_COMPLETE and self.details.startswith(skip_details(self.cloud, ""))

    def row(self, detailed: bool = False) -> tuple[Any, ...]:
        values = (self.cloud, self.stage, self.state, self.details, self.started_at,
                  self.finished_at)  # fmt: skip
        return (*values, self.created_at, self.updated_at) if detailed else values

    def attempts_text(self) -> str:
        """The earlier attempts, one line each, oldest first."""
        return "\n".join(attempt.text() for attempt in self.attempts)

    def duration_row(self, until: datetime | None = None) -> tuple[str, str]:
        """Values for STEP_DURATION_FIELDS ('-' before the step started)."""
        total = self.duration(until)
        if total is None:
            return "-", "-"
        spans = ", ".join(f"{state} {seconds_text(s)}" for state, s in self.phase_durations(until))
        return seconds_text(total), spans or "-"

    def duration(self, until: datetime | None = None) -> float | None:
        """Seconds from started_at to finished_at (or to until, default now, while it runs);
        None before it started."""
        start = parse_time(self.started_at)
        if start is None:
            return None
        end = parse_time(self.finished_at) or until or datetime.now(UTC)
        return max((end - start).total_seconds(), 0.0)

    def phase_durations(self, until: datetime | None = None) -> list[tuple[str, float]]:
        """How long each in-progress state of this attempt lasted (the last one, while it runs,
        until now), in order."""
        if not self.phases:
            return []
        total = self.duration(until) or 0.0
        spans = []
        for index, phase in enumerate(self.phases):
            if phase.state not in STEP_IN_PROGRESS:
                continue
            end = self.phases[index + 1].offset if index + 1 < len(self.phases) else total
            spans.append((phase.state, max(end - phase.offset, 0.0)))
        return spans


@dataclass
class Strategy:
    release: str
    for_sw_deploy: bool
    subcloud_apply_type: str | None
    max_parallel_subclouds: int | None
    stop_on_failure: bool
    force: bool
    cloud_name: str | None
    group: str | None
    stages: list[Stage]
    steps: list[Step]
    state: str = INITIAL
    created_at: str = ""
    updated_at: str | None = None
    orchestrator: dict[str, Any] = field(default_factory=dict)
    # the sysadmin password file's identity ({"dev", "ino"}), recorded by the state store so
    # that `delete` removes it under whatever name it has been given since
    secret: dict[str, int] = field(default_factory=dict)

    # -- views

    def row(self, state: str | None = None) -> tuple[Any, ...]:
        """Values for STRATEGY_FIELDS."""
        return (
            STRATEGY_TYPE,
            self.subcloud_apply_type,
            self.max_parallel_subclouds,
            self.stop_on_failure,
            self.release,
            state or self.state,
            self.created_at,
            self.updated_at,
        )

    def step(self, cloud: str) -> Step:
        for candidate in self.steps:
            if candidate.cloud == cloud:
                return candidate
        raise NotFoundError(MSG_STEP_NOT_FOUND)

    def stage(self, number: int) -> Stage:
        for candidate in self.stages:
            if candidate.number == number:
                return candidate
        raise StateFileError(f"strategy has no stage {number}")

    @property
    def prestage_type(self) -> str:
        return "for-sw-deploy" if self.for_sw_deploy else "for-install"

    # -- persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "strategy": {
                "type": STRATEGY_TYPE,
                "subcloud-apply-type": self.subcloud_apply_type,
                "max-parallel-subclouds": self.max_parallel_subclouds,
                "stop-on-failure": self.stop_on_failure,
                "state": self.state,
                "created-at": self.created_at,
                "updated-at": self.updated_at,
                "extra-args": {
                    "prestage-software-version": self.release,
                    "for_sw_deploy": self.for_sw_deploy,
                    "force": self.force,
                    "cloud_name": self.cloud_name,
                    "group": self.group,
                },
                "stages": [
                    {
                        "stage": s.number,
                        "group": s.group,
                        "subcloud-apply-type": s.subcloud_apply_type,
                        "max-parallel-subclouds": s.max_parallel_subclouds,
                    }
                    for s in self.stages
                ],
                "orchestrator": self.orchestrator,
                **({"secret": self.secret} if self.secret else {}),
            },
            "steps": [
                {
                    "cloud": s.cloud,
                    "stage": s.stage,
                    "state": s.state,
                    "details": s.details,
                    "started-at": s.started_at,
                    "finished-at": s.finished_at,
                    "created-at": s.created_at,
                    "updated-at": s.updated_at,
                    # only when there are some: 5,000 fresh steps stay as small as before
                    **({"attempts": [a.to_dict() for a in s.attempts]} if s.attempts else {}),
                    **({"phases": phases_to_list(s.phases)} if s.phases else {}),
                }
                for s in self.steps
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Strategy:
        """Rebuild from to_dict() output; StateFileError naming the first thing that is wrong."""
        reader = _Reader()
        return reader.strategy(data)


class _Reader:
    """Strict reading of strategy.json: a wrong type anywhere is reported, never guessed at."""

    def strategy(self, data: Any) -> Strategy:
        doc = self._mapping(data, "document")
        schema = doc.get("schema")
        if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
            raise StateFileError(
                f"was written by a newer distcloud.prestage (schema {schema}; this one reads "
                f"schema {SCHEMA})"
            )
        if schema != SCHEMA:
            raise StateFileError(f"has an unknown schema {schema!r}")
        raw = self._mapping(doc.get("strategy"), "strategy")
        if raw.get("type") != STRATEGY_TYPE:
            raise StateFileError(f"strategy.type is {raw.get('type')!r}, not {STRATEGY_TYPE!r}")
        extra = self._mapping(raw.get("extra-args"), "strategy.extra-args")
        stages = [
            Stage(
                number=self._int(s, "stage", "strategy.stages[]"),
                group=self._opt_str(s, "group", "strategy.stages[]"),
                subcloud_apply_type=self._opt_choice(
                    s, "subcloud-apply-type", APPLY_TYPES, "strategy.stages[]"
                ),
                max_parallel_subclouds=self._int(s, "max-parallel-subclouds", "strategy.stages[]"),
            )
            for s in self._list(raw.get("stages"), "strategy.stages")
        ]
        steps = [
            Step(
                cloud=self._str(s, "cloud", "steps[]"),
                stage=self._int(s, "stage", "steps[]"),
                state=self._choice(s, "state", STEP_STATES, "steps[]"),
                details=self._str(s, "details", "steps[]"),
                started_at=self._opt_str(s, "started-at", "steps[]"),
                finished_at=self._opt_str(s, "finished-at", "steps[]"),
                created_at=self._str(s, "created-at", "steps[]"),
                updated_at=self._opt_str(s, "updated-at", "steps[]"),
                attempts=self._attempts(s),
                phases=self._phases(s, "steps[]"),
            )
            for s in self._list(doc.get("steps"), "steps")
        ]
        numbers = {s.number for s in stages}
        for step in steps:
            if step.stage not in numbers:
                raise StateFileError(f"step {step.cloud!r} is in unknown stage {step.stage}")
        max_parallel = raw.get("max-parallel-subclouds")
        if max_parallel is not None:
            max_parallel = self._int(raw, "max-parallel-subclouds", "strategy")
        orchestrator = raw.get("orchestrator") or {}
        if not isinstance(orchestrator, dict):
            raise StateFileError("strategy.orchestrator is not a mapping")
        secret = raw.get("secret") or {}
        if not isinstance(secret, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in secret.values()
        ):
            raise StateFileError("strategy.secret is not a mapping of numbers")
        return Strategy(
            release=self._str(extra, "prestage-software-version", "strategy.extra-args"),
            for_sw_deploy=self._bool(extra, "for_sw_deploy", "strategy.extra-args"),
            subcloud_apply_type=self._opt_choice(
                raw, "subcloud-apply-type", APPLY_TYPES, "strategy"
            ),
            max_parallel_subclouds=max_parallel,
            stop_on_failure=self._bool(raw, "stop-on-failure", "strategy"),
            force=self._bool(extra, "force", "strategy.extra-args"),
            cloud_name=self._opt_str(extra, "cloud_name", "strategy.extra-args"),
            group=self._opt_str(extra, "group", "strategy.extra-args"),
            stages=stages,
            steps=steps,
            state=self._choice(raw, "state", STRATEGY_STATES, "strategy"),
            created_at=self._str(raw, "created-at", "strategy"),
            updated_at=self._opt_str(raw, "updated-at", "strategy"),
            orchestrator=orchestrator,
            secret=secret,
        )

    def _attempts(self, step: dict[str, Any]) -> list[Attempt]:
        """A step's earlier attempts; a state file written before they were kept has none."""
        where = "steps[].attempts[]"
        return [
            Attempt(
                attempt=self._int(a, "attempt", where),
                started_at=self._opt_str(a, "started-at", where),
                finished_at=self._opt_str(a, "finished-at", where),
                state=self._choice(a, "state", STEP_STATES, where),
                reason=self._str(a, "reason", where),
                phases=self._phases(a, where),
            )
            for a in self._list(step.get("attempts", []), "steps[].attempts")
        ]

    @staticmethod
    def _phases(data: dict[str, Any], where: str) -> list[Phase]:
        """A step's transitions; a state file written before they were kept has none."""
        raw = data.get("phases", [])
        phases = []
        if isinstance(raw, list):
            for item in raw:
                if not (
                    isinstance(item, list)
                    and len(item) == 2
                    and item[0] in STEP_STATES
                    and isinstance(item[1], (int, float))
                    and not isinstance(item[1], bool)
                ):
                    break
                phases.append(Phase(item[0], float(item[1])))
            else:
                return phases
        raise StateFileError(f"{where}.phases is not a list of [state, seconds]")

    @staticmethod
    def _mapping(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise StateFileError(f"{where} is not a mapping")
        return value

    @staticmethod
    def _list(value: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise StateFileError(f"{where} is not a list of mappings")
        return value

    @staticmethod
    def _str(data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str):
            raise StateFileError(f"{where}.{key} is not a string")
        return value

    @staticmethod
    def _opt_str(data: dict[str, Any], key: str, where: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise StateFileError(f"{where}.{key} is not a string")
        return value

    @staticmethod
    def _int(data: dict[str, Any], key: str, where: str) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise StateFileError(f"{where}.{key} is not an integer")
        return value

    @staticmethod
    def _bool(data: dict[str, Any], key: str, where: str) -> bool:
        value = data.get(key)
        if not isinstance(value, bool):
            raise StateFileError(f"{where}.{key} is not true or false")
        return value

    @staticmethod
    def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
        value = data.get(key)
        if value not in choices:
            raise StateFileError(f"{where}.{key} has an unknown value {value!r}")
        return str(value)

    @classmethod
    def _opt_choice(
        cls, data: dict[str, Any], key: str, choices: tuple[str, ...], where: str
    ) -> str | None:
        return None if data.get(key) is None else cls._choice(data, key, choices, where)


# --------------------------------------------------------------------------- create


@dataclass
class CreateRequest:
    """The options of `prestage-strategy create` (and of the playbook's create)."""

    cloud_name: str | None = None
    group: str | None = None
    subcloud_apply_type: str | None = None
    max_parallel_subclouds: int | None = None
    stop_on_failure: bool = False
    release: str | None = None
    for_install: bool = False
    for_sw_deploy: bool = False
    force: bool = False
    # all subclouds, but only these (a playbook run limited to some hosts)
    only: set[str] | None = None
    # all subclouds, but only these, each of which must exist (a retry of the failed ones)
    subclouds: tuple[str, ...] | None = None


def validate_request(request: CreateRequest) -> None:
    """Checks that need nothing but the options; run before any prompt or file access."""
    if request.for_install and request.for_sw_deploy:
        raise PrestageError(MSG_BOTH_TYPES)
    if request.group is not None:
        if request.cloud_name is not None:
            raise PrestageError(MSG_GROUP_AND_CLOUD)
        if request.subcloud_apply_type:
            raise PrestageError(MSG_GROUP_AND_APPLY_TYPE)
        if request.max_parallel_subclouds is not None:
            raise PrestageError(MSG_GROUP_AND_MAX_PARALLEL)
    if request.subcloud_apply_type is not None and request.subcloud_apply_type not in APPLY_TYPES:
        raise PrestageError(
            f"Invalid subcloud-apply-type value: {request.subcloud_apply_type}. "
            "It must be parallel or serial."
        )
    value = request.max_parallel_subclouds
    if value is not None:
        low, high = MAX_PARALLEL_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PrestageError(max_parallel_error(value))
    if request.release is not None and not is_major_release(request.release):
        raise PrestageError(RELEASE_FORMAT_ERROR)


def build_strategy(
    request: CreateRequest,
    sc_facts: dict[str, Any],
    registry: Registry,
    prestage_statuses: dict[str, str | None],
    created_at: str | None = None,
) -> Strategy:
    """The strategy `create` makes from the request, or PrestageError saying why there is none.

    sc_facts are what the system controller said about itself (plugins/modules/sc_release_info.py);
    prestage_statuses maps subcloud names to their observed prestage_status (transient-state check).
    """
    validate_request(request)
    release = request.release or str(sc_facts.get("sc_release") or "")
    if not release:
        raise PrestageError("Cannot tell the system controller's release")
    failure = release_failure(sc_facts, release, request.for_sw_deploy)
    if failure:
        raise PrestageError(failure)
    created_at = created_at or now()
    for name in request.subclouds or ():
        registry.subcloud(name)  # "Subcloud <name> does not exist"

    if request.cloud_name is not None:  # "" is a subcloud name that does not exist, not "all"
        subcloud = registry.subcloud(request.cloud_name)
        reason = initial_skip_reason(subcloud, prestage_statuses.get(subcloud.name))
        reason = reason or subcloud_release_failure(
            subcloud.software_version, release, request.for_sw_deploy
        )
        if reason:
            raise PrestageError(f"Prestage check failed for subcloud {subcloud.name}: {reason}")
        apply_type, max_parallel = _explicit_settings(request)
        stages = [Stage(1, None, apply_type, max_parallel)]
        members = {1: [subcloud]}
    elif request.group is not None:
        group = registry.group(request.group)
        apply_type, max_parallel = group.update_apply_type, group.max_parallel_subclouds
        stages = [Stage(1, group.name, apply_type, max_parallel)]
        members = {1: _eligible(_within(registry.members(group), request), prestage_statuses)}
    elif request.subcloud_apply_type is None and request.max_parallel_subclouds is None:
        # All subclouds, no explicit settings: each group is a stage with its own settings.
        apply_type, max_parallel = None, None
        stages, members = [], {}
        for group in registry.groups:
            eligible = _eligible(_within(registry.members(group), request), prestage_statuses)
            if eligible:
                number = len(stages) + 1
                stages.append(
                    Stage(number, group.name, group.update_apply_type, group.max_parallel_subclouds)
                )
                members[number] = eligible
    else:
        apply_type, max_parallel = _explicit_settings(request)
        stages = [Stage(1, None, apply_type, max_parallel)]
        members = {1: _eligible(_within(registry.subclouds, request), prestage_statuses)}

    steps = [
        Step(cloud=sc.name, stage=number, created_at=created_at)
        for number in sorted(members)
        for sc in sorted(members[number], key=lambda s: s.id)
    ]
    if not steps:
        raise PrestageError(MSG_NO_STEPS)
    return Strategy(
        release=release,
        for_sw_deploy=request.for_sw_deploy,
        subcloud_apply_type=apply_type,
        max_parallel_subclouds=max_parallel,
        stop_on_failure=request.stop_on_failure,
        force=request.force,
        cloud_name=request.cloud_name,
        group=registry.group(request.group).name if request.group is not None else None,
        stages=stages,
        steps=steps,
        created_at=created_at,
    )


def _explicit_settings(request: CreateRequest) -> tuple[str | None, int]:
    if request.subcloud_apply_type == "serial":
        return "serial", 1  # serial forces one subcloud at a time
    max_parallel = request.max_parallel_subclouds
    return (
        request.subcloud_apply_type,
        DEFAULT_MAX_PARALLEL if max_parallel is None else max_parallel,
    )


def _within(subclouds: list[Subcloud], request: CreateRequest) -> list[Subcloud]:
    for names in (request.only, request.subclouds):
        if names is not None:
            subclouds = [s for s in subclouds if s.name in names]
    return subclouds


def _eligible(candidates: list[Subcloud], statuses: dict[str, str | None]) -> list[Subcloud]:
    """Subclouds of a group/all strategy: the rest are left out silently (logged)."""
    chosen = []
    for subcloud in candidates:
        reason = initial_skip_reason(subcloud, statuses.get(subcloud.name))
        if reason:
            LOG.info("Excluding subcloud %s from the prestage strategy: %s", subcloud.name, reason)
        else:
            chosen.append(subcloud)
    return chosen


# --------------------------------------------------------------------------- transitions


def apply(strategy: Strategy, orchestrator: dict[str, Any], at: str | None = None) -> None:
    """initial -> applying, recording who runs it."""
    if strategy.state != INITIAL:
        raise PrestageError(f"Strategy in state {strategy.state} cannot be applied")
    strategy.state = APPLYING
    strategy.updated_at = at or now()
    strategy.orchestrator = orchestrator


def resume(strategy: Strategy, orchestrator: dict[str, Any], at: str | None = None) -> None:
    """Take over an applying strategy whose orchestrator died: interrupted steps run again."""
    if strategy.state != APPLYING:
        raise PrestageError(f"Strategy in state {strategy.state} cannot be applied")
    at = at or now()
    previous = strategy.orchestrator.get("pid")
    for step in strategy.steps:
        if step.in_progress:
            interrupt(step, interrupted_reason(previous), at)
    strategy.updated_at = at
    strategy.orchestrator = orchestrator


def interrupted_reason(pid: Any = None) -> str:
    """Why an attempt that a crashed orchestrator left in progress ended."""
    who = f" (pid {pid})" if pid else ""
    return f"the orchestrator{who} stopped before the step finished; resumed"


def interrupt(step: Step, reason: str, at: str) -> None:
    """Close the step's current attempt (kept in its history) and make it wait to run again: the
    next attempt gets its own started_at, so its times are those of the attempt that ran."""
    step.attempts.append(
        Attempt(
            attempt=len(step.attempts) + 1,
            started_at=step.started_at,
            finished_at=at,
            state=step.state,
            reason=reason,
            phases=step.phases,
        )
    )
    step.phases = []
    step.state = STEP_INITIAL
    step.details = ""
    step.started_at = None
    step.finished_at = None
    step.updated_at = at


def request_abort(
    strategy: Strategy,
    orchestrator_alive: bool,
    at: str | None = None,
    started: Collection[str] = (),
) -> None:
    """applying -> abort requested: waiting steps are aborted now, running ones finish - and so
    do the steps in started, which the orchestrator has started but not yet recorded here.

    Without a live orchestrator nothing is running any more, so the abort completes at once
    (also for an abort whose orchestrator died before finishing it).
    """
    if strategy.state in (ABORT_REQUESTED, ABORTING) and not orchestrator_alive:
        abandon(strategy, at)
        return
    if strategy.state != APPLYING:
        raise PrestageError(f"Strategy in state {strategy.state} cannot be aborted")
    at = at or now()
    running = set(started) if orchestrator_alive else set()
    for step in strategy.steps:
        if step.state == STEP_INITIAL and step.cloud not in running:
            _finish(step, STEP_ABORTED, "", at)
    strategy.state = ABORT_REQUESTED
    strategy.updated_at = at
    if not orchestrator_alive:
        abandon(strategy, at)


def abandon(strategy: Strategy, at: str | None = None) -> None:
    """Close an abort whose orchestrator is gone: steps it left in progress end aborted."""
    at = at or now()
    for step in strategy.steps:
        if step.in_progress:
            _finish(step, STEP_ABORTED, f"{step.state}: the orchestrator stopped", at)
    strategy.state = roll_up(strategy)
    strategy.updated_at = at


# How an operator counts steps: skipped apart from complete, every in-progress state as running.
TALLY_KEYS = ("complete", "skipped", "failed", "aborted", "running", "waiting")


def tally(steps: Iterable[Step]) -> dict[str, int]:
    """Steps per TALLY_KEYS (in that order, zeros included)."""
    counts = dict.fromkeys(TALLY_KEYS, 0)
    for step in steps:
        if step.skipped:
            counts["skipped"] += 1
        elif step.in_progress:
            counts["running"] += 1
        elif step.state == STEP_INITIAL:
            counts["waiting"] += 1
        else:
            counts[step.state] += 1
    return counts


def elapsed(strategy: Strategy, now: datetime | None = None) -> float | None:
    """Seconds from the first step's start to the strategy's end (or to now while it runs);
    None before any step started."""
    starts = [t for s in strategy.steps if (t := parse_time(s.started_at)) is not None]
    if not starts:
        return None
    end = (parse_time(strategy.updated_at) if strategy.state in STRATEGY_FINAL else None) or now
    end = end or datetime.now(UTC)
    return max((end - min(starts)).total_seconds(), 0.0)


def counts_text(strategy: Strategy, now: datetime | None = None) -> str:
    """`applying: 12 steps: 3 complete, 1 skipped, ... - elapsed 1 min 02 s`: strategy-step
    list's counts line and the run's progress lines."""
    counts = tally(strategy.steps)
    shown = ", ".join(f"{counts[key]} {key}" for key in TALLY_KEYS)
    line = f"{strategy.state}: {len(strategy.steps)} steps: {shown}"
    took = elapsed(strategy, now)
    return f"{line} - elapsed {seconds_text(took)}" if took is not None else line


def largest_window(strategy: Strategy) -> int:
    """The most subclouds the strategy can have in progress at once (forks it needs)."""
    waiting: dict[int, int] = {}
    for step in strategy.steps:
        if not step.final:
            waiting[step.stage] = waiting.get(step.stage, 0) + 1
    return max((min(strategy.stage(n).window, count) for n, count in waiting.items()), default=0)


def check_forks(strategy: Strategy, forks: int) -> None:
    """Ansible runs a host's task in a fork of its own: a window wider than the forks would
    quietly run narrower."""
    needed = largest_window(strategy)
    if forks < needed:
        raise PrestageError(
            f"Ansible has {forks} forks but this prestage strategy runs up to {needed} "
            f"subclouds at once: run with --forks {needed} or more"
        )


def _not_among(strategy: Strategy, names: Iterable[str]) -> str:
    """The subclouds still to run that are not among names ('' when none), listed shortly."""
    present = set(names)
    missing = [s.cloud for s in strategy.steps if not s.final and s.cloud not in present]
    shown = ", ".join(missing[:5])
    if len(missing) > 5:
        shown += f" and {len(missing) - 5} more"
    return shown


def check_play_hosts(strategy: Strategy, play_hosts: Iterable[str]) -> None:
    """Every subcloud still to run must be one of the play's hosts: a run cannot reach the others
    (another -l, or a subcloud gone from the inventory)."""
    if missing := _not_among(strategy, play_hosts):
        raise PrestageError(
            f"The strategy's subclouds {missing} are not among this play's hosts; check the "
            "inventory and --limit"
        )


def check_registry_holds(strategy: Strategy, registry: Registry) -> None:
    """Every subcloud still to run must still be in the registry (the hosts `apply` runs on)."""
    if missing := _not_among(strategy, (s.name for s in registry.subclouds)):
        raise PrestageError(
            f"The strategy's subclouds {missing} are not in the registry {registry.path} any more"
        )


def check_deletable(strategy: Strategy) -> None:
    if strategy.state not in DELETABLE:
        raise PrestageError(f"Strategy in state {strategy.state} cannot be deleted")


def roll_up(strategy: Strategy) -> str:
    """The final state once every step is final: failed > aborted > complete.

    An abort request ends aborted even when every step it let run completed.
    """
    states = {step.state for step in strategy.steps}
    if STEP_FAILED in states:
        return FAILED
    if STEP_ABORTED in states or strategy.state in (ABORT_REQUESTED, ABORTING):
        return ABORTED
    return COMPLETE


def admitting(strategy: Strategy) -> bool:
    """Whether a waiting step may start now (not after abort or a stop-on-failure)."""
    return strategy.state == APPLYING


def set_step_state(
    strategy: Strategy, cloud: str, state: str, details: str = "", at: str | None = None
) -> Step:
    """Move a step forward; finishing a step may stop or finish the strategy."""
    step = strategy.step(cloud)
    if state not in STEP_STATES:
        raise PrestageError(f"Unknown step state {state!r}")
    if step.final:
        raise PrestageError(f"Step {cloud} is {step.state} and cannot become {state}")
    if state != STEP_ABORTED and _STEP_ORDER[state] < _STEP_ORDER[step.state]:
        raise PrestageError(f"Step {cloud} cannot go back from {step.state} to {state}")
    at = at or now()
    if state in STEP_FINAL:
        _finish(step, state, details, at)
    else:
        if step.started_at is None:
            step.started_at = at
        step.state = state
        step.details = _clip(details)
        step.updated_at = at
        _mark(step, state, at)
    strategy.updated_at = at
    if state == STEP_FAILED and strategy.stop_on_failure and strategy.state == APPLYING:
        strategy.state = FAILED  # stop admitting at once; running steps still finish
    if strategy.state == ABORT_REQUESTED and any(s.in_progress for s in strategy.steps):
        strategy.state = ABORTING
    if all(s.final for s in strategy.steps) and strategy.state in (
        APPLYING,
        ABORT_REQUESTED,
        ABORTING,
    ):
        strategy.state = roll_up(strategy)
    return step


def _finish(step: Step, state: str, details: str, at: str) -> None:
    if step.started_at is None and state != STEP_ABORTED:
        step.started_at = at
    step.state = state
    step.details = _clip(details)
    step.finished_at = at
    step.updated_at = at
    if step.started_at is not None:
        _mark(step, state, at)


def _mark(step: Step, state: str, at: str) -> None:
    """Record the transition in the step's history (offset from its started_at, in ms)."""
    start, moment = parse_time(step.started_at), parse_time(at)
    offset = (moment - start).total_seconds() if start and moment else 0.0
    step.phases.append(Phase(state, round(max(offset, 0.0), 3)))


def _clip(details: str, limit: int = DETAILS_MAX_LEN) -> str:
    details = " ".join(str(details).split()) if "\n" in str(details) else str(details)
    return details if len(details) <= limit else details[: limit - 3] + "..."


def skip_details(cloud: str, reason: str) -> str:
    """details of a step that precheck skipped (it ends complete)."""
    return f"Prestage skipped '{cloud}': {reason}"


def log_hint(log_path: str) -> str:
    """dcmanager's pointer at a subcloud's log."""
    return f"check individual log at {log_path} for detailed output."


def failure_details(state: str, reason: str, log_path: str | None = None) -> str:
    """details of a failed step: `<state>: <reason>`, naming the subcloud's log (log_path) when
    the reason does not already; the log's name survives the 1000-character clip."""
    if not log_path or log_path in reason:
        return _clip(f"{state}: {reason}")
    suffix = f", {log_hint(log_path)}"
    head = f"{state}: {str(reason).rstrip(' .')}"
    return _clip(head, max(DETAILS_MAX_LEN - len(suffix), 0)) + suffix


def failure_log_line(state: str, reason: str) -> str:
    """The last line of a failed step's log: why it failed."""
    return f"prestage failed: {failure_details(state, reason)}"


def phase_failure_reason(phase: str, cloud: str, log_path: str, timeout: bool = False) -> str:
    """dcmanager's sentence for a failed packages/images phase, pointing at the subcloud's log."""
    timed_out = " (TIMEOUT)" if timeout else ""
    return f"Prestaging {phase} failed{timed_out} for subcloud {cloud}, {log_hint(log_path)}"
