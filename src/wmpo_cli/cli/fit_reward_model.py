"""`wmpo fit-reward-model`: train the video success classifier and calibrate its threshold."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def fit_reward_model(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task the episodes are of (lift, stack_three, ...)."),
    episodes: list[str] | None = typer.Option(
        None, help="Labelled episodes artifact to learn from (default: <run>/demos); repeat for several."
    ),
    test: list[str] | None = typer.Option(
        None, help="Held-out episodes artifact for the final evaluation only; repeat for several."
    ),
    target_precision: float | None = typer.Option(
        None, help="Validation precision the threshold must reach (0 = the best-F1 threshold)."
    ),
    max_steps: int | None = typer.Option(None, help="Optimiser steps."),
    batch_size: int | None = typer.Option(None, help="Clips per batch and device."),
    devices: int | None = typer.Option(None, help="Devices (GPUs) to train on; >1 uses DDP."),
    strategy: str | None = typer.Option(None, help="Lightning strategy: auto, ddp, fsdp, ..."),
    accelerator: str | None = typer.Option(None, help="Lightning accelerator: auto, cpu, gpu."),
    force: bool = typer.Option(False, "--force", help="Start fresh instead of resuming / replacing."),
) -> None:
    """Train the reward model; re-running the same command resumes from the last checkpoint."""
    from wmpo_cli.config import FitRewardModelConfig, resolve_config
    from wmpo_cli.pipeline import fit_reward_model as stage

    opts = ctx.obj
    flags = {
        "task": task, "sources": tuple(episodes) if episodes else None, "test": tuple(test) if test else None,
        "target_precision": target_precision, "max_steps": max_steps, "batch_size": batch_size, "devices": devices,
        "strategy": strategy, "accelerator": accelerator, "seed": opts.seed,
    }  # fmt: skip
    cfg = resolve_config(FitRewardModelConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    run_dir = run_dir_for(opts, cfg.task)
    manifest = stage.run(cfg, run_dir, force=force)
    m = manifest.metrics
    path = run_dir / stage.OUTPUT_DIR
    mae = m.get("eval_finish_mae")
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]trained[/green] reward model {manifest.id} for {cfg.task}: {m['steps']} steps in {m['wall_s']:.0f} s,"
        f" threshold {m['threshold']:.3f}; on {m['eval_episodes']} {m['evaluated_on']} episodes"
        f" precision {m['eval_precision']:.3f} recall {m['eval_recall']:.3f} F1 {m['eval_f1']:.3f},"
        f" finish-step error {'n/a' if mae is None else f'{mae:.1f}'} steps -> {path / stage.EXPORT_DIR}",
    )


def register(app: typer.Typer) -> None:
    app.command(name="fit-reward-model")(fit_reward_model)
