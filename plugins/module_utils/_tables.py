# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""StarlingX command output as data: the tables its clients print (PrettyTable and tabulate's
'pretty' format both frame rows with '|').

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations


def parse_table(text):
    """Rows of a '|'-framed table as dicts keyed by its header."""
    headers = None
    rows = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if headers is None:
            headers = cells
        elif len(cells) == len(headers):
            rows.append(dict(zip(headers, cells)))  # noqa: B905 - strict= needs Python 3.10
    return rows
