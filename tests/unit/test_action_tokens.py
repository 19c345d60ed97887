"""Action tokens: quantile normalisation, binning, round trip, statistics round trip."""

from __future__ import annotations

import numpy as np
import pytest

from wmpo_cli.models.policy.action_tokens import ActionTokenizer


def test_tokens_are_uniform_bins_between_the_quantiles() -> None:
    tok = ActionTokenizer(low=np.array([-1.0, 0.0]), high=np.array([1.0, 4.0]), bins=4)
    actions = np.array([[-1.0, 0.0], [-0.49, 1.01], [0.0, 2.0], [0.99, 3.99], [5.0, -3.0]])
    assert tok.encode(actions).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3], [3, 0]]
    np.testing.assert_allclose(tok.decode(np.array([[0, 0], [3, 3]])), [[-0.75, 0.5], [0.75, 3.5]])
    with pytest.raises(ValueError, match="tokens must be in"):
        tok.decode(np.array([[4, 0]]))


def test_round_trip_error_is_at_most_half_a_bin_inside_the_range() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(5000, 7))
    tok = ActionTokenizer.fit(actions)
    inside = np.clip(actions, tok.low, tok.high)
    half_bin = (tok.high - tok.low) / tok.bins / 2
    assert np.all(np.abs(tok.decode(tok.encode(inside)) - inside) <= half_bin + 1e-12)
    np.testing.assert_allclose(tok.low, np.quantile(actions, 0.01, axis=0))


def test_constant_dimension_and_statistics_round_trip() -> None:
    actions = np.column_stack([np.linspace(-1, 1, 101), np.ones(101)])
    tok = ActionTokenizer.fit(actions, bins=256)
    assert tok.low[1] == 0.0 and tok.high[1] == 2.0  # a unit range around the constant
    again = ActionTokenizer.from_dict(tok.to_dict())
    np.testing.assert_array_equal(again.encode(actions), tok.encode(actions))
    with pytest.raises(ValueError, match="missing or malformed"):
        ActionTokenizer.from_dict({"low": [0.0]})
