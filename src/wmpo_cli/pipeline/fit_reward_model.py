"""`wmpo fit-reward-model`: the video success classifier -> ``<run>/reward_model/``.

    reward_model/  manifest.json config.json
                   export/{config.json, model.safetensors}   loadable; the threshold is in config.json
                   calibration/reliability.png               validation windows, threshold marked
                   calibration/scores.json                   per validation / test episode: scores,
                                                             detected and true finish steps
                   checkpoints/last.ckpt                     private: resume only
                   logs/metrics.jsonl, logs/summary.json

Clips are labelled from the per-step success recorded at collection (see
:mod:`wmpo_cli.models.reward_model.windows`) and sampled so that each batch is half success, half
not. Every ``--episodes`` artifact is split into training and validation episodes: its own
``valid`` mask, or, for artifacts without one (eval and policy rollouts), a seeded share of its
successes and of its failures separately. The validation episodes choose the threshold (see
:mod:`wmpo_cli.models.reward_model.calibration`); ``--test`` artifacts are never trained or
calibrated on and give the reported episode-level precision, recall, F1 and finish-step error.
Policy rollouts among the inputs count into the budget ledger (``extra.real_episodes``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from wmpo_cli import console
from wmpo_cli.artifacts.atomic import atomic_directory, atomic_write_text
from wmpo_cli.artifacts.episodes import EPISODES_FILE, EpisodesFile
from wmpo_cli.artifacts.manifest import InputRef, Manifest, check_input, lineage_path
from wmpo_cli.artifacts.store import begin_artifact
from wmpo_cli.config import FitRewardModelConfig
from wmpo_cli.envs.tasks import get_task
from wmpo_cli.errors import ArtifactError, UsageError
from wmpo_cli.pipeline.fit_policy import quiet_lightning
from wmpo_cli.pipeline.frame_sizes import one_frame_size

ARTIFACT_KIND = "reward_model"
ARTIFACT_KIND_VERSION = 1
OUTPUT_DIR = "reward_model"
EXPORT_DIR = "export"
CALIBRATION_DIR = "calibration"
RELIABILITY_PLOT = "reliability.png"
SCORES_FILE = "scores.json"


def episode_sources(cfg: FitRewardModelConfig, run_dir: Path) -> list[Path]:
    return [Path(p) for p in cfg.sources] if cfg.sources else [Path(run_dir) / "demos"]


def validate(cfg: FitRewardModelConfig) -> None:
    get_task(cfg.task)
    try:
        _model_config(cfg, cfg.image_size or 64).check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cfg.image_size and not 16 <= cfg.image_size <= 256:
        raise UsageError(f"image_size must be 0 (the episodes' size) or 16..256, got {cfg.image_size}")
    if cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.val_every < 1 or cfg.score_batch_size < 1:
        raise UsageError("batch_size, max_steps, val_every and score_batch_size must be >= 1")
    if cfg.lr <= 0 or cfg.devices < 1 or not 0.0 < cfg.valid_fraction < 1.0:
        raise UsageError("lr must be > 0, devices >= 1 and valid_fraction in (0, 1)")
    if not 0.0 <= cfg.target_precision <= 1.0:
        raise UsageError(f"target_precision must be in [0, 1] (0 = best F1), got {cfg.target_precision}")
    if not (cfg.state_loss_weight >= 0.0 and math.isfinite(cfg.state_loss_weight)):
        raise UsageError(f"state_loss_weight must be a finite number >= 0 (0 = off), got {cfg.state_loss_weight}")


def auto_patch_size(image_size: int) -> int:
    """The largest patch that still cuts a frame into at least 8 x 8 patches (and divides it).

    The token count, hence the cost of a step, then hardly depends on the frame size: 128 px
    frames with 16 px patches cost what 64 px frames with 8 px patches do, while every patch
    embedding sees 4x the pixels (the detail a small lifted cube needs).
    """
    return max(p for p in range(1, max(1, image_size // 8) + 1) if image_size % p == 0)


def _model_config(cfg: FitRewardModelConfig, image_size: int) -> Any:
    from wmpo_cli.models.reward_model.config import RewardModelConfig

    return RewardModelConfig(
        task=cfg.task,
        camera=cfg.camera,
        image_size=image_size,
        clip_frames=cfg.clip_frames,
        stride=cfg.stride,
        crop_scale=cfg.crop_scale,
        patch_size=cfg.patch_size or auto_patch_size(image_size),
        tubelet_size=cfg.tubelet_size,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
        heads=cfg.heads,
        intermediate_size=cfg.intermediate_size,
        dropout=cfg.dropout,
        target_precision=cfg.target_precision,
    )


def split_validation(
    names: Sequence[str], successes: set[str], valid_mask: Sequence[str], fraction: float, seed: int
) -> set[str]:
    """The validation episodes of one artifact: its ``valid`` mask, or a seeded stratified share.

    Without a mask, ``fraction`` of the successes and of the failures are drawn separately (at
    least one of a class that has two or more episodes), so calibration sees both outcomes.
    """
    if valid_mask:
        return set(valid_mask)
    rng = np.random.default_rng(seed)
    picked: set[str] = set()
    for group in ([n for n in names if n in successes], [n for n in names if n not in successes]):
        if len(group) < 2:
            continue
        count = max(1, round(fraction * len(group)))
        picked.update(group[i] for i in rng.choice(len(group), size=count, replace=False))
    return picked


def load_labelled(
    path: Path, camera: str, names: Sequence[str] | None = None, *, with_states: bool = False
) -> list[Any]:
    """Frames of ``camera`` and per-step success (and, ``with_states``, the simulator states) of
    the named (default: all) episodes of ``path``."""
    from wmpo_cli.models.reward_model.data import LabelledEpisode

    key = f"{camera}_image"
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        wanted = list(episodes.demo_names if names is None else names)
        if not episodes.demo_names:
            raise ArtifactError(f"{path}: holds no episodes")
        available = episodes.obs_keys(episodes.demo_names[0])
        if key not in available:
            raise UsageError(
                f"{path}: episodes have no {key} (they have {', '.join(available) or 'none'})",
                hint="collect with --cameras ..., or pass --set camera=<one they have>",
            )
        out = []
        for name in wanted:
            data = episodes.load(name, obs_keys=[key])
            states = np.asarray(data.states, dtype=np.float32) if with_states else None
            out.append(LabelledEpisode(data.obs[key], data.step_success, source=str(path), name=name, states=states))
    return out


def _split_source(path: Path, cfg: FitRewardModelConfig, index: int) -> tuple[list[Any], list[Any]]:
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        names = episodes.demo_names
        valid = split_validation(
            names, set(episodes.mask("success")), episodes.mask("valid"), cfg.valid_fraction, cfg.seed + index
        )
    episodes_all = load_labelled(path, cfg.camera, with_states=cfg.state_loss_weight > 0)
    return [e for e in episodes_all if e.name not in valid], [e for e in episodes_all if e.name in valid]


def _check_task(path: Path, manifest: Manifest, task: str) -> None:
    other = manifest.extra.get("task")
    if other and other != task:
        raise UsageError(
            f"{path} holds {other} episodes, but the reward model is for {task}", hint=f"pass --task {other}"
        )


def _real_episodes(manifest: Manifest, path: Path) -> int:
    """Real policy rollouts an input consumed (the budget P): those of `collect --source policy`
    (its ledger entry) and of eval artifacts (every episode); expert episodes are not the budget."""
    if manifest.extra.get("source") != "policy":
        return 0
    if "real_episodes" in manifest.extra:
        return int(manifest.extra["real_episodes"])
    with EpisodesFile(path / EPISODES_FILE) as episodes:
        return len(episodes.demo_names)


def score_episodes(model: Any, episodes: Sequence[Any], batch_size: int) -> list[Any]:
    from wmpo_cli.models.reward_model.calibration import EpisodeScores

    scores = model.score_many([e.frames for e in episodes], batch_size=batch_size)
    return [
        EpisodeScores(s, model.window_end_steps(len(e.frames)), e.success_step)
        for s, e in zip(scores, episodes, strict=True)
    ]


def run(cfg: FitRewardModelConfig, run_dir: Path, *, force: bool = False) -> Manifest:
    validate(cfg)
    sources = [(p, check_input(p, "episodes")) for p in episode_sources(cfg, run_dir)]
    tests = [(Path(p), check_input(Path(p), "episodes")) for p in cfg.test]
    for path, manifest in sources + tests:
        _check_task(path, manifest, cfg.task)
    overlap = {str(p.resolve()) for p, _ in sources} & {str(p.resolve()) for p, _ in tests}
    if overlap:
        raise UsageError(f"{sorted(overlap)[0]} is both a training and a --test artifact", hint="hold test data out")

    train: list[Any] = []
    valid: list[Any] = []
    for index, (path, _) in enumerate(sources):
        part_train, part_valid = _split_source(path, cfg, index)
        train += part_train
        valid += part_valid
    test = [e for path, _ in tests for e in load_labelled(path, cfg.camera)]
    if not train:
        raise UsageError("no training episodes")
    valid_successes = sum(e.success_step is not None for e in valid)
    if valid_successes == 0 or valid_successes == len(valid):
        raise UsageError(
            f"the validation split holds {valid_successes} successful of {len(valid)} episodes: threshold "
            "calibration needs both successes and failures",
            hint="add failures, e.g. `wmpo collect --expert-noise 0.5` or policy rollouts, via --episodes",
        )
    # Checked even when image_size is given: mixed sizes could not be batched either way. (--test
    # artifacts may differ: scoring resizes.)
    frame_size = one_frame_size((e.source, e.frames.shape) for e in train + valid)
    image_size = cfg.image_size or frame_size
    budget = sum(_real_episodes(m, p) for p, m in sources)

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Subset, WeightedRandomSampler

    quiet_lightning()

    from wmpo_cli.models.reward_model.calibration import choose_threshold, episode_metrics, reliability
    from wmpo_cli.models.reward_model.data import ClipDataset
    from wmpo_cli.models.reward_model.model import RewardModel
    from wmpo_cli.models.reward_model.plot import draw_reliability
    from wmpo_cli.models.reward_model.training import RewardModelModule, RewardModelOptim
    from wmpo_cli.models.state_targets import StateTargets
    from wmpo_cli.pipeline.training_callbacks import fit_trainer, prepare_training_dirs, resolve_precision

    out = Path(run_dir) / OUTPUT_DIR
    writer = begin_artifact(
        out,
        kind=ARTIFACT_KIND,
        kind_version=ARTIFACT_KIND_VERSION,
        stage="fit-reward-model",
        config=cfg,
        seed=cfg.seed,
        inputs=[InputRef("episodes", m.id, lineage_path(p, out)) for p, m in sources]
        + [InputRef("test", m.id, lineage_path(p, out)) for p, m in tests],
        force=force,
        outputs=(EXPORT_DIR,),
        extra={"task": cfg.task, "camera": cfg.camera, "real_episodes": budget},
    )
    dirs = prepare_training_dirs(out, resumed=writer.resumed)
    calibration = out / CALIBRATION_DIR

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model_cfg = _model_config(cfg, image_size)
    model = RewardModel.from_local_videomae(model_cfg, cfg.pretrained) if cfg.pretrained else RewardModel(model_cfg)
    try:
        state_targets = StateTargets.fit(train) if cfg.state_loss_weight > 0 else None
    except ValueError as exc:
        raise UsageError(f"state_loss_weight: {exc}", hint="pass --set state_loss_weight=0") from None
    train_set = ClipDataset(train, model.cfg.clip_frames, model.cfg.stride, state_targets)
    positives = int(train_set.labels.sum())
    if positives == 0:
        raise UsageError("the training episodes hold no success frame: nothing to learn success from")
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = WeightedRandomSampler(
        torch.from_numpy(train_set.balanced_weights()), num_samples=len(train_set), generator=generator
    )
    train_loader = DataLoader(
        train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, num_workers=cfg.num_workers
    )
    valid_set = ClipDataset(valid, model.cfg.clip_frames, model.cfg.stride)
    # A fixed, balanced subset of validation windows (every positive up to half the budget), the
    # same at every validation so the numbers compare across steps.
    pos_idx, neg_idx = np.flatnonzero(valid_set.labels), np.flatnonzero(~valid_set.labels)
    half = cfg.val_windows // 2
    picked = [int(i) for i in pos_idx[np.linspace(0, len(pos_idx) - 1, min(half, len(pos_idx))).astype(int)]]
    picked += [int(i) for i in neg_idx[np.linspace(0, len(neg_idx) - 1, min(half, len(neg_idx))).astype(int)]]
    val_loader = DataLoader(Subset(valid_set, sorted(set(picked))), batch_size=cfg.batch_size)

    module = RewardModelModule(
        model,
        RewardModelOptim(cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.max_steps, cfg.grad_clip, cfg.seed),
        state_width=state_targets.width if state_targets is not None else 0,
        state_weight=cfg.state_loss_weight,
    )
    precision = resolve_precision(cfg)
    trainer, ckpt_path, progress = fit_trainer(
        cfg,
        stage="fit-reward-model",
        dirs=dirs,
        precision=precision,
        validate=True,
        resumed=writer.resumed,
    )
    console.log(
        f"fit-reward-model {cfg.task}: {len(train)} train / {len(valid)} valid / {len(test)} test episodes, "
        f"{len(train_set)} clips ({positives} success), {model.num_parameters() / 1e6:.2f}M parameters, {precision}, "
        f"real budget {budget} episodes"
    )
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path)
    wall_s = time.perf_counter() - started
    if trainer.global_step < cfg.max_steps:
        raise UsageError(f"training stopped at step {trainer.global_step} of {cfg.max_steps}")
    if not trainer.is_global_zero:
        return writer.manifest
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    # Calibration on the validation episodes, then the held-out evaluation at that threshold.
    scoring_started = time.perf_counter()
    model = module.model.eval()
    negatives = max(1, len(train_set) - positives)
    model.cfg = replace(model.cfg, logit_offset=math.log(positives / negatives))
    valid_scores = score_episodes(model, valid, cfg.score_batch_size)
    choice = choose_threshold(valid_scores, cfg.target_precision)
    if not choice.reached_target:
        console.log(
            f"[yellow]warning:[/yellow] no threshold reaches validation precision {cfg.target_precision:.2f}; "
            f"using the best-F1 one ({choice.threshold:.3f}, precision {choice.metrics.precision:.2f})"
        )
    model.cfg = model.cfg.with_threshold(choice.threshold, cfg.target_precision)
    test_scores = score_episodes(model, test, cfg.score_batch_size) if test else []
    scoring_s = time.perf_counter() - scoring_started
    report_scores, report_name = (test_scores, "test") if test else (valid_scores, "validation")
    report = episode_metrics(report_scores, choice.threshold)
    window_p = np.concatenate([s.probabilities for s in valid_scores])
    window_y = np.concatenate(
        [np.asarray(e.step_success, dtype=bool)[s.end_steps] for s, e in zip(valid_scores, valid, strict=True)]
    )
    diagram = reliability(window_p, window_y)

    calibration.mkdir(parents=True, exist_ok=True)
    draw_reliability(
        calibration / RELIABILITY_PLOT,
        diagram,
        threshold=choice.threshold,
        title=f"{cfg.task} reward model: {len(window_p)} validation windows",
    )
    atomic_write_text(
        calibration / SCORES_FILE,
        json.dumps(
            {
                "threshold": choice.threshold,
                "validation": _per_episode(valid_scores, valid, choice.threshold),
                "test": _per_episode(test_scores, test, choice.threshold),
                "test_by_source": _by_source(test_scores, test, choice.threshold),
            },
            indent=1,
        )
        + "\n",
    )
    # The export goes beside and is swapped in, so a crash leaves no half export.
    with atomic_directory(out / EXPORT_DIR) as tmp:
        model.save_pretrained(tmp)

    failures = sum(s.success_step is None for s in report_scores)
    metrics: dict[str, Any] = {
        "steps": int(trainer.global_step),
        "train_episodes": len(train),
        "valid_episodes": len(valid),
        "test_episodes": len(test),
        "train_clips": len(train_set),
        "train_success_clips": positives,
        "parameters": model.num_parameters(),
        "val_loss": logged.get("val/loss"),
        "val_balanced_accuracy": logged.get("val/balanced_accuracy"),
        "threshold": choice.threshold,
        "target_precision": cfg.target_precision,
        "reached_target_precision": choice.reached_target,
        **choice.metrics.as_dict("valid_"),
        "valid_ece": diagram.ece,
        "evaluated_on": report_name,
        "eval_episodes": len(report_scores),
        "eval_failure_fraction": failures / len(report_scores) if report_scores else None,
        **report.as_dict("eval_"),
        "real_episodes": budget,
        "precision": precision,
        "wall_s": round(wall_s, 2),
        "scoring_s": round(scoring_s, 2),
        "steps_per_s": round(progress.steps_seen / wall_s, 3) if wall_s > 0 else None,
        "resumed": bool(ckpt_path),
    }
    metrics.pop("valid_threshold", None)
    metrics.pop("eval_threshold", None)
    (dirs.logs / "summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
    writer.manifest.resume["step"] = int(trainer.global_step)
    return writer.finish(
        [
            f"{EXPORT_DIR}/config.json",
            f"{EXPORT_DIR}/model.safetensors",
            f"{CALIBRATION_DIR}/{RELIABILITY_PLOT}",
            f"{CALIBRATION_DIR}/{SCORES_FILE}",
        ],
        metrics,
    )


def _per_episode(scores: Sequence[Any], episodes: Sequence[Any], threshold: float) -> list[dict[str, Any]]:
    from wmpo_cli.models.reward_model.windows import first_window_above

    return [
        {
            "source": e.source,
            "episode": e.name,
            "steps": len(e.frames),
            "success_step": s.success_step,
            "detected_step": first_window_above(s.probabilities, s.end_steps, threshold),
            "max_probability": round(s.score, 5),
        }
        for s, e in zip(scores, episodes, strict=True)
    ]


def _by_source(scores: Sequence[Any], episodes: Sequence[Any], threshold: float) -> dict[str, Any]:
    from wmpo_cli.models.reward_model.calibration import episode_metrics

    groups: dict[str, list[Any]] = {}
    for s, e in zip(scores, episodes, strict=True):
        groups.setdefault(e.source, []).append(s)
    return {source: episode_metrics(group, threshold).as_dict() for source, group in groups.items()}
