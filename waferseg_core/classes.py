"""The defect classes: ids, names, colours, keys, and the overlap priority.

Class ids follow DESIGN.md: 0 background, 1 Center ... 8 Scratch; keys 1-8 pick them.
"""

from __future__ import annotations

from dataclasses import dataclass

from waferseg_core.errors import InvalidInputError


@dataclass(frozen=True)
class DefectClass:
    """One class of the segmentation mask.

    Attributes:
        id: Value in a mask (0-8).
        name: WM-811K name, e.g. ``Edge-Ring``.
        color: ``#rrggbb`` used by overlays and PNG renderings.
        key: Keyboard key that selects it in the editor (empty for background).
    """

    id: int
    name: str
    color: str
    key: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) tuple of 0-255 ints."""
        return int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16)


BACKGROUND = 0
NONE_PATTERN = "none"

CLASSES: tuple[DefectClass, ...] = (
    DefectClass(0, "background", "#000000", ""),
    DefectClass(1, "Center", "#e6194b", "1"),
    DefectClass(2, "Donut", "#f58231", "2"),
    DefectClass(3, "Edge-Loc", "#ffe119", "3"),
    DefectClass(4, "Edge-Ring", "#3cb44b", "4"),
    DefectClass(5, "Loc", "#42d4f4", "5"),
    DefectClass(6, "Near-full", "#4363d8", "6"),
    DefectClass(7, "Random", "#911eb4", "7"),
    DefectClass(8, "Scratch", "#f032e6", "8"),
)
NUM_CLASSES = len(CLASSES)
PATTERN_CLASSES: tuple[DefectClass, ...] = CLASSES[1:]
# The nine wafer-level labels: the eight patterns and "none" (WM-811K's label set).
WAFER_LABELS: tuple[str, ...] = (*(c.name for c in PATTERN_CLASSES), NONE_PATTERN)

# Where regions overlap in one mask, the class earlier in this tuple wins: thin and local
# patterns are drawn over the wafer-wide ones they sit on, so a scratch through a random
# wafer stays a scratch.
PRIORITY: tuple[int, ...] = (8, 5, 3, 1, 2, 4, 6, 7)

_BY_NAME = {c.name.lower(): c for c in CLASSES}


def by_name(name: str) -> DefectClass:
    """Look a class up by name, ignoring case.

    Raises:
        InvalidInputError: When the name is unknown; the message lists the valid names.
    """
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        valid = ", ".join(c.name for c in PATTERN_CLASSES)
        raise InvalidInputError(f"unknown defect class {name!r}; expected one of {valid}") from None


def by_id(class_id: int) -> DefectClass:
    """Look a class up by id.

    Raises:
        InvalidInputError: When the id is outside 0-8.
    """
    if not 0 <= class_id < NUM_CLASSES:
        raise InvalidInputError(f"class id must be 0-{NUM_CLASSES - 1}, found {class_id}")
    return CLASSES[class_id]


def by_key(key: str) -> DefectClass | None:
    """The pattern class a key selects, or None for any other key."""
    for c in PATTERN_CLASSES:
        if c.key == key:
            return c
    return None
