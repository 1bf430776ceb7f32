"""KLARF against the real files in ../shared/data/formats/klarf.

Expected figures come from the files themselves, not from our reader: the SummaryList that the
inspection tool wrote (NDEFECT = defects, NDEFDIE = dies with a defect, NDIE = inspected dies),
the SampleTestPlan count on its header line, and the LotID/WaferID/Slot records, read by eye.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import examples
from waferseg_core import formats
from waferseg_core.errors import WaferFileError
from waferseg_core.formats.klarf import read_klarf


def test_klarf_11_real_amat_file(klarf_dir):
    (m,) = formats.read(klarf_dir / "klarfkit__CPS3TwithoutReview.001")
    assert m.source_format == "klarf"
    assert (m.lot, m.wafer_id, m.slot, m.step) == ("HJU008", "25", 25, "IMD2_SRO")
    assert m.dies == 4988  # "SampleTestPlan 4988" and SummaryList NDIE 4988
    assert m.fail_dies == 15  # SummaryList NDEFDIE 15 (defects 11 and 12 share die 15,-35)
    assert len(m.defects) == 16  # SummaryList NDEFECT 16
    assert m.die_pitch_um == pytest.approx((2489.96, 2259.92))
    assert m.diameter_mm == 200
    # Defect 5 sits on die (0, 6); the canonical die it maps to is a fail die.
    d5 = m.defects[4]
    assert m.canonical_to_file(d5.row, d5.col) == (0, 6)
    assert m.grid[d5.row, d5.col] == 2
    assert d5.x_um == pytest.approx(1453.68)


@pytest.mark.parametrize(
    ("name", "wafers", "defects", "defect_dies"),
    [
        ("wafermapclustering__LARGE_KLARF.000", ["04"], [22190], [120]),
        ("wafermapclustering__LAA_FAA_LAA-01.000", ["01"], [12263], [17]),
        ("wafermapclustering__QUU_NUU.000", ["02", "06", "01"], [56, 36, 95], [37, 22, 58]),
    ],
)
def test_klarf_12_without_test_plan(klarf_dir, name, wafers, defects, defect_dies):
    maps = formats.read(klarf_dir / name)
    assert [m.wafer_id for m in maps] == wafers
    assert [len(m.defects) for m in maps] == defects  # SummaryList NDEFECT
    assert [m.fail_dies for m in maps] == defect_dies  # SummaryList NDEFDIE
    for m in maps:
        # No SampleTestPlan: the layout is every die inside the wafer circle, so at least the
        # NDIE dies the tool inspected (its inspection area can be smaller than the wafer).
        assert m.dies >= int(m.extra["summary"]["NDIE"])


def test_empty_defect_list(klarf_dir):
    (m,) = formats.read(klarf_dir / "wafermapclustering__klarf_no_defect.000")
    assert (m.lot, m.wafer_id, m.slot) == ("BOO", "02", 24)
    assert m.fail_dies == 0 and m.dies > 1000 and not m.defects


def test_klarf_18_nested_records(klarf_dir):
    first, second = formats.read(klarf_dir / "jklarfreader__simple18.klarf")
    assert (first.lot, first.wafer_id, first.slot) == ("aLot.String", "FirstWaferId", 25)
    assert (second.wafer_id, second.slot) == ("SecondWaferId", 3)
    assert len(first.defects) == 3  # "Data 3" in its DefectList
    # TestRecord 1 lists 5 dies and TestRecord 2 lists 4; defects add dies (2,24), (-3,24), (-2,-27).
    assert first.dies == 5 + 4 + 3
    assert first.fail_dies == 3


def test_na_values_and_image_lists(klarf_dir):
    maps = formats.read(klarf_dir / "jklarfreader__wierdKlarfWithNAs.klarf")
    assert len(maps) == 2
    (m,) = formats.read(klarf_dir / "jklarfreader__klarfWithImagelist.klarf")
    assert len(m.defects) == 6  # "Data 6", two rows with an Images { ... } block
    (m,) = formats.read(klarf_dir / "jklarfreader__klarf12DefectListExample.klarf")
    # Two DefectList records for one wafer (3 + 1 defects shown at the top, 13 in all), with
    # variable-length IMAGELIST columns; plan dies (-2,-1), (0,0), (0,1).
    assert len(m.defects) == 13
    assert m.slot == 9


@pytest.mark.parametrize(
    ("name", "message", "line"),
    [
        ("jklarfreader__bad12DefectList.klarf", "DefectList ends inside a defect row", 28),
        ("jklarfreader__bad12.klarf", "'anotherWafer': no SampleTestPlan", 36),
    ],
)
def test_malformed_real_files(klarf_dir, name, message, line):
    with pytest.raises(WaferFileError, match=message) as err:
        formats.read(klarf_dir / name)
    assert err.value.line == line


KLARF_12 = """FileVersion 1 2;
LotID "L9";
SampleSize 1 200;
OrientationMarkLocation {mark};
DiePitch 5000 4000;
DieOrigin 0 0;
WaferID "W3";
Slot 3;
SampleCenterLocation 0 0;
SampleTestPlan 6
 0 0 1 0 2 0 0 1 1 1 2 1;
DefectRecordSpec 5 DEFECTID XREL YREL XINDEX YINDEX;
DefectList
 1 10 20 2 1
 2 30 40 0 0;
EndOfFile;
"""


def test_orientation_mark_turns_the_grid(tmp_path):
    p = tmp_path / "a.klarf"
    p.write_text(KLARF_12.format(mark="DOWN"))
    (down,) = formats.read(p)
    # y grows upward: die (2, 1) is top right, (0, 0) bottom left.
    assert down.grid.tolist() == [[1, 1, 2], [2, 1, 1]]
    p.write_text(KLARF_12.format(mark="UP"))
    (up,) = formats.read(p)
    assert np.array_equal(up.grid, np.rot90(down.grid, 2))
    assert up.canonical_to_file(*up.file_to_canonical(2, 1)) == (2, 1)


def test_truncated_and_garbage(tmp_path):
    p = tmp_path / "t.klarf"
    p.write_text(KLARF_12.format(mark="DOWN")[:200])
    with pytest.raises(WaferFileError, match="truncated|not closed"):
        formats.read(p)
    p.write_text('FileVersion 1 2;\nWaferID "x";\nSampleTestPlan 2\n 0 0;\nEndOfFile;\n')
    with pytest.raises(WaferFileError, match=r"announces 2 dies, lists 1$") as err:
        formats.read(p)
    assert err.value.line == 3


@given(st.integers(0, 10**9), st.binary(min_size=1, max_size=8))
@settings(
    max_examples=examples(150),
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_mutated_real_klarf_raises_only_wafer_file_error(klarf_dir, tmp_path, pos, chunk):
    src = (
        klarf_dir / "jklarfreader__simple18.klarf"
        if pos % 2
        else klarf_dir / "wafermapclustering__QUU_NUU.000"
    )
    data = bytearray(src.read_bytes())
    at = pos % len(data)
    data[at : at + len(chunk)] = chunk
    p = tmp_path / "m.klarf"
    p.write_bytes(bytes(data))
    with contextlib.suppress(WaferFileError):
        read_klarf(p)
