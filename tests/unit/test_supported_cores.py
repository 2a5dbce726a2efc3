"""One ansible-core range everywhere, and it is the one CI proves: .venv's core (pinned in
requirements/constraints.txt) plus each core scripts/core-matrix runs (requirements/core-*.in),
stated alike by meta/runtime.yml (requires_ansible), requirements/controller.in, pyproject.toml,
the execution environment (awx/ee/) and the README; no Galaxy dependency."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import ROOT

REQUIREMENTS = ROOT / "requirements"


def proven_cores() -> list[str]:
    """The minor releases CI runs: .venv's pinned core and every core-matrix core."""
    pinned = re.search(r"^ansible-core==(\d+\.\d+)\.", (REQUIREMENTS / "constraints.txt")
                       .read_text(), re.M)  # fmt: skip
    assert pinned
    matrix = sorted(p.stem.removeprefix("core-") for p in REQUIREMENTS.glob("core-2.*.in"))
    for core in matrix:
        pins = (REQUIREMENTS / f"constraints-core-{core}.txt").read_text()
        assert re.search(rf"^ansible-core=={re.escape(core)}\.\d+$", pins, re.M), core
        assert f"{core})" in (ROOT / "scripts" / "core-matrix").read_text()  # a Python for it
        staged = re.search(r"^for core in (.*); do$", (ROOT / "scripts" / "test").read_text(), re.M)
        assert staged and core in staged.group(1).split(), "a scripts/test stage core-" + core
    return sorted({pinned.group(1), *matrix}, key=Version)


def admitted(spec: str) -> list[str]:
    """The minor releases 2.10 .. 2.40 a specifier admits."""
    specifier = SpecifierSet(spec)
    return [f"2.{minor}" for minor in range(10, 41) if Version(f"2.{minor}.0") in specifier]


def core_spec(requirements: str) -> str:
    (spec,) = re.findall(r"^ansible-core\s*([<>=!~][^#\s]*)", requirements, re.M)
    return spec


def test_every_statement_of_the_range_is_what_ci_runs() -> None:
    cores = proven_cores()
    assert cores == ["2.19", "2.20", "2.21"]
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (dependency,) = [
        d for d in pyproject["project"]["dependencies"] if d.startswith("ansible-core")
    ]
    ee = yaml.safe_load((ROOT / "awx" / "ee" / "execution-environment.yml").read_text())
    statements = {
        "meta/runtime.yml": runtime["requires_ansible"],
        "requirements/controller.in": core_spec((REQUIREMENTS / "controller.in").read_text()),
        "pyproject.toml": dependency.removeprefix("ansible-core"),
        "awx/ee": ee["dependencies"]["ansible_core"]["package_pip"].removeprefix("ansible-core"),
    }
    for where, spec in statements.items():
        assert admitted(spec) == cores, (where, spec)
    readme = (ROOT / "README.md").read_text()
    assert "ansible-core 2.19, 2.20 and 2.21" in readme
    assert not re.search(r"2\.1[78]", (ROOT / "meta" / "runtime.yml").read_text())


def test_no_galaxy_dependency() -> None:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert not galaxy.get("dependencies")
    assert not (ROOT / "awx" / "ee" / "requirements.yml").exists()
