"""Threshold choice, episode metrics and reliability bins of the reward model on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from wmpo_cli.models.reward_model.calibration import (
    EpisodeScores,
    candidate_thresholds,
    choose_threshold,
    episode_metrics,
    reliability,
)
from wmpo_cli.pipeline.fit_reward_model import split_validation


def _episode(peak: float, success_step: int | None, peak_at: int = 2, length: int = 5) -> EpisodeScores:
    """Windows ending at steps 7..7+length-1; probability ``peak`` at window ``peak_at`` and after."""
    probabilities = np.full(length, 0.01)
    probabilities[peak_at:] = peak
    return EpisodeScores(probabilities, np.arange(7, 7 + length), success_step)


# Successes score 0.9, 0.8 and 0.7; failures 0.2 and 0.75.
EPISODES = [_episode(0.9, 9), _episode(0.8, 9), _episode(0.7, 9), _episode(0.2, None), _episode(0.75, None)]


def test_candidates_are_midpoints_between_distinct_scores() -> None:
    assert candidate_thresholds([0.2, 0.8, 0.2, 0.6]).tolist() == pytest.approx([0.1, 0.4, 0.7, 0.9])
    assert candidate_thresholds([]).tolist() == [0.5]


def test_episode_metrics_are_exact() -> None:
    m = episode_metrics(EPISODES, 0.45)
    assert (m.true_positives, m.false_positives, m.false_negatives, m.true_negatives) == (3, 1, 0, 1)
    assert m.precision == pytest.approx(0.75) and m.recall == 1.0 and m.f1 == pytest.approx(6 / 7)
    # Every success is detected at its window 2, i.e. step 9: no finish-step error.
    assert m.finish_mae == 0.0 and m.finish_bias == 0.0
    late = episode_metrics([_episode(0.9, 6, peak_at=3), _episode(0.9, 12, peak_at=0)], 0.5)
    # Detected at 10 (true 6: +4) and at 7 (true 12: -5).
    assert late.finish_mae == pytest.approx(4.5) and late.finish_bias == pytest.approx(-0.5)
    none = episode_metrics([_episode(0.9, None)], 0.95)
    assert none.precision == 1.0 and none.f1 == 0.0 and none.finish_mae is None


def test_best_f1_threshold() -> None:
    choice = choose_threshold(EPISODES, target_precision=0.0)
    # Midpoint between the failure at 0.2 and the weakest success at 0.7.
    assert choice.threshold == pytest.approx(0.45)
    assert choice.metrics.f1 == pytest.approx(6 / 7) and choice.reached_target


def test_target_precision_threshold() -> None:
    choice = choose_threshold(EPISODES, target_precision=0.95)
    # Above the failure at 0.75 and below the success at 0.8: precision 1, recall 2/3.
    assert choice.threshold == pytest.approx(0.775)
    assert choice.metrics.precision == 1.0 and choice.metrics.recall == pytest.approx(2 / 3)
    assert choice.reached_target


def test_unreachable_target_falls_back_to_best_f1() -> None:
    # The failure outscores every success: no threshold has precision >= 0.95 with a detection.
    episodes = [_episode(0.6, 9), _episode(0.5, 9), _episode(0.99, None)]
    choice = choose_threshold(episodes, target_precision=0.95)
    assert not choice.reached_target
    assert choice.threshold == pytest.approx(0.25)  # all positive: F1 = 4/5
    assert choice.metrics.f1 == pytest.approx(0.8)


def test_f1_ties_go_to_the_smaller_finish_error() -> None:
    # Successes peak at 0.9 (A) and 0.5 (B), two failures at 0.7. Threshold 0.25 takes all four
    # (F1 = 4/6) and 0.8 only A (F1 = 2/3): a tie. At 0.25, A fires at window 0 (step 7, two steps
    # before its true step 9) on its early 0.3; at 0.8 it fires exactly at step 9.
    a = EpisodeScores(np.array([0.3, 0.3, 0.9, 0.9, 0.9]), np.arange(7, 12), 9)
    b = _episode(0.5, 9)
    failures = [_episode(0.7, None), _episode(0.7, None)]
    assert episode_metrics([a, b, *failures], 0.25).f1 == pytest.approx(episode_metrics([a, b, *failures], 0.8).f1)
    choice = choose_threshold([a, b, *failures], target_precision=0.0)
    assert choice.threshold == pytest.approx(0.8) and choice.metrics.finish_mae == 0.0
    # With equal finish errors, the higher threshold (fewer false successes) wins.
    b_exact = _episode(0.5, 9)
    a_exact = _episode(0.9, 9)
    tied = choose_threshold([a_exact, b_exact, *failures], target_precision=0.0)
    assert tied.threshold == pytest.approx(0.8)


def test_calibration_needs_both_outcomes() -> None:
    with pytest.raises(ValueError, match="both"):
        choose_threshold([_episode(0.9, 9)], 0.0)
    with pytest.raises(ValueError, match="target_precision"):
        choose_threshold(EPISODES, 1.5)


def test_reliability_bins_and_ece() -> None:
    p = np.array([0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 0.95])
    y = np.array([0, 0, 1, 1, 1, 1, 0])
    r = reliability(p, y, bins=10)
    assert r.counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 4]
    assert r.observed[0] == 0.0 and r.observed[1] == 1.0 and r.observed[9] == 0.75
    assert np.isnan(r.observed[2])
    # ECE = (2 * 0.05 + 1 * 0.85 + 4 * 0.2) / 7
    assert r.ece == pytest.approx((0.1 + 0.85 + 0.8) / 7)


def test_validation_split_is_stratified_and_seeded() -> None:
    names = [f"demo_{i}" for i in range(20)]
    successes = set(names[:16])
    picked = split_validation(names, successes, [], 0.1, seed=3)
    assert len(picked & successes) == 2 and len(picked - successes) == 1  # round(1.6) and max(1, 0.4)
    assert picked == split_validation(names, successes, [], 0.1, seed=3)
    # An artifact's own valid mask wins.
    assert split_validation(names, successes, ["demo_4"], 0.1, seed=3) == {"demo_4"}
    # A class of one episode stays in training.
    assert split_validation(names[:3], {"demo_0", "demo_1"}, [], 0.1, seed=0) <= {"demo_0", "demo_1"}
