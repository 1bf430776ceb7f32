import pytest

from waferseg_core import classes
from waferseg_core.errors import InvalidInputError


def test_ids_names_and_keys_follow_design():
    names = [c.name for c in classes.CLASSES]
    assert names == [
        "background",
        "Center",
        "Donut",
        "Edge-Loc",
        "Edge-Ring",
        "Loc",
        "Near-full",
        "Random",
        "Scratch",
    ]
    assert [c.id for c in classes.CLASSES] == list(range(9))
    assert [c.key for c in classes.PATTERN_CLASSES] == [str(i) for i in range(1, 9)]
    assert classes.WAFER_LABELS[-1] == "none" and len(classes.WAFER_LABELS) == 9


def test_colours_are_distinct_hex():
    colours = [c.color for c in classes.CLASSES]
    assert len(set(colours)) == len(colours)
    assert classes.by_id(4).rgb == (0x3C, 0xB4, 0x4B)


def test_lookup_by_name_key_and_errors():
    assert classes.by_name("edge-ring").id == 4
    assert classes.by_key("8").name == "Scratch"
    assert classes.by_key("9") is None
    with pytest.raises(InvalidInputError, match="expected one of Center"):
        classes.by_name("Ring")
    with pytest.raises(InvalidInputError, match="found 9"):
        classes.by_id(9)


def test_priority_orders_every_pattern_once():
    assert sorted(classes.PRIORITY) == list(range(1, 9))
