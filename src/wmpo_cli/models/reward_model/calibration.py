"""Turning window probabilities into episode decisions: threshold choice, metrics, reliability.

In imagination the reward model's decision is per episode: the episode succeeded iff some window
reaches the threshold, and the first such window sets the finish step. So the threshold is chosen
on *episode* outcomes of the validation split. Candidate thresholds are the midpoints between
consecutive distinct episode scores (an episode's score is its highest window probability), which
keeps the chosen value as far as possible from the validation episodes on either side of it.

With a target precision (the default: a false "success" teaches the policy to fool the judge),
the threshold is the best-F1 one among those whose validation precision reaches the target; if
none does, the best-F1 threshold overall, flagged ``reached_target=False``. Ties in F1 go to the
smaller finish-step error, then to the higher threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wmpo_cli.models.reward_model.windows import first_window_above


@dataclass(frozen=True)
class EpisodeScores:
    """One episode's per-window success probabilities, their end steps, and the truth."""

    probabilities: np.ndarray
    end_steps: np.ndarray
    # The first step whose frame shows success; None for a failed episode.
    success_step: int | None

    @property
    def score(self) -> float:
        return float(np.max(self.probabilities)) if len(self.probabilities) else 0.0


@dataclass(frozen=True)
class EpisodeMetrics:
    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    # Mean |detected finish step - first success step| over true positives (None without any).
    finish_mae: float | None
    # Mean signed error (detected - true): > 0 means the detector fires late.
    finish_bias: float | None

    def as_dict(self, prefix: str = "") -> dict[str, float | int | None]:
        return {f"{prefix}{k}": v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    target_precision: float
    reached_target: bool
    metrics: EpisodeMetrics


def episode_metrics(episodes: Sequence[EpisodeScores], threshold: float) -> EpisodeMetrics:
    """Episode-level precision / recall / F1 and finish-step error of ``threshold``."""
    tp = fp = fn = tn = 0
    errors: list[int] = []
    for episode in episodes:
        detected = first_window_above(episode.probabilities, episode.end_steps, threshold)
        if episode.success_step is None:
            fp += detected is not None
            tn += detected is None
        elif detected is None:
            fn += 1
        else:
            tp += 1
            errors.append(detected - episode.success_step)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return EpisodeMetrics(
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=f1,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        true_negatives=tn,
        finish_mae=float(np.mean(np.abs(errors))) if errors else None,
        finish_bias=float(np.mean(errors)) if errors else None,
    )


def candidate_thresholds(scores: Sequence[float]) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one below all and one above all."""
    unique = np.unique(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0))
    if unique.size == 0:
        return np.array([0.5])
    inner = (unique[:-1] + unique[1:]) / 2
    return np.concatenate([[unique[0] / 2], inner, [(unique[-1] + 1.0) / 2]])


def choose_threshold(episodes: Sequence[EpisodeScores], target_precision: float = 0.0) -> ThresholdChoice:
    """The calibrated threshold (see the module docstring); ``target_precision`` 0 = best F1."""
    if not 0.0 <= target_precision <= 1.0:
        raise ValueError(f"target_precision must be in [0, 1], got {target_precision}")
    if not any(e.success_step is not None for e in episodes) or all(e.success_step is not None for e in episodes):
        raise ValueError("threshold calibration needs both successful and failed episodes")
    results = [episode_metrics(episodes, t) for t in candidate_thresholds([e.score for e in episodes])]

    def rank(m: EpisodeMetrics) -> tuple[float, float, float]:
        mae = m.finish_mae if m.finish_mae is not None else float("inf")
        return (round(m.f1, 12), -mae, m.threshold)

    feasible = [m for m in results if target_precision > 0 and m.true_positives and m.precision >= target_precision]
    best = max(feasible or results, key=rank)
    return ThresholdChoice(
        threshold=best.threshold,
        target_precision=target_precision,
        reached_target=bool(feasible) or target_precision == 0,
        metrics=best,
    )


@dataclass(frozen=True)
class Reliability:
    """Window-level reliability: per probability bin, the mean prediction and the observed rate."""

    edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    # Expected calibration error: count-weighted mean |observed - predicted| over non-empty bins.
    ece: float


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> Reliability:
    """Equal-width reliability bins over [0, 1] (empty bins hold NaN)."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, weights=p, minlength=bins) / counts
        observed = np.bincount(which, weights=y, minlength=bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] * np.abs(observed[filled] - mean_predicted[filled])) / max(1, p.size))
    return Reliability(edges, mean_predicted, observed, counts, ece)
