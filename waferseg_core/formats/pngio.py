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


class PngError(ValueError):
    """A PNG that cannot be decoded; the message says what was found."""


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Die grids and their renderings are far smaller; the cap bounds the decode time of a small,
# highly compressed file (about 3 s at worst for Paeth-filtered rows in pure Python).
MAX_PIXELS = 4_000_000


def decode(data: bytes) -> npt.NDArray[np.uint8]:
    """Pixels of an 8-bit, non-interlaced PNG: (h, w) grey or (h, w, channels), palette as RGB.

    Raises:
        PngError: Not a PNG, a bad CRC, truncated or corrupt data, or an unsupported kind.
    """
    if not data.startswith(SIGNATURE):
        raise PngError("expected the PNG signature")
    pos, header, palette, idat = len(SIGNATURE), None, None, []
    while True:
        if pos + 8 > len(data):
            raise PngError("PNG is truncated or corrupt (it ends inside a chunk header)")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            raise PngError(
                f"PNG is truncated or corrupt (chunk {kind!r} at byte {pos} is cut short)"
            )
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise PngError(
                f"PNG is truncated or corrupt (bad checksum of chunk {kind!r} at byte {pos})"
            )
        if kind == b"IHDR":
            if length != 13:
                raise PngError("PNG is truncated or corrupt (IHDR is not 13 bytes)")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3) if length % 3 == 0 else None
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise PngError("PNG is truncated or corrupt (no IHDR chunk)")
    w, h, depth, ctype, _comp, _filt, interlace = header
    if ctype not in _CHANNELS:
        raise PngError(f"PNG is truncated or corrupt (colour type {ctype})")
    if depth != 8:
        raise PngError(f"expected an 8-bit PNG, found {depth}-bit samples")
    if interlace:
        raise PngError(
            "expected a non-interlaced PNG, found an interlaced one; save it without interlacing"
        )
    if not 0 < w * h <= MAX_PIXELS:
        raise PngError(f"expected 1 to {MAX_PIXELS} pixels, found {w} x {h}")
    ch = _CHANNELS[ctype]
    stride = w * ch
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), h * (stride + 1) + 1)
    except zlib.error:
        raise PngError("PNG is truncated or corrupt (the image data does not decompress)") from None
    if len(raw) < h * (stride + 1):
        raise PngError("PNG is truncated or corrupt (not enough image data)")
    rows = np.frombuffer(raw[: h * (stride + 1)], np.uint8).reshape(h, stride + 1)
    img = _unfilter(rows[:, 1:].astype(np.int32), rows[:, 0], ch)
    if ctype == 3:
        if palette is None or int(img.max()) >= len(palette):
            raise PngError("PNG is truncated or corrupt (palette missing or too short)")
        return np.ascontiguousarray(palette[img])
    out = img.reshape(h, w, ch) if ch > 1 else img
    return np.ascontiguousarray(out)


def _unfilter(
    rows: npt.NDArray[np.int32], filters: npt.NDArray[np.uint8], bpp: int
) -> npt.NDArray[np.uint8]:
    """Undo PNG's per-row filters (none, sub, up, average, Paeth)."""
    h, n = rows.shape
    out = np.zeros((h, n), np.int32)
    prev = np.zeros(n, np.int32)
    for r in range(h):
        cur, f = rows[r].copy(), int(filters[r])
        if f == 0:
            pass
        elif f == 1:
            for i in range(bpp, n):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
        elif f == 2:
            cur = (cur + prev) & 0xFF
        elif f == 3:
            for i in range(n):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(n):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 0xFF
        else:
            raise PngError(f"PNG is truncated or corrupt (row {r} has filter type {f})")
        out[r] = cur
        prev = cur
    return out.astype(np.uint8)
