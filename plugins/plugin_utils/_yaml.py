# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Bounded loading of the YAML files users write (the subcloud registry, the inventory config).

A YAML file can cost far more to load than its size: aliases repeat a subtree any number of times
(an "alias bomb" of a few hundred bytes expands to gigabytes when Ansible walks it), and every
node costs memory. So, before any document is built:
- the file's size is checked on the open file, before it is read (a 50 MB file is refused at
  once);
- one pass over the parser's events refuses any alias, at any depth (anchors alone are harmless),
  and more than MAX_NODES nodes.
The worst case a file within the limits can cost is then a few seconds and a few hundred MB.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import yaml

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

try:  # libyaml makes a 5,000-subcloud registry load in a fraction of a second
    from yaml import CSafeLoader as Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as Loader  # type: ignore[assignment]

# A 5,000-subcloud registry has about 100,000 nodes.
MAX_NODES = 500_000
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def read_bounded(path: str, max_bytes: int, what: str) -> str | None:
    """The UTF-8 text of the file at path (symlinks followed), None if it does not exist; a
    PrestageError naming `what` and path if it is not a regular file or larger than max_bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # pragma: no cover - FileNotFoundError above
            return None
        raise PrestageError(f"Cannot read {path}: {exc.strerror}") from exc
    too_big = f"{what} {path} is larger than {max_bytes} bytes"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PrestageError(f"{what} {path} is not a regular file")
        if info.st_size > max_bytes:
            raise PrestageError(too_big)
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise PrestageError(f"Cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # it grew since fstat
        raise PrestageError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PrestageError(f"Cannot read {path}: not UTF-8 text") from None


def compose(text: str, path: str, what: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the data of the one YAML document in text (None, None when it holds
    none); PrestageError "Invalid <what> <path>[:<line>]: <problem>" on malformed YAML, an alias
    or too many nodes."""
    try:
        _check_events(text, path, what)
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        raise PrestageError(f"Invalid {what} {_where(path, mark)}: {problem}") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise PrestageError(f"Invalid {what} {path}: {' '.join(str(exc).split())}") from None
    return node, data


def _check_events(text: str, path: str, what: str) -> None:
    nodes = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.AliasEvent):
            raise PrestageError(
                f"Invalid {what} {_where(path, event.start_mark)}: YAML aliases (*{event.anchor}) "
                "are not allowed; write the value out"
            )
        if isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > MAX_NODES:
                raise PrestageError(
                    f"Invalid {what} {_where(path, event.start_mark)}: more than {MAX_NODES} "
                    "YAML nodes"
                )


def _where(path: str, mark: Any) -> str:
    return f"{path}:{mark.line + 1}" if mark is not None else path
