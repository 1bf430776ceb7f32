"""WM-811K wafer maps in the pickle-free npz layout of ``../shared/data/README.md``.

Keys: ``dies_flat`` (uint8 codes), ``shapes`` (N, 2), ``offsets`` (N+1), ``failure_type``,
``lot``, ``wafer_index``. The WM-811K label goes to ``extra["label"]``. WM-811K maps are
already in the canonical convention (0 no die, 1 pass, 2 fail).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.wafer import WaferMap

NAME = "wm811k-npz"
REQUIRED = ("dies_flat", "shapes", "offsets")


def _sniff(head: bytes, name: str) -> bool:
    # An npz is a zip whose first member name is one of our arrays.
    return head.startswith(b"PK\x03\x04") and any(f"{k}.npy".encode() in head for k in REQUIRED)


def _load(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise WaferFileError(str(path), f"expected a readable npz archive, found: {exc}") from None


def read_npz(path: str | Path) -> list[WaferMap]:
    """Read every map of a WM-811K npz file."""
    p = Path(path)
    arrays = _load(p)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise WaferFileError(
            str(p), f"expected arrays {', '.join(REQUIRED)}, missing {', '.join(missing)}"
        )
    for key in REQUIRED:
        if not np.issubdtype(arrays[key].dtype, np.integer):
            raise WaferFileError(str(p), f"expected integer {key}, found {arrays[key].dtype}")
    flat = arrays["dies_flat"].astype(np.int64, copy=False)
    shapes = arrays["shapes"].astype(np.int64, copy=False)
    offsets = arrays["offsets"].astype(np.int64, copy=False)
    n = len(shapes)
    if shapes.ndim != 2 or shapes.shape[1] != 2 or offsets.shape != (n + 1,):
        raise WaferFileError(
            str(p),
            f"expected shapes (N, 2) and offsets (N+1,), found {shapes.shape} and {offsets.shape}",
        )
    sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1].astype(np.int64)
    if (shapes < 1).any() or offsets[0] != 0 or not np.array_equal(np.diff(offsets), sizes):
        raise WaferFileError(
            str(p),
            "offsets do not match the map shapes (expected offsets[i+1]-offsets[i] = rows*cols)",
        )
    if offsets[-1] != flat.size:
        raise WaferFileError(str(p), f"expected {int(offsets[-1])} die codes, found {flat.size}")
    if flat.size and (int(flat.max()) > 2 or int(flat.min()) < 0):
        bad = int(flat.max()) if int(flat.max()) > 2 else int(flat.min())
        raise WaferFileError(str(p), f"die codes must be 0/1/2, found {bad}")
    columns = {}
    for key in ("failure_type", "lot", "wafer_index"):
        col = arrays.get(key)
        if col is not None and len(col) != n:
            raise WaferFileError(str(p), f"expected {n} entries in {key}, found {len(col)}")
        columns[key] = col
    codes = flat.astype(np.uint8)
    out = []
    for i in range(n):
        grid = codes[offsets[i] : offsets[i + 1]].reshape(int(shapes[i, 0]), int(shapes[i, 1]))
        label = columns["failure_type"]
        lot = columns["lot"]
        idx = columns["wafer_index"]
        out.append(
            WaferMap(
                grid=grid,
                lot=str(lot[i]) if lot is not None else "",
                wafer_id=str(int(idx[i])) if idx is not None else str(i + 1),
                source_file=str(p),
                source_format=NAME,
                extra={"label": str(label[i]) if label is not None else "", "index": i},
            )
        )
    return out


def write_npz(maps: Sequence[WaferMap], path: Path) -> None:
    """Write maps in the same layout (labels from ``extra["label"]``)."""
    offsets = np.zeros(len(maps) + 1, np.int64)
    offsets[1:] = np.cumsum([m.grid.size for m in maps])
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        dies_flat=np.concatenate([m.grid.ravel() for m in maps]) if maps else np.zeros(0, np.uint8),
        shapes=np.array([m.shape for m in maps], np.int32).reshape(-1, 2),
        offsets=offsets,
        failure_type=np.array([str(m.extra.get("label", "")) for m in maps]),
        lot=np.array([m.lot for m in maps]),
        wafer_index=np.array(
            [int(m.wafer_id) if m.wafer_id.isdigit() else i + 1 for i, m in enumerate(maps)],
            np.int32,
        ),
    )
    path.write_bytes(buf.getvalue())


FORMAT = register(
    FileFormat(NAME, "WM-811K maps, pickle-free npz layout", (".npz",), _sniff, read_npz, write_npz)
)
