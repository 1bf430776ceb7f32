import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask
from shapely.geometry import Polygon

from waferseg_core import geometry as g
from waferseg_core.errors import GeometryError

masks = arrays(np.bool_, st.tuples(st.integers(1, 14), st.integers(1, 14)))


@given(masks)
@settings(max_examples=150, deadline=None)
def test_mask_polygon_mask_is_exact(mask):
    geom = g.geometry_from_mask(mask)
    assert np.array_equal(g.mask_from_geometry(geom, mask.shape), mask)
    if mask.any():
        assert geom.is_valid
        assert geom.area == pytest.approx(mask.sum())


@given(masks)
@settings(max_examples=100, deadline=None)
def test_rle_round_trip(mask):
    assert np.array_equal(g.rle_to_mask(g.mask_to_rle(mask)), mask)


@given(masks)
@settings(max_examples=100, deadline=None)
def test_geojson_round_trip(mask):
    if not mask.any():
        return
    geom = g.geometry_from_mask(mask)
    back = g.from_geojson(g.to_geojson(geom))
    assert np.array_equal(g.mask_from_geometry(back, mask.shape), mask)


@given(masks)
@settings(max_examples=100, deadline=None)
def test_coco_polygons_decode_to_the_same_dies_with_pycocotools(mask):
    geom = g.geometry_from_mask(mask)
    if not mask.any() or g.has_holes(geom):
        return
    h, w = mask.shape
    rle = coco_mask.merge(coco_mask.frPyObjects(g.coco_polygons(geom), h, w))
    assert np.array_equal(coco_mask.decode(rle).astype(bool), mask)
    back = g.geometry_from_coco_polygons(g.coco_polygons(geom))
    assert np.array_equal(g.mask_from_geometry(back, mask.shape), mask)


def test_ring_keeps_its_hole():
    mask = np.ones((5, 5), bool)
    mask[2, 2] = False
    geom = g.geometry_from_mask(mask)
    assert g.has_holes(geom)
    assert geom.area == 24


def test_centre_rule_for_a_drawn_polygon():
    # A triangle covering the centres of dies (0,0), (1,0), (1,1) but not (0,1).
    tri = g.polygon_from_rings([(0, 0), (2, 2), (0, 2)])
    mask = g.mask_from_geometry(tri, (2, 2))
    # The diagonal passes through centres (0.5, 0.5) and (1.5, 1.5): on the outline counts inside.
    assert mask.tolist() == [[True, False], [True, True]]


def test_polygon_with_hole_from_rings():
    poly = g.polygon_from_rings(
        [(0, 0), (6, 0), (6, 6), (0, 6)], [[(2, 2), (4, 2), (4, 4), (2, 4)]]
    )
    mask = g.mask_from_geometry(poly, (6, 6))
    assert mask.sum() == 32 and not mask[2:4, 2:4].any()


def test_self_intersection_is_rejected_with_its_location():
    bowtie = [(0, 0), (4, 4), (4, 0), (0, 4)]
    with pytest.raises(GeometryError, match=r"self-intersection at x=2, y=2"):
        g.polygon_from_rings(bowtie)
    fixed = g.polygon_from_rings(bowtie, repair=True)
    assert fixed.is_valid and fixed.area == pytest.approx(8)


def test_too_few_vertices_and_bad_geojson():
    with pytest.raises(GeometryError, match="at least 3 vertices, found 2"):
        g.polygon_from_rings([(0, 0), (1, 1)])
    with pytest.raises(GeometryError, match="GeoJSON"):
        g.from_geojson({"type": "Nope"})
    with pytest.raises(GeometryError, match="Polygon or MultiPolygon"):
        g.validate_region(Polygon([(0, 0), (1, 0), (1, 1)]).exterior)


def test_malformed_rle_and_coco_polygons():
    with pytest.raises(GeometryError, match="sum to 3"):
        g.rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(GeometryError, match="malformed COCO RLE"):
        g.rle_to_mask({"counts": "abc"})
    with pytest.raises(GeometryError, match="an even number"):
        g.geometry_from_coco_polygons([[0, 0, 1]])


def test_display_simplification_keeps_a_valid_region():
    mask = np.zeros((40, 40), bool)
    yy, xx = np.mgrid[0:40, 0:40]
    mask[(yy - 20) ** 2 + (xx - 20) ** 2 < 150] = True
    geom = g.geometry_from_mask(mask)
    light = g.simplify_for_display(geom, 0.8)
    assert light.is_valid
    assert len(light.exterior.coords) < len(geom.exterior.coords)
