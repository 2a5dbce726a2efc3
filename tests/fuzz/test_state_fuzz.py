"""Fuzzed state files: strategy.json (and subclouds.json) valid, mutated, truncated, garbage.

Through `StateStore.load_strategy` / `load_statuses` and through every command that reads or
writes them. Invariant: a correct Strategy (equal to the one that was saved) or one line of
StateFileError naming the file, never another exception; a command that fails leaves the file
byte for byte as it was.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import StateFileError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    SCHEMA,
    StateStore,
)
from tests.fuzz._harness import assert_clean_error, run_in_process, tree_digest
from tests.fuzz._world import World, fresh_root, make_world
from tests.fuzz.conftest import examples

FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
}

TEXT = st.text(max_size=20)
OPT_TEXT = st.one_of(st.none(), TEXT)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip


@st.composite
def strategies(draw: st.DrawFn) -> model.Strategy:
    """Any Strategy the model can hold (what a save must give back on load)."""
    numbers = draw(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=4, unique=True))
    stages = [
        model.Stage(
            number=n,
            group=draw(OPT_TEXT),
            subcloud_apply_type=draw(st.sampled_from([None, *model.APPLY_TYPES])),
            max_parallel_subclouds=draw(st.integers(-5, 10**6)),
        )
        for n in numbers
    ]
    steps = [
        model.Step(
            cloud=draw(TEXT),
            stage=draw(st.sampled_from(numbers)),
            state=draw(st.sampled_from(model.STEP_STATES)),
            details=draw(TEXT),
            started_at=draw(OPT_TEXT),
            finished_at=draw(OPT_TEXT),
            created_at=draw(TEXT),
            updated_at=draw(OPT_TEXT),
        )
        for _index in range(draw(st.integers(0, 12)))
    ]
    return model.Strategy(
        release=draw(TEXT),
        for_sw_deploy=draw(st.booleans()),
        subcloud_apply_type=draw(st.sampled_from([None, *model.APPLY_TYPES])),
        max_parallel_subclouds=draw(st.one_of(st.none(), st.integers(-5, 10**6))),
        stop_on_failure=draw(st.booleans()),
        force=draw(st.booleans()),
        cloud_name=draw(OPT_TEXT),
        group=draw(OPT_TEXT),
        stages=stages,
        steps=steps,
        state=draw(st.sampled_from(model.STRATEGY_STATES)),
        created_at=draw(TEXT),
        updated_at=draw(OPT_TEXT),
        orchestrator=draw(st.dictionaries(TEXT, JSON_VALUES, max_size=4)),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A saved strategy with one value replaced, removed, or a key added, anywhere."""
    document = copy.deepcopy(draw(strategies()).to_dict())
    path = draw(st.sampled_from(_paths(document)))
    kind = draw(st.sampled_from(["replace", "remove", "add"]))
    if not path:
        return draw(JSON_VALUES)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "remove":
        del parent[last]
    elif kind == "add" and isinstance(parent, dict):
        parent[draw(TEXT)] = draw(JSON_VALUES)
    else:
        parent[last] = draw(st.one_of(JSON_VALUES, st.sampled_from([SCHEMA + 1, 0, "1", True])))
    return document


GARBAGE_TEXTS = [
    "", " ", "null", "[]", "{}", "0", '"x"', "{", '{"schema": 1', "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 50_000 + "1" + "}" * 50_000, "NaN", '{"schema": NaN}', '{"schema": 1e999}',
    '{"schema": 1, "strategy": {"type": "prestage"}, "steps": []}', "\ufeff{}",
    '{"schema": 1}\n{"schema": 1}', '{"schema": 2, "strategy": {}, "steps": []}',
]  # fmt: skip


@st.composite
# One return per kind of damage: past ruff's PLR0911 limit.
def state_files(draw: st.DrawFn) -> tuple[str, bytes]:  # noqa: PLR0911
    """What a strategy.json may hold after a crash, a bad edit, a newer version or a disk error."""
    kind = draw(
        st.sampled_from(["valid", "mutated", "truncated", "garbage", "text", "bytes", "edited"])
    )
    if kind == "garbage":
        return kind, draw(st.sampled_from(GARBAGE_TEXTS)).encode()
    if kind == "bytes":
        return kind, draw(st.binary(max_size=200))
    if kind == "text":
        return kind, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "mutated":
        return kind, json.dumps(draw(mutated_documents())).encode()
    text = json.dumps(draw(strategies()).to_dict(), separators=(",", ":"))
    if kind == "truncated":
        return kind, text[: draw(st.integers(0, max(len(text) - 1, 0)))].encode()
    if kind == "edited":
        position = draw(st.integers(0, len(text)))
        return kind, (text[:position] + draw(st.text(max_size=3)) + text[position + 1 :]).encode()
    return kind, text.encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(fresh_root(tmp_path_factory.mktemp("state-fuzz"), "w"))


def load(store: StateStore) -> model.Strategy | StateFileError | None:
    try:
        return store.load_strategy()
    except StateFileError as exc:
        message = str(exc)
        assert "\n" not in message and store.strategy_path in message, message
        return exc


@settings(max_examples=examples(1500), **FUZZ_SETTINGS)
@given(strategy=strategies())
def test_a_saved_strategy_loads_equal(world: World, strategy: model.Strategy) -> None:
    world.reset("empty")
    store = StateStore(str(world.state_dir))
    store.save_strategy(strategy)
    assert store.load_strategy() == strategy


@settings(max_examples=examples(3000), **FUZZ_SETTINGS)
@given(content=state_files())
def test_any_strategy_file_loads_or_is_one_clear_line(
    world: World, content: tuple[str, bytes]
) -> None:
    kind, payload = content
    note(f"{kind}: {payload[:300]!r}")
    world.reset("empty")
    (world.state_dir / "strategy.json").write_bytes(payload)
    result = load(StateStore(str(world.state_dir)))
    if kind == "valid":
        assert isinstance(result, model.Strategy)
    if isinstance(result, model.Strategy):  # what loads saves back to an equal strategy
        assert model.Strategy.from_dict(json.loads(json.dumps(result.to_dict()))) == result


COMMANDS = [
    ["prestage-strategy", "show"],
    ["strategy-step", "list"],
    ["strategy-step", "show", "subcloud1"],
    ["prestage-strategy", "apply"],
    ["prestage-strategy", "abort"],
    ["prestage-strategy", "delete"],
    ["prestage-strategy", "create", "--group", "Edge_Serial"],
    ["subcloud", "prestage", "subcloud20"],
    ["subcloud", "list"],
    ["subcloud", "show", "subcloud3"],
]


@settings(max_examples=examples(1200), **FUZZ_SETTINGS)
@given(content=state_files(), command=st.sampled_from(COMMANDS), statuses=st.booleans())
def test_commands_on_any_state_file(
    world: World, content: tuple[str, bytes], command: list[str], statuses: bool
) -> None:
    """Every command on a fuzzed strategy.json (or subclouds.json): correct or one clear line."""
    kind, payload = content
    world.reset("empty")
    target = world.state_dir / ("subclouds.json" if statuses else "strategy.json")
    target.write_bytes(payload)
    note(f"{kind} {target.name}: {payload[:300]!r}")
    before = tree_digest(*world.watched())
    outcome = run_in_process(command, world.env(), world.cwd)
    note(outcome.describe())
    if outcome.code != 0:
        assert_clean_error(outcome)
        assert tree_digest(*world.watched()) == before, "a failed command changed files"
        if "State file" in outcome.err:
            assert str(target) in outcome.err, outcome.describe()
        return
    assert not outcome.caught, outcome.describe()
    # what a command that succeeded rewrote loads
    store = StateStore(str(world.state_dir))
    if target.exists() and target.read_bytes() != payload:
        if statuses:
            store.load_statuses()
        else:
            assert isinstance(load(store), model.Strategy), outcome.describe()
