import contextlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from waferseg_core.classes import PRIORITY
from waferseg_core.coco import (
    Annotation,
    CocoWafer,
    annotations_from_mask,
    dump,
    load,
    mask_from_annotations,
    to_coco,
)
from waferseg_core.errors import WaferFileError
from waferseg_core.formats.png import png_bytes
from waferseg_core.geometry import geometry_from_mask, polygon_from_rings
from waferseg_core.synth import write_dataset
from waferseg_core.wafer import WaferMap


def _pycoco_mask(coco, img_id, shape):
    m = np.zeros(shape, np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
    for a in sorted(anns, key=lambda a: -PRIORITY.index(a["category_id"])):
        m[coco.annToMask(a).astype(bool)] = a["category_id"]
    return m


def test_synth_set_loads_in_pycocotools_and_back_exactly(tmp_path):
    summary = write_dataset(tmp_path, 60, 4, mixed=0.3)
    assert summary["wafers"] == 60
    coco = COCO(str(tmp_path / "annotations.json"))
    assert coco.loadCats(coco.getCatIds())[0]["name"] == "Center"
    wafers = load(tmp_path / "annotations.json")
    from waferseg_core.synth import generate

    for img_id, (cw, sw) in enumerate(
        zip(wafers, generate(60, 4, mixed=0.3), strict=True), start=1
    ):
        assert np.array_equal(cw.wafer.grid, sw.wafer.grid)
        assert np.array_equal(mask_from_annotations(cw.annotations, cw.wafer), sw.mask)
        assert np.array_equal(_pycoco_mask(coco, img_id, sw.mask.shape), sw.mask)
        assert cw.attributes["synth_index"] == img_id - 1
        assert all(a.annotator == "synth" and a.source == "manual" for a in cw.annotations)


def test_same_seed_gives_byte_identical_files(tmp_path):
    write_dataset(tmp_path / "a", 20, 8, mixed=0.2)
    write_dataset(tmp_path / "b", 20, 8, mixed=0.2)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_holes_go_out_as_rle_with_provenance(tmp_path):
    grid = np.ones((7, 7), np.uint8)
    wafer = WaferMap(grid=grid, lot="L1", wafer_id="3", source_format="png")
    ring = polygon_from_rings([(1, 1), (6, 1), (6, 6), (1, 6)], [[(3, 3), (4, 3), (4, 4), (3, 4)]])
    ann = Annotation(2, ring, annotator="ann", source="model", model_version="m-1")
    (tmp_path / "w.png").write_bytes(png_bytes(wafer))
    data = to_coco([CocoWafer(wafer, "w.png", [ann])])
    seg = data["annotations"][0]["segmentation"]
    assert isinstance(seg, dict) and "counts" in seg
    assert data["annotations"][0]["attributes"]["model_version"] == "m-1"
    assert data["images"][0]["lot"] == "L1" and data["images"][0]["source_format"] == "png"
    dump(data, tmp_path / "c.json")
    back = load(tmp_path / "c.json")[0]
    assert back.wafer.lot == "L1" and back.wafer.wafer_id == "3"
    m = mask_from_annotations(back.annotations, back.wafer)
    assert m.sum() == 2 * 24 and m[3, 3] == 0
    assert back.annotations[0].source == "model"


def test_annotations_from_mask_one_per_class():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, :4] = 8
    mask[3:, 3:] = 5
    anns = annotations_from_mask(mask, annotator="a")
    assert [a.class_id for a in anns] == [5, 8]
    assert anns[1].geometry.equals(geometry_from_mask(mask == 8))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "invalid JSON"),
        ("[]", "'images' list"),
        ('{"images": [{"id": 1}]}', "id and file_name"),
        ('{"images": [{"id": 1, "file_name": "missing.png"}]}', "no such file"),
        ('{"images": [], "categories": [{"id": 1, "name": "Blob"}]}', "expected categories named"),
    ],
)
def test_bad_coco_files_raise_one_clear_error(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(WaferFileError, match=message):
        load(p)


def _dataset_with(tmp_path, ann):
    wafer = WaferMap(grid=np.ones((4, 4), np.uint8))
    (tmp_path / "w.png").write_bytes(png_bytes(wafer))
    data = {
        "images": [{"id": 1, "file_name": "w.png", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "Center"}],
        "annotations": [ann],
    }
    p = tmp_path / "a.json"
    p.write_text(json.dumps(data))
    return p


def test_bad_annotations_name_the_annotation(tmp_path):
    with pytest.raises(WaferFileError, match=r"annotation 7: .*even number"):
        load(
            _dataset_with(
                tmp_path, {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1]]}
            )
        )
    with pytest.raises(WaferFileError, match="annotation 8: RLE size"):
        rle = {"size": [2, 2], "counts": [4]}
        load(
            _dataset_with(tmp_path, {"id": 8, "image_id": 1, "category_id": 1, "segmentation": rle})
        )
    with pytest.raises(WaferFileError, match="refers to no image"):
        load(
            _dataset_with(tmp_path, {"id": 9, "image_id": 5, "category_id": 1, "segmentation": []})
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(st.sampled_from(["images", "annotations", "categories", "info"]), json_values)
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_garbage_coco_raises_only_wafer_file_error(tmp_path, data):
    p = tmp_path / "g.json"
    p.write_text(json.dumps(data))
    with contextlib.suppress(WaferFileError):
        load(p)
