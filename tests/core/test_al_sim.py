"""The active-learning simulation's loop on a micro pool (the figures come from bench runs)."""

from waferseg_core.ml.al_sim import SimConfig, _reach, simulate


def test_reach_finds_the_first_share_at_target():
    curve = [[0.05, 0.5], [0.1, 0.8], [0.2, 0.9]]
    assert _reach(curve, 0.8) == 0.1 and _reach(curve, 0.95) is None


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
    logs = []
    res = simulate(cfg, tmp_path, logs.append)
    assert res["pool"] == 12 and 0.0 <= res["full_miou"] <= 1.0
    for name in cfg.strategies:
        curve = res["strategies"][name]["curve"]
        assert [c[0] for c in curve] == [0.25, 0.5]  # 3 labels, then 6
    assert res["fixmatch"]["labels"] == 0.25
    assert {"supervised_miou", "fixmatch_miou"} <= set(res["fixmatch"])
    assert any("bald: 6 labels" in m for m in logs)
