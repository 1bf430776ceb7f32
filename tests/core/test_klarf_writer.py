"""The KLARF writer: real files read back whole, other formats' maps, inked maps, refusals.

Expected figures are the source files' own SummaryList records (NDEFECT, NDIE, NDEFDIE), read
from the text by a plain split, not by our reader.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import examples
from waferseg_core import formats
from waferseg_core.classes import CLASSES
from waferseg_core.errors import InvalidInputError
from waferseg_core.formats.bins import ink
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import FAIL, NO_DIE, CoordFrame, WaferMap

GOOD = sorted(
    [
        "jklarfreader__klarf12DefectListExample.klarf",
        "jklarfreader__klarf12Example.klarf",
        "jklarfreader__klarfWithImagelist.klarf",
        "jklarfreader__simple12.klarf",
        "jklarfreader__simple18.klarf",
        "jklarfreader__wierdKlarfWithNAs.klarf",
        "klarfkit__CPS3TwithoutReview.001",
        "wafermapclustering__LAA_FAA_LAA-01.000",
        "wafermapclustering__LARGE_KLARF.000",
        "wafermapclustering__QUU_NUU.000",
        "wafermapclustering__klarf_no_defect.000",
    ]
)


def _summaries(path) -> list[list[str]]:
    """The values of each SummaryList record, by a plain split of the text."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [body.split() for body in re.findall(r"SummaryList\s+([^;]*);", text)]


def _defects_equal(a, b) -> bool:
    # "NA" positions read as NaN, which never equals itself.
    return len(a) == len(b) and all(
        np.array_equal(
            [x.row, x.col, x.x_um, x.y_um, x.size_um, x.class_code],
            [y.row, y.col, y.x_um, y.y_um, y.size_um, y.class_code],
            equal_nan=True,
        )
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("name", GOOD)
def test_every_real_file_reads_back_whole(klarf_dir, tmp_path, name):
    maps = formats.read(klarf_dir / name)
    out = tmp_path / "out.klarf"
    formats.write(maps, out, "klarf")
    assert formats.detect(out).name == "klarf"
    back = formats.read(out)
    assert len(back) == len(maps)
    for m, b in zip(maps, back, strict=True):
        assert np.array_equal(m.grid, b.grid) and m.frame == b.frame
        assert (m.lot, m.wafer_id, m.slot, m.product, m.step) == (
            b.lot,
            b.wafer_id,
            b.slot,
            b.product,
            b.step,
        )
        assert (m.die_pitch_um, m.diameter_mm) == (b.die_pitch_um, b.diameter_mm)
        assert _defects_equal(m.defects, b.defects)
        assert m.extra.get("class_lookup") == b.extra.get("class_lookup")


def test_the_written_summary_matches_the_inspection_tools(klarf_dir, tmp_path):
    # The AMAT file's own SummaryList: 16 defects, 4,988 dies, 15 dies with a defect.
    src = klarf_dir / "klarfkit__CPS3TwithoutReview.001"
    assert _summaries(src) == [["1", "16", "0.068681", "4988", "15"]]
    out = tmp_path / "out.klarf"
    formats.write(formats.read(src), out, "klarf")
    assert _summaries(out) == [["1", "16", "4988", "15"]]  # TESTNO NDEFECT NDIE NDEFDIE
    text = out.read_text()
    assert text.startswith("FileVersion 1 2;") and text.rstrip().endswith("EndOfFile;")
    # Its 276-class lookup travels with it.
    assert 'ClassLookup 276\n 0 "Undefined"\n 1 "0.2_open"' in text


def _cropped(grid):
    rows, cols = np.nonzero(grid)
    return grid[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def test_a_tester_map_writes_a_centre_defect_per_failing_die(tmp_path):
    m = generate_wafer(3, 5).wafer
    m.lot, m.wafer_id, m.die_pitch_um = "T1", "07", (5000.0, 4000.0)
    # A G85-like frame: y grows downward; the writer turns it into KLARF's (y up).
    m.frame = CoordFrame(notch="left", x_origin=3, y_origin=2, x_step=1, y_step=1)
    out = tmp_path / "t.klarf"
    formats.write([m], out, "klarf")
    (b,) = formats.read(out)
    assert np.array_equal(b.grid, _cropped(m.grid)) and b.frame.notch == "left"
    assert len(b.defects) == m.fail_dies  # one per failing die, none elsewhere
    assert {(d.x_um, d.y_um, d.size_um) for d in b.defects} == {(2500.0, 2000.0, 0.0)}
    assert all(b.grid[d.row, d.col] == FAIL for d in b.defects)


def test_an_inked_map_classifies_each_defect_by_its_dies_pattern(klarf_dir, tmp_path):
    (m,) = formats.read(klarf_dir / "klarfkit__CPS3TwithoutReview.001")
    mask = np.zeros(m.shape, np.uint8)
    mask[: m.rows // 2] = 8  # the top half Scratch, for the test
    mask[m.grid == NO_DIE] = 0
    out = tmp_path / "inked.klarf"
    formats.write([ink(m, mask)], out, "klarf")
    (b,) = formats.read(out)
    assert np.array_equal(b.grid, m.grid) and len(b.defects) == len(m.defects)
    want = [int(mask[d.row, d.col]) for d in m.defects]
    assert [d.class_code for d in b.defects] == want and set(want) == {0, 8}
    # Positions and sizes are the inspection's; only the class is the pattern's.
    assert [(d.x_um, d.size_um) for d in b.defects] == [(d.x_um, d.size_um) for d in m.defects]
    assert b.extra["class_lookup"] == {0: "none", **{c.id: c.name for c in CLASSES[1:]}}


def test_refusals_are_one_line_and_write_nothing(tmp_path):
    a, b = generate_wafer(1, 0).wafer, generate_wafer(1, 1).wafer
    a.lot, b.lot = "A", "B"
    out = tmp_path / "x.klarf"
    with pytest.raises(InvalidInputError) as err:
        formats.write([a, b], out, "klarf")
    msg = str(err.value)
    assert "a KLARF file holds one lot; found wafers of 2 lots ('A', 'B')" in msg
    assert "\n" not in msg
    with pytest.raises(InvalidInputError, match="expected at least one wafer"):
        formats.write([], out, "klarf")
    with pytest.raises(InvalidInputError, match="expected dies on every wafer, found none on"):
        formats.write([a.with_grid(np.zeros_like(a.grid))], out, "klarf")
    assert not out.exists()


def test_wafers_that_disagree_on_a_lot_record_keep_their_own(tmp_path):
    maps = [generate_wafer(1, i).wafer for i in range(3)]
    for i, m in enumerate(maps):
        m.lot, m.wafer_id, m.product = "MIX", str(i), "P1"
        m.frame = CoordFrame(notch="down", y_step=-1)
    maps[1].die_pitch_um, maps[2].die_pitch_um = (5000.0, 4000.0), (2500.0, 2500.0)
    maps[0].diameter_mm, maps[1].diameter_mm, maps[2].diameter_mm = 300.0, 300.0, None
    maps[2].frame = CoordFrame(notch="right", y_step=-1)
    out = tmp_path / "mix.klarf"
    formats.write(maps, out, "klarf")
    text = out.read_text()
    assert text.count('DeviceID "P1";') == 1  # shared: once, for the lot
    back = formats.read(out)
    assert [b.die_pitch_um for b in back] == [m.die_pitch_um for m in maps]
    assert [b.diameter_mm for b in back] == [300.0, 300.0, None]
    assert [b.frame.notch for b in back] == ["down", "down", "right"]
    assert all(np.array_equal(b.grid, m.grid) for b, m in zip(back, maps, strict=True))


def test_a_double_quote_in_a_name_becomes_a_single_one(tmp_path):
    m = generate_wafer(2, 0).wafer
    m.lot, m.wafer_id, m.product = 'L"1', 'W "7"', "dev;ice"
    out = tmp_path / "q.klarf"
    formats.write([m], out, "klarf")
    (b,) = formats.read(out)
    assert (b.lot, b.wafer_id, b.product) == ("L'1", "W '7'", "dev;ice")


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["down", "up", "left", "right"]),
    st.sampled_from([(1, 1), (1, -1), (-1, 1), (-1, -1)]),
    st.integers(-50, 50),
)
def test_any_map_reads_back_with_the_same_dies(rows, cols, seed, notch, steps, origin):
    import tempfile
    from pathlib import Path

    grid = np.random.default_rng(seed).integers(0, 3, (rows, cols)).astype(np.uint8)
    grid[0, 0] = 1  # at least one die
    m = WaferMap(
        grid=grid,
        lot="L",
        wafer_id="1",
        frame=CoordFrame(notch, origin, -origin, steps[0], steps[1]),
    )
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "h.klarf"
        formats.write([m], out, "klarf")
        (b,) = formats.read(out)
    assert np.array_equal(b.grid, _cropped(grid)) and b.frame.notch == notch
    assert len(b.defects) == int((grid == FAIL).sum())
