"""WaferMap: the die grid of one wafer, its identity and its geometry.

The grid is canonical (DESIGN.md): ``uint8`` ``(rows, cols)``, 0 no die, 1 pass, 2 fail, row 0
at the top with the notch down. A :class:`CoordFrame` remembers how the source file laid the
same dies out, so readers and writers convert both ways without loss.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import InvalidInputError

NO_DIE = 0
PASS = 1
FAIL = 2

Grid = npt.NDArray[np.uint8]
Notch = Literal["down", "left", "up", "right"]
_I = TypeVar("_I", int, npt.NDArray[np.int64])
# Counter-clockwise quarter turns that bring a notch at this side of the file's view down.
_QUARTER_TURNS: dict[str, int] = {"down": 0, "left": 1, "up": 2, "right": 3}


@dataclass(frozen=True)
class BinDef:
    """One entry of a bin table.

    Attributes:
        code: The bin code as the file writes it (integer value).
        passed: Whether a die in this bin is good.
        description: Free text from the file (e.g. ``"Open/short"``).
    """

    code: int
    passed: bool
    description: str = ""


@dataclass(frozen=True)
class Defect:
    """One inspection defect (KLARF), kept for display on the canonical grid.

    Attributes:
        row: Canonical row of the die that holds it.
        col: Canonical column of the die.
        x_um: Position inside the die, µm from the die's lower-left corner in the file.
        y_um: Position inside the die, µm.
        size_um: Defect size in µm (0 when unknown).
        class_code: The inspection tool's class number (0 when unknown).
    """

    row: int
    col: int
    x_um: float = 0.0
    y_um: float = 0.0
    size_um: float = 0.0
    class_code: int = 0


@dataclass(frozen=True)
class CoordFrame:
    """How a file's own die coordinates map onto the canonical grid.

    The file's *raster* is the map as the file's own convention displays it: raster row 0 at
    the top, with the notch at ``notch``. A raster die ``(vr, vc)`` has file coordinates
    ``x = x_origin + x_step * vc`` and ``y = y_origin + y_step * vr``. The canonical grid is
    the raster turned counter-clockwise by quarter turns until the notch is down.

    Attributes:
        notch: Side of the raster where the notch (or flat) is.
        x_origin: File x of raster column 0.
        y_origin: File y of raster row 0.
        x_step: +1 when file x grows to the right in the raster, -1 when to the left.
        y_step: +1 when file y grows downward in the raster, -1 when upward.
    """

    notch: Notch = "down"
    x_origin: int = 0
    y_origin: int = 0
    x_step: int = 1
    y_step: int = 1

    def __post_init__(self) -> None:
        if self.notch not in _QUARTER_TURNS:
            raise InvalidInputError(
                f"notch must be one of down/left/up/right, found {self.notch!r}"
            )
        if self.x_step not in (1, -1) or self.y_step not in (1, -1):
            raise InvalidInputError(
                f"axis steps must be +1 or -1, found x={self.x_step} y={self.y_step}"
            )

    @property
    def turns(self) -> int:
        """Counter-clockwise quarter turns from raster to canonical."""
        return _QUARTER_TURNS[self.notch]

    def raster_to_canonical(self, raster: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Turn a raster-shaped array into the canonical orientation."""
        return np.ascontiguousarray(np.rot90(raster, self.turns))

    def canonical_to_raster(self, grid: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Turn a canonical array back into the file's raster orientation."""
        return np.ascontiguousarray(np.rot90(grid, -self.turns))

    def raster_shape(self, canonical_shape: tuple[int, int]) -> tuple[int, int]:
        """The raster's (rows, cols) for a canonical grid of this shape."""
        rows, cols = canonical_shape
        return (rows, cols) if self.turns % 2 == 0 else (cols, rows)

    def file_to_canonical(
        self, x: int, y: int, canonical_shape: tuple[int, int]
    ) -> tuple[int, int]:
        """Canonical (row, col) of the die the file calls (x, y)."""
        vc = (x - self.x_origin) * self.x_step
        vr = (y - self.y_origin) * self.y_step
        h, w = self.raster_shape(canonical_shape)
        return _turn_index(vr, vc, h, w, self.turns)

    def files_to_canonical(
        self, x: npt.NDArray[np.int64], y: npt.NDArray[np.int64], canonical_shape: tuple[int, int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Vectorised :meth:`file_to_canonical` for arrays of file coordinates."""
        vc = (x - self.x_origin) * self.x_step
        vr = (y - self.y_origin) * self.y_step
        h, w = self.raster_shape(canonical_shape)
        return _turn_index(vr, vc, h, w, self.turns)

    def canonical_to_file(
        self, row: int, col: int, canonical_shape: tuple[int, int]
    ) -> tuple[int, int]:
        """File (x, y) of the canonical die (row, col)."""
        rows, cols = canonical_shape
        vr, vc = _turn_index(row, col, rows, cols, -self.turns % 4)
        return self.x_origin + vc * self.x_step, self.y_origin + vr * self.y_step


def _turn_index(r: _I, c: _I, h: int, w: int, turns: int) -> tuple[_I, _I]:
    """Index of element (r, c) of an (h, w) array after ``np.rot90(a, turns)`` (arrays too)."""
    for _ in range(turns % 4):
        # One counter-clockwise turn: (r, c) of an (h, w) array goes to (w-1-c, r).
        r, c, h, w = w - 1 - c, r, w, h
    return r, c


@dataclass(eq=False)
class WaferMap:
    """One wafer: the canonical die grid plus identity, geometry and source metadata.

    Attributes:
        grid: Canonical die states, ``uint8`` (rows, cols), values 0/1/2.
        bins: Optional per-die bin codes (``int32``, canonical, -1 where no die).
        bin_table: Bin code -> :class:`BinDef`.
        lot: Lot id.
        wafer_id: Wafer id within the lot (as the file writes it).
        slot: Cassette slot, when the file gives it.
        source_file: Path the map was read from.
        source_format: Registry name of the format it was read from.
        product: Product or device name.
        step: Process step or test program.
        die_pitch_um: Die pitch (x, y) in µm, when known.
        diameter_mm: Wafer diameter in mm, when known.
        frame: How the file's coordinates map to the canonical grid.
        defects: Inspection defects (KLARF) on canonical dies.
        extra: Format-specific metadata kept so a writer can restore the original.
    """

    grid: Grid
    bins: npt.NDArray[np.int32] | None = None
    bin_table: dict[int, BinDef] = field(default_factory=dict)
    lot: str = ""
    wafer_id: str = ""
    slot: int | None = None
    source_file: str = ""
    source_format: str = ""
    product: str = ""
    step: str = ""
    die_pitch_um: tuple[float, float] | None = None
    diameter_mm: float | None = None
    frame: CoordFrame = field(default_factory=CoordFrame)
    defects: tuple[Defect, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grid = np.asarray(self.grid)
        if grid.ndim != 2 or grid.shape[0] < 1 or grid.shape[1] < 1:
            raise InvalidInputError(f"die grid must be a non-empty 2-D array, found {grid.shape}")
        if grid.dtype != np.uint8:
            if not np.issubdtype(grid.dtype, np.integer):
                raise InvalidInputError(f"die grid must hold integers, found {grid.dtype}")
            grid = grid.astype(np.uint8)
        if grid.size and int(grid.max()) > FAIL:
            bad = np.argwhere(grid > FAIL)[0]
            raise InvalidInputError(
                f"die grid values must be 0/1/2, found {int(grid[tuple(bad)])} "
                f"at row {bad[0]} col {bad[1]}"
            )
        self.grid = np.ascontiguousarray(grid)
        if self.bins is not None:
            bins = np.asarray(self.bins, dtype=np.int32)
            if bins.shape != self.grid.shape:
                raise InvalidInputError(
                    f"bin array shape must equal grid shape {self.grid.shape}, found {bins.shape}"
                )
            self.bins = np.ascontiguousarray(bins)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the canonical grid."""
        return int(self.grid.shape[0]), int(self.grid.shape[1])

    @property
    def rows(self) -> int:
        """Number of canonical rows."""
        return self.shape[0]

    @property
    def cols(self) -> int:
        """Number of canonical columns."""
        return self.shape[1]

    @property
    def dies(self) -> int:
        """Dies on the wafer (pass or fail)."""
        return int(np.count_nonzero(self.grid))

    @property
    def pass_dies(self) -> int:
        """Passing dies."""
        return int(np.count_nonzero(self.grid == PASS))

    @property
    def fail_dies(self) -> int:
        """Failing dies."""
        return int(np.count_nonzero(self.grid == FAIL))

    @property
    def content_hash(self) -> str:
        """SHA-256 of the shape and die states: equal for maps any model sees the same."""
        h = hashlib.sha256()
        h.update(f"{self.rows}x{self.cols}:".encode())
        h.update(self.grid.tobytes())
        return h.hexdigest()

    def raster(self) -> Grid:
        """The grid as the source file lays it out (its own orientation)."""
        return self.frame.canonical_to_raster(self.grid)

    def file_to_canonical(self, x: int, y: int) -> tuple[int, int]:
        """Canonical (row, col) of the die the source file calls (x, y)."""
        return self.frame.file_to_canonical(x, y, self.shape)

    def canonical_to_file(self, row: int, col: int) -> tuple[int, int]:
        """The source file's (x, y) of canonical die (row, col)."""
        return self.frame.canonical_to_file(row, col, self.shape)

    def with_grid(self, grid: Grid) -> WaferMap:
        """A copy with another die grid of the same shape (bins dropped if they disagree)."""
        if grid.shape != self.grid.shape:
            raise InvalidInputError(
                f"replacement grid must have shape {self.grid.shape}, found {grid.shape}"
            )
        return replace(self, grid=grid)

    def same_dies(self, other: WaferMap) -> bool:
        """True when both maps have identical canonical die grids."""
        return self.shape == other.shape and bool(np.array_equal(self.grid, other.grid))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaferMap):
            return NotImplemented
        bins_equal = (self.bins is None and other.bins is None) or (
            self.bins is not None
            and other.bins is not None
            and bool(np.array_equal(self.bins, other.bins))
        )
        return (
            self.same_dies(other)
            and bins_equal
            and self.bin_table == other.bin_table
            and (self.lot, self.wafer_id, self.slot, self.product, self.step)
            == (other.lot, other.wafer_id, other.slot, other.product, other.step)
            and self.die_pitch_um == other.die_pitch_um
            and self.diameter_mm == other.diameter_mm
            and self.frame == other.frame
            and self.defects == other.defects
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    def __repr__(self) -> str:
        return (
            f"WaferMap(lot={self.lot!r}, wafer={self.wafer_id!r}, {self.rows}x{self.cols}, "
            f"dies={self.dies}, fail={self.fail_dies}, format={self.source_format!r})"
        )
