# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the phase modules say about a phase as a whole (composed here only).

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations


def timeout_message(phase, seconds):
    """A phase that ran out of time, naming the role setting (prestage_<phase>_timeout)."""
    return f"Prestaging {phase} timed out after {seconds} seconds (prestage_{phase}_timeout)"
