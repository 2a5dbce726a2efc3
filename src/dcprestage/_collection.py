"""Make the distcloud.prestage collection importable for the CLI.

The CLI shares its rules with the collection's plugin_utils. In a work tree scripts/bootstrap puts
the collection on sys.path; when the collection is installed with ansible-galaxy, it lives on one
of Ansible's collection paths instead, which this adds before the first import.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_NAME = "ansible_collections.distcloud.prestage"


def ensure_importable() -> None:
    if importlib.util.find_spec(_NAME.split(".", maxsplit=1)[0]) and _has_collection():
        return
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        *os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep),
        os.path.expanduser("~/.ansible/collections"),
        "/usr/share/ansible/collections",
        # this file inside an installed collection: <base>/ansible_collections/distcloud/prestage/…
        os.path.normpath(os.path.join(here, "..", "..", "..", "..", "..")),
    ]
    for base in candidates:
        if base and os.path.isdir(
            os.path.join(base, "ansible_collections", "distcloud", "prestage")
        ):
            if base not in sys.path:
                sys.path.append(base)  # namespace packages pick up sys.path changes by themselves
            if _has_collection():
                return


def _has_collection() -> bool:
    try:
        return importlib.util.find_spec(_NAME) is not None
    except ModuleNotFoundError:
        return False
