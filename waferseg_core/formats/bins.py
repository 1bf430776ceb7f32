"""Bin codes <-> die states, orientation helpers, and inked maps (a class per die as bins).

Shared by the tester and prober formats (G85, E142, SINF, TSK, STDF).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES
from waferseg_core.wafer import FAIL, NO_DIE, PASS, BinDef, Notch, WaferMap

PASS_BIN = 1
FAIL_BIN = 2
# Inked maps: bin = INK_BASE + class id for dies inside a class region, PASS_BIN/FAIL_BIN for
# background dies; a bin's quality is the die's own pass/fail (a pattern covers pass dies too),
# so a pattern class gets two bins: INK_BASE + id (pass) and INK_FAIL_BASE + id (fail).
INK_BASE = 10
INK_FAIL_BASE = 20

_NOTCH_BY_DEGREES: dict[int, Notch] = {0: "down", 90: "left", 180: "up", 270: "right"}
_DEGREES_BY_NOTCH = {v: k for k, v in _NOTCH_BY_DEGREES.items()}


def notch_from_degrees(deg: float) -> Notch:
    """Notch side from an angle measured clockwise from the bottom (0 down, 90 left ...)."""
    return _NOTCH_BY_DEGREES[round(deg / 90.0) % 4 * 90]


def degrees_from_notch(notch: Notch) -> int:
    """Inverse of :func:`notch_from_degrees`."""
    return _DEGREES_BY_NOTCH[notch]


def grid_from_bins(
    bins: npt.NDArray[np.int64], null: npt.NDArray[np.bool_], table: dict[int, BinDef]
) -> npt.NDArray[np.uint8]:
    """Die states from bin codes: null -> no die; quality from the table; unknown codes fail.

    With an empty table, bin 1 passes and every other bin fails (the common tester default).
    """
    grid = np.full(bins.shape, FAIL, np.uint8)
    passing = [c for c, d in table.items() if d.passed] if table else [PASS_BIN]
    grid[np.isin(bins, passing)] = PASS
    grid[null] = NO_DIE
    return grid


def default_bins(m: WaferMap) -> tuple[npt.NDArray[np.int32], dict[int, BinDef]]:
    """The map's own bins and table, or pass/fail bins 1/2 when it has none."""
    if m.bins is not None:
        table = m.bin_table or {
            int(c): BinDef(int(c), bool(int(c) == PASS_BIN)) for c in np.unique(m.bins[m.grid > 0])
        }
        return m.bins, table
    bins = np.where(m.grid == PASS, PASS_BIN, FAIL_BIN).astype(np.int32)
    bins[m.grid == NO_DIE] = -1
    return bins, {
        PASS_BIN: BinDef(PASS_BIN, True, "Pass"),
        FAIL_BIN: BinDef(FAIL_BIN, False, "Fail"),
    }


def ink(m: WaferMap, mask: npt.NDArray[np.integer]) -> WaferMap:
    """A copy of the map whose bins carry the class of each die (the documented bin table)."""
    bins = np.where(m.grid == PASS, PASS_BIN, FAIL_BIN).astype(np.int32)
    inside = (mask > 0) & (m.grid > 0)
    bins[inside & (m.grid == PASS)] = INK_BASE + mask[inside & (m.grid == PASS)]
    bins[inside & (m.grid == FAIL)] = INK_FAIL_BASE + mask[inside & (m.grid == FAIL)]
    bins[m.grid == NO_DIE] = -1
    out = m.with_grid(m.grid.copy())
    out.bins = bins
    out.bin_table = ink_table()
    return out


def ink_table() -> dict[int, BinDef]:
    """The bin table of inked maps: pass/fail background bins and two bins per class."""
    table = {PASS_BIN: BinDef(PASS_BIN, True, "Pass"), FAIL_BIN: BinDef(FAIL_BIN, False, "Fail")}
    for c in CLASSES[1:]:
        table[INK_BASE + c.id] = BinDef(INK_BASE + c.id, True, f"{c.name} (pass die)")
        table[INK_FAIL_BASE + c.id] = BinDef(INK_FAIL_BASE + c.id, False, f"{c.name} (fail die)")
    return table


def inked_mask(m: WaferMap) -> npt.NDArray[np.uint8] | None:
    """The class mask when ``m`` is an inked map (its bin table is the inked one), else None.

    Decided by the table, not the codes: a tester's own bin 12 is not class 2.
    """
    if m.bins is None or m.bin_table != ink_table():
        return None
    return mask_from_inked(m)


def mask_from_inked(m: WaferMap) -> npt.NDArray[np.uint8]:
    """The class mask an inked map carries (inverse of :func:`ink`)."""
    mask = np.zeros(m.shape, np.uint8)
    if m.bins is None:
        return mask
    b = m.bins
    for base in (INK_BASE, INK_FAIL_BASE):
        sel = (b > base) & (b <= base + 8)
        mask[sel] = (b[sel] - base).astype(np.uint8)
    return mask
