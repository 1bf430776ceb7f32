import json
import subprocess
import sys

import numpy as np
import pytest

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.cli import main
from waferseg_core.coco import load, mask_from_annotations
from waferseg_core.formats.png import png_bytes
from waferseg_core.synth import generate, generate_wafer


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_contract_500_wafers(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "synth", "--count", "500", "--seed", "1", "--out", str(tmp_path / "s")
    )
    assert code == 0 and not err
    summary = json.loads(out)
    assert summary["wafers"] == 500
    for label in WAFER_LABELS:
        assert summary[label] > 20, label
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "s" / "annotations.json"))
    assert len(coco.imgs) == 500 and {a["category_id"] for a in coco.anns.values()} == set(
        range(1, 9)
    )
    # mask -> polygon/RLE -> mask is exact on every wafer (our reader against the generator).
    for cw, sw in zip(load(tmp_path / "s" / "annotations.json"), generate(500, 1), strict=True):
        assert np.array_equal(mask_from_annotations(cw.annotations, cw.wafer), sw.mask)
    # The same seed gives byte-identical files.
    run_cli(capsys, "synth", "--count", "500", "--seed", "1", "--out", str(tmp_path / "t"))
    for f in sorted((tmp_path / "s").iterdir()):
        assert f.read_bytes() == (tmp_path / "t" / f.name).read_bytes(), f.name


def test_info_prints_one_line_per_wafer(tmp_path, capsys):
    for i in range(2):
        (tmp_path / f"w{i}.png").write_bytes(png_bytes(generate_wafer(1, i).wafer))
    code, out, _ = run_cli(capsys, "info", str(tmp_path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 2
    w = generate_wafer(1, 0).wafer
    assert rows[0] == {
        "file": str(tmp_path / "w0.png"),
        "format": "png",
        "lot": w.lot,
        "wafer": w.wafer_id,
        "rows": w.rows,
        "cols": w.cols,
        "dies": w.dies,
        "pass_dies": w.pass_dies,
        "fail_dies": w.fail_dies,
    }


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["info", "/no/such/file.png"], "no such file"),
        (["synth", "--count", "x", "--seed", "1", "--out", "o"], "invalid int value"),
        (["synth", "--count", "0", "--seed", "1", "--out", "o"], "at least 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err


def test_info_prints_nothing_when_one_file_is_bad(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(png_bytes(generate_wafer(1, 0).wafer))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    code, out, err = run_cli(capsys, "info", str(tmp_path))
    assert code == 2 and out == "" and "b.png" in err


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "waferseg_core.cli", "info", str(tmp_path / "none.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
