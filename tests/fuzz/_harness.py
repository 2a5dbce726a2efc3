"""Run the real dcprestage in-process (thousands of runs fit in CI time) or as a real process.

In-process runs go through `dcprestage.main.main(argv)` exactly as the console script does, with
stdout/stderr captured the way a terminal with a UTF-8 locale would take them (stdout strict,
stderr backslashreplace), the environment set per run, and three things a test must not trigger
replaced: the detached orchestrator start (it would run ansible-playbook), the terminal password
prompt, and the query of the system controller where no recent run kept its facts (it would run
ansible; a system controller answering tests.conftest.sc_facts stands in). Every exception that
reaches cliff (which would print it as one line, hiding a crash) is recorded, so a test can tell a
clear PrestageError from an internal error.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _sc_query
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from dcprestage import _launcher as launcher
from dcprestage import main as cli
from tests.conftest import sc_facts

VENV_BIN = Path(sys.executable).parent
DCPRESTAGE = str(VENV_BIN / "dcprestage")
# pid_max on Linux is at most 2**22: this pid never runs, so a recorded orchestrator is "gone".
DEAD_PID = 2**22 + 7

# Variables of the caller's environment that would change what dcprestage does.
_OWN_ENV_PREFIXES = ("DCPRESTAGE_", "ANSIBLE_", "CLI_CONFIRMATIONS", "XDG_")


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str
    # exceptions cliff caught and printed as one line (in-process runs only)
    caught: list[BaseException] = field(default_factory=list)

    @property
    def err_lines(self) -> list[str]:
        """Lines as a terminal shows them (str.splitlines would also split at \x1e, \x85...)."""
        lines = self.err.split("\n")
        return lines[:-1] if lines[-1] == "" else lines

    def describe(self) -> str:
        return f"argv={self.argv!r} code={self.code} stdout={self.out!r} stderr={self.err!r}"


def base_env(root: Path, env: dict[str, str]) -> dict[str, str]:
    """The caller's environment minus dcprestage's own variables, plus env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIXES)}
    clean.update(
        HOME=str(root / "home"),
        XDG_STATE_HOME=str(root / "home" / "state"),
        # stevedore's entry point cache: not something a test watches
        XDG_CACHE_HOME=str(root / "cache"),
    )
    clean.update(env)
    return clean


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _isolated_logging() -> Iterator[None]:
    """cliff adds handlers to the root logger on every run: take them off again."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("ansible_collections", "stevedore")}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                with contextlib.suppress(Exception):
                    handler.close()
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)


def _no_prompt(prompt: str = "", stream: Any = None) -> str:
    raise EOFError  # as getpass does when the terminal is gone


def _fake_start(*args: Any, **kwargs: Any) -> int:
    return DEAD_PID


def _fake_query(config: Any) -> dict[str, Any]:
    return sc_facts()


class _RecordingApp(cli.DcPrestageApp):
    NAME = "dcprestage"  # cliff takes it from sys.argv[0] at import: here that is pytest's
    caught: list[BaseException]

    def clean_up(self, cmd: Any, result: int, err: BaseException | None) -> None:
        if err is not None:
            self.caught.append(err)
        super().clean_up(cmd, result, err)


def run_in_process(argv: list[str], env: dict[str, str], cwd: Path) -> Outcome:
    """dcprestage argv in this process; env is the whole environment of the run."""
    out_buffer, err_buffer = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out_buffer, encoding="utf-8", errors="strict", write_through=True)
    stderr = io.TextIOWrapper(
        err_buffer, encoding="utf-8", errors="backslashreplace", write_through=True
    )
    caught: list[BaseException] = []
    _RecordingApp.caught = caught
    saved = (cli.DcPrestageApp, launcher.start, getpass.getpass, _sc_query.query, os.getcwd())
    try:
        cli.DcPrestageApp = _RecordingApp  # type: ignore[misc]
        launcher.start = _fake_start  # type: ignore[assignment]
        getpass.getpass = _no_prompt
        _sc_query.query = _fake_query
        os.chdir(cwd)
        with (
            _environment(env),
            _isolated_logging(),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            saved_stdin, saved_argv0 = sys.stdin, sys.argv[0]
            sys.stdin, sys.argv[0] = (
                io.StringIO(""),
                "dcprestage",
            )  # cliff's NAME comes from argv[0]
            try:
                code = cli.main(list(argv))
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            finally:
                sys.stdin, sys.argv[0] = saved_stdin, saved_argv0
    finally:
        cli.DcPrestageApp, launcher.start, getpass.getpass = saved[:3]  # type: ignore[misc]
        _sc_query.query = saved[3]
        os.chdir(saved[4])
    stdout.flush()
    stderr.flush()
    return Outcome(
        list(argv),
        code,
        out_buffer.getvalue().decode("utf-8"),
        err_buffer.getvalue().decode("utf-8"),
        caught,
    )


def run_process(argv: list[str], env: dict[str, str], cwd: Path) -> Outcome:
    """The real dcprestage command; stdout as strict as a UTF-8 terminal's."""
    result = subprocess.run(
        [DCPRESTAGE, *argv],
        env={**env, "PYTHONIOENCODING": "utf-8:strict"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return Outcome(
        list(argv),
        result.returncode,
        result.stdout.decode("utf-8", "backslashreplace"),
        result.stderr.decode("utf-8", "backslashreplace"),
    )


def tree_digest(*bases: Path, skip: tuple[str, ...] = (".lock",)) -> dict[str, str]:
    """Every file (content, mode) and directory under bases: equal digests mean no change.

    Lock files are left out: taking a lock may create one, which changes nothing a user owns.
    """
    digest: dict[str, str] = {}
    for base in bases:
        if not base.exists():
            continue
        for path in sorted([base, *base.rglob("*")]):
            if path.name.endswith(skip):
                continue
            info = path.lstat()
            if path.is_symlink():
                digest[str(path)] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                digest[str(path)] = f"dir:{oct(info.st_mode)}"
            else:
                data = path.read_bytes()
                digest[str(path)] = f"{oct(info.st_mode)}:{hashlib.sha256(data).hexdigest()}"
    return digest


def assert_clean_error(outcome: Outcome, *, verbose: bool = False) -> None:
    """A failure: non-zero, one stderr line (more only with -v), no traceback, nothing on stdout."""
    assert outcome.code != 0, outcome.describe()
    assert "Traceback" not in outcome.err and "Traceback" not in outcome.out, outcome.describe()
    lines = outcome.err_lines
    if verbose:
        assert lines, outcome.describe()
    else:
        assert len(lines) == 1, f"expected one stderr line: {outcome.describe()}"
        assert lines[0].strip(), outcome.describe()
    assert outcome.out == "", f"stdout on error: {outcome.describe()}"
    for exc in outcome.caught:
        assert_user_error(exc, outcome)


# cliff's own clear user errors (bad -c/--sort-column names, formatter options), by message.
_CLIFF_USER_ERRORS = (
    "No recognized column names in",
    "No recognized columns in",
    "Unknown command",
)


def assert_user_error(exc: BaseException, outcome: Outcome) -> None:
    """An exception that reached cliff must be a PrestageError (or cliff's own usage error)."""
    if isinstance(exc, PrestageError):
        assert "\n" not in str(exc), outcome.describe()
        return
    if isinstance(exc, ValueError) and str(exc).startswith(_CLIFF_USER_ERRORS):
        return
    raise AssertionError(
        f"internal error {type(exc).__name__}: {exc!r} (printed as one line by cliff): "
        f"{outcome.describe()}"
    ) from exc
