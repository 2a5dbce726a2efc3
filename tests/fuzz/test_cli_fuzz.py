"""Fuzzed command lines for every dcprestage command, through the real parsers and code paths.

The options come from the commands' own parsers (so a new option is fuzzed without a change
here); values are drawn from what is meaningful (subcloud and group names, releases, formats,
columns), from edge cases (0, negative, huge, padded, empty) and from arbitrary text, including
the surrogate-escaped bytes a shell hands Python for non-UTF-8 arguments.

Invariant, for every run: exit 0 with output that is correct, or a non-zero exit with exactly one
line on stderr (several only with -v), nothing on stdout, no traceback, no exception other than a
PrestageError behind that line, and no file of the registry, the state dir, $HOME or the working
directory changed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import load_registry
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from dcprestage import main as cli
from tests.fuzz._harness import (
    Outcome,
    assert_clean_error,
    run_in_process,
    run_process,
    tree_digest,
)
from tests.fuzz._world import STATES, World, fresh_root, make_world
from tests.fuzz.conftest import examples

FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}

# --------------------------------------------------------------------------- the parsers


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # empty for a positional
    takes_value: bool
    choices: tuple[str, ...] | None
    integer: bool
    dest: str


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    found = []
    for action in parser._actions:
        takes_value = action.nargs != 0
        choices = tuple(action.choices) if action.choices else None
        # type=int, or dcprestage's ASCII-only number type (which argparse names int)
        integer = getattr(action.type, "__name__", None) == "int"
        found.append(
            Option(tuple(action.option_strings), takes_value, choices, integer, action.dest)
        )
    return found


def _command_options() -> dict[str, list[Option]]:
    app = cli.DcPrestageApp()
    return {
        name: _options(command(app, None, cmd_name=name).get_parser(f"dcprestage {name}"))
        for name, command in cli.COMMANDS.items()
    }


COMMAND_OPTIONS = _command_options()
# --debug prints tracebacks by design; --log-file gets paths under the test's own dir only.
GLOBAL_OPTIONS = [
    o for o in _options(cli.DcPrestageApp().parser) if o.dest not in ("debug", "log_file")
]
MUTATING = {
    "prestage-strategy create", "prestage-strategy apply", "prestage-strategy abort",
    "prestage-strategy delete", "subcloud update", "subcloud prestage", "subcloud-group add",
    "subcloud-group update", "subcloud-group delete",
    "prestage-strategy report",  # writes the report (reports/<label>.html, or --output)
}  # fmt: skip
assert set(COMMAND_OPTIONS) >= MUTATING, "a mutating command was renamed"

# --------------------------------------------------------------------------- values

# (a strategy state first: "abort requested" has a space)
COUNTS_LINE = re.compile(
    rf"(?:{'|'.join(model.STRATEGY_STATES)}): \d+ steps: \d+ complete, .* waiting"
    r"( - elapsed .*)?$"
)

SUBCLOUDS = [f"subcloud{i}" for i in range(1, 25)]
GROUP_REFS = ["Default", "First_10_Subclouds", "Edge_Serial", "1", "2", "3", "4", "0", "99"]
# the system controller's (25.09), the one it upgrades from, others, malformed ones
RELEASES = ["25.09", "24.09", "22.12", "26.03", "21.12", "24.9", "24.09.1", "2409", "",
            "25.09\n", "\uff12\uff15.\uff10\uff19", "25.0\u0669"]  # fmt: skip
COLUMNS = [
    "id", "name", "state", "cloud", "stage", "details", "description", "group_name",
    "strategy type", "prestage status", "max parallel subclouds", "update apply type",
]  # fmt: skip
# bytes a shell passes for non-UTF-8 arguments arrive as lone surrogates (surrogateescape)
SURROGATE_ESCAPES = st.sampled_from([chr(0xDC80 + b) for b in (0x7F, 0x80, 0xC3, 0xFF)])
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.text(st.one_of(TEXT_CHARS, SURROGATE_ESCAPES), max_size=12)
INTEGERS = st.one_of(
    st.integers(-3, 300).map(str),
    st.sampled_from(["0", "-1", "251", "5000", "5001", "99999999999999999999", " 3", "3.0",
                     "0x10", "1_0", "", "+2", "\u0663", "3\n", "\uff13"]),
)  # fmt: skip


def _value_for(option: Option, world: World) -> st.SearchStrategy[str]:
    if option.choices:
        return st.one_of(st.sampled_from(option.choices), TEXT)
    if option.integer:
        return INTEGERS
    dest = option.dest
    pools: dict[str, list[str]] = {
        "cloud_name": SUBCLOUDS,
        "subcloud": SUBCLOUDS,
        "group": GROUP_REFS,
        "name": [
            "new_group",
            "Edge_Serial",
            "edge_serial",
            "Default",
            "all",
            "a.b",
            "12",
            "x" * 256,
        ],
        "description": ["A group", "", " ", "d" * 256],
        "release": RELEASES,
        "columns": COLUMNS,
        "sort_columns": COLUMNS,
        "inventory": [str(world.config), str(world.registry), str(world.root), "nope.yml", ""],
        "state_dir": [str(world.state_dir), str(world.config), "relative-state", "", "~/st"],
        "sysadmin_password": ["Pw-1", "", " "],
        "prefix": ["p_", ""],
        "variables": ["id", "name"],
        "output": [str(world.root / "run.html"), "run.html", str(world.state_dir), ""],
    }
    return st.one_of(st.sampled_from(pools.get(dest, ["x"])), TEXT)


@st.composite
def command_lines(draw: st.DrawFn, world: World) -> list[str]:
    """An argv: global options, a command (sometimes a broken one), its options in any order."""
    argv: list[str] = []
    for option in draw(st.lists(st.sampled_from(GLOBAL_OPTIONS), max_size=2)):
        argv += _render(draw, option, world)
    shape = draw(st.sampled_from(["command"] * 8 + ["help", "partial", "junk"]))
    if shape == "junk":
        return argv + draw(
            st.lists(st.one_of(TEXT, st.sampled_from(["--", "-", "-x"])), max_size=4)
        )
    name = draw(st.sampled_from(sorted(COMMAND_OPTIONS)))
    if shape == "help":
        return [*argv, "help", *draw(st.sampled_from([name.split(), name.split()[:1], ["nope"]]))]
    if shape == "partial":
        return [*argv, name.split()[0]]
    argv += name.split()
    options = COMMAND_OPTIONS[name]
    chosen = draw(st.lists(st.sampled_from(options), max_size=5))
    positionals = [o for o in options if not o.flags]
    # positionals are usually given (else most runs would only test "missing argument")
    for option in positionals:
        if draw(st.integers(0, 9)) > 0:
            chosen.append(option)
    parts = [_render(draw, option, world) for option in chosen]
    parts = draw(st.permutations(parts)) if parts else parts
    for part in parts:
        argv += part
    if draw(st.integers(0, 19)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--", "--nope", "-z"])))
    return argv


def _render(draw: st.DrawFn, option: Option, world: World) -> list[str]:
    if not option.flags:
        return [draw(_value_for(option, world))]
    flag = draw(st.sampled_from(option.flags))
    if not option.takes_value:
        return [flag]
    value = draw(_value_for(option, world))
    if flag.startswith("--") and draw(st.booleans()):
        return [f"{flag}={value}"]
    return [flag, value]


# --------------------------------------------------------------------------- checks


def resolve(argv: list[str]) -> tuple[argparse.Namespace, str | None, list[str]]:
    """What dcprestage makes of argv: its global options, the command name, the rest."""
    app = cli.DcPrestageApp()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            options, rest = app.parser.parse_known_args(argv)
    except SystemExit:
        return argparse.Namespace(verbose_level=1), None, []
    try:
        _factory, name, sub_argv = app.command_manager.find_command(rest)
    except (ValueError, IndexError):
        return options, None, rest
    return options, name, sub_argv


def check_outcome(world: World, outcome: Outcome, before: dict[str, str]) -> None:
    note(outcome.describe())
    assert "Traceback" not in outcome.err + outcome.out, outcome.describe()
    options, name, _sub_argv = resolve(outcome.argv)
    verbose = getattr(options, "verbose_level", 1) > 1
    after = tree_digest(*world.watched())
    if outcome.code != 0:
        assert_clean_error(outcome, verbose=verbose)
        # the world's registry is valid: an error must not blame it (the arguments are wrong)
        assert "Invalid subcloud registry" not in outcome.err, outcome.describe()
        assert after == before, (
            f"files changed on error: {_diff(before, after)} {outcome.describe()}"
        )
        return
    assert not outcome.caught, outcome.describe()
    if not verbose:
        for line in outcome.err_lines:
            # strategy-step list's counts line follows dcmanager's table on stderr
            counts = name == "strategy-step list" and COUNTS_LINE.match(line)
            assert line.startswith("Warning: ") or counts, (
                f"stderr on success: {outcome.describe()}"
            )
    helped = "-h" in outcome.argv or "--help" in outcome.argv
    reading = name is None or name not in MUTATING or helped
    if reading:
        assert after == before, (
            f"a reading command changed files: {_diff(before, after)} {outcome.describe()}"
        )
        return
    # a change that succeeded left a registry that loads, and what it wrote of the state loads
    load_registry(str(world.registry))
    store = StateStore(_state_dir_of(world, options))
    if before.get(store.strategy_path) != after.get(store.strategy_path):
        store.load_strategy()
    if before.get(store.subclouds_path) != after.get(store.subclouds_path):
        store.load_statuses()


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str | None, ...]]:
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)}  # fmt: skip


def _state_dir_of(world: World, options: argparse.Namespace) -> str:
    explicit = getattr(options, "state_dir", None)
    if not explicit:
        return str(world.state_dir)
    path = Path(explicit).expanduser()
    return str(path if path.is_absolute() else world.cwd / path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(fresh_root(tmp_path_factory.mktemp("cli-fuzz"), "w"))


ENVIRONMENTS = st.sampled_from(
    [{}] * 6 + [{"inventory": False}, {"state_dir": False}, {"password": False}]
)


@settings(max_examples=examples(3000), **FUZZ_SETTINGS)
@given(data=st.data())
def test_any_command_line_in_process(world: World, data: st.DataObject) -> None:
    state = data.draw(st.sampled_from(STATES), label="state")
    env = world.env(**data.draw(ENVIRONMENTS, label="env"))
    argv = data.draw(command_lines(world), label="argv")
    world.reset(state)
    before = tree_digest(*world.watched())
    outcome = run_in_process(argv, env, world.cwd)
    check_outcome(world, outcome, before)


@settings(max_examples=examples(100), **FUZZ_SETTINGS)
@given(data=st.data())
def test_any_command_line_as_a_real_process(world: World, data: st.DataObject) -> None:
    """A smaller sample as real processes: what the in-process runs cannot show (exit codes
    through the console script, real stdout/stderr encodings, interpreter shutdown)."""
    state = data.draw(st.sampled_from(STATES), label="state")
    env = world.env(**data.draw(ENVIRONMENTS, label="env"))
    # a real apply would start the orchestrator; the in-process test covers apply
    env["DCPRESTAGE_PLAYBOOK"] = str(world.root / "no-such-playbook.yml")
    argv = data.draw(command_lines(world), label="argv")
    if resolve(argv)[1] in ("prestage-strategy apply", "subcloud prestage"):
        argv = ["prestage-strategy", "show"]
    world.reset(state)
    before = tree_digest(*world.watched())
    outcome = run_process(argv, env, world.cwd)
    check_outcome(world, outcome, before)


# --------------------------------------------------------------------------- correct output


def _json(world: World, argv: list[str], state: str = "none") -> Any:
    world.reset(state)
    outcome = run_in_process([*argv, "-f", "json"], world.env(), world.cwd)
    assert outcome.code == 0, outcome.describe()
    assert not outcome.caught, outcome.describe()
    return json.loads(outcome.out)


@settings(max_examples=examples(300), **FUZZ_SETTINGS)
@given(
    subcloud=st.sampled_from(SUBCLOUDS),
    group=st.sampled_from(GROUP_REFS[:6]),
    state=st.sampled_from(["initial", "applying", "complete", "failed", "aborted"]),
)
def test_reading_commands_print_what_the_files_say(
    world: World, subcloud: str, group: str, state: str
) -> None:
    registry = load_registry(str(world.registry))
    sc = registry.subcloud(subcloud)
    shown = _json(world, ["subcloud", "show", subcloud])
    assert (shown["id"], shown["name"], shown["oam_floating_ip"]) == (
        sc.id, sc.name, sc.oam_floating_address,
    )  # fmt: skip
    assert shown["group_name"] == registry.group_of(sc).name
    expected_group = registry.group(group)
    shown_group = _json(world, ["subcloud-group", "show", group])
    assert (shown_group["id"], shown_group["name"]) == (expected_group.id, expected_group.name)
    members = _json(world, ["subcloud-group", "list-subclouds", group])
    assert [m["name"] for m in members] == [s.name for s in registry.members(expected_group)]
    strategy = json.loads(world.strategies[state])
    steps = _json(world, ["strategy-step", "list"], state)
    assert [(s["cloud"], s["state"]) for s in steps] == [
        (s["cloud"], s["state"]) for s in strategy["steps"]
    ]
    shown_strategy = _json(world, ["prestage-strategy", "show"], state)
    assert shown_strategy["state"] == strategy["strategy"]["state"] == state


@settings(max_examples=examples(300), **FUZZ_SETTINGS)
@given(
    target=st.one_of(
        st.tuples(st.just("cloud"), st.sampled_from(SUBCLOUDS)),
        st.tuples(st.just("group"), st.sampled_from(GROUP_REFS[:6])),
        st.tuples(st.just("all"), st.just("")),
    ),
    apply_type=st.sampled_from([None, "parallel", "serial"]),
    max_parallel=st.one_of(st.none(), st.integers(1, 250)),
    release=st.sampled_from([None, "25.09", "24.09"]),
    kind=st.sampled_from([None, "--for-install", "--for-sw-deploy"]),
    stop_on_failure=st.booleans(),
)
def test_create_makes_the_strategy_it_prints(  # noqa: PLR0917 - one argument per @given
    world: World,
    target: tuple[str, str],
    apply_type: str | None,
    max_parallel: int | None,
    release: str | None,
    kind: str | None,
    stop_on_failure: bool,
) -> None:
    argv = ["prestage-strategy", "create"]
    if target[0] == "cloud":
        argv.append(target[1])
    elif target[0] == "group":
        argv += ["--group", target[1]]
    if apply_type and target[0] != "group":
        argv += ["--subcloud-apply-type", apply_type]
    if max_parallel is not None and target[0] != "group":
        argv += ["--max-parallel-subclouds", str(max_parallel)]
    argv += ["--release", release] if release else []
    argv += [kind] if kind else []
    argv += ["--stop-on-failure"] if stop_on_failure else []
    world.reset("none")
    before = tree_digest(*world.watched())
    outcome = run_in_process([*argv, "-f", "json"], world.env(), world.cwd)
    note(outcome.describe())
    if outcome.code != 0:  # e.g. an offline subcloud, or sw-deploy to an older release
        assert_clean_error(outcome)
        assert tree_digest(*world.watched()) == before
        return
    printed = json.loads(outcome.out)
    saved = StateStore(str(world.state_dir)).require_strategy()
    assert printed["state"] == saved.state == "initial"
    assert printed["prestage software version"] == saved.release == (release or "25.09")
    assert printed["stop on failure"] is saved.stop_on_failure is stop_on_failure
    assert saved.for_sw_deploy is (kind == "--for-sw-deploy")
    clouds = [step.cloud for step in saved.steps]
    registry = load_registry(str(world.registry))
    if target[0] == "cloud":
        assert clouds == [target[1]]
    else:
        pool = (
            registry.members(registry.group(target[1])) if target[0] == "group"
            else registry.subclouds
        )  # fmt: skip
        eligible = [
            s.name for s in pool if s.availability == "online" and s.management == "managed"
        ]
        assert sorted(clouds) == sorted(eligible)
    assert (world.state_dir / "sysadmin_password").read_text() == "Fuzz-Pw-1"
    assert "Fuzz-Pw-1" not in (world.state_dir / "strategy.json").read_text()


def test_the_example_world_is_sane(world: World) -> None:
    """The fixtures above describe real states (guards the fuzzers against a vacuous world)."""
    for state in ("initial", "applying", "complete"):
        world.reset(state)
        assert StateStore(str(world.state_dir)).require_strategy().state == state
    assert socket.gethostname()
    assert yaml.safe_load(world.registry_text)["subclouds"]


# --------------------------------------------------------------------------- ASCII-only formats

# Unicode digits that int(), str.isdigit() and \\d take: Arabic-Indic, fullwidth, Devanagari,
# mathematical bold.
OTHER_DIGITS = ["\u0660", "\uff10", "\u0966", "\U0001d7ce"]


def taint(value: str, how: str) -> str:
    """value made unacceptable in one of the ways `$` and \\d let through."""
    if how == "newline":
        return value + "\n"
    zero = ord(OTHER_DIGITS[int(how)])
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in value)


TAINTS = st.sampled_from(["newline", "0", "1", "2", "3"])
NUMBER_OPTIONS = sorted(
    (name, flag)
    for name, options in COMMAND_OPTIONS.items()
    for option in options
    if option.integer
    for flag in option.flags
)
RELEASE_COMMANDS = sorted(
    name for name, options in COMMAND_OPTIONS.items() if any(o.dest == "release" for o in options)
)
assert NUMBER_OPTIONS and RELEASE_COMMANDS, "the options fuzzed below were renamed"


@settings(max_examples=examples(300), **FUZZ_SETTINGS)
@given(
    option=st.sampled_from(NUMBER_OPTIONS),
    number=st.integers(1, 250).map(str),
    how=TAINTS,
)
def test_a_number_with_a_newline_or_other_digits_is_refused(
    world: World, option: tuple[str, str], number: str, how: str
) -> None:
    name, flag = option
    value = taint(number, how)
    world.reset("none")
    before = tree_digest(*world.watched())
    outcome = run_in_process([*name.split(), flag, value], world.env(), world.cwd)
    note(outcome.describe())
    assert_clean_error(outcome)
    assert f"argument {flag}: invalid int value: " in outcome.err, outcome.describe()
    assert tree_digest(*world.watched()) == before


@settings(max_examples=examples(300), **FUZZ_SETTINGS)
@given(
    command=st.sampled_from(RELEASE_COMMANDS),
    release=st.sampled_from(["25.09", "24.09"]),
    how=TAINTS,
)
def test_a_release_with_a_newline_or_other_digits_is_a_format_error(
    world: World, command: str, release: str, how: str
) -> None:
    argv = [*command.split(), *(["subcloud1"] if command == "subcloud prestage" else [])]
    world.reset("none")
    before = tree_digest(*world.watched())
    outcome = run_in_process([*argv, "--release", taint(release, how)], world.env(), world.cwd)
    note(outcome.describe())
    assert_clean_error(outcome)
    assert outcome.err_lines == [
        "Specified release format is not supported. Version format must be MM.mm."
    ], outcome.describe()
    assert tree_digest(*world.watched()) == before
