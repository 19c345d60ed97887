"""The reward model on a tiny VideoMAE: scoring, finish steps, export round trip, clip data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wmpo_cli.models.policy.images import augment
from wmpo_cli.models.reward_model import RewardModel, RewardModelConfig, RewardModelLoadError
from wmpo_cli.models.reward_model.data import ClipDataset, LabelledEpisode

TINY = {"patch_size": 16, "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}


def _model(**kw: object) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel(RewardModelConfig(task="lift", image_size=32, clip_frames=4, **{**TINY, **kw}))  # type: ignore[arg-type]


def _frames(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (length, 32, 32, 3), dtype=np.uint8)


def _set_classifier(model: RewardModel, bias: float) -> None:
    with torch.no_grad():
        model.backbone.classifier.weight.zero_()
        model.backbone.classifier.bias.fill_(bias)


def test_score_has_one_probability_per_window_and_batches_do_not_change_it() -> None:
    model = _model()
    episodes = [_frames(10, 1), _frames(3, 2), _frames(4, 3)]
    together = model.score_many(episodes, batch_size=5)
    assert [len(s) for s in together] == [7, 1, 1]
    for frames, scores in zip(episodes, together, strict=True):
        alone = model.score(frames, batch_size=2)
        np.testing.assert_allclose(alone, scores, rtol=1e-5, atol=1e-6)
        assert ((scores > 0) & (scores < 1)).all()
    assert model.score_many([]) == []


def test_first_success_edge_cases() -> None:
    model = _model()
    frames = _frames(10)
    _set_classifier(model, 8.0)  # every window is a success: the first one, ending at step 3
    assert model.first_success(frames) == 3
    assert model.first_success(_frames(2)) == 1  # a padded single window ends at the last step
    _set_classifier(model, -8.0)  # no window is
    assert model.first_success(frames) is None
    assert model.first_success_many([frames, _frames(6)]) == [None, None]
    # The threshold is the model's calibrated one unless given.
    _set_classifier(model, 0.0)  # p = 0.5 everywhere
    assert model.first_success(frames) == 3  # threshold 0.5 counts
    assert model.first_success(frames, threshold=0.6) is None


def test_the_logit_offset_restores_the_base_rate() -> None:
    from dataclasses import replace

    model = _model()
    _set_classifier(model, 0.0)  # even odds, as balanced batches teach
    model.cfg = replace(model.cfg, logit_offset=float(np.log(1 / 3)))  # 1 success window in 4
    np.testing.assert_allclose(model.score(_frames(6)), 0.25, rtol=1e-6)


def test_export_round_trip_keeps_scores_and_threshold(tmp_path: Path) -> None:
    model = _model()
    model.cfg = model.cfg.with_threshold(0.62, 0.95)
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.cfg == model.cfg and loaded.cfg.threshold == 0.62
    frames = _frames(9)
    np.testing.assert_array_equal(loaded.score(frames), model.eval().score(frames))
    data = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert data["format"] == "wmpo.reward_model/1" and data["videomae"]["num_frames"] == 4


def test_bad_exports_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(RewardModelLoadError, match="not a reward-model export"):
        RewardModel.from_pretrained(tmp_path)
    _model().save_pretrained(tmp_path / "rm")
    config = tmp_path / "rm" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "format": "wmpo.world_model/1"}))
    with pytest.raises(RewardModelLoadError, match="not a wmpo reward-model config"):
        RewardModel.from_pretrained(tmp_path / "rm")
    data["videomae"]["hidden_size"] = 64
    data["videomae"]["intermediate_size"] = 128
    config.write_text(json.dumps(data))
    with pytest.raises(RewardModelLoadError, match="weights do not fit") as info:
        RewardModel.from_pretrained(tmp_path / "rm")
    assert "\n" not in str(info.value)


def test_clip_augmentation_is_shared_within_a_clip() -> None:
    frame = _frames(1)
    clips = torch.from_numpy(np.repeat(frame, 8, axis=0))  # two clips of 4 identical frames
    out = augment(clips, 32, 0.8, torch.Generator().manual_seed(0), group=4)
    assert torch.equal(out[0], out[3]) and torch.equal(out[4], out[7])
    assert not torch.equal(out[0], out[4])  # different clips, different crops
    with pytest.raises(ValueError, match="groups of 3"):
        augment(clips, 32, 0.8, None, group=3)


def test_clip_dataset_labels_and_balanced_weights() -> None:
    success = np.zeros(8, dtype=bool)
    success[6:] = True
    episodes = [LabelledEpisode(_frames(8), success), LabelledEpisode(_frames(5), np.zeros(5, dtype=bool))]
    data = ClipDataset(episodes, clip_frames=4, stride=1)
    # Windows end at 3..7 in the first episode and 3..4 in the second.
    assert data.index.tolist() == [[0, 3], [0, 4], [0, 5], [0, 6], [0, 7], [1, 3], [1, 4]]
    assert data.labels.tolist() == [False, False, False, True, True, False, False]
    weights = data.balanced_weights()
    assert weights[data.labels].sum() == pytest.approx(0.5) and weights[~data.labels].sum() == pytest.approx(0.5)
    item = data[3]
    assert item["clip"].shape == (4, 32, 32, 3) and item["clip"].dtype == torch.uint8 and item["label"] == 1.0
    np.testing.assert_array_equal(item["clip"].numpy(), episodes[0].frames[3:7])


def test_training_frames_must_share_one_size() -> None:
    from wmpo_cli.errors import UsageError
    from wmpo_cli.pipeline.frame_sizes import one_frame_size

    assert one_frame_size([("a", (3, 64, 64, 3)), ("b", (5, 64, 64, 3))]) == 64
    with pytest.raises(UsageError, match="a has 64x64, b has 84x84"):
        one_frame_size([("a", (3, 64, 64, 3)), ("b", (3, 84, 84, 3)), ("c", (3, 64, 64, 3))])


def test_automatic_patches_cut_at_least_an_8_by_8_grid() -> None:
    from wmpo_cli.pipeline.fit_reward_model import auto_patch_size

    sizes = {16: 2, 32: 4, 64: 8, 84: 7, 96: 12, 128: 16, 100: 10, 17: 1}
    assert {size: auto_patch_size(size) for size in sizes} == sizes


def test_features_then_head_are_exactly_the_videomae_classifier() -> None:
    model = _model().eval()
    clips = torch.from_numpy(np.stack([_frames(4, 5), _frames(4, 6)]))
    pixels = model.prepare(clips)
    with torch.no_grad():
        reference = model.backbone(pixel_values=pixels).logits.squeeze(-1)
        features = model.features(pixels)
        assert features.shape == (2, 32) and model.feature_size == 32
        torch.testing.assert_close(model.head(features), reference, rtol=0, atol=0)
        torch.testing.assert_close(model(pixels), reference, rtol=0, atol=0)


def _states(length: int) -> np.ndarray:
    # Columns: time (varies, always dropped), a constant, a ramp 0..T-1, and a ramp scaled by 10.
    t = np.arange(length, dtype=np.float32)
    return np.stack([t * 0.05, np.full(length, 3.0, dtype=np.float32), t, 10 * t], axis=1)


def test_state_targets_drop_time_and_constant_columns_and_standardise() -> None:
    from wmpo_cli.models.state_targets import StateTargets

    success = np.zeros(5, dtype=bool)
    episodes = [LabelledEpisode(_frames(5), success, states=_states(5))]
    targets = StateTargets.fit(episodes)
    assert targets.columns.tolist() == [2, 3] and targets.width == 2
    # The ramp 0..4 has mean 2 and (population) std sqrt(2).
    np.testing.assert_allclose(targets.mean, [2.0, 20.0])
    np.testing.assert_allclose(targets.std, [np.sqrt(2.0), 10 * np.sqrt(2.0)], rtol=1e-6)
    np.testing.assert_allclose(targets(_states(5)[4]), [2 / np.sqrt(2.0)] * 2, rtol=1e-6)
    data = ClipDataset(episodes, clip_frames=2, stride=2, state_targets=targets)
    # Windows (clips of frames t-2, t) end at steps 2, 3, 4; the target is the state at the end.
    assert data.index[:, 1].tolist() == [2, 3, 4]
    np.testing.assert_allclose(data[0]["state"].numpy(), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(data[2]["state"].numpy(), [np.sqrt(2.0)] * 2, rtol=1e-6)
    assert "state" not in ClipDataset(episodes, clip_frames=2, stride=2)[0]


def test_state_targets_refuse_missing_mixed_or_constant_states() -> None:
    from wmpo_cli.models.state_targets import StateTargets

    success = np.zeros(5, dtype=bool)
    good = LabelledEpisode(_frames(5), success, states=_states(5))
    with pytest.raises(ValueError, match="one width"):
        StateTargets.fit([good, LabelledEpisode(_frames(5), success, states=_states(5)[:, :3])])
    with pytest.raises(ValueError, match="no state column varies"):
        StateTargets.fit([LabelledEpisode(_frames(5), success, states=_states(5)[:, :2])])
    with pytest.raises(ValueError, match="states of every episode"):
        ClipDataset([good, LabelledEpisode(_frames(5), success)], 2, 1, StateTargets.fit([good]))
    with pytest.raises(ValueError, match="states of shape"):
        LabelledEpisode(_frames(5), success, states=_states(4))


def test_the_state_head_trains_with_the_classifier_but_stays_out_of_the_export(tmp_path: Path) -> None:
    from wmpo_cli.models.reward_model.training import RewardModelModule, RewardModelOptim

    model = _model()
    module = RewardModelModule(model, RewardModelOptim(1e-3, 0.0, 1, 10, 1.0, 0), state_width=3, state_weight=0.5)
    assert module.state_head is not None and module.state_head.in_features == 32
    head_params = {id(p) for p in module.state_head.parameters()}
    optimizer = module.configure_optimizers()["optimizer"]
    assert head_params <= {id(p) for group in optimizer.param_groups for p in group["params"]}
    batch = {
        "clip": torch.from_numpy(np.stack([_frames(4, 1), _frames(4, 2)])),
        "label": torch.tensor([1.0, 0.0]),
        "state": torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]]),
    }
    module.log = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
    module.optimizers = lambda: optimizer  # type: ignore[method-assign]
    loss = module.training_step(batch, 0)
    # The loss is the success BCE plus half the state Huber loss, on the same augmented pixels.
    pixels = model.prepare(batch["clip"], module._generator(0), train=True)
    features = model.features(pixels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(model.head(features), batch["label"])
    expected = expected + 0.5 * torch.nn.functional.smooth_l1_loss(module.state_head(features), batch["state"])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert module.state_head.weight.grad is not None and module.state_head.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "export")
    from safetensors.torch import load_file

    assert not any("state_head" in k for k in load_file(tmp_path / "export" / "model.safetensors"))
