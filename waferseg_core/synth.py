"""Synthetic wafer maps with exact die-level masks: the default model's training data.

Each wafer is laid out like a real one (round, edge exclusion, notch or flat, non-square die
pitch, 20-300 dies across) with a background of random fail dies (clustered, more at the
edge), and carries zero to four defect patterns. A pattern is a *region* (what an annotator
would outline: every die inside, pass or fail) and a *density* of fail dies inside it that
falls off from the pattern's core. The mask holds the region's class; background fails stay
background. Everything is drawn from ``numpy.random.default_rng([seed, index])``, so a wafer
depends only on the seed and its index.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import NONE_PATTERN, PRIORITY, by_name
from waferseg_core.errors import InvalidInputError
from waferseg_core.patterns import MIN_DIES, MIN_FRACTION, patterns_from_mask
from waferseg_core.wafer import WaferMap

FloatArr = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

SINGLE_LABELS: tuple[str, ...] = (
    "Center",
    "Donut",
    "Edge-Loc",
    "Edge-Ring",
    "Loc",
    "Near-full",
    "Random",
    "Scratch",
    NONE_PATTERN,
)
# Mixed-type wafers combine local patterns only, as in MixedWM38: Random and Near-full cover
# the wafer, and Center+Donut or Edge-Loc+Edge-Ring would describe one region twice.
MIXABLE: tuple[str, ...] = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Scratch")
_EXCLUSIVE = ({"Center", "Donut"}, {"Edge-Loc", "Edge-Ring"})


@dataclass(frozen=True)
class SynthWafer:
    """A synthetic wafer and its truth.

    Attributes:
        wafer: The die grid and identity.
        mask: Class id per die (``uint8``, same shape; 0 off the wafer and for background).
        patterns: The patterns on the wafer, sorted by name (empty for ``none``).
    """

    wafer: WaferMap
    mask: npt.NDArray[np.uint8]
    patterns: tuple[str, ...]


@dataclass
class _Canvas:
    """Per-die coordinates of one wafer layout, shared by the pattern painters."""

    on: BoolArr
    x: FloatArr  # physical position, wafer radius = 1, x to the right
    y: FloatArr  # physical position, y downward (notch at +1)
    rho: FloatArr  # radius / usable radius
    theta: FloatArr
    die_w: float  # die width in the same units
    die_h: float
    rng: np.random.Generator

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.on.shape[0]), int(self.on.shape[1])

    @property
    def die(self) -> float:
        """The larger die side: the scale of a one-die-wide feature."""
        return max(self.die_w, self.die_h)

    def smooth_noise(self, scale: float) -> FloatArr:
        """Zero-mean, unit-std noise smoothed over ``scale`` (wafer radii)."""
        noise = self.rng.standard_normal(self.shape)
        sigma = max(0.6, scale / self.die)
        z = gaussian_blur(noise, sigma)
        std = float(z.std())
        return (z - z.mean()) / std if std > 0 else z


def gaussian_blur(z: FloatArr, sigma: float) -> FloatArr:
    """Separable Gaussian blur with mirrored borders (``fedcba|abcdef``).

    The same kernel size and border rule as OpenCV's ``GaussianBlur`` on float64 (it agrees to
    ~1e-16), written in numpy so that the app and its bundle need no OpenCV.
    """
    ksize = round(sigma * 8 + 1) | 1
    x = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    k /= k.sum()
    r = (ksize - 1) // 2
    p = np.pad(z, ((0, 0), (r, r)), mode="symmetric")
    rows = np.zeros_like(z)
    for i in range(ksize):
        rows += k[i] * p[:, i : i + z.shape[1]]
    p = np.pad(rows, ((r, r), (0, 0)), mode="symmetric")
    out = np.zeros_like(z)
    for i in range(ksize):
        out += k[i] * p[i : i + z.shape[0], :]
    return out


def _layout(rng: np.random.Generator) -> tuple[_Canvas, dict[str, object]]:
    """Draw a wafer layout: grid size, pitch, edge exclusion, notch or flat."""
    u = rng.random()
    cols = int(
        rng.integers(22, 61)
        if u < 0.8
        else rng.integers(61, 151)
        if u < 0.95
        else rng.integers(151, 301)
    )
    aspect = float(rng.uniform(0.87, 1.15))  # die pitch y / x
    rows = int(np.clip(round(cols / aspect), 20, 300))
    edge_excl = float(rng.uniform(0.0, 0.03))
    dx, dy = (float(v) for v in rng.choice([0.0, 0.5], size=2))
    # One extra column/row each side so the half-die shift never pushes dies off the grid.
    gc, gr = cols + 2, rows + 2
    die_w, die_h = 2.0 / cols, 2.0 / rows
    cc, rr = np.meshgrid(np.arange(gc, dtype=float), np.arange(gr, dtype=float))
    x = (cc + 0.5 - gc / 2 + dx) * die_w
    y = (rr + 0.5 - gr / 2 + dy) * die_h
    usable = 1.0 - edge_excl
    if rng.random() < 0.7:  # full dies only: the farthest corner inside the usable radius
        far = np.hypot(np.abs(x) + die_w / 2, np.abs(y) + die_h / 2)
    else:  # partial dies kept while their centre is inside
        far = np.hypot(x, y)
    on = far <= usable
    mark = rng.random()
    if mark < 0.6:
        notch_r = float(rng.uniform(0.03, 0.07))
        on &= np.hypot(x, y - usable) > notch_r
        orientation = "notch"
    elif mark < 0.8:
        on &= y < usable - float(rng.uniform(0.02, 0.06))
        orientation = "flat"
    else:
        orientation = "none"
    rs, cs = np.nonzero(on)
    sl = (slice(rs.min(), rs.max() + 1), slice(cs.min(), cs.max() + 1))
    x, y, on = x[sl], y[sl], on[sl]
    rho = np.hypot(x, y) / usable
    canvas = _Canvas(on, x, y, rho, np.arctan2(y, x), die_w, die_h, rng)
    diameter = float(rng.choice([150.0, 200.0, 300.0]))
    meta = {
        "diameter_mm": diameter,
        "pitch": (round(diameter * 1000 / cols, 1), round(diameter * 1000 / rows, 1)),
        "edge_exclusion": round(edge_excl, 4),
        "orientation_mark": orientation,
    }
    return canvas, meta


def _background(cv: _Canvas) -> FloatArr:
    """Fail probability of the random background: clustered, higher at the edge."""
    rng = cv.rng
    base = float(np.clip(rng.lognormal(np.log(0.033), 0.55), 0.004, 0.2))
    field = np.exp(0.45 * cv.smooth_noise(float(rng.uniform(0.15, 0.5))))
    p = base * field
    # Edge dies fail more on most real wafers (handling, edge bead, probe): a thin outer band.
    edge_rate = float(rng.choice([0.0, rng.uniform(0.05, 0.4)], p=[0.2, 0.8]))
    band = np.exp(-(1.0 - cv.rho) / (1.2 * cv.die))
    p = p + edge_rate * band * np.exp(0.5 * cv.smooth_noise(0.3))
    return np.clip(p, 0.0, 0.6)


def _clumps(cv: _Canvas, p_fail: FloatArr) -> BoolArr:
    """Background fails that come as short runs of 2-3 dies, as on real probe maps."""
    rng = cv.rng
    seeds = rng.random(cv.shape) < 0.25 * p_fail
    out = seeds.copy()
    for _ in range(2):
        dr, dc = (int(v) for v in rng.integers(-1, 2, size=2))
        grow = np.roll(np.roll(seeds, dr, axis=0), dc, axis=1) & (rng.random(cv.shape) < 0.7)
        out |= grow
    return out & cv.on


def _falloff(t: FloatArr, core: float, rim: float, gamma: float) -> FloatArr:
    """Density from ``core`` at t=0 to ``rim`` at t=1 (t clipped), shaped by ``gamma``."""
    tc = np.clip(t, 0.0, 1.0)
    return core + (rim - core) * tc**gamma


def _wobble(cv: _Canvas, theta: FloatArr, amount: float) -> FloatArr:
    """A smooth random radius multiplier around 1 over angle (irregular outlines)."""
    out = np.ones_like(theta)
    for k in range(2, 6):
        out += amount / k**0.5 * cv.rng.uniform(-1, 1) * np.cos(k * theta + cv.rng.uniform(0, 6.3))
    return out


def _core_rim(cv: _Canvas) -> tuple[float, float, float]:
    rng = cv.rng
    return float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.2, 0.45)), float(rng.uniform(1, 3))


def _center(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    rng = cv.rng
    cx, cy = rng.normal(0, 0.05, size=2)
    r0 = max(float(rng.uniform(0.08, 0.3)), 1.6 * cv.die)
    d = np.hypot(cv.x - cx, cv.y - cy)
    t = d / (r0 * _wobble(cv, np.arctan2(cv.y - cy, cv.x - cx), 0.15))
    core, rim, g = _core_rim(cv)
    return t <= 1.0, _falloff(t, core, rim, g)


def _donut(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    rng = cv.rng
    cx, cy = rng.normal(0, 0.04, size=2)
    r_in = float(rng.uniform(0.12, 0.42))
    width = max(float(rng.uniform(0.12, 0.3)), 2.2 * cv.die)
    ang = np.arctan2(cv.y - cy, cv.x - cx)
    d = np.hypot(cv.x - cx, cv.y - cy) / _wobble(cv, ang, 0.08)
    mid = r_in + width / 2
    t = np.abs(d - mid) / (width / 2)
    region = t <= 1.0
    if rng.random() < 0.35:  # an open donut: one gap in the ring
        gap_at, gap = rng.uniform(-np.pi, np.pi), rng.uniform(0.4, 1.6)
        region &= np.abs(np.angle(np.exp(1j * (ang - gap_at)))) > gap / 2
    core, rim, g = _core_rim(cv)
    return region, _falloff(t, core, rim, g)


def _edge_ring(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    rng = cv.rng
    width = max(float(rng.uniform(0.04, 0.16)), 1.05 * cv.die)
    w = width * np.clip(_wobble(cv, cv.theta, 0.25), 0.6, 1.5)
    t = (1.0 - cv.rho) / w
    region = t <= 1.0
    if rng.random() < 0.45:  # broken ring: a few arcs missing
        for _ in range(int(rng.integers(1, 4))):
            at, gap = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 0.9)
            region &= np.abs(np.angle(np.exp(1j * (cv.theta - at)))) > gap / 2
    core = float(rng.uniform(0.6, 0.98))
    return region, _falloff(t, core, float(rng.uniform(0.25, 0.5)), float(rng.uniform(1, 2.5)))


def _edge_loc(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    rng = cv.rng
    at = rng.uniform(-np.pi, np.pi)
    half = float(rng.uniform(0.17, 0.9))
    depth = max(float(rng.uniform(0.08, 0.3)), 1.5 * cv.die)
    dth = np.abs(np.angle(np.exp(1j * (cv.theta - at)))) / half
    t = np.sqrt(((1.0 - cv.rho) / depth) ** 2 + dth**2) / _wobble(cv, cv.theta * 3, 0.1)
    core = float(rng.uniform(0.65, 0.98))
    return t <= 1.0, _falloff(t, core, float(rng.uniform(0.25, 0.5)), float(rng.uniform(1, 3)))


def _loc(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    rng = cv.rng
    r_at, a_at = rng.uniform(0.2, 0.72), rng.uniform(-np.pi, np.pi)
    cx, cy = r_at * np.cos(a_at), r_at * np.sin(a_at)
    size = max(float(rng.uniform(0.07, 0.22)), 1.5 * cv.die)
    stretch, turn = float(rng.uniform(1.0, 2.5)), rng.uniform(0, np.pi)
    u = (cv.x - cx) * np.cos(turn) + (cv.y - cy) * np.sin(turn)
    v = -(cv.x - cx) * np.sin(turn) + (cv.y - cy) * np.cos(turn)
    t = np.hypot(u / stretch, v) / (size * _wobble(cv, np.arctan2(v, u), 0.18))
    core, rim, g = _core_rim(cv)
    return t <= 1.0, _falloff(t, core, rim, g)


def _near_full(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    level = float(cv.rng.uniform(0.7, 0.97))
    density = np.clip(level + 0.08 * cv.smooth_noise(0.4), 0.4, 1.0)
    return cv.on.copy(), density


def _random(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    level = float(cv.rng.uniform(0.18, 0.5))
    density = np.clip(level * np.exp(0.3 * cv.smooth_noise(0.5)), 0.08, 0.8)
    return cv.on.copy(), density


def _scratch(cv: _Canvas) -> tuple[BoolArr, FloatArr]:
    """A curved, possibly kinked, possibly broken line of fail dies one or more dies wide."""
    rng = cv.rng
    pts = [rng.uniform(-0.6, 0.6, size=2)]
    heading = rng.uniform(-np.pi, np.pi)
    length = float(rng.uniform(0.4, 1.5))
    segments = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
    bend = rng.normal(0, 0.6)
    for s in range(segments):
        if s:
            heading += rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)  # a kink
        seg_len = length / segments
        for _ in range(12):  # each segment a gentle arc
            heading += bend / 12 * seg_len
            step = seg_len / 12
            pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    path = np.array(pts)
    # Width in dies: one die on small maps, a few on dense ones.
    cols = cv.shape[1]
    width_dies = max(1.0, cols / 60 * float(rng.uniform(0.7, 1.3)))
    half = width_dies * cv.die / 2 + 0.25 * cv.die
    d, along = _distance_to_path(cv.x, cv.y, path)
    t = d / half
    region = t <= 1.0
    density = _falloff(t, float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.5, 0.8)), 2.0)
    if rng.random() < 0.3:  # broken scratch: stretches along the path where fewer dies fail
        gaps = np.sin(along / length * rng.uniform(6, 18) + rng.uniform(0, 6.3)) > 0.6
        density = np.where(gaps, density * 0.25, density)
    return region, density


def _distance_to_path(x: FloatArr, y: FloatArr, path: FloatArr) -> tuple[FloatArr, FloatArr]:
    """Distance from each point to a polyline, and the arc length of the nearest point."""
    best = np.full(x.shape, np.inf)
    along = np.zeros(x.shape)
    run = 0.0
    for a, b in itertools.pairwise(path):
        ab = b - a
        seg = float(np.hypot(*ab))
        if seg == 0:
            continue
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / seg**2, 0.0, 1.0)
        d = np.hypot(x - (a[0] + t * ab[0]), y - (a[1] + t * ab[1]))
        closer = d < best
        best = np.where(closer, d, best)
        along = np.where(closer, run + t * seg, along)
        run += seg
    return best, along


_PAINTERS: dict[str, Callable[[_Canvas], tuple[BoolArr, FloatArr]]] = {
    "Center": _center,
    "Donut": _donut,
    "Edge-Loc": _edge_loc,
    "Edge-Ring": _edge_ring,
    "Loc": _loc,
    "Near-full": _near_full,
    "Random": _random,
    "Scratch": _scratch,
}


def _choose_patterns(rng: np.random.Generator, mixed: float) -> tuple[str, ...]:
    if rng.random() < mixed:
        k = int(rng.choice([2, 3, 4], p=[0.6, 0.3, 0.1]))
        while True:
            pick = {str(p) for p in rng.choice(MIXABLE, size=k, replace=False)}
            if not any(ex <= pick for ex in _EXCLUSIVE):
                return tuple(sorted(pick))
    label = str(rng.choice(SINGLE_LABELS))
    return () if label == NONE_PATTERN else (label,)


def generate_wafer(seed: int, index: int, *, mixed: float = 0.0) -> SynthWafer:
    """One synthetic wafer, a pure function of (seed, index, mixed).

    Args:
        seed: Seed of the set.
        index: Position in the set.
        mixed: Probability that the wafer carries 2-4 patterns instead of one or none.
    """
    if not 0.0 <= mixed <= 1.0:
        raise InvalidInputError(f"mixed must be a probability in [0, 1], found {mixed}")
    rng = np.random.default_rng([seed, index])
    cv, meta = _layout(rng)
    names = _choose_patterns(rng, mixed)
    p_fail = _background(cv)
    mask = np.zeros(cv.shape, dtype=np.uint8)
    keep = 1.0 - p_fail
    total = int(cv.on.sum())
    need = max(MIN_DIES, int(np.ceil(MIN_FRACTION * total))) + 1
    drawn = []
    # Highest priority first: where regions overlap the higher-priority class keeps the dies,
    # and a lower one is redrawn until enough of it stays visible (else it is left out).
    for name in sorted(names, key=lambda n: PRIORITY.index(by_name(n).id)):
        for _ in range(8):
            region, density = _PAINTERS[name](cv)
            visible = region & cv.on & (mask == 0)
            if visible.sum() >= need:
                break
        else:
            continue
        drawn.append(name)
        mask[visible] = by_name(name).id
        keep = keep * np.where(region & cv.on, 1.0 - density, 1.0)
    fail = (rng.random(cv.shape) < (1.0 - keep)) | _clumps(cv, p_fail)
    grid = np.where(cv.on, np.where(fail, 2, 1), 0).astype(np.uint8)
    wafer = WaferMap(
        grid=grid,
        lot=f"SYN{seed}-{index // 25:04d}",
        wafer_id=str(index % 25 + 1),
        slot=index % 25 + 1,
        source_format="synth",
        product="synthetic",
        die_pitch_um=meta["pitch"],  # type: ignore[arg-type]
        diameter_mm=meta["diameter_mm"],  # type: ignore[arg-type]
        extra={
            "edge_exclusion": meta["edge_exclusion"],
            "orientation_mark": meta["orientation_mark"],
            "synth_seed": seed,
            "synth_index": index,
        },
    )
    return SynthWafer(wafer, mask, tuple(sorted(drawn)))


def generate(count: int, seed: int, *, mixed: float = 0.0, start: int = 0) -> Iterator[SynthWafer]:
    """Yield ``count`` synthetic wafers (indices ``start`` ...), deterministic for the seed."""
    if count < 0:
        raise InvalidInputError(f"count must be >= 0, found {count}")
    for i in range(start, start + count):
        yield generate_wafer(seed, i, mixed=mixed)


def first_sized(
    seed: int, *, over: int = 0, up_to: int | None = None, limit: int = 1000
) -> SynthWafer:
    """The first wafer of ``seed`` whose larger side is over ``over`` and at most ``up_to`` dies.

    Tests and benchmarks use it to pick a small wafer (``up_to=64``) or a large one
    (``over=200``) from a seeded set. Raises ``InvalidInputError`` when none of the first
    ``limit`` wafers fits.
    """
    for i in range(limit):
        sw = generate_wafer(seed, i)
        side = max(sw.wafer.shape)
        if side > over and (up_to is None or side <= up_to):
            return sw
    bound = f"over {over}" + (f" and at most {up_to}" if up_to is not None else "")
    raise InvalidInputError(
        f"expected a wafer {bound} dies across among the first {limit} of seed {seed}, found none"
    )


def write_dataset(out: Path, count: int, seed: int, *, mixed: float = 0.0) -> dict[str, int]:
    """Write ``count`` wafers as die-grid PNGs plus ``annotations.json`` (COCO) into ``out``.

    The same arguments give byte-identical files. Annotations are ``manual`` by the annotator
    ``synth`` (they are exact truth); images carry the truth patterns.

    Returns:
        Counts: wafers written and wafers per pattern label.
    """
    from waferseg_core.coco import CocoWafer, annotations_from_mask, dump, to_coco
    from waferseg_core.formats.png import png_bytes

    out.mkdir(parents=True, exist_ok=True)
    items = []
    counts: dict[str, int] = {}
    for sw in generate(count, seed, mixed=mixed):
        idx = int(sw.wafer.extra["synth_index"])
        name = f"wafer_{idx:06d}.png"
        (out / name).write_bytes(png_bytes(sw.wafer))
        found = patterns_from_mask(sw.mask, sw.wafer.grid)
        for label in found or [NONE_PATTERN]:
            counts[label] = counts.get(label, 0) + 1
        sw.wafer.source_format = "png"
        items.append(
            CocoWafer(
                sw.wafer,
                name,
                annotations_from_mask(sw.mask, annotator="synth"),
                {
                    "pattern": found[0] if found else NONE_PATTERN,
                    "patterns": found,
                    "synth_seed": seed,
                    "synth_index": idx,
                },
            )
        )
    dump(
        to_coco(items, description=f"waferseg synth --count {count} --seed {seed} --mixed {mixed}"),
        out / "annotations.json",
    )
    return {"wafers": len(items), **dict(sorted(counts.items()))}
