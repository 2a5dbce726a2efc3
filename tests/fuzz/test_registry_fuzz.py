"""Fuzzed subcloud registries: valid ones, wrong types, duplicates, broken YAML, junk, big ones.

Through `load_registry` (what the inventory plugin and every command read) and through the CLI
(`subcloud list` reads it, `subcloud-group add` edits it). Invariant: a correct Registry (checked
against the document the test generated) or one line of PrestageError naming the file, never
another exception; a command that fails leaves the file byte for byte as it was, and an edit of a
valid registry succeeds and keeps everything else.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _registry as reg
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from tests.fuzz._harness import assert_clean_error, run_in_process
from tests.fuzz._world import World, fresh_root, make_world
from tests.fuzz.conftest import examples

FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}

# --------------------------------------------------------------------------- valid registries

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
GROUP_NAMES = st.text(NAME_CHARS, min_size=1, max_size=20).filter(
    lambda n: reg.group_name_problem(n) is None
)
SUBCLOUD_NAMES = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,30}\Z")
# Text a YAML file can hold as written (PyYAML folds raw line breaks such as U+0085 and U+2028
# inside scalars, and refuses raw control characters: a property of YAML, not of the registry).
PRINTABLE = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)
DESCRIPTIONS = PRINTABLE.filter(lambda d: reg.description_problem(d) is None)
ADDRESSES = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
VERSIONS = st.from_regex(r"\A[0-9]{2}\.[0-9]{2}(\.[0-9]{1,3})?\Z")
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), PRINTABLE),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(PRINTABLE, inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
# A strategy draws each optional field in turn: past ruff's PLR0912 limit.
def registries(draw: st.DrawFn, max_subclouds: int = 12) -> dict[str, Any]:  # noqa: PLR0912
    """A valid registry document (plain data, as a user would write it)."""
    ids = draw(st.lists(st.integers(2, 10**6), unique=True, max_size=5))
    names = draw(st.lists(GROUP_NAMES, min_size=len(ids), max_size=len(ids), unique_by=str.lower))
    groups = []
    for group_id, name in zip(ids, names, strict=True):
        group: dict[str, Any] = {"id": group_id, "name": name}
        if draw(st.booleans()):
            group["description"] = draw(DESCRIPTIONS)
        if draw(st.booleans()):
            group["update_apply_type"] = draw(st.sampled_from(reg.APPLY_TYPES))
        if draw(st.booleans()):
            group["max_parallel_subclouds"] = draw(st.integers(1, 5000))
        groups.append(group)
    if draw(st.booleans()):  # Default listed explicitly, somewhere
        default = {"id": 1, "name": "Default"}
        if draw(st.booleans()):
            default["max_parallel_subclouds"] = draw(st.integers(1, 5000))
        groups.insert(draw(st.integers(0, len(groups))), default)
    refs = ["Default", 1] + [g["name"] for g in groups] + [g["id"] for g in groups]
    count = draw(st.integers(0, max_subclouds))
    sc_ids = draw(st.lists(st.integers(1, 10**6), unique=True, min_size=count, max_size=count))
    sc_names = draw(st.lists(SUBCLOUD_NAMES, unique=True, min_size=count, max_size=count))
    addresses = draw(st.lists(ADDRESSES, min_size=count, max_size=count, unique_by=_normal_address))
    shared_vars = draw(st.dictionaries(SUBCLOUD_NAMES, JSONISH, max_size=2))
    subclouds = []
    for sc_id, name, address in zip(sc_ids, sc_names, addresses, strict=True):
        sc: dict[str, Any] = {
            "id": sc_id,
            "name": name,
            "oam_floating_address": address,
            "software_version": draw(VERSIONS),
        }
        if draw(st.booleans()):
            sc["group"] = draw(st.sampled_from(refs))
        for key, choices in (
            ("management", reg.MANAGEMENT_STATES),
            ("availability", reg.AVAILABILITY_STATES),
            ("system_mode", reg.SYSTEM_MODES),
        ):
            if draw(st.booleans()):
                sc[key] = draw(st.sampled_from(choices))
        for key in ("deploy_status", "sync", "backup_status"):
            if draw(st.booleans()):
                sc[key] = draw(PRINTABLE)
        if draw(st.booleans()):  # equal (never the same) objects: YAML aliases are refused
            sc["vars"] = (
                copy.deepcopy(shared_vars)
                if draw(st.booleans())
                else draw(st.dictionaries(SUBCLOUD_NAMES, JSONISH, max_size=3))
            )
        subclouds.append(sc)
    document: dict[str, Any] = {}
    if groups or draw(st.booleans()):
        document["groups"] = groups
    if subclouds or draw(st.booleans()):
        document["subclouds"] = subclouds
    if not document:  # an empty file is an error: `subclouds: []` is the empty registry
        document["subclouds"] = []
    if draw(st.booleans()):  # the highest group id ever given (groups were deleted since)
        document[reg.LAST_GROUP_ID_KEY] = max([1, *ids]) + draw(st.integers(0, 5))
    return document


def _normal_address(address: str) -> str:
    return str(ipaddress.ip_address(address))


def dump(document: Any, draw: st.DrawFn) -> str:
    """The document as YAML in one of the styles users write."""
    style = draw(st.sampled_from(["block", "flow", "default", "comments"]))
    text = yaml.safe_dump(
        document,
        default_flow_style={"block": False, "flow": True}.get(style),
        sort_keys=draw(st.booleans()),
        allow_unicode=draw(st.booleans()),
        indent=draw(st.sampled_from([2, 4])),
        width=draw(st.sampled_from([80, 4096])),
    )
    if style == "comments":
        text = "# a registry\n" + text.replace("\n", "  # note\n", 1)
    return text


def expected_registry(document: dict[str, Any], path: str) -> reg.Registry:
    """What load_registry must make of a valid document (the model of the format)."""
    groups = [
        reg.Group(
            g["id"],
            g["name"],
            g.get("description", reg.GROUP_DEFAULT_DESCRIPTION),
            g.get("update_apply_type", reg.GROUP_DEFAULT_APPLY_TYPE),
            g.get("max_parallel_subclouds", reg.GROUP_DEFAULT_MAX_PARALLEL),
        )
        for g in document.get("groups") or []
    ]
    if not any(g.id == 1 for g in groups):
        groups.append(reg.Group(1, "Default", reg.DEFAULT_GROUP_DESCRIPTION))
    groups.sort(key=lambda g: g.id)
    by_ref = {g.name: g.id for g in groups} | {g.id: g.id for g in groups}
    subclouds = [
        reg.Subcloud(
            id=s["id"],
            name=s["name"],
            group_id=by_ref[s.get("group", "Default")],
            oam_floating_address=_normal_address(s["oam_floating_address"]),
            software_version=s["software_version"],
            management=s.get("management", "managed"),
            availability=s.get("availability", "online"),
            deploy_status=s.get("deploy_status", "complete"),
            system_mode=s.get("system_mode", "simplex"),
            sync=s.get("sync", "unknown"),
            backup_status=s.get("backup_status"),
            vars=s.get("vars") or {},
        )
        for s in document.get("subclouds") or []
    ]
    subclouds.sort(key=lambda s: s.id)
    last = max([document.get(reg.LAST_GROUP_ID_KEY, 1), *(g.id for g in groups)])
    return reg.Registry(path=path, groups=groups, subclouds=subclouds, last_group_id=last)


def assert_one_line_error(exc: PrestageError, path: str) -> None:
    message = str(exc)
    assert "\n" not in message and message.strip(), repr(message)
    assert path in message, f"the error does not name the file: {message}"


def load_or_error(path: Path) -> reg.Registry | PrestageError:
    """load_registry's answer: a Registry or a PrestageError (any other exception escapes)."""
    try:
        return reg.load_registry(str(path))
    except PrestageError as exc:
        assert_one_line_error(exc, str(path))
        return exc


# --------------------------------------------------------------------------- invalid documents

WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=False),
    st.just(24.10), st.text(max_size=8), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.just(""), st.just(0),
)  # fmt: skip
FIELDS = sorted(reg._SUBCLOUD_KEYS | reg._GROUP_KEYS | {"bogus", "groups", "subclouds"})


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> tuple[dict[str, Any] | Any, str]:
    """document with one thing broken; returns it and what was done (for the report)."""
    doc = copy.deepcopy(document)
    kind = draw(
        st.sampled_from(["field", "drop", "unknown", "duplicate", "dangling", "top", "section"])
    )
    sections = [s for s in ("groups", "subclouds") if doc.get(s)]
    if kind == "top":
        return draw(st.one_of(WRONG_VALUES, st.lists(st.just(doc), max_size=1))), kind
    if kind == "section" or not sections:
        doc[draw(st.sampled_from(["groups", "subclouds", "extra"]))] = draw(WRONG_VALUES)
        return doc, kind
    section = draw(st.sampled_from(sections))
    items = doc[section]
    index = draw(st.integers(0, len(items) - 1))
    item = items[index]
    if kind == "field":
        item[draw(st.sampled_from(FIELDS))] = draw(WRONG_VALUES)
    elif kind == "drop" and item:
        item.pop(draw(st.sampled_from(sorted(item))))
    elif kind == "unknown":
        item[draw(st.text(min_size=1, max_size=8))] = draw(WRONG_VALUES)
    elif kind == "duplicate":
        other = copy.deepcopy(item)
        items.insert(draw(st.integers(0, len(items))), other)
        key = draw(st.sampled_from(["id", "name", "oam_floating_address"]))
        if key in other and len(items) > 2:  # a copy that differs but for one key
            donor = items[(items.index(other) + 1) % len(items)]
            other.update({k: v for k, v in donor.items() if k != key})
    elif kind == "dangling" and section == "subclouds":
        item["group"] = draw(st.sampled_from(["NoSuchGroup", 99999999, "default", "", True]))
    return doc, kind


# --------------------------------------------------------------------------- text-level junk

YAML_TRICKS = [
    "groups: &g [{id: 2, name: a}]\nsubclouds: *g\n",
    "groups:\n  - &x {id: 2, name: a}\n  - *x\n",
    "subclouds:\n  - !!python/object/apply:os.system ['true']\n",
    "subclouds: !!binary aGVsbG8=\n",
    "groups:\n  - {id: 2, name: 2026-01-01}\n",
    "groups:\n  - {id: 2, name: !!set {a, b}}\n",
    "groups:\n  - {<<: {id: 2}, name: merged}\n",
    "groups:\n  - {? [a, b] : c}\n",
    "groups: []\n---\nsubclouds: []\n",
    "\ufeffgroups: []\n",
    "groups:\n\t- {id: 2, name: tab}\n",
    "groups: [" * 2000 + "]" * 2000 + "\n",
    "a: " + "[" * 60 + "]" * 60 + "\n",
    "subclouds:\n  - " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "groups: [{id: 2, name: x, id: 3}]\n",
    "subclouds: [{id: 1, name: s, oam_floating_address: 10.0.0.1, software_version: 24.10}]\n",
    "subclouds: [{id: 1, name: s, oam_floating_address: 10.0.0.1, software_version: '24.10', "
    "vars: {1: x}}]\n",
    "groups: [{id: 99999999999999999999999999, name: big}]\n",
    "groups: [{id: 2, name: .inf}, {id: 3, name: .nan}]\n",
    "%YAML 1.1\n%TAG ! tag:x,2000:\n---\ngroups: !foo []\n",
    "groups: !!str\n",
    "? ? ? a\n",
    "'" * 3,
    "- - -\n",
    "groups: [{id: 2, name: x}]\nsubclouds: [{id: 1, name: y, group: [x]}]\n",
    # issue 15: an alias bomb nested in a subcloud's vars, a trailing newline, other digits
    "subclouds:\n  - {id: 1, name: s, oam_floating_address: 10.0.0.1, software_version: '24.09',\n"
    "     vars: {a: &a [x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a],\n"
    "            c: &c [*b, *b, *b, *b, *b, *b, *b, *b], d: [*c, *c, *c, *c, *c, *c, *c, *c]}}\n",
    'subclouds: [{id: 1, name: "evil\\n", oam_floating_address: 10.0.0.1, '
    "software_version: '24.09'}]\n",
    'subclouds: [{id: 1, name: s, oam_floating_address: 10.0.0.1, software_version: "22.12\\n"}]\n',
    "subclouds: [{id: 1, name: s, oam_floating_address: 10.0.0.1, "
    'software_version: "\uff12\uff12.\uff11\uff12"}]\n',
    "",
    "# only a comment\n",
]


@st.composite
def junk_texts(draw: st.DrawFn) -> str | bytes:
    choice = draw(st.sampled_from(["trick", "mutated", "text", "bytes", "truncated"]))
    if choice == "trick":
        return draw(st.sampled_from(YAML_TRICKS))
    if choice == "text":
        return draw(st.text(max_size=300))
    if choice == "bytes":
        return draw(st.binary(max_size=300))
    text = dump(draw(registries(max_subclouds=4)), draw)
    if choice == "truncated":
        return text[: draw(st.integers(0, len(text)))]
    edits = draw(st.lists(st.tuples(st.integers(0, max(len(text) - 1, 0)), st.text(max_size=3)),
                          min_size=1, max_size=4))  # fmt: skip
    for position, insert in edits:
        cut = draw(st.integers(0, 3))
        text = text[:position] + insert + text[position + cut :]
    return text


# --------------------------------------------------------------------------- issue 15's cases

# Unicode digits that \\d and int() take: Arabic-Indic, fullwidth, Devanagari.
OTHER_DIGITS = ["\u0660", "\uff10", "\u0966"]


@st.composite
def tainted(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid registry with one name, version or group reference made unacceptable in a way
    `$` or \\d let through (a trailing newline, other digits); returns it and what was done."""
    document = draw(registries(max_subclouds=5))
    assume(document.get("subclouds"))
    sc = draw(st.sampled_from(document["subclouds"]))
    key = draw(st.sampled_from(["name", "software_version"]))
    if draw(st.booleans()):
        sc[key] += "\n"
        return document, f"{key} + newline"
    zero = ord(draw(st.sampled_from(OTHER_DIGITS)))
    digits = [i for i, c in enumerate(sc[key]) if c in "0123456789"]
    assume(digits)
    at = draw(st.sampled_from(digits))
    sc[key] = sc[key][:at] + chr(zero + int(sc[key][at])) + sc[key][at + 1 :]
    return document, f"{key} with other digits"


@st.composite
def with_alias(draw: st.DrawFn) -> str:
    """A valid registry's text with an alias (of an anchor earlier in the file): in a subcloud's
    vars, deep in them, or a whole group entry."""
    document = draw(registries(max_subclouds=4))
    subclouds = document.get("subclouds") or []
    shared: dict[str, Any] = {"k": [1, 2, {"deep": ["x"]}]}
    where = draw(st.sampled_from(["vars", "deep vars", "entry"]))
    if where in ("vars", "deep vars") and subclouds:
        sc = draw(st.sampled_from(subclouds))
        subclouds[0].setdefault("vars", {})["anchor"] = shared
        target = sc.setdefault("vars", {})
        if where == "deep vars":
            target = target.setdefault("nest", {}).setdefault("er", {})
        target["alias"] = shared
    else:  # a whole group entry listed twice
        group = {"id": 10**7, "name": "aliased"}
        document["groups"] = [*document.get("groups", []), group, group]
    text = yaml.safe_dump(document, sort_keys=draw(st.booleans()))
    assume("*id" in text)
    return text


@settings(max_examples=examples(1000), **FUZZ_SETTINGS)
@given(case=tainted())
def test_a_trailing_newline_or_other_digits_is_refused(
    world: World, case: tuple[dict[str, Any], str]
) -> None:
    document, what = case
    text = yaml.safe_dump(document, allow_unicode=True)
    note(f"{what}:\n{text}")
    world.registry.write_text(text, encoding="utf-8")
    result = load_or_error(world.registry)
    assert isinstance(result, PrestageError), what
    field = what.split()[0]
    assert f".{field}: must" in str(result), str(result)


@settings(max_examples=examples(1000), **FUZZ_SETTINGS)
@given(text=with_alias())
def test_an_alias_at_any_depth_is_refused(world: World, text: str) -> None:
    note(text)
    world.registry.write_text(text, encoding="utf-8")
    result = load_or_error(world.registry)
    assert isinstance(result, PrestageError)
    assert ": YAML aliases (*id" in str(result) and "are not allowed" in str(result)


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(fresh_root(tmp_path_factory.mktemp("registry-fuzz"), "w"))


@settings(max_examples=examples(1500), **FUZZ_SETTINGS)
@given(data=st.data())
def test_a_valid_registry_loads_as_written(world: World, data: st.DataObject) -> None:
    document = data.draw(registries(), label="document")
    text = dump(document, data.draw)
    note(text)
    world.registry.write_text(text, encoding="utf-8")
    loaded = reg.load_registry(str(world.registry))
    assert loaded == expected_registry(document, str(world.registry))


@settings(max_examples=examples(2000), **FUZZ_SETTINGS)
@given(data=st.data())
def test_a_broken_registry_is_one_clear_line(world: World, data: st.DataObject) -> None:
    document = data.draw(registries(max_subclouds=5), label="document")
    broken, kind = data.draw(mutated(document), label="mutation")
    text = dump(broken, data.draw) if data.draw(st.booleans()) else yaml.safe_dump(broken)
    note(f"{kind}:\n{text}")
    world.registry.write_text(text, encoding="utf-8")
    result = load_or_error(world.registry)
    if kind in ("duplicate", "dangling", "top") and isinstance(result, reg.Registry):
        # only a mutation that happened to keep the document valid may load
        assume(False)


@settings(max_examples=examples(2000), **FUZZ_SETTINGS)
@given(junk=junk_texts())
def test_junk_is_one_clear_line(world: World, junk: str | bytes) -> None:
    note(repr(junk[:500]))
    if isinstance(junk, bytes):
        world.registry.write_bytes(junk)
    else:
        world.registry.write_text(junk, encoding="utf-8", errors="surrogateescape")
    load_or_error(world.registry)


@settings(max_examples=examples(600), **FUZZ_SETTINGS)
@given(data=st.data())
def test_the_cli_reads_and_edits_any_registry(world: World, data: st.DataObject) -> None:
    """subcloud list and subcloud-group add on valid, broken and junk registries."""
    shape = data.draw(st.sampled_from(["valid", "broken", "junk"]), label="shape")
    if shape == "valid":
        raw: str | bytes = dump(data.draw(registries(max_subclouds=6)), data.draw)
    elif shape == "broken":
        broken, _kind = data.draw(mutated(data.draw(registries(max_subclouds=4))))
        raw = yaml.safe_dump(broken)
    else:
        raw = data.draw(junk_texts())
    payload = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    world.reset("none")
    world.registry.write_bytes(payload)
    expected = load_or_error(world.registry)
    env = world.env()

    listed = run_in_process(["subcloud", "list", "-f", "json"], env, world.cwd)
    note(listed.describe())
    if isinstance(expected, PrestageError):
        assert_clean_error(listed)
        assert listed.err.strip() == str(expected)
    else:
        assert listed.code == 0 and not listed.caught, listed.describe()
        assert [row["name"] for row in json.loads(listed.out)] == [
            s.name for s in expected.subclouds
        ]
    assert world.registry.read_bytes() == payload

    added = run_in_process(["subcloud-group", "add", "--name", "fuzz_added"], env, world.cwd)
    note(added.describe())
    if isinstance(expected, PrestageError) or any(
        g.name.lower() == "fuzz_added" for g in expected.groups
    ):
        assert_clean_error(added)
        assert world.registry.read_bytes() == payload
        return
    # an edit of a valid registry works, and changes nothing but the new group
    assert added.code == 0 and not added.caught, added.describe()
    after = reg.load_registry(str(world.registry))
    assert after.subclouds == expected.subclouds
    assert after.groups[:-1] == expected.groups
    assert after.groups[-1].name == "fuzz_added"
    assert after.groups[-1].id == expected.last_group_id + 1  # never a deleted group's id


def test_a_registry_over_the_size_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "registry.yml"
    with path.open("w") as handle:
        handle.write("subclouds:\n")
        handle.write("# padding\n" * (reg.MAX_REGISTRY_BYTES // 10 + 1))
    with pytest.raises(PrestageError) as raised:
        reg.load_registry(str(path))
    assert_one_line_error(raised.value, str(path))
    assert "larger than" in str(raised.value)


def test_a_big_registry_loads_correctly(tmp_path: Path) -> None:
    groups = [{"id": i, "name": f"g{i}", "max_parallel_subclouds": 50} for i in range(2, 102)]
    subclouds = [
        {"id": i, "name": f"subcloud{i}", "group": f"g{2 + i % 100}",
         "oam_floating_address": str(ipaddress.ip_address("10.0.0.0") + i),
         "software_version": "22.12"}
        for i in range(1, 5001)
    ]  # fmt: skip
    document = {"groups": groups, "subclouds": subclouds}
    path = tmp_path / "registry.yml"
    path.write_text(yaml.safe_dump(document))
    assert reg.load_registry(str(path)) == expected_registry(document, str(path))
