"""The die read-out's texts: a die's bin with its meaning, and the inspection defects on it.

Pure functions of the wafer (no Qt), so that the status bar's words are tested directly.
"""

from __future__ import annotations

import math

from waferseg_core.wafer import Defect, WaferMap

SHOWN_DEFECTS = 3  # a die can hold hundreds (a particle cluster); the read-out names a few


def defects_by_die(w: WaferMap) -> dict[tuple[int, int], list[Defect]]:
    """The wafer's defects grouped by canonical die, built once per wafer shown.

    A hover then finds a die's defects at once, even on a 22,000-defect KLARF wafer.
    """
    out: dict[tuple[int, int], list[Defect]] = {}
    for d in w.defects:
        out.setdefault((d.row, d.col), []).append(d)
    return out


def bin_text(w: WaferMap, row: int, col: int) -> str:
    """'   bin 21 Center (fail die)': the die's bin and its table's description, or ''."""
    if w.bins is None or w.bins[row, col] < 0:
        return ""
    code = int(w.bins[row, col])
    entry = w.bin_table.get(code)
    return f"   bin {code}" + (f" {entry.description}" if entry and entry.description else "")


def defects_text(w: WaferMap, defects: list[Defect]) -> str:
    """'   2 defects: Big_Particle 958 µm, class 6 190 µm': class names from the file's lookup."""
    if not defects:
        return ""
    lookup = w.extra.get("class_lookup") or {}
    parts = []
    for d in defects[:SHOWN_DEFECTS]:
        name = lookup.get(d.class_code, f"class {d.class_code}")
        size = f" {d.size_um:g} µm" if not math.isnan(d.size_um) and d.size_um > 0 else ""
        parts.append(f"{name}{size}")
    more = f" +{len(defects) - SHOWN_DEFECTS} more" if len(defects) > SHOWN_DEFECTS else ""
    noun = "defect" if len(defects) == 1 else "defects"
    return f"   {len(defects)} {noun}: {', '.join(parts)}{more}"
