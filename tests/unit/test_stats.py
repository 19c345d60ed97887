"""Wilson score interval: exact values against the closed-form roots, and its edge cases."""

from __future__ import annotations

import math

import pytest

from wmpo_cli.stats import Z_95, wilson_interval


def _roots(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The interval as the two roots of (p̂ - p)² = z² p (1 - p) / n, solved for p independently."""
    z2 = z * z
    centre = 2 * k + z2
    spread = z * math.sqrt(z2 + 4 * k * (n - k) / n)
    return (centre - spread) / (2 * (n + z2)), (centre + spread) / (2 * (n + z2))


def test_no_successes_gives_zero_to_z2_over_n_plus_z2() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(Z_95**2 / (10 + Z_95**2), abs=1e-15)
    assert high == pytest.approx(0.277533, abs=1e-6)


def test_all_successes_gives_n_over_n_plus_z2_to_one() -> None:
    low, high = wilson_interval(10, 10)
    assert high == 1.0
    assert low == pytest.approx(10 / (10 + Z_95**2), abs=1e-15)
    assert low == pytest.approx(0.722467, abs=1e-6)


def test_sixty_of_a_hundred_matches_the_closed_form() -> None:
    low, high = wilson_interval(60, 100)
    exp_low, exp_high = _roots(60, 100)
    assert low == pytest.approx(exp_low, abs=1e-14) and high == pytest.approx(exp_high, abs=1e-14)
    assert (round(low, 4), round(high, 4)) == (0.5020, 0.6906)  # the textbook value


@pytest.mark.parametrize(("k", "n"), [(1, 2), (3, 128), (64, 128), (127, 128), (5, 7)])
def test_interval_matches_the_roots_and_is_symmetric(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx(_roots(k, n), abs=1e-14)
    assert low < k / n < high
    mirror_low, mirror_high = wilson_interval(n - k, n)
    assert low == pytest.approx(1 - mirror_high, abs=1e-14) and high == pytest.approx(1 - mirror_low, abs=1e-14)


def test_no_trials_and_bad_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(k, n)
