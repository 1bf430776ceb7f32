"""Minimal 8-bit greyscale PNG encoding with text chunks, and text-chunk parsing.

Our own encoder keeps output byte-identical for equal input (no library version drift) and
lets die-grid and mask PNGs carry their lot, wafer and level metadata in ``tEXt`` chunks.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_gray(image: npt.NDArray[np.uint8], text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of a 2-D ``uint8`` image, with ``text`` as tEXt chunks (sorted by key)."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = img.shape
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    raw = np.hstack([np.zeros((h, 1), np.uint8), img]).tobytes()  # filter type 0 per row
    out = [SIGNATURE, _chunk(b"IHDR", ihdr)]
    for key in sorted(text or {}):
        out.append(
            _chunk(
                b"tEXt",
                key.encode("latin-1") + b"\0" + (text or {})[key].encode("latin-1", "replace"),
            )
        )
    out.append(_chunk(b"IDAT", zlib.compress(raw, 9)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def text_chunks(data: bytes) -> dict[str, str]:
    """The tEXt key/value pairs of PNG bytes (malformed chunks are ignored; pixels decide)."""
    out: dict[str, str] = {}
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return out
