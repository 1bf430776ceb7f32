"""Die-grid PNG: 8-bit grey holding the raw codes 0/1/2, or a three-level grey rendering.

Raw codes are what the project writes. A rendering with two or three grey levels is read too:
the lightest level is *no die*, then pass, and the darkest is fail, unless the file's
``waferseg:levels`` text chunk says otherwise (``nodie=255,pass=128,fail=0``). Lot and wafer
travel in ``waferseg:lot`` / ``waferseg:wafer`` text chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register, write_each
from waferseg_core.formats.pngio import SIGNATURE, PngError, decode, encode_gray, text_chunks
from waferseg_core.wafer import WaferMap

NAME = "png"


def _sniff(head: bytes, name: str) -> bool:
    return head.startswith(SIGNATURE)


def decode_levels(spec: str, path: str) -> dict[int, int]:
    """Parse ``nodie=255,pass=128,fail=0`` into grey level -> die code."""
    codes = {"nodie": 0, "pass": 1, "fail": 2}
    out: dict[int, int] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in codes or not value.strip().isdigit():
            raise WaferFileError(
                path, f"waferseg:levels must look like 'nodie=255,pass=128,fail=0', found {spec!r}"
            )
        out[int(value)] = codes[key.strip()]
    return out


def _to_codes(
    img: npt.NDArray[np.uint8], levels_spec: str | None, path: str
) -> npt.NDArray[np.uint8]:
    values = np.unique(img)
    if levels_spec:
        table = decode_levels(levels_spec, path)
    elif int(values.max()) <= 2:
        return img.astype(np.uint8)
    elif len(values) <= 3:
        # Lightest = no die, then pass, darkest = fail (two levels: no die and pass).
        ordered = sorted((int(v) for v in values), reverse=True)
        table = {v: i for i, v in enumerate(ordered)}
    else:
        raise WaferFileError(
            path,
            f"expected raw die codes 0/1/2 or at most three grey levels, found {len(values)} "
            f"levels ({', '.join(str(int(v)) for v in values[:6])}...)",
        )
    lut = np.full(256, 255, np.uint8)
    for grey, code in table.items():
        lut[grey] = code
    out = lut[img]
    if (out == 255).any():
        bad = int(img[out == 255][0])
        raise WaferFileError(
            path, f"grey level {bad} is not one of the declared levels {sorted(table)}"
        )
    return out


def read_png(path: Path) -> list[WaferMap]:
    """Read one die-grid PNG."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferFileError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if not data.startswith(SIGNATURE):
        raise WaferFileError(str(path), "expected the PNG signature, found other bytes", offset=0)
    try:
        img = decode(data)
    except PngError as exc:
        raise WaferFileError(str(path), str(exc)) from None
    if img.ndim == 3:
        if not all(
            np.array_equal(img[..., 0], img[..., k]) for k in range(1, min(3, img.shape[2]))
        ):
            raise WaferFileError(str(path), "expected a grey PNG, found colour pixels")
        img = img[..., 0]
    text = text_chunks(data)
    grid = _to_codes(np.ascontiguousarray(img), text.get("waferseg:levels"), str(path))
    return [
        WaferMap(
            grid=grid,
            lot=text.get("waferseg:lot", ""),
            wafer_id=text.get("waferseg:wafer", path.stem),
            source_file=str(path),
            source_format=NAME,
        )
    ]


def png_bytes(m: WaferMap) -> bytes:
    """The die-grid PNG of one map (raw codes, canonical orientation)."""
    text = {"waferseg:lot": m.lot, "waferseg:wafer": m.wafer_id, "Software": "WaferSeg Studio"}
    return encode_gray(m.grid, text)


def write_png(maps: Sequence[WaferMap], path: Path) -> None:
    """Write one map to ``path``, or several as ``path``'s stem + ``_<wafer>``.png."""
    write_each(maps, path, ".png", png_bytes)


FORMAT = register(
    FileFormat(
        NAME,
        "die-grid PNG (raw codes 0/1/2 or grey rendering)",
        (".png",),
        _sniff,
        read_png,
        write_png,
    )
)
