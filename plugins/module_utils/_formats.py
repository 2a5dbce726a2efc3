# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The formats of names, releases, numbers and ids: one rule each, for the CLI, the plugins and
the modules alike (Python 3.9 stdlib only).

Every pattern is anchored with \\A and \\Z (`$` also matches before a trailing newline) and
spells its digits [0-9] (`\\d`, str.isdigit() and int() take any Unicode digit: int("٣") is 3).
"""

from __future__ import annotations

import re

# A subcloud name: an Ansible host name, a table cell, a CSV field and a file name alike.
SUBCLOUD_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
# A prestage release: a major release MM.mm (24.09); 24.09.1 is a patch level
# (_release.is_major_release).
MAJOR_RELEASE = re.compile(r"\A([0-9]{2})\.([0-9]{2})\Z")
# What a subcloud runs (its software_version): MM.mm, maybe with a patch level (24.09.1).
SOFTWARE_VERSION = re.compile(r"\A[0-9]{2}\.[0-9]{2}(?:\.[0-9]+)?\Z")
# A decimal number or id as typed: ASCII digits only, no sign, space or underscore.
DECIMAL = re.compile(r"\A[0-9]+\Z")
# Longer than any number a prestage option takes; int() of a huge string is slow (and refused).
_MAX_DIGITS = 18


def is_subcloud_name(value):
    return isinstance(value, str) and SUBCLOUD_NAME.match(value) is not None


def is_software_version(value):
    return isinstance(value, str) and SOFTWARE_VERSION.match(value) is not None


def is_decimal(text):
    """True when text is a string of ASCII digits (an id or a count as typed)."""
    return isinstance(text, str) and DECIMAL.match(text) is not None


def decimal_int(value):
    """value as an int when it is an int (not a bool) or a string of ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) <= _MAX_DIGITS and is_decimal(value):
        return int(value)
    return None
