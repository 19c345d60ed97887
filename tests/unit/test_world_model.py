"""The world model: window indexing, metrics, shapes, determinism, save/load, audit and imagination."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.world_model.config import WorldModelConfig
from wmpo_cli.models.world_model.data import (
    EpisodeFrames,
    WindowDataset,
    to_uint8,
    to_unit,
    window_indices,
    window_starts,
)
from wmpo_cli.models.world_model.metrics import psnr, ssim
from wmpo_cli.models.world_model.model import WorldModel, WorldModelLoadError
from wmpo_cli.models.world_model.training import ema_decay
from wmpo_cli.rl.audit import audit_windows, run_audit

SIZE = 16


def _model(**overrides: object) -> WorldModel:
    torch.manual_seed(0)
    values: dict[str, object] = {
        "task": "lift",
        "image_size": SIZE,
        "context_frames": 2,
        "predict_frames": 4,
        "action_embed_dim": 2,
        "block_out_channels": (8, 8),
        "attention_levels": (False, False),
        "sample_steps": 2,
    }
    values.update(overrides)
    stats = ActionTokenizer.fit(np.random.default_rng(0).uniform(-1, 1, (200, 7)))
    return WorldModel(WorldModelConfig(**values), stats).eval()  # type: ignore[arg-type]


def _episode(length: int, seed: int) -> EpisodeFrames:
    rng = np.random.default_rng(seed)
    return EpisodeFrames(
        frames=rng.integers(0, 256, (length, SIZE, SIZE, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (length, 7)),
    )


def test_windows_pad_with_the_first_frame_and_target_the_next_frames() -> None:
    assert list(window_starts(10, 4)) == [0, 1, 2, 3, 4, 5]
    assert list(window_starts(4, 4)) == []
    assert window_indices(10, 0, 3, 4) == ([0, 0, 0], [1, 2, 3, 4])
    assert window_indices(10, 1, 3, 4) == ([0, 0, 1], [2, 3, 4, 5])
    assert window_indices(10, 5, 3, 4) == ([3, 4, 5], [6, 7, 8, 9])
    with pytest.raises(ValueError, match="no 4 successors"):
        window_indices(10, 6, 3, 4)


def test_window_dataset_items_line_up_frames_and_actions() -> None:
    episode = _episode(7, 1)
    actions = np.arange(7 * 7, dtype=np.float32).reshape(7, 7)
    data = WindowDataset([episode], [actions], context_frames=2, predict_frames=4)
    assert len(data) == 3
    item = data[2]  # start 2: context frames 1, 2; targets 3..6; actions 2..5
    assert item["context"].shape == (2, 3, SIZE, SIZE) and item["target"].shape == (4, 3, SIZE, SIZE)
    np.testing.assert_array_equal(to_uint8(item["context"]), episode.frames[[1, 2]])
    np.testing.assert_array_equal(to_uint8(item["target"]), episode.frames[3:7])
    np.testing.assert_array_equal(item["actions"].numpy(), actions[2:6])


def test_unit_and_uint8_conversions_are_exact_inverses() -> None:
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    unit = to_unit(frames)
    assert unit.shape == (1, 3, 16, 16) and float(unit.min()) == -1.0 and float(unit.max()) == 1.0
    np.testing.assert_array_equal(to_uint8(unit), frames)


def test_psnr_and_ssim_known_values() -> None:
    a = torch.zeros(2, 3, 16, 16)
    b = a.clone()
    b[1] += 0.2  # MSE 0.04 -> 10 log10(4 / 0.04) = 20 dB
    # Identical frames hit the MSE floor of 1e-10: 10 log10(4e10) = 106.02 dB.
    assert torch.allclose(psnr(a, b), torch.tensor([10 * math.log10(4e10), 20.0]))
    assert torch.allclose(ssim(a, a), torch.ones(2))
    # Flat frames 0 and 0.2: only the luminance term is left, c1 / (0.2^2 + c1) with c1 = (0.01 * 2)^2.
    assert float(ssim(a[1:], b[1:])) == pytest.approx(0.0004 / (0.04 + 0.0004), rel=1e-5)
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 16, 16, generator=rng) * 2 - 1
    noise = torch.randn(1, 3, 16, 16, generator=rng)
    assert 1.0 > float(ssim(x, x + 0.05 * noise)) > float(ssim(x, x + 0.5 * noise)) > 0.0


def test_forward_loss_and_predict_shapes() -> None:
    model = _model()
    ctx = torch.rand(3, 2, 3, SIZE, SIZE) * 2 - 1
    tgt = torch.rand(3, 4, 3, SIZE, SIZE) * 2 - 1
    actions = torch.rand(3, 4, 7) * 2 - 1
    out = model(tgt, torch.full((3,), 0.5), ctx, actions, torch.zeros(3))
    assert out.shape == (3, 4, 3, SIZE, SIZE)
    loss = model.loss(ctx, tgt, actions, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    assert all(p.grad is not None for p in model.conditioner.per_action.parameters())
    frames = model.predict(ctx, actions, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (3, 4, 3, SIZE, SIZE) and float(frames.abs().max()) <= 1.0


def test_sampling_is_deterministic_for_a_seed_and_follows_the_actions() -> None:
    model = _model()
    ctx = torch.rand(2, 2, 3, SIZE, SIZE) * 2 - 1
    actions = torch.rand(2, 4, 7) * 2 - 1
    one = model.predict(ctx, actions, generator=torch.Generator().manual_seed(3))
    two = model.predict(ctx, actions, generator=torch.Generator().manual_seed(3))
    other_seed = model.predict(ctx, actions, generator=torch.Generator().manual_seed(4))
    assert torch.equal(one, two) and not torch.equal(one, other_seed)
    # The chunk embedding starts at zero; once trained it is not, and then actions change frames.
    torch.nn.init.normal_(model.conditioner.chunk[-1].weight)
    a = model.predict(ctx, actions, generator=torch.Generator().manual_seed(3))
    b = model.predict(ctx, -actions, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(a, b)


class _Recorder(WorldModel):
    """A network that records what it is given and outputs zeros."""

    seen: list[torch.Tensor]

    def forward(self, noisy, t, context, actions, context_noise):  # type: ignore[no-untyped-def,override]
        self.seen.append(noisy.clone())
        return torch.zeros_like(noisy)


def _as(cls: type[WorldModel], **overrides: object) -> WorldModel:
    base = _model(**overrides)
    return cls(base.cfg, base.action_stats)


def test_a_residual_model_sees_only_the_change_from_the_last_frame() -> None:
    # Two still scenes (every target frame equals the last context frame) with different content:
    # their residual is zero, so the noisy input and the loss are the same for both.
    model = _as(_Recorder, residual=True)
    model.seen = []
    losses = []
    for seed in (1, 2):
        ctx = torch.rand(2, 2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        still = ctx[:, -1:].expand(-1, 4, -1, -1, -1).contiguous()
        losses.append(float(model.loss(ctx, still, torch.zeros(2, 4, 7), torch.Generator().manual_seed(5))))
    assert torch.equal(model.seen[0], model.seen[1]) and losses[0] == losses[1]
    # Without the residual the frames themselves are generated, so the inputs differ.
    plain = _as(_Recorder, residual=False)
    plain.seen = []
    for seed in (1, 2):
        ctx = torch.rand(2, 2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        still = ctx[:, -1:].expand(-1, 4, -1, -1, -1).contiguous()
        plain.loss(ctx, still, torch.zeros(2, 4, 7), torch.Generator().manual_seed(5))
    assert not torch.equal(plain.seen[0], plain.seen[1])


class _OracleAnyObjective(WorldModel):
    """A network that knows the clean sample and answers in its objective's terms."""

    clean: torch.Tensor

    def forward(self, noisy, t, context, actions, context_noise):  # type: ignore[no-untyped-def,override]
        t = t[:, None, None, None, None]
        eps = (noisy - (1.0 - t) * self.clean) / t  # the noise that puts noisy on the path to clean
        return {"velocity": self.clean - eps, "epsilon": eps, "x0": self.clean.expand_as(noisy)}[self.cfg.objective]


@pytest.mark.parametrize("time_shift", [1.0, 3.0])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("objective", ["velocity", "epsilon", "x0"])
def test_every_objective_lands_on_the_clean_sample_and_adds_back_the_last_frame(
    objective: str, residual: bool, time_shift: float
) -> None:
    # 3 steps: at t = 1 an eps answer says nothing about the clean sample, so eps needs >= 2.
    model = _as(_OracleAnyObjective, residual=residual, objective=objective, time_shift=time_shift)
    ctx = torch.rand(2, 2, 3, SIZE, SIZE) * 1.2 - 0.6
    model.clean = torch.rand(2, 4, 3, SIZE, SIZE) * 0.6 - 0.3
    out = model.predict(ctx, torch.zeros(2, 4, 7), steps=3, generator=torch.Generator().manual_seed(0))
    expected = (model.clean + ctx[:, -1:]) if residual else model.clean
    assert torch.allclose(out, expected.clamp(-1, 1), atol=1e-5)


class _OracleX0(WorldModel):
    """A network that outputs a fixed clean sample (a perfect x-prediction)."""

    clean: torch.Tensor

    def forward(self, noisy, t, context, actions, context_noise):  # type: ignore[no-untyped-def,override]
        return self.clean.expand_as(noisy)


@pytest.mark.parametrize("steps", [1, 3])
def test_an_x0_model_lands_on_its_prediction_in_any_number_of_steps(steps: int) -> None:
    model = _as(_OracleX0, residual=True, objective="x0")
    ctx = torch.rand(2, 2, 3, SIZE, SIZE) * 1.2 - 0.6
    model.clean = torch.rand(2, 4, 3, SIZE, SIZE) * 0.6 - 0.3
    out = model.predict(ctx, torch.zeros(2, 4, 7), steps=steps, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, (model.clean + ctx[:, -1:]).clamp(-1, 1), atol=1e-5)


class _TimeRecorder(WorldModel):
    """A network that records the times it is asked at and outputs zeros."""

    times: list[float]

    def forward(self, noisy, t, context, actions, context_noise):  # type: ignore[no-untyped-def,override]
        self.times += t.tolist()
        return torch.zeros_like(noisy)


def test_the_time_shift_moves_sampler_and_training_times_towards_noise() -> None:
    ctx = torch.zeros(1, 2, 3, SIZE, SIZE)
    plain = _as(_TimeRecorder, time_shift=1.0)
    plain.times = []
    plain.predict(ctx, torch.zeros(1, 4, 7), steps=4, generator=torch.Generator().manual_seed(0))
    assert plain.times == pytest.approx([1.0, 0.75, 0.5, 0.25])
    shifted = _as(_TimeRecorder, time_shift=3.0)
    shifted.times = []
    shifted.predict(ctx, torch.zeros(1, 4, 7), steps=4, generator=torch.Generator().manual_seed(0))
    # 3u / (1 + 2u) at u = 1, 3/4, 1/2, 1/4.
    assert shifted.times == pytest.approx([1.0, 9 / 10, 3 / 4, 1 / 2])
    # Training draws the same logit-normal u and shifts it: same noise stream, every time moved up.
    for model in (plain, shifted):
        model.times = []
        model.loss(ctx, torch.zeros(4, 4, 3, SIZE, SIZE), torch.zeros(4, 4, 7), torch.Generator().manual_seed(7))
    u = torch.tensor(plain.times, dtype=torch.float64)
    assert shifted.times == pytest.approx((3 * u / (1 + 2 * u)).tolist())
    assert all(s > p for s, p in zip(shifted.times, plain.times, strict=True))


def test_the_x0_loss_is_the_clean_sample_error() -> None:
    # A network that outputs zeros: its x0 loss is the mean square of the residual target, exactly.
    model = _as(_Recorder, residual=True, objective="x0")
    model.seen = []
    ctx = torch.rand(2, 2, 3, SIZE, SIZE) * 2 - 1
    target = torch.rand(2, 4, 3, SIZE, SIZE) * 2 - 1
    loss = model.loss(ctx, target, torch.zeros(2, 4, 7), torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(float((target - ctx[:, -1:]).pow(2).mean()), rel=1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"objective": "sample"}, "unknown objective"),
        ({"attention_levels": (False,)}, "one entry per"),
        ({"image_size": 17}, "divisible by 2"),
        ({"predict_frames": 0}, ">= 1"),
        ({"time_shift": 0.5}, "time_shift must be >= 1"),
    ],
)
def test_bad_configs_are_refused(overrides: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"task": "lift", "block_out_channels": (8, 8), "attention_levels": (False, False)}
    values.update(overrides)
    with pytest.raises(ValueError, match=message):
        WorldModelConfig(**values).check()  # type: ignore[arg-type]


def test_save_and_load_round_trip_and_clear_errors(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "export")
    loaded = WorldModel.from_pretrained(tmp_path / "export")
    assert loaded.cfg == model.cfg
    np.testing.assert_array_equal(loaded.action_stats.low, model.action_stats.low)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with pytest.raises(WorldModelLoadError, match="not a world-model export"):
        WorldModel.from_pretrained(tmp_path)
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    del config["normalisation"]
    (tmp_path / "export" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorldModelLoadError, match="missing normalisation statistics"):
        WorldModel.from_pretrained(tmp_path / "export")


def test_an_export_from_before_the_time_shift_loads_unshifted(tmp_path: Path) -> None:
    # Exports written before ``time_shift`` existed were trained and sampled without a shift.
    model = _model(time_shift=3.0)
    model.save_pretrained(tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["time_shift"] == 3.0
    del config["time_shift"]
    (tmp_path / "export" / "config.json").write_text(json.dumps(config))
    assert WorldModel.from_pretrained(tmp_path / "export").cfg.time_shift == 1.0


def test_audit_windows_need_the_whole_horizon() -> None:
    episodes = [_episode(20, 0), _episode(9, 1)]
    # 2 chunks of 4 frames need 8 recorded successors: start 0 fits both, start 10 only the first.
    assert audit_windows(episodes, [0, 10, 12], 2, 4, 2) == [(0, 0), (0, 10), (1, 0)]


def test_audit_compares_methods_on_the_same_windows() -> None:
    model = _model()
    episodes = [_episode(20, 0), _episode(20, 1), _episode(6, 2)]
    result = run_audit(model, episodes, horizons=(1, 2), starts=(0, 4), batch_size=3, seed=0)
    assert result.windows == 4  # the 6-step episode is too short for 2 chunks of 4
    assert set(result.table) == {"model", "copy_last", "action_shuffle"}
    for rows in result.table.values():
        assert set(rows) == {1, 2} and all(r["windows"] == 4 for r in rows.values())
    # Copy-last is a pure function of the data: recompute it at horizon 1 over the 4 windows.
    expected = []
    for e, s in [(0, 0), (0, 4), (1, 0), (1, 4)]:
        real = to_unit(episodes[e].frames[s + 1 : s + 5])
        expected.append(float(psnr(to_unit(episodes[e].frames[[s]]).expand_as(real), real).mean()))
    assert result.table["copy_last"][1]["psnr"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert result.video["real"].shape == (9, SIZE, SIZE, 3)
    np.testing.assert_array_equal(result.video["real"][1:5], episodes[0].frames[1:5])
    again = run_audit(model, episodes, horizons=(1, 2), starts=(0, 4), batch_size=3, seed=0)
    assert again.table == result.table
    assert result.side_by_side().shape == (9, SIZE, 3 * SIZE + 4, 3)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        run_audit(model, episodes[:1], horizons=(1,), starts=(0,))


def _latent_model() -> WorldModel:
    # 16 px frames -> 8 x 8 latents of 4 channels (two autoencoder levels), a two-level UNet on them.
    return _model(latent_channels=4, autoencoder_channels=(8, 8))


def test_a_latent_model_takes_and_returns_pixels_and_trains_only_its_unet() -> None:
    model = _latent_model().train()
    assert model.cfg.sample_size == SIZE // 2 and model.cfg.channels == 4
    ctx = torch.rand(2, 2, 3, SIZE, SIZE) * 2 - 1
    tgt = torch.rand(2, 4, 3, SIZE, SIZE) * 2 - 1
    actions = torch.rand(2, 4, 7) * 2 - 1
    assert model.encode(tgt).shape == (2, 4, 4, SIZE // 2, SIZE // 2)
    model.loss(ctx, tgt, actions, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in model.autoencoder.parameters())  # frozen while the UNet trains
    assert all(p.grad is not None for p in model.unet.parameters())
    frames = model.eval().predict(ctx, actions, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (2, 4, 3, SIZE, SIZE) and float(frames.abs().max()) <= 1.0


def test_the_autoencoder_phase_trains_only_the_autoencoder_and_fixes_a_unit_latent_scale() -> None:
    model = _latent_model().train()
    frames = torch.rand(3, 5, 3, SIZE, SIZE) * 2 - 1
    loss, mse = model.autoencoder_loss(frames, 1e-6, torch.Generator().manual_seed(0))
    loss.backward()
    assert float(loss.detach()) >= float(mse.detach()) > 0
    assert all(p.grad is not None for p in model.autoencoder.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.unet.parameters())
    scale = model.set_latent_scale(frames)
    assert float(model.latent_scale) == scale
    assert float(model.encode(frames).std()) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ValueError, match="no autoencoder"):
        _model().autoencoder_loss(frames, 1e-6)


def test_a_latent_export_round_trips_with_its_latent_scale(tmp_path: Path) -> None:
    model = _latent_model()
    model.set_latent_scale(torch.rand(2, 3, 3, SIZE, SIZE) * 2 - 1)
    model.save_pretrained(tmp_path / "export")
    loaded = WorldModel.from_pretrained(tmp_path / "export")
    assert loaded.cfg == model.cfg and float(loaded.latent_scale) == float(model.latent_scale)
    ctx = torch.rand(1, 2, 3, SIZE, SIZE) * 2 - 1
    actions = torch.zeros(1, 4, 7)
    one = model.predict(ctx, actions, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, loaded.predict(ctx, actions, generator=torch.Generator().manual_seed(1)))


def test_a_latent_model_needs_frames_that_halve_through_both_networks() -> None:
    cfg = WorldModelConfig(
        task="lift", image_size=20, latent_channels=4, autoencoder_channels=(8, 8, 8),
        block_out_channels=(8, 8), attention_levels=(False, False),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"divisible by 8 \(one halving per autoencoder level"):
        cfg.check()
    with pytest.raises(ValueError, match="latent_channels must be >= 0"):
        WorldModelConfig(task="lift", latent_channels=-1).check()


def test_the_ema_decay_ramps_from_the_averaged_networks_first_step() -> None:
    # Until the averaged network has taken a step the average is a copy; then (1 + n) / (10 + n)
    # up to the ceiling (a pixel model's first step gives 2 / 11, as before the latent phases).
    assert [ema_decay(n, 0.999) for n in (-5, 0)] == [0.0, 0.0]
    assert ema_decay(1, 0.999) == pytest.approx(2 / 11)
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(10_000, 0.999) == 0.999
