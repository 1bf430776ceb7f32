"""The original WM-811K ``LSWMD.pkl`` (a pickled pandas DataFrame), read without trusting it.

A plain ``pickle.load`` runs whatever a file names; this reader's unpickler refuses every global
except the numpy and pandas data types a DataFrame of arrays needs (the allowlist below), so a
crafted file fails with a clear error instead of running code. Needs pandas (the
``wm811k-pkl`` extra). Columns used: ``waferMap``, ``lotName``, ``waferIndex``, ``failureType``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.wafer import WaferMap

NAME = "wm811k-pkl"
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [
        (m, n)
        for m in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("ndarray", "dtype", "_reconstruct", "scalar")
    ]
    + [(m, n) for m in ("builtins", "__builtin__") for n in ("slice", "bytes", "object")]
    + [("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")]
    + [("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")]
    + [
        (m, n)
        for m in (
            "pandas",
            "pandas.core.frame",
            "pandas.core.series",
            "pandas.core.indexes.base",
            "pandas.core.indexes.range",
            "pandas.core.indexes.numeric",
            "pandas.arrays",
            "pandas.core.internals.managers",
            "pandas.core.internals.blocks",
            "pandas.core.internals",
            "pandas._libs.internals",
            "pandas._libs.arrays",
        )
        for n in (
            "DataFrame",
            "Series",
            "Index",
            "RangeIndex",
            "Int64Index",
            "Float64Index",
            "BlockManager",
            "SingleBlockManager",
            "ObjectBlock",
            "FloatBlock",
            "IntBlock",
            "NumpyBlock",
            "Block",
            "_new_Index",
            "_unpickle_block",
            "StringArray",
            "StringDtype",
            "__pyx_unpickle_NDArrayBacked",
            "new_block",
        )
    ]
)


def _sniff(head: bytes, name: str) -> bool:
    return head[:1] == b"\x80" and 2 <= head[1:2][0] <= 5 if len(head) > 1 else False


def _unpickler(data: bytes, path: str) -> Any:
    try:
        from pandas.compat import pickle_compat
    except ImportError:
        raise WaferFileError(
            path,
            "reading LSWMD.pkl needs pandas; install the 'wm811k-pkl' extra "
            "(pip install 'waferseg-studio[wm811k-pkl]')",
        ) from None

    class Restricted(pickle_compat.Unpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            # Old pandas names are mapped to today's first, then checked.
            mod, nm = pickle_compat._class_locations_map.get((module, name), (module, name))
            if (mod, nm) not in ALLOWED:
                raise WaferFileError(
                    path,
                    f"refusing to load {module}.{name} from a pickle; only "
                    "numpy/pandas data types are allowed",
                )
            return super().find_class(module, name)

    return Restricted(io.BytesIO(data), encoding="latin1")


def _label(value: object) -> str:
    arr = np.asarray(value, dtype=object).ravel()
    return str(arr[0]) if arr.size else ""


def read_lswmd(path: Path) -> list[WaferMap]:
    """Read every wafer map of an LSWMD.pkl-style DataFrame."""
    p = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferFileError(p, f"cannot read: {exc.strerror or exc}") from None
    try:
        df = _unpickler(data, p).load()
    except WaferFileError:
        raise
    except Exception as exc:  # a corrupt pickle can fail in any way; say so in one line
        raise WaferFileError(
            p,
            f"expected a pickled WM-811K DataFrame, could not unpickle it: "
            f"{type(exc).__name__}: {exc}",
        ) from None
    cols = getattr(df, "columns", None)
    if cols is None or "waferMap" not in list(cols):
        raise WaferFileError(p, "expected a DataFrame with a 'waferMap' column")
    out = []
    for i, row in enumerate(df.itertuples(index=False)):
        rec = row._asdict()
        grid = np.asarray(rec["waferMap"])
        if (
            grid.ndim != 2
            or not np.issubdtype(grid.dtype, np.integer)
            or grid.size == 0
            or grid.max() > 2
            or grid.min() < 0
        ):
            raise WaferFileError(
                p,
                f"row {i}: expected a 2-D map of 0/1/2, found shape {grid.shape} "
                f"dtype {grid.dtype}",
            )
        idx = rec.get("waferIndex", i + 1)
        out.append(
            WaferMap(
                grid=grid.astype(np.uint8),
                lot=str(rec.get("lotName", "")),
                wafer_id=str(int(idx)) if isinstance(idx, int | float) and idx == idx else str(idx),
                source_file=p,
                source_format=NAME,
                extra={"label": _label(rec.get("failureType", [])) or "", "index": i},
            )
        )
    return out


FORMAT = register(
    FileFormat(
        NAME,
        "WM-811K LSWMD.pkl (restricted unpickler, needs pandas)",
        (".pkl",),
        _sniff,
        read_lswmd,
    )
)
