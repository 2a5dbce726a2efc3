"""Looking at a run's report as a browser draws it: a headless Chromium screenshot, a small PNG
reader (the standard library's zlib only) and the bars found in it.

The bars are found by colour: the bar area is the bounding box of its background colour
(_timeline.BAR_AREA_COLOUR, used nowhere else), and a bar is a band of consecutive pixel rows
inside it holding a phase or final-state colour; rows between bars hold none.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _timeline as timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit only)


def chromium() -> str | None:
    """The Chromium binary (scripts/bootstrap installs Debian's), None when absent."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> None:
    """Chromium's headless screenshot of page (a file) at width x height CSS pixels, one device
    pixel each. As root Chromium needs --no-sandbox; a profile dir of the caller's own keeps
    parallel runs apart; no network is needed or used (the page is self-contained)."""
    binary = chromium()
    assert binary, "chromium is not installed"
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", f"--user-data-dir={profile}",
         f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(profile)},
    )  # fmt: skip
    assert result.returncode == 0 and png.exists(), result.stderr[-2000:]


@dataclass
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row, at = self.rows[y], x * self.channels
        if self.channels >= 3:
            return row[at], row[at + 1], row[at + 2]
        return row[at], row[at], row[at]

    def row_colours(self, y: int, x0: int, x1: int) -> set[tuple[int, int, int]]:
        return {self.pixel(x, y) for x in range(x0, x1)}


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise (a + b) mod 256 of two equal-length strings, as one big-integer operation."""
    size = len(a)
    low, high = int.from_bytes(b"\x7f" * size, "big"), int.from_bytes(b"\x80" * size, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(size, "big")


def _unfilter(kind: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return _add_bytes(line, prev)
    out = bytearray(line)
    if kind == 1:
        for i in range(bpp, len(out)):
            out[i] = (out[i] + out[i - bpp]) & 255
    elif kind == 3:
        for i in range(len(out)):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prev[i]) >> 1)) & 255
    elif kind == 4:
        for i in range(len(out)):
            a = out[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out[i] = (out[i] + pred) & 255
    else:
        raise ValueError(f"unknown PNG filter {kind}")
    return bytes(out)


def read_png(path: Path) -> Image:
    """An 8-bit, non-interlaced PNG (what Chromium writes) as rows of pixel bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pos, header, idat = 8, b"", []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(
        ">IIBBBBB", header
    )
    assert depth == 8 and colour in _CHANNELS and interlace == 0, header
    channels = _CHANNELS[colour]
    stride = width * channels
    raw = zlib.decompress(b"".join(idat))
    rows, prev = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], prev, channels)
        rows.append(line)
        prev = line
    return Image(width, height, channels, rows)


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


BAR_COLOURS = {
    _rgb(colour): state
    for state, colour in {**timeline.PHASE_COLOURS, **timeline.FINAL_COLOURS}.items()
}
BAR_AREA = _rgb(timeline.BAR_AREA_COLOUR)


@dataclass
class Band:
    """Consecutive pixel rows of the bar area that hold bar colours: one step's bar."""

    top: int
    bottom: int
    states: set[str]


def _first_last(row: bytes, colour: bytes, step: int) -> tuple[int, int] | None:
    """The x of the first and the last pixel of colour in a row, None when there is none."""
    first = row.find(colour)
    while first != -1 and first % step:
        first = row.find(colour, first + 1)
    last = row.rfind(colour)
    while last != -1 and last % step:
        last = row.rfind(colour, 0, last + len(colour) - 1)
    if first == -1 or last == -1:
        return None
    return first // step, last // step


def bar_area(image: Image) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the bar area's background colour, end exclusive."""
    xs, ys = [], []
    for y in range(image.height):
        found = _first_last(image.rows[y], bytes(BAR_AREA), image.channels)
        if found:
            ys.append(y)
            xs += found
    assert ys, "no bar area in the screenshot"
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def bar_bands(image: Image) -> list[Band]:
    """The bars drawn in the bar area, top to bottom, with the states their colours show."""
    x0, y0, x1, y1 = bar_area(image)
    bands: list[Band] = []
    previous = False
    for y in range(y0, y1):
        states = {BAR_COLOURS[c] for c in image.row_colours(y, x0, x1) if c in BAR_COLOURS}
        if states and previous:
            bands[-1].bottom = y + 1
            bands[-1].states |= states
        elif states:
            bands.append(Band(y, y + 1, states))
        previous = bool(states)
    return bands


def page_height(strategy: model.Strategy) -> int:
    """A window tall enough for the whole report of strategy (header, failures, chart, rows)."""
    failed = sum(1 for step in strategy.steps if step.state == model.STEP_FAILED)
    return (
        700
        + 22 * min(failed, timeline.FAILED_LISTED + 1)
        + len(strategy.steps) * timeline.ROW_HEIGHT
        + len(strategy.stages) * timeline.STAGE_ROW_HEIGHT
    )
