"""One frozen dataclass per stage: the complete, typed description of what a stage run does.

A resolved config is written to ``config.json`` beside the stage's output and hashed into the
manifest, so two runs with equal configs produce the same artifact id. Fields listed in a
config's ``EXECUTION_ONLY`` tuple change how fast a run goes, never what it writes (for example
the number of worker processes), so they are left out of the hash and of resume checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class CollectConfig:
    """`wmpo collect`: scripted-expert demonstrations for one task/variant/scenario."""

    task: str = "lift"
    variant: str = "D0"
    scenario: str = "default"
    # "expert" (scripted), "mimicgen" (generated from the demos in source_path), or "policy"
    # (the rollouts of --policy: the real budget P that later stages learn from).
    source: str = "expert"
    # --from: source demos for "mimicgen" (an episodes artifact dir or any robomimic-layout HDF5).
    source_path: str = ""
    # --source expert: which of the task's experts ("scripted", or e.g. stack_three's "reactive").
    expert: str = "scripted"
    episodes: int = 50
    seed: int = 0
    # 0 = one worker process per CPU core.
    workers: int = 0
    image_size: int = 84
    # Cameras rendered into obs/<camera>_image; an empty list gives a low-dim (state-only) dataset.
    cameras: tuple[str, ...] = ("agentview",)
    # Std of Gaussian noise on the 6 arm action dims; > 0 produces labelled failures on purpose.
    expert_noise: float = 0.0
    successes_only: bool = False
    # With --successes-only: give up after this many attempts (0 = 10 x episodes).
    max_attempts: int = 0
    # 0 = the task's collection horizon from the registry.
    horizon: int = 0
    # An expert episode ends once this many consecutive frames show success (so the frames show
    # it); a policy rollout records this many entries from its first success on.
    hold_steps: int = 10
    valid_fraction: float = 0.1
    # gzip level for image datasets (0 = uncompressed); robomimic readers accept any level.
    compression: int = 4
    # Frames that come back blank or garbled from the offscreen renderer are re-rendered up to this often.
    render_retries: int = 3
    # --init-states N: write a fixed set of N initial states (no episodes) instead of demos.
    init_states: int = 0
    # --init-state-set PATH: start episode i from state i mod N of a set instead of a seeded reset.
    init_state_set: str = ""
    # MimicGen generation: action noise std on the arm dims and interpolation poses per segment.
    generation_noise: float = 0.05
    interpolation_steps: int = 5
    # --source policy: the policy artifact, its sampling temperature (WMPO samples RL rollouts at
    # 1.6; 0 = greedy), zero-action warm-up steps and the step limit (0 = the task's max_steps).
    policy: str = ""
    temperature: float = 1.6
    warmup_steps: int = 10
    max_steps: int = 0
    # --source policy: record frames at this size (0 = the policy's own size, what it sees); the
    # policy still acts on native frames of its size (e.g. 128 px episodes for a reward model
    # from a 64 px policy).
    record_size: int = 0
    # --source policy: run a policy trained for another task (refused by default).
    allow_task_mismatch: bool = False
    # --source policy at --temperature 0: how the greedy policy picks each token (see EvalConfig).
    decoding: str = "argmax"

    STAGE: ClassVar[str] = "collect"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("workers",)


@dataclass(frozen=True)
class FitPolicyConfig:
    """`wmpo fit-policy`: imitation learning of the VLA on an episodes artifact."""

    task: str = "lift"
    # The episodes artifact to learn from ("" = <run>/demos); its successful train episodes are used.
    demos: str = ""
    # Architecture (see wmpo_cli.models.policy.config.VLAConfig for each field).
    encoder: str = "efficientnet_lite0"
    pretrained_encoder: bool = True
    encoder_block: int = 10
    # 0 = the demos' frame size.
    image_size: int = 0
    cameras: tuple[str, ...] = ("agentview",)
    proprio_keys: tuple[str, ...] = ()
    chunk: int = 8
    bins: int = 256
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    vit_patch: int = 8
    vit_layers: int = 4
    vit_hidden: int = 192
    crop_scale: float = 0.9
    text_tokens: int = 8
    # Weight of an auxiliary loss: regress the standardised simulator state (object poses included)
    # from the visual tokens, so the encoder learns where the objects are instead of the demos'
    # average path. 0 = off. Training only: the export and acting are unchanged.
    state_loss_weight: float = 0.0
    # Optimisation: AdamW, linear warm-up then cosine decay to 10 %; the pretrained encoder gets
    # encoder_lr (a smaller step keeps its ImageNet features).
    batch_size: int = 32
    max_steps: int = 4000
    lr: float = 3e-4
    encoder_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    # Validation (token accuracy, action L1) on the held-out episodes every val_every steps.
    val_every: int = 500
    val_frames: int = 1024
    checkpoint_every: int = 500
    log_every: int = 25
    # Lightning: "auto" picks the GPU when there is one; precision "auto" = bf16-mixed on GPUs
    # that support it, 32-true elsewhere (bf16 autocast is slower than fp32 on most CPUs).
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    seed: int = 0

    STAGE: ClassVar[str] = "fit-policy"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("num_workers", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class EvalConfig:
    """`wmpo eval`: success rate of a policy in the simulator, with episodes and videos."""

    # The policy artifact ("" = <run>/policy).
    policy: str = ""
    # "" = the task the policy was trained on.
    task: str = ""
    variant: str = "D0"
    scenario: str = "default"
    episodes: int = 100
    seed: int = 0
    # 0 = one worker process per CPU core.
    workers: int = 0
    # 0 = greedy (argmax per token), as the paper evaluates; > 0 samples at that temperature.
    temperature: float = 0.0
    warmup_steps: int = 10
    # 0 = the task's max_steps (WMPO's evaluation limit).
    max_steps: int = 0
    init_state_set: str = ""
    # The first N episodes are also written as videos.
    videos: int = 4
    allow_task_mismatch: bool = False
    compression: int = 4
    # Record frames (episodes, videos) at this size; 0 = the policy's own size. The policy always
    # acts on native frames of its size, so success rates do not depend on it.
    record_size: int = 0
    # Entries recorded from the first success on: 1 = stop there (WMPO's protocol); e.g. 10 keeps
    # the success visible, as expert demos do, for episodes that later train a reward model.
    # Success rate and lengths count to the first success either way.
    hold_steps: int = 1
    # Greedy only: each action token is its distribution's "argmax" (the paper's protocol) or its
    # "median" bin, which keeps uncertain tokens in the bulk of the mass instead of on the
    # tallest spike (README, "Measured": what it does for stack_three).
    decoding: str = "argmax"

    STAGE: ClassVar[str] = "eval"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("workers",)


@dataclass(frozen=True)
class FitWorldModelConfig:
    """`wmpo fit-world-model`: the action-conditioned pixel world model on demos and rollouts."""

    task: str = "lift"
    # Episodes artifacts: expert demos ("" = <run>/demos) and the policy's real rollouts (the
    # budget P; none by default). Rollout episodes count into the budget ledger.
    demos: str = ""
    rollouts: tuple[str, ...] = ()
    camera: str = "agentview"
    # 0 = the demos' frame size.
    image_size: int = 0
    # Architecture (see wmpo_cli.models.world_model.config.WorldModelConfig for each field).
    context_frames: int = 4
    predict_frames: int = 8
    action_embed_dim: int = 8
    block_out_channels: tuple[int, ...] = (64, 128, 192, 256)
    layers_per_block: int = 1
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    # x0: measured +6 dB PSNR over velocity at 1 chunk for the tiny CPU model (README, Measured).
    objective: str = "x0"
    context_noise: float = 0.1
    context_noise_sample: float = 0.02
    sample_steps: int = 10
    # >= 1: noise levels moved towards pure noise in training and sampling (1 = none).
    time_shift: float = 1.0
    residual: bool = True
    # > 0: model the latents of an AutoencoderKL with this many channels (for 128-256 px frames),
    # trained on the same frames for the first autoencoder_steps of max_steps; 0 = pixel space.
    latent_channels: int = 0
    autoencoder_channels: tuple[int, ...] = (64, 128, 128)
    autoencoder_steps: int = 2000
    autoencoder_kl_weight: float = 1e-6
    # Optimisation: AdamW (WMPO: lr 1e-4, no weight decay), warm-up then cosine decay, EMA export.
    batch_size: int = 16
    max_steps: int = 4000
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # Rollout windows are drawn this many times as often as demo windows (policy-behaviour
    # alignment: the few real rollouts matter more than their share of the data).
    rollout_weight: float = 1.0
    # Validation on the held-out episodes: loss on val_windows windows, PSNR of one sampled chunk
    # on the first val_sample_batches batches.
    val_every: int = 500
    val_windows: int = 256
    val_sample_batches: int = 1
    checkpoint_every: int = 500
    log_every: int = 25
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    seed: int = 0

    STAGE: ClassVar[str] = "fit-world-model"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("num_workers", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class FitRewardModelConfig:
    """`wmpo fit-reward-model`: the video success classifier and its calibrated threshold."""

    task: str = "lift"
    # Labelled episodes artifacts to learn from ("" / none = <run>/demos): expert demos, noisy-expert
    # failures, policy rollouts. Each one's ``valid`` mask (or, when it has none, a seeded
    # ``valid_fraction`` of its episodes) is held out for validation and threshold calibration.
    # (`--episodes PATH`, repeatable.)
    sources: tuple[str, ...] = ()
    # Held-out artifacts used only for the final evaluation (episode precision/recall/F1 and
    # finish-step error in the manifest); none = report the validation split's numbers.
    test: tuple[str, ...] = ()
    valid_fraction: float = 0.1
    camera: str = "agentview"
    # 0 = the episodes' frame size.
    image_size: int = 0
    # Architecture (see wmpo_cli.models.reward_model.config.RewardModelConfig for each field).
    clip_frames: int = 8
    stride: int = 1
    crop_scale: float = 0.9
    # 0 = the largest patch giving at least an 8 x 8 grid (8 px at 64 px, 16 px at 128 px).
    patch_size: int = 0
    tubelet_size: int = 2
    hidden_size: int = 192
    layers: int = 4
    heads: int = 3
    intermediate_size: int = 768
    dropout: float = 0.0
    # A local VideoMAE directory to start from (e.g. a downloaded videomae-base); "" = from scratch.
    pretrained: str = ""
    # Weight of an auxiliary training loss: a linear head on the clip features regresses the
    # standardised simulator state (object poses included) at the clip's last frame, so the
    # features must locate the objects rather than learn shortcuts. 0 = off. Training only:
    # exports and scoring are unchanged.
    state_loss_weight: float = 0.0
    # The threshold reaches this episode-level precision on the validation split, at the best F1
    # there; 0 = the best-F1 threshold.
    target_precision: float = 0.95
    # Optimisation: AdamW, warm-up then cosine decay; batches balance success and failure clips.
    batch_size: int = 32
    max_steps: int = 1500
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    val_every: int = 250
    val_windows: int = 512
    checkpoint_every: int = 250
    log_every: int = 25
    # Clips per forward pass when scoring whole episodes (calibration, evaluation).
    score_batch_size: int = 64
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    seed: int = 0

    STAGE: ClassVar[str] = "fit-reward-model"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("num_workers", "log_every", "checkpoint_every", "score_batch_size")


@dataclass(frozen=True)
class ImagineConfig:
    """`wmpo imagine`: imagined rollouts of a policy, or (--audit) the world model against real episodes."""

    # Only picks the recipe's task block and the default run dir; the world model knows its task.
    task: str = ""
    world_model: str = ""
    policy: str = ""
    # The real episodes artifact ("" = <run>/demos): the audit replays its held-out (valid)
    # episodes; imagination starts from their first frames.
    source: str = ""
    audit: bool = False
    horizons: tuple[int, ...] = (1, 2, 4, 8)
    starts: tuple[int, ...] = (0, 32, 64)
    max_windows: int = 64
    batch_size: int = 8
    # 0 = the model's own sampler steps.
    sample_steps: int = 0
    # Imagination starts from these real first frames instead: an initial-state set (from
    # `wmpo collect --init-states N`), each state rendered after the same 10 no-op warm-up steps
    # as eval and policy rollouts.
    init_state_set: str = ""
    # Imagination from real first frames (not the audit): how many, how long, how sampled.
    rollouts: int = 8
    chunks: int = 0
    temperature: float = 1.6
    videos: int = 4
    seed: int = 0

    STAGE: ClassVar[str] = "imagine"
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("batch_size",)


STAGE_CONFIGS: dict[str, type] = {
    "collect": CollectConfig,
    "fit-policy": FitPolicyConfig,
    "eval": EvalConfig,
    "fit-world-model": FitWorldModelConfig,
    "imagine": ImagineConfig,
    "fit-reward-model": FitRewardModelConfig,
}
