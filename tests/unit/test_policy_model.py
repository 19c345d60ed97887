"""The VLA: preprocessing, chunk targets, acting, re-scoring, sampling and save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.policy.config import VLAConfig
from wmpo_cli.models.policy.data import chunk_targets
from wmpo_cli.models.policy.images import augment, preprocess
from wmpo_cli.models.policy.training import warmup_cosine
from wmpo_cli.models.policy.vla import PolicyLoadError, VLAPolicy, median_tokens


def _policy(**overrides: object) -> VLAPolicy:
    torch.manual_seed(0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(500, 7))
    cfg = VLAConfig(
        task="lift", instruction="pick up the cube", image_size=32, hidden_size=32, layers=1, heads=2, **overrides
    )
    return VLAPolicy(cfg, ActionTokenizer.fit(actions))


def _obs(batch: int = 3, size: int = 32) -> dict[str, np.ndarray]:
    return {"agentview_image": np.random.default_rng(1).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)}


def test_chunk_targets_shift_and_hold_after_the_end() -> None:
    actions = np.arange(3 * 2, dtype=np.float64).reshape(3, 2)  # gripper is the last dim
    out = chunk_targets(actions, 3)
    assert out.shape == (3, 3, 2)
    np.testing.assert_array_equal(out[0], [[0, 1], [2, 3], [4, 5]])
    # After the last step: the arm holds still (0) and the gripper keeps its last command (5).
    np.testing.assert_array_equal(out[2], [[4, 5], [0, 5], [0, 5]])


def test_warmup_cosine_schedule_values() -> None:
    assert warmup_cosine(0, 4, 104) == pytest.approx(0.25)  # never 0 at the first step
    assert warmup_cosine(3, 4, 104) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 104) == pytest.approx(1.0)
    assert warmup_cosine(54, 4, 104) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(104, 4, 104) == pytest.approx(0.1)
    assert warmup_cosine(500, 4, 104) == pytest.approx(0.1)


def test_preprocess_without_crop_is_the_identity_in_minus_one_one() -> None:
    frames = torch.from_numpy(_obs(2)["agentview_image"])
    out = preprocess(frames, 32, crop_scale=1.0)
    expected = frames.permute(0, 3, 1, 2).float() / 255.0 * 2 - 1
    assert out.shape == (2, 3, 32, 32)
    assert torch.allclose(out, expected, atol=1e-5)


def test_centre_crop_zooms_in_and_augment_is_seeded() -> None:
    frame = torch.zeros(1, 40, 40, 3, dtype=torch.uint8)
    frame[:, :1] = 255  # a white top row: the 0.81-area centre crop (2 px margins) cuts it away
    assert preprocess(frame, 40, crop_scale=0.81).max() == -1.0
    frames = torch.from_numpy(_obs(4)["agentview_image"])
    a = augment(frames, 32, 0.9, torch.Generator().manual_seed(5))
    b = augment(frames, 32, 0.9, torch.Generator().manual_seed(5))
    c = augment(frames, 32, 0.9, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1.0 and a.max() <= 1.0


def test_act_is_argmax_and_log_prob_rescoring_matches() -> None:
    policy = _policy()
    obs = _obs()
    out = policy.act(obs)
    assert out.actions.shape == (3, 8, 7) and out.tokens.shape == (3, 56) and out.log_prob.shape == (3, 56)
    logits = policy.logits(policy.prepare(obs))
    assert torch.equal(out.tokens, logits.argmax(-1))
    rescored = policy.log_prob(obs, out.tokens)
    assert rescored.requires_grad
    assert torch.allclose(rescored, out.log_prob, atol=1e-5)
    # Actions are the bin centres of the tokens, in environment units.
    np.testing.assert_allclose(out.actions, policy.tokenizer.decode(out.tokens.numpy().reshape(3, 8, 7)))
    rescored.sum().backward()
    assert policy.head.weight.grad is not None


def test_median_tokens_are_the_bins_where_the_cumulative_mass_reaches_one_half() -> None:
    probs = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4],  # cumulative 0.1 0.3 0.6 1.0: the median is bin 2, the argmax bin 3
            [0.45, 0.0, 0.0, 0.55],  # a two-valued dimension: the heavier side, as the argmax
            [0.55, 0.0, 0.0, 0.45],
            [0.3, 0.0, 0.4, 0.3],  # cumulative 0.3 0.3 0.7 1.0
        ]
    )
    logits = torch.log(probs.clamp_min(1e-12))
    assert median_tokens(logits).tolist() == [2, 3, 0, 2]
    assert logits.argmax(-1).tolist() == [3, 3, 0, 2]
    assert median_tokens(logits.view(2, 2, 4)).shape == (2, 2)


def test_median_decoding_acts_on_the_median_tokens_and_scores_them() -> None:
    policy = _policy()
    obs = _obs()
    out = policy.act(obs, decoding="median")
    logits = policy.logits(policy.prepare(obs))
    assert torch.equal(out.tokens, median_tokens(logits))
    assert not torch.equal(out.tokens, logits.argmax(-1))  # an untrained policy's tokens differ
    assert torch.allclose(policy.log_prob(obs, out.tokens), out.log_prob, atol=1e-5)
    np.testing.assert_allclose(out.actions, policy.tokenizer.decode(out.tokens.numpy().reshape(3, 8, 7)))
    with pytest.raises(ValueError, match="decoding must be one of argmax, median, got 'mean'"):
        policy.act(obs, decoding="mean")


def test_sampling_is_seeded_and_uses_the_temperature() -> None:
    policy = _policy()
    obs = _obs(2)
    a = policy.act(obs, greedy=False, temperature=1.6, generator=torch.Generator().manual_seed(3))
    b = policy.act(obs, greedy=False, temperature=1.6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens)
    hot = policy.log_prob(obs, a.tokens, temperature=1.6)
    assert torch.allclose(hot, a.log_prob, atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        policy.act(obs, greedy=False, temperature=0.0)


def test_batch_norm_stays_frozen_in_training_mode() -> None:
    policy = _policy()
    policy.train()
    norms = [m for m in policy.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms)
    obs = _obs(2)
    train_mode = policy.logits(policy.prepare(obs))
    policy.eval()
    assert torch.allclose(train_mode, policy.logits(policy.prepare(obs)), atol=1e-5)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    policy = _policy()
    policy.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = VLAPolicy.from_pretrained(tmp_path)
    obs = _obs()
    assert torch.equal(loaded.act(obs).tokens, policy.act(obs).tokens)
    assert loaded.cfg == policy.cfg and loaded.cfg.pretrained_encoder
    data = json.loads((tmp_path / "config.json").read_text())
    np.testing.assert_allclose(data["normalisation"]["actions"]["low"], policy.tokenizer.low)


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    policy = _policy()
    policy.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    del data["normalisation"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(PolicyLoadError, match="missing normalisation statistics") as info:
        VLAPolicy.from_pretrained(tmp_path)
    assert "\n" not in str(info.value)
    data["normalisation"] = {"actions": policy.tokenizer.to_dict()}
    data["hidden_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(PolicyLoadError, match="weights do not fit the config"):
        VLAPolicy.from_pretrained(tmp_path)
    with pytest.raises(PolicyLoadError, match="not a policy export"):
        VLAPolicy.from_pretrained(tmp_path / "nowhere")


def test_vit_encoder_option() -> None:
    policy = _policy(encoder="vit", vit_patch=8, vit_layers=1, vit_hidden=64)
    assert policy.visual_pos.shape == (1, (32 // 8) ** 2, 32)
    out = policy.act(_obs(2))
    assert out.tokens.shape == (2, 56)


def test_efficientnet_block_ten_gives_a_stride_sixteen_grid() -> None:
    policy = _policy()
    assert policy.visual_pos.shape == (1, math.ceil(32 / 16) ** 2, 32)


PROPRIO_KEYS = ("robot0_eef_pos", "robot0_gripper_qpos")


def _proprio_policy() -> VLAPolicy:
    from wmpo_cli.models.policy.vla import ProprioStats

    torch.manual_seed(0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(500, 7))
    cfg = VLAConfig(
        task="lift",
        instruction="pick up the cube",
        image_size=32,
        hidden_size=32,
        layers=1,
        heads=2,
        proprio_keys=PROPRIO_KEYS,
        proprio_dim=5,
    )
    stats = ProprioStats(np.array([0.1, -0.2, 0.9, 0.02, -0.02]), np.array([0.1, 0.2, 0.05, 0.01, 0.01]))
    return VLAPolicy(cfg, ActionTokenizer.fit(actions), stats).eval()


def _proprio_obs(batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    obs = _obs(batch)
    obs["robot0_eef_pos"] = rng.normal(size=(batch, 3))
    obs["robot0_gripper_qpos"] = rng.normal(size=(batch, 2)) * 0.01
    return obs


def test_proprio_is_standardised_the_same_from_arrays_and_from_tensors() -> None:
    # Acting passes numpy observations; training passes the collated batch as tensors.
    policy = _proprio_policy()
    obs = _proprio_obs()
    from_arrays = policy.prepare(obs)["proprio"]
    from_tensors = policy.prepare({k: torch.from_numpy(v) for k, v in obs.items()})["proprio"]
    raw = np.concatenate([obs["robot0_eef_pos"], obs["robot0_gripper_qpos"]], axis=1)
    expected = (raw - policy.proprio.mean) / policy.proprio.std
    assert from_arrays.dtype == torch.float32 and from_arrays.shape == (3, 5)
    np.testing.assert_allclose(from_arrays.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(from_arrays, from_tensors)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_proprio_batches_already_on_the_gpu_give_the_cpu_logits() -> None:
    # Lightning moves training batches to the GPU before prepare() sees them.
    policy = _proprio_policy()
    obs = _proprio_obs()
    with torch.no_grad():
        on_cpu = policy.logits(policy.prepare(obs))
        gpu_policy = policy.cuda()
        batch = {k: torch.from_numpy(v).cuda() for k, v in obs.items()}
        on_gpu = gpu_policy.logits(gpu_policy.prepare(batch)).cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=1e-3)


def _state_episodes() -> list:
    from wmpo_cli.models.policy.data import EpisodeArrays

    rng = np.random.default_rng(3)
    episodes = []
    for length in (4, 6):
        states = np.zeros((length, 5))
        states[:, 0] = np.arange(length) * 0.05  # time: never a target
        states[:, 1] = rng.normal(size=length)
        states[:, 2] = 0.8  # constant: never a target
        states[:, 3:] = rng.normal(size=(length, 2))
        episodes.append(
            EpisodeArrays(
                frames={"agentview": rng.integers(0, 256, (length, 32, 32, 3), dtype=np.uint8)},
                actions=rng.uniform(-1, 1, size=(length, 7)),
                states=states,
            )
        )
    return episodes


def test_chunk_dataset_holds_the_standardised_state_each_frame_shows() -> None:
    from wmpo_cli.models.policy.data import ChunkDataset
    from wmpo_cli.models.state_targets import StateTargets

    episodes = _state_episodes()
    targets = StateTargets.fit(episodes)
    np.testing.assert_array_equal(targets.columns, [1, 3, 4])
    tokenizer = ActionTokenizer.fit(np.concatenate([e.actions for e in episodes]))
    dataset = ChunkDataset(episodes, ["agentview"], tokenizer, 8, state_targets=targets)
    stacked = np.concatenate([e.states for e in episodes])[:, [1, 3, 4]]
    expected = (stacked - stacked.mean(0)) / stacked.std(0)
    assert len(dataset) == 10 and dataset[7]["state"].shape == (3,)
    np.testing.assert_allclose(dataset[7]["state"].numpy(), expected[7], rtol=1e-5, atol=1e-6)
    # Batched states standardise row by row, as one at a time.
    np.testing.assert_array_equal(targets(episodes[1].states)[2], targets(episodes[1].states[2]))
    # Without targets no item carries a state; with them every episode needs its states.
    assert "state" not in ChunkDataset(episodes, ["agentview"], tokenizer, 8)[0]
    episodes[1].states = None
    with pytest.raises(ValueError, match="states of every episode"):
        ChunkDataset(episodes, ["agentview"], tokenizer, 8, state_targets=targets)


def test_the_policy_state_head_adds_its_weighted_loss_and_stays_out_of_the_export(tmp_path: Path) -> None:
    import torch.nn.functional as F

    from wmpo_cli.models.policy.training import ImitationModule, OptimSettings

    policy = _policy()
    optim = OptimSettings(lr=1e-3, encoder_lr=1e-4, weight_decay=0.0, warmup_steps=1, max_steps=10, seed=0)
    module = ImitationModule(policy, optim, state_width=3, state_weight=2.5)
    # One linear map per visual token and hidden unit: 4 tokens (32 px, stride 16) x 32.
    assert module.state_head is not None and module.state_head.in_features == 4 * 32
    logged: dict[str, torch.Tensor] = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, value)  # type: ignore[method-assign]
    module.optimizers = lambda: torch.optim.SGD(module.parameters(), lr=0.1)  # type: ignore[method-assign]
    rng = np.random.default_rng(4)
    batch = {
        "agentview_image": torch.from_numpy(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)),
        "tokens": torch.from_numpy(rng.integers(0, 256, (2, 56))),
        "state": torch.from_numpy(rng.normal(size=(2, 3)).astype(np.float32)),
    }
    module.eval()  # no dropout: the recomputation below sees the same network
    loss = module.training_step(batch, 0)
    inputs = policy.prepare(batch, train=True, generator=module._generator())
    logits, visual = policy.logits_and_visual(inputs)
    assert visual.shape == (2, 4, 32)
    ce = F.cross_entropy(logits.flatten(0, 1), batch["tokens"].flatten())
    state = F.smooth_l1_loss(module.state_head(visual.flatten(1)), batch["state"])
    assert float(logged["train/loss"].detach()) == pytest.approx(float(ce), rel=1e-5)
    assert float(logged["train/state_loss"].detach()) == pytest.approx(float(state), rel=1e-5)
    assert float(loss) == pytest.approx(float(ce + 2.5 * state), rel=1e-5)
    # The head trains with the policy (the optimiser sees it) but is not part of the export.
    optimizer = module.configure_optimizers()["optimizer"]
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in module.state_head.parameters())
    policy.save_pretrained(tmp_path)
    loaded = VLAPolicy.from_pretrained(tmp_path)
    assert not any("state_head" in name for name in loaded.state_dict())
    assert set(loaded.state_dict()) == set(policy.state_dict())
