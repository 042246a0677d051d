"""The demo's plan, without running it: which stages run, what seeds vary, the upper-bound comparison."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from e2h.commands.eval_command import compute_metrics, grade_samples
from e2h.commands.pipeline import demo_config, demo_stages, effect, recovered_gain
from e2h.config import load_config
from policy.pretrain import base_fingerprint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "demo.yaml")


@pytest.mark.parametrize("easy,upper,expected", [
    ({"weighted_vote@N": 30.0, "majority@N": 25.0}, {"weighted_vote@N": 35.0, "majority@N": 25.0}, 50.0),
    ({"weighted_vote@N": 35.0, "majority@N": 25.0}, {"weighted_vote@N": 35.0, "majority@N": 25.0}, 100.0),
    ({"weighted_vote@N": 20.0, "majority@N": 25.0}, {"weighted_vote@N": 35.0, "majority@N": 25.0}, -50.0),
])
def test_recovered_gain_is_the_easy_prms_share_of_the_upper_bounds_gain(easy, upper, expected):
    assert recovered_gain(easy, upper) == pytest.approx(expected)


def test_recovered_gain_is_undefined_when_the_upper_bound_gains_nothing():
    assert math.isnan(recovered_gain({"weighted_vote@N": 30.0, "majority@N": 25.0},
                                     {"weighted_vote@N": 25.0, "majority@N": 25.0}))


@pytest.mark.parametrize("best_of_n,weighted_vote", [("min", "prod"), ("prod", "min"), ("last", "mean")])
def test_the_effect_table_reads_the_configured_aggregations(best_of_n, weighted_vote):
    from test_report import samples_with_grades

    samples = samples_with_grades()
    cfg = load_config(None, ["eval.resamples=20", "eval.regrade=false", f"eval.best_of_n_aggregation={best_of_n}",
                             f"eval.weighted_vote_aggregation={weighted_vote}"]).eval
    metrics = compute_metrics(samples, grade_samples(samples, 5.0, 1, regrade=False), cfg)
    curves = metrics["groups"]["split"]["hard"]["curves"]
    numbers = effect(metrics)
    assert numbers["best_of_n@N"] == 100 * curves[f"best_of_n/{best_of_n}"]["mean"][-1]
    assert numbers["weighted_vote@N"] == 100 * curves[f"weighted_vote/{weighted_vote}"]["mean"][-1]
    assert numbers["pass@1"] == 100 * curves["majority"]["mean"][0]


def test_stages_follow_the_flags():
    cfg = demo_config(CONFIG, [], None, None)
    names = [s.name for s in demo_stages(cfg, with_ppo=False)]
    assert names[0] == "base" and "prm_all" not in names and "ppo" not in names
    names = [s.name for s in demo_stages(cfg, with_ppo=True, with_upper_bound=True)]
    assert names[-5:] == ["prm_pool_all", "prm_all", "score_all", "eval_all", "ppo"]
    scratch = demo_config(CONFIG, ["demo.policy_init=scratch"], None, None)
    assert "base" not in [s.name for s in demo_stages(scratch, with_ppo=False)]


def test_seeds_share_the_world_and_its_base_and_vary_the_rest():
    one, two = demo_config(CONFIG, [], "a", 1), demo_config(CONFIG, [], "b", 2)
    assert one.world.seed == two.world.seed and base_fingerprint(one) == base_fingerprint(two)
    assert (one.run.seed, one.sample.seed) == (1, 1) and (two.run.seed, two.sample.seed) == (2, 2)
    scratch = demo_config(CONFIG, ["demo.policy_init=scratch"], "c", 2)
    assert scratch.world.seed == 2  # without a base, each seed draws its own world as before

