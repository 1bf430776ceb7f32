"""The active-learning simulation's loop on a micro pool (the figures come from bench runs)."""

import copy
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.ml.al_sim import (
    SimConfig,
    SimData,
    _reach,
    combine,
    label_mix,
    labelled_sets,
    pretrain,
    real_data,
    simulate,
)
from waferseg_core.ml.data import labelled_samples


def test_reach_finds_the_first_share_at_target():
    curve = [[0.05, 0.5], [0.1, 0.8], [0.2, 0.9]]
    assert _reach(curve, 0.8) == 0.1 and _reach(curve, 0.95) is None


def _run(full, random_curve, margin_curve, fix=(0.1, 0.2)):
    ladder = (0.05, 0.1, 0.2)
    return {
        "pool": 100,
        "metric": "mean_iou",
        "full_miou": full,
        "strategies": {
            name: {"labels_to_95pct": _reach(c, 0.95 * full), "curve": [list(p) for p in c]}
            for name, c in (
                ("random", list(zip(ladder, random_curve, strict=True))),
                ("margin", list(zip(ladder, margin_curve, strict=True))),
            )
        },
        "fixmatch": {"labels": 0.05, "supervised_miou": fix[0], "fixmatch_miou": fix[1]},
    }


def test_label_mix_counts_true_patterns_most_first():
    g = np.ones((8, 8), np.uint8)
    samples = labelled_samples([g] * 4, ["Scratch", "none", "Donut", "Scratch"], ["A"] * 4)
    mix = label_mix(samples)
    assert mix == {"Scratch": 2, "Donut": 1, "none": 1}
    assert list(mix) == ["Scratch", "Donut", "none"]  # most first, ties by name


def test_combine_reads_the_target_from_the_mean_curve():
    # Run a: margin reaches 95% of its full score at 10% by a lucky dip-free point; run b: not.
    a = _run(0.5, (0.3, 0.4, 0.48), (0.3, 0.48, 0.44))
    b = _run(0.6, (0.3, 0.45, 0.5), (0.3, 0.5, 0.58))
    res = combine([a, b])
    assert res["runs"] == 2 and res["full_miou"] == 0.55 and res["full_miou_per_run"] == [0.5, 0.6]
    margin = res["strategies"]["margin"]
    assert margin["curve"] == [[0.05, 0.3], [0.1, 0.49], [0.2, 0.51]]
    assert margin["per_run"] == [0.1, 0.2]
    assert margin["labels_to_95pct"] is None  # the mean never reaches 0.95 * 0.55 = 0.5225
    assert margin["sd"] == [0.0, 0.01, 0.07]
    assert res["fixmatch"]["per_run"] == [[0.1, 0.2], [0.1, 0.2]]
    assert res["fixmatch"]["fixmatch_miou"] == 0.2
    with pytest.raises(ValueError, match="expected results of the same metric, pool"):
        combine([a, {**b, "pool": 90}])
    with pytest.raises(ValueError, match="FixMatch rounds"):
        combine([a, {**b, "semi_supervised": True}])
    assert "semi_supervised" not in res
    semi = combine([{**a, "semi_supervised": True}, {**b, "semi_supervised": True}])
    assert semi["semi_supervised"] is True
    brief = {"pool": 100, "strategies": {"random": {"labels_to_95pct": 0.1}}}
    with pytest.raises(ValueError, match="expected full simulation results"):
        combine([a, brief])
    with pytest.raises(ValueError, match="expected at least one"):
        combine([])


def test_micro_simulation_runs_every_round(tmp_path):
    cfg = SimConfig(
        pool=12,
        test=6,
        ladder=(0.25, 0.5),
        strategies=("random", "bald", "hybrid"),
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        mc_passes=2,
        fixmatch_labels=0.25,
    )
    logs, seen = [], []
    res = simulate(cfg, tmp_path, logs.append, progress=lambda r: seen.append(copy.deepcopy(r)))
    # What a run cut short keeps: the full-pool score first, FixMatch's comparison, then one
    # more strategy each time.
    assert [list(r["strategies"]) for r in seen] == [
        [],
        [],
        ["random"],
        ["random", "bald"],
        ["random", "bald", "hybrid"],
    ]
    assert seen[0]["full_miou"] == res["full_miou"] and seen[-1]["strategies"] == res["strategies"]
    assert "fixmatch" not in seen[0] and seen[1]["fixmatch"] == res["fixmatch"]
    # 5% of labels for both: supervised-only is the shared start's model, scored once, no refit.
    assert not (tmp_path / "fix-sup").exists() and (tmp_path / "fix-fm").exists()
    assert res["fixmatch"]["supervised_miou"] == res["strategies"]["random"]["curve"][0][1]
    assert res["pool"] == 12 and 0.0 <= res["full_miou"] <= 1.0 and "pretrained_only" not in res
    for name in cfg.strategies:
        curve = res["strategies"][name]["curve"]
        assert [c[0] for c in curve] == [0.25, 0.5]  # 3 labels, then 6
        mix = res["strategies"][name]["labelled_mix"]
        assert [sum(m.values()) for m in mix] == [3, 6] and set(mix[1]) <= set(WAFER_LABELS)
        assert mix[0] == res["strategies"]["random"]["labelled_mix"][0]  # the shared start
    assert res["fixmatch"]["labels"] == 0.25
    assert {"supervised_miou", "fixmatch_miou"} <= set(res["fixmatch"])
    assert any("bald: 6 labels" in m for m in logs)


def test_fixmatch_labels_above_the_first_rung_take_that_many_wafers(tmp_path):
    start, fix = labelled_sets(100, 5, 0.12, seed=3)
    assert len(start) == 5 and len(fix) == 12 and fix[:5] == start  # the start, and then more
    assert len(set(fix)) == 12
    assert labelled_sets(100, 5, 0.05, seed=3) == (start, start)  # the same share: the start
    few_start, few = labelled_sets(10, 3, 0.0001, seed=3)
    assert few == few_start[:2]  # never fewer than 2
    cfg = SimConfig(
        pool=12,
        test=4,
        ladder=(0.25,),
        strategies=("random",),
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        fixmatch_labels=0.5,
    )
    logs: list[str] = []
    res = simulate(cfg, tmp_path, logs.append)
    # 6 labelled wafers, not the start's 3: the supervised side is refit on them.
    assert res["fixmatch"]["labels"] == 0.5 and (tmp_path / "fix-sup").exists()
    assert any("fixmatch at 6 labels" in m for m in logs)


def test_real_wafer_simulation_reveals_labels_and_scores_macro_f1(tmp_path, wm811k_npz):
    cfg = SimConfig(
        ladder=(0.25, 0.5),
        strategies=("random", "margin"),
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        fixmatch_labels=0.25,
    )
    data = real_data(str(wm811k_npz), cfg, base=4)
    pool_lots = {s.lot for s in data.pool}
    assert pool_lots and not pool_lots & {s.lot for s in data.test}  # lot-disjoint
    assert all(s.mask is None and s.labels.sum() == 1 for s in data.pool)  # labels, no masks
    assert all(s.mask is not None for s in data.base)
    other = real_data(str(wm811k_npz), cfg, base=0, test_fold=0)  # the other split
    assert {s.lot for s in other.test} == pool_lots and not other.base
    small = SimData(data.pool[:12], data.test[:8], data.base, data.metric)
    # Rounds fine-tune a model pretrained on the synthetic wafers.
    cfg.init = pretrain(cfg, data.base, tmp_path / "pre", epochs=1, steps=1)
    assert Path(cfg.init).exists()
    res = simulate(cfg, tmp_path, data=small)
    assert res["metric"] == "macro_f1" and res["pool"] == 12 and res["test"] == 8
    assert 0.0 <= res["full_macro_f1"] <= 1.0 and "full_miou" not in res
    assert 0.0 <= res["pretrained_only"] <= 1.0  # the starting model, before any pool label
    assert [c[0] for c in res["strategies"]["margin"]["curve"]] == [0.25, 0.5]
    assert {"supervised_macro_f1", "fixmatch_macro_f1"} <= set(res["fixmatch"])


def test_command_runs_the_sizes_it_is_given_and_records_them(tmp_path):
    args = "--pool 10 --test 4 --epochs 1 --steps 1 --batch-size 3 --max-dies 40 --mc 1"
    args += " --ladder 0.2,0.4 --strategies random,margin --seed 5 --fixmatch-labels 0"
    cmd = _command(tmp_path, *args.split())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    brief = json.loads(proc.stdout)
    assert set(brief["strategies"]) == {"random", "margin"}
    assert brief["fixmatch"] is None  # --fixmatch-labels 0: no comparison
    saved = json.loads((tmp_path / "al_simulation.json").read_text())
    config = saved["config"]
    assert (config["batch_size"], config["max_dies_across"], config["epochs"]) == (3, 40, 1)
    assert (config["pool"], config["seed"], saved["seed"]) == (10, 5, 5)
    assert config["fixmatch_labels"] == 0 and "fixmatch" not in saved
    assert (
        saved["command"].startswith("bench/al_simulation.py ")
        and "--batch-size 3" in saved["command"]
    )
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert not (tmp_path / "al_simulation.partial.json").exists()  # replaced by the result


def _command(out, *extra):
    sim = Path(__file__).parents[2] / "bench" / "al_simulation.py"
    return [sys.executable, str(sim), "--threads", "1", "--out", str(out), *extra]


def test_a_run_cut_short_leaves_what_it_measured(tmp_path):
    # Many strategies, so the run is killed long before it ends.
    args = "--pool 10 --test 4 --epochs 1 --steps 1 --batch-size 3 --mc 1 --ladder 0.2,0.4"
    proc = subprocess.Popen(
        _command(tmp_path, *args.split(), "--strategies", ",".join(["random"] + ["margin"] * 500)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = tmp_path / "al_simulation.partial.json"
    try:
        for _ in range(1200):
            if partial.exists() and "random" in json.loads(partial.read_text())["strategies"]:
                break
            time.sleep(0.25)
    finally:
        proc.kill()
        proc.wait()
    kept = json.loads(partial.read_text())
    assert kept["partial"] is True and 0.0 <= kept["full_miou"] <= 1.0
    assert [p[0] for p in kept["strategies"]["random"]["curve"]] == [0.2, 0.4]
    assert kept["config"]["pool"] == 10 and not (tmp_path / "al_simulation.json").exists()


def test_an_unknown_strategy_is_refused_before_any_training(tmp_path):
    proc = subprocess.run(
        _command(tmp_path, "--strategies", "random,entropyy"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and not any(tmp_path.iterdir())
    assert (
        "--strategies: strategy must be one of entropy, margin" in proc.stderr
        and "'entropyy'" in proc.stderr
    )


def test_semi_supervised_rounds_learn_from_the_unlabelled_rest(tmp_path):
    cfg = SimConfig(
        pool=12,
        test=4,
        ladder=(0.25, 0.5),
        strategies=("margin",),
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
    )
    runs = {}
    for semi in (False, True):
        res = simulate(replace(cfg, semi=semi), tmp_path / str(semi))
        logged = (tmp_path / str(semi) / "margin-1" / "metrics.jsonl").read_text()
        runs[semi] = (res, "unlabeled_loss" in logged)
    assert runs[False][1] is False and runs[True][1] is True  # the round's FixMatch loss
    assert runs[True][0]["semi_supervised"] is True and "semi_supervised" not in runs[False][0]
    assert "fixmatch" in runs[False][0] and "fixmatch" not in runs[True][0]  # rounds cover it
