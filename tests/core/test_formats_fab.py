"""G85, E142, SINF, TSK and STDF: dialects, round trips, orientation, inked maps, fuzzing."""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.fuzz import examples
from waferseg_core import formats
from waferseg_core.errors import WaferFileError
from waferseg_core.formats.bins import default_bins, ink, mask_from_inked
from waferseg_core.formats.stdf import encode_stdf
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import CoordFrame, WaferMap

G85_0703 = """<?xml version="1.0"?>
<Maps xmlns="http://www.semi.org">
 <Map xmlns:semi="http://www.semi.org" WaferId="W07" FormatRevision="SEMI G85 0703">
  <Device ProductId="P1" LotId="LOTA" Rows="{rows}" Columns="3" Orientation="{orient}"
          OriginLocation="2" BinType="{bintype}" NullBin="{null}" DeviceSizeX="5000" DeviceSizeY="4000">
   <Bin BinCode="{c1}" BinCount="{n1}" BinQuality="Pass" BinDescription="good"/>
   <Bin BinCode="{c2}" BinCount="2" BinQuality="Fail" BinDescription="open"/>
   <Data MapName="Map" MapVersion="1">
    <Row><![CDATA[{r1}]]></Row>
    <Row><![CDATA[{r2}]]></Row>
   </Data>
  </Device>
 </Map>
</Maps>
"""
EXPECTED = [[0, 1, 2], [1, 2, 1]]  # null, pass, fail / pass, fail, pass


def _g85(tmp_path, **kw):
    values = {"rows": 2, "orient": 0, "n1": 3, **kw}
    p = tmp_path / "m.xml"
    p.write_text(G85_0703.format(**values))
    return formats.read(p)


@pytest.mark.parametrize(
    "dialect",
    [
        {"bintype": "ASCII", "null": ".", "c1": "A", "c2": "X", "r1": ".AX", "r2": "AXA"},
        {"bintype": "ASCII", "null": ".", "c1": "A", "c2": "X", "r1": ". A X", "r2": "A X A"},
        {
            "bintype": "Decimal",
            "null": "255",
            "c1": "001",
            "c2": "007",
            "r1": "255 001 007",
            "r2": "1 7 1",
        },
        {
            "bintype": "HexaDecimal",
            "null": "FF",
            "c1": "01",
            "c2": "1A",
            "r1": "FF011A",
            "r2": "01 1A 01",
        },
        {
            "bintype": "Integer2",
            "null": "FFFF",
            "c1": "0001",
            "c2": "0100",
            "r1": "FFFF00010100",
            "r2": "0001 0100 0001",
        },
    ],
)
def test_g85_bin_types_with_and_without_separators(tmp_path, dialect):
    (m,) = _g85(tmp_path, **dialect)
    assert m.grid.tolist() == EXPECTED
    assert (m.lot, m.wafer_id, m.product) == ("LOTA", "W07", "P1")
    assert m.die_pitch_um == (5000.0, 4000.0)
    assert not m.extra["warnings"]
    assert sorted(d.passed for d in m.bin_table.values()) == [False, True]


def test_g85_wrong_rows_and_counts_warn_and_the_data_wins(tmp_path):
    d = {"bintype": "ASCII", "null": ".", "c1": "A", "c2": "X", "r1": ".AX", "r2": "AXA"}
    (m,) = _g85(tmp_path, rows=5, n1=9, **d)
    assert m.grid.tolist() == EXPECTED
    warnings = " ".join(m.extra["warnings"])
    assert "Rows=5 disagrees with the data (2)" in warnings
    assert "header count 9 disagrees with the map (3)" in warnings


def test_g85_orientation_turns_the_map(tmp_path):
    d = {"bintype": "ASCII", "null": ".", "c1": "A", "c2": "X", "r1": ".AX", "r2": "AXA"}
    (up,) = _g85(tmp_path, orient=180, **d)
    assert np.array_equal(up.grid, np.rot90(np.array(EXPECTED), 2))
    (left,) = _g85(tmp_path, orient=90, **d)
    assert left.shape == (3, 2)


def test_g85_bad_input(tmp_path):
    d = {"bintype": "Decimal", "null": "255", "c1": "1", "c2": "7", "r1": "255 1 x", "r2": "1 7 1"}
    with pytest.raises(WaferFileError, match="row 1: 'x' is not a Decimal bin code"):
        _g85(tmp_path, **d)
    p = tmp_path / "bad.xml"
    p.write_text("<Maps><Map><Device BinType='ASCII'><Data><Row>AA</Row>")
    with pytest.raises(WaferFileError, match="well-formed") as err:
        formats.get("g85").read(p)
    assert err.value.line == 1


G85_TEXT = """G85
WaferId: W2
LotId: LOTT
Rows: 2
Columns: 3
Orientation: 0
BinType: ASCII
NullBin: .
Bin: A 3 Pass good
Bin: X 2 Fail bad
Map:
.AX
AXA
"""


def test_g85_text_form(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text(G85_TEXT)
    (m,) = formats.read(p)
    assert m.source_format == "g85-text" and m.grid.tolist() == EXPECTED and m.lot == "LOTT"


E142 = """<?xml version="1.0" encoding="UTF-8"?>
<MapData xmlns="urn:semi-org:xsd.E142-1.V1005.SubstrateMap">
 <Layouts>
  <Layout LayoutId="WaferLayout" DefaultUnits="mm" TopLevel="true"><Dimension X="1" Y="1"/>
   <ChildLayouts><ChildLayout LayoutId="Devices"/></ChildLayouts></Layout>
  <Layout LayoutId="Devices" DefaultUnits="micron"><Dimension X="3" Y="2"/><DeviceSize X="6000" Y="5000"/></Layout>
 </Layouts>
 <Substrates>
  <Substrate SubstrateType="Wafer" SubstrateId="S1"><LotId>LOTE</LotId><SlotNumber>4</SlotNumber></Substrate>
  <Substrate SubstrateType="Wafer" SubstrateId="S2"><LotId>LOTE</LotId><SlotNumber>5</SlotNumber></Substrate>
 </Substrates>
 <SubstrateMaps>
  <SubstrateMap SubstrateType="Wafer" SubstrateId="S1" LayoutSpecifier="WaferLayout/Devices"
     OriginLocation="LowerLeft" AxisDirection="UpRight" Orientation="0">
   <Overlay MapName="BinMap" MapVersion="1">
    <BinCodeMap BinType="Decimal" NullBin="255">
     <BinDefinitions>
      <BinDefinition BinCode="1" BinQuality="Pass" BinDescription="good"/>
      <BinDefinition BinCode="3" BinQuality="Fail" BinDescription="leak"/>
     </BinDefinitions>
     <BinCode>255 1 3</BinCode>
     <BinCode>1 3 1</BinCode>
    </BinCodeMap>
   </Overlay>
  </SubstrateMap>
  <SubstrateMap SubstrateType="Wafer" SubstrateId="S2" LayoutSpecifier="WaferLayout/Devices"
     OriginLocation="UpperRight" AxisDirection="DownLeft" Orientation="180">
   <Overlay MapName="BinMap" MapVersion="1">
    <BinCodeMap BinType="HexaDecimal" NullBin="FF">
     <BinDefinitions><BinDefinition BinCode="01" BinQuality="Pass"/><BinDefinition BinCode="03" BinQuality="Fail"/></BinDefinitions>
     <BinCode>FF0103</BinCode>
     <BinCode>010301</BinCode>
    </BinCodeMap>
   </Overlay>
  </SubstrateMap>
 </SubstrateMaps>
</MapData>
"""


def test_e142_several_substrates_origin_axis_and_orientation(tmp_path):
    p = tmp_path / "e.xml"
    p.write_text(E142)
    assert formats.detect(p).name == "e142"
    s1, s2 = formats.read(p)
    assert s1.grid.tolist() == EXPECTED
    assert (s1.lot, s1.wafer_id, s1.slot, s1.die_pitch_um) == ("LOTE", "S1", 4, (6000.0, 5000.0))
    # LowerLeft origin, UpRight axes: the lower-left die is (0, 0), the top-right one is (2, 1).
    assert s1.canonical_to_file(1, 0) == (0, 0) and s1.canonical_to_file(0, 2) == (2, 1)
    assert np.array_equal(s2.grid, np.rot90(np.array(EXPECTED), 2))
    assert s2.slot == 5
    # UpperRight origin with DownLeft axes: raster (0, 2) is (0, 0).
    assert s2.frame.canonical_to_raster(np.arange(6).reshape(2, 3))[0, 2] is not None
    r, c = s2.file_to_canonical(0, 0)
    assert s2.frame.canonical_to_raster(s2.grid)[0, 2] == s2.grid[r, c]


def test_same_wafer_in_two_formats_lands_the_same(tmp_path):
    """One wafer, written by hand as G85 (notch up) and as KLARF (notch up, y upward)."""
    g = tmp_path / "w.xml"
    d = {"bintype": "ASCII", "null": ".", "c1": "A", "c2": "X", "r1": ".AX", "r2": "AXA"}
    g.write_text(G85_0703.format(rows=2, orient=180, n1=3, **d))
    k = tmp_path / "w.klarf"
    k.write_text(
        'FileVersion 1 2;\nLotID "LOTA";\nOrientationMarkLocation UP;\nWaferID "W07";\n'
        "SampleTestPlan 5\n 1 1 2 1 0 0 1 0 2 0;\n"
        "DefectRecordSpec 3 DEFECTID XINDEX YINDEX;\nDefectList\n 1 2 1\n 2 1 0;\nEndOfFile;\n"
    )
    (gm,) = formats.read(g)
    (km,) = formats.read(k)
    assert np.array_equal(gm.grid, km.grid)


def _random_map(grid, notch):
    return WaferMap(
        grid=grid,
        lot="LOT-9",
        wafer_id="7",
        slot=3,
        product="DEV",
        die_pitch_um=(5000.0, 4000.0),
        diameter_mm=200.0,
        frame=CoordFrame(notch, 0, 0, 1, 1),
    )


grids = arrays(
    np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 2)
)
notches = st.sampled_from(["down", "left", "up", "right"])


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("g85", ".xml"), ("e142", ".xml"), ("sinf", ".sinf"), ("tsk", ".tsk"), ("stdf", ".stdf")],
)
@given(grid=grids, notch=notches)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_writers_round_trip(tmp_path, fmt, suffix, grid, notch):
    if not (grid > 0).any():
        grid = grid.copy()
        grid[0, 0] = 1
    m = _random_map(grid, notch)
    p = tmp_path / f"w{suffix}"
    formats.write([m], p, fmt)
    (back,) = formats.get(fmt).read(p)
    if fmt == "stdf":  # STDF keeps only the dies, so compare the die-bearing extent
        rs, cs = np.nonzero(m.grid)
        crop = m.grid[rs.min() : rs.max() + 1, cs.min() : cs.max() + 1]
        assert np.array_equal(back.grid, crop)
    else:
        assert back.same_dies(m)
        assert back.frame.notch == notch
    assert (back.lot, back.wafer_id) == ("LOT-9", "7")
    if fmt != "stdf":
        bins, _ = default_bins(m)
        assert np.array_equal(back.bins, bins)
    if fmt in ("g85", "e142", "sinf", "tsk"):
        assert back.frame == m.frame
    if fmt in ("g85", "e142"):
        assert back.bin_table == default_bins(m)[1]


@pytest.mark.parametrize(("fmt", "suffix"), [("g85", ".xml"), ("e142", ".xml")])
def test_g85_e142_read_write_is_identity(tmp_path, fmt, suffix):
    m = generate_wafer(3, 1).wafer
    p = tmp_path / f"a{suffix}"
    formats.write([m], p, fmt)
    (once,) = formats.read(p)
    q = tmp_path / f"b{suffix}"
    formats.write([once], q, fmt)
    (twice,) = formats.read(q)
    assert once == twice
    assert once.same_dies(m)


@pytest.mark.parametrize("fmt", ["g85", "e142"])
def test_inked_maps_carry_the_class_per_die(tmp_path, fmt):
    sw = generate_wafer(5, 2, mixed=0.5)
    inked = ink(sw.wafer, sw.mask)
    p = tmp_path / "inked.xml"
    formats.write([inked], p, fmt)
    (back,) = formats.read(p)
    assert np.array_equal(mask_from_inked(back), sw.mask)
    assert back.same_dies(sw.wafer)
    assert "Scratch (fail die)" in {d.description for d in back.bin_table.values()}


def test_stdf_retest_counts_the_last_result_and_bins(tmp_path):
    m = generate_wafer(2, 4).wafer
    p = tmp_path / "t.stdf"
    p.write_bytes(encode_stdf([m], tests_per_die=2, retest=True))
    (back,) = formats.read(p)
    assert back.source_format == "stdf"
    assert back.dies == m.dies and back.fail_dies == m.fail_dies
    assert back.bin_table[1].passed and not back.bin_table[2].passed


def test_stdf_truncated(tmp_path):
    data = encode_stdf([generate_wafer(2, 4).wafer])
    p = tmp_path / "t.stdf"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(WaferFileError, match="truncated|shorter") as err:
        formats.read(p)
    assert err.value.offset is not None


def test_sinf_reads_a_hand_written_file(tmp_path):
    p = tmp_path / "a.sinf"
    p.write_text(
        "DEVICE:DEV\nLOT:L1\nWAFER:05\nFNLOC:180\nROWCT:2\nCOLCT:3\nBCEQU:01\n"
        "RowData:__ 01 0A\nRowData:01 0A 01\n"
    )
    (m,) = formats.read(p)
    assert m.grid.tolist() == EXPECTED and m.wafer_id == "05" and m.frame.notch == "down"
    p.write_text("LOT:L1\nROWCT:3\nRowData:__ 01 0A\n")
    with pytest.raises(WaferFileError, match="ROWCT is 3 but the RowData has 1"):
        formats.read(p)


def test_tsk_truncated(tmp_path):
    p = tmp_path / "x.tsk"
    formats.write([generate_wafer(1, 1).wafer], p, "tsk")
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    with pytest.raises(WaferFileError, match="needs .* bytes"):
        formats.read(p)


SAMPLES = {}


def _sample(fmt):
    if fmt not in SAMPLES:
        import tempfile
        from pathlib import Path

        d = Path(tempfile.mkdtemp())
        m = ink(generate_wafer(9, 3).wafer, generate_wafer(9, 3).mask)
        p = d / f"s.{fmt}"
        formats.write([m], p, fmt)
        SAMPLES[fmt] = p.read_bytes()
    return SAMPLES[fmt]


@pytest.mark.parametrize("fmt", ["g85", "e142", "sinf", "tsk", "stdf"])
@given(pos=st.integers(0, 10**9), chunk=st.binary(min_size=1, max_size=6), cut=st.booleans())
@settings(
    max_examples=examples(80),
    deadline=3000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_mutated_files_raise_only_wafer_file_error(tmp_path, fmt, pos, chunk, cut):
    data = bytearray(_sample(fmt))
    at = pos % len(data)
    if cut:
        data = data[:at]
    else:
        data[at : at + len(chunk)] = chunk
    p = tmp_path / f"m.{fmt}"
    p.write_bytes(bytes(data))
    with contextlib.suppress(WaferFileError):
        formats.get(fmt).read(p)


@given(st.binary(max_size=400))
@settings(
    max_examples=examples(150),
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_random_bytes_in_every_reader(tmp_path, data):
    p = tmp_path / "r.tsk"
    p.write_bytes(data)
    for f in formats.all_formats():
        with contextlib.suppress(WaferFileError):
            f.read(p)


def test_read_many_groups_by_lot_and_reports_bad_files(tmp_path):
    a = generate_wafer(1, 0).wafer
    b = generate_wafer(1, 30).wafer  # index 30 is in the next synthetic lot
    formats.write([a], tmp_path / "a.xml", "g85")
    formats.write([b], tmp_path / "b.sinf", "sinf")
    (tmp_path / "c.xml").write_text("<Maps><Map>")
    res = formats.read_many([tmp_path])
    assert sorted(res.lots) == sorted({a.lot, b.lot})
    assert len(res.errors) == 1 and "c.xml" in str(res.errors[0])
    assert len(res.files) == 2
