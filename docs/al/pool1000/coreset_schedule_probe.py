"""Core-set's seed-12 picks re-made, then its 15% and 25% sets trained 2,400 steps (one of each).

Run: python coreset_schedule_probe.py select; then ... train 0.15 2400, ... train 0.25 2400 and
... full (each one torch thread; the re-made sets match the run's labelled_mix).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from waferseg_core.ml.active import select
from waferseg_core.ml.al_sim import SimConfig, _fit, _score, pool_scores, synthetic_data

torch.set_num_threads(1)  # as the simulation runs were (--threads 1): same picks

seed = 12
cfg = SimConfig(pool=1000, test=300, seed=seed, epochs=20, steps_per_epoch=60)
d = synthetic_data(cfg)
pool = d.pool
dev = torch.device("cpu")
mode = sys.argv[1]
W = Path("/tmp/al/probe")
if mode == "select":
    chosen = np.random.default_rng(seed).permutation(1000)[:50].tolist()
    sets = {}
    for k, frac in [(1, 0.10), (2, 0.15), (3, 0.25)]:
        m = _fit(cfg, [pool[i] for i in chosen], W / f"m{k}")
        taken = set(chosen)
        rest = [i for i in range(1000) if i not in taken]
        sc = pool_scores(m, [pool[i] for i in rest], 0, dev)
        lab = pool_scores(m, [pool[i] for i in chosen], 0, dev)["emb"]
        picks = select(
            "coreset",
            round(frac * 1000) - len(chosen),
            embeddings=sc["emb"],
            labelled_embeddings=lab,
            seed=seed + k,
        )
        chosen += [rest[p.index] for p in picks]
        sets[frac] = list(chosen)
    (W / "sets.json").write_text(json.dumps(sets))
elif mode == "full":  # the whole pool at 2,400 steps, the bar the fractions are read against
    c = SimConfig(pool=1000, test=300, seed=seed, epochs=20, steps_per_epoch=120)
    m = _fit(c, pool, W / "full-2400")
    print(
        json.dumps(
            {"frac": "full", "steps": 2400, "miou": round(_score(m, d.test, dev, "mean_iou"), 4)}
        )
    )
else:
    frac, steps = sys.argv[2], int(sys.argv[3])
    sets = json.loads((W / "sets.json").read_text())
    c = SimConfig(pool=1000, test=300, seed=seed, epochs=20, steps_per_epoch=steps // 20)
    m = _fit(c, [pool[i] for i in sets[frac]], W / f"t{frac}-{steps}")
    print(
        json.dumps(
            {"frac": frac, "steps": steps, "miou": round(_score(m, d.test, dev, "mean_iou"), 4)}
        ),
        flush=True,
    )
