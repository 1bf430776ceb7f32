import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from waferseg_core import formats
from waferseg_core.errors import WaferFileError
from waferseg_core.formats.png import png_bytes
from waferseg_core.formats.pngio import encode_gray
from waferseg_core.formats.wm811k import read_npz, write_npz
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import WaferMap

grids = arrays(
    np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.integers(0, 2)
)


@given(grids)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_png_round_trip(tmp_path, grid):
    m = WaferMap(grid=grid, lot="LOT-7", wafer_id="12")
    p = tmp_path / "w.png"
    formats.write([m], p, "png")
    (back,) = formats.read(p)
    assert back.same_dies(m) and back.lot == "LOT-7" and back.wafer_id == "12"
    assert back.source_format == "png"


def test_png_is_byte_stable():
    m = generate_wafer(1, 3).wafer
    assert png_bytes(m) == png_bytes(generate_wafer(1, 3).wafer)


def test_three_level_rendering_lightest_is_no_die(tmp_path):
    grid = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    render = np.choose(grid, [255, 170, 40]).astype(np.uint8)
    p = tmp_path / "r.png"
    p.write_bytes(encode_gray(render))
    assert np.array_equal(formats.read(p)[0].grid, grid)


def test_levels_chunk_overrides_the_default(tmp_path):
    grid = np.array([[0, 1, 2]], np.uint8)
    render = np.choose(grid, [0, 128, 255]).astype(np.uint8)  # dark background rendering
    p = tmp_path / "d.png"
    p.write_bytes(encode_gray(render, {"waferseg:levels": "nodie=0,pass=128,fail=255"}))
    assert np.array_equal(formats.read(p)[0].grid, grid)
    p.write_bytes(encode_gray(render, {"waferseg:levels": "nodie=oops"}))
    with pytest.raises(WaferFileError, match="nodie=255,pass=128,fail=0"):
        formats.read(p)


def test_too_many_levels_and_colour_rejected(tmp_path):
    p = tmp_path / "g.png"
    p.write_bytes(encode_gray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10))
    with pytest.raises(WaferFileError, match="found 16 levels"):
        formats.read(p)


def test_truncated_png(tmp_path):
    data = png_bytes(generate_wafer(1, 1).wafer)
    p = tmp_path / "t.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(WaferFileError, match="truncated or corrupt"):
        formats.read(p)


@given(st.binary(max_size=600))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_garbage_bytes_raise_only_wafer_file_error(tmp_path, data):
    for name in ("x.png", "x.npz", "x.bin"):
        p = tmp_path / name
        p.write_bytes(data)
        with contextlib.suppress(WaferFileError):
            formats.read(p)


@given(st.integers(0, 10_000), st.integers(0, 255))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_mutated_png_raises_only_wafer_file_error(tmp_path, pos, value):
    data = bytearray(png_bytes(generate_wafer(2, 0).wafer))
    data[pos % len(data)] = value
    p = tmp_path / "m.png"
    p.write_bytes(bytes(data))
    with contextlib.suppress(WaferFileError):
        formats.read(p)


def test_detection_is_by_content_not_extension(tmp_path):
    m = generate_wafer(1, 2).wafer
    p = tmp_path / "misnamed.dat"
    p.write_bytes(png_bytes(m))
    assert formats.detect(p).name == "png"
    q = tmp_path / "empty.png"
    q.write_bytes(b"")
    with pytest.raises(WaferFileError, match="expected the PNG signature"):
        formats.read(q)
    r = tmp_path / "notes.txt"
    r.write_text("hello")
    with pytest.raises(WaferFileError, match="unknown wafer-map format"):
        formats.read(r)


def test_npz_round_trip(tmp_path):
    maps = [generate_wafer(3, i).wafer for i in range(5)]
    for i, m in enumerate(maps):
        m.extra["label"] = ["Center", "none", "Loc", "Scratch", "Donut"][i]
    p = tmp_path / "set.npz"
    write_npz(maps, p)
    back = read_npz(p)
    assert [b.extra["label"] for b in back] == ["Center", "none", "Loc", "Scratch", "Donut"]
    assert all(
        a.same_dies(b) and a.lot == b.lot and a.wafer_id == b.wafer_id
        for a, b in zip(maps, back, strict=True)
    )


def test_npz_inconsistent_offsets(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(
        p, dies_flat=np.ones(10, np.uint8), shapes=np.array([[3, 3]]), offsets=np.array([0, 10])
    )
    with pytest.raises(WaferFileError, match="offsets do not match"):
        read_npz(p)
    np.savez(p, dies_flat=np.ones(9, np.uint8))
    with pytest.raises(WaferFileError, match="missing shapes, offsets"):
        read_npz(p)


def test_real_wm811k_dev_file(wm811k_npz):
    maps = formats.read(wm811k_npz)
    # Expected figures come from ../shared/data/README.md, not from this reader.
    assert len(maps) == 1409
    labels = [m.extra["label"] for m in maps]
    expected = {
        "Center": 239,
        "Donut": 13,
        "Edge-Loc": 232,
        "Edge-Ring": 187,
        "Loc": 233,
        "Near-full": 22,
        "Random": 69,
        "Scratch": 167,
        "none": 247,
    }
    assert {k: labels.count(k) for k in expected} == expected
    assert len({m.lot for m in maps}) == 658
    assert min(m.rows for m in maps) >= 22 and max(m.cols for m in maps) <= 50
    raw = np.load(wm811k_npz)
    assert sum(m.grid.size for m in maps) == raw["dies_flat"].size


def test_own_png_decoder_matches_opencv_on_every_kind(tmp_path):
    import io

    import cv2
    from PIL import Image

    from waferseg_core.formats.pngio import PngError, decode

    rng = np.random.default_rng(0)
    for i in range(30):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        ch = int(rng.choice([1, 3, 4]))
        img = (rng.random((h, w, ch) if ch > 1 else (h, w)) * 255).astype(np.uint8)
        _, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, i % 10])
        got = decode(buf.tobytes())
        if ch > 1:
            got = got[..., [2, 1, 0, 3][:ch]]  # ours is RGB(A), OpenCV's BGR(A)
        assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), got)
    for mode in ("L", "RGB", "RGBA", "P", "LA"):
        im = Image.fromarray((rng.random((17, 23, 3)) * 255).astype(np.uint8)).convert(mode)
        b = io.BytesIO()
        im.save(b, "PNG")
        ref = np.array(im.convert("RGB") if mode == "P" else im)
        assert np.array_equal(decode(b.getvalue()), ref), mode
    b = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(b, "PNG")
    with pytest.raises(PngError, match="8-bit"):
        decode(b.getvalue())
