"""`wmpo fit-world-model`: train the action-conditioned pixel world model (Lightning)."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def fit_world_model(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task the episodes are of (lift, stack_three, ...)."),
    demos: str | None = typer.Option(None, help="Expert episodes artifact (default: <run>/demos)."),
    rollouts: list[str] | None = typer.Option(
        None, help="Policy rollouts artifact (the real budget P); repeat for several."
    ),
    max_steps: int | None = typer.Option(None, help="Optimiser steps."),
    batch_size: int | None = typer.Option(None, help="Windows per batch and device."),
    devices: int | None = typer.Option(None, help="Devices (GPUs) to train on; >1 uses DDP."),
    strategy: str | None = typer.Option(None, help="Lightning strategy: auto, ddp, fsdp, ..."),
    accelerator: str | None = typer.Option(None, help="Lightning accelerator: auto, cpu, gpu."),
    force: bool = typer.Option(False, "--force", help="Start fresh instead of resuming / replacing."),
) -> None:
    """Train the world model; re-running the same command resumes from the last checkpoint."""
    from wmpo_cli.config import FitWorldModelConfig, resolve_config
    from wmpo_cli.pipeline import fit_world_model as stage

    opts = ctx.obj
    flags = {
        "task": task, "demos": demos, "rollouts": tuple(rollouts) if rollouts else None, "max_steps": max_steps,
        "batch_size": batch_size, "devices": devices, "strategy": strategy, "accelerator": accelerator,
        "seed": opts.seed,
    }  # fmt: skip
    cfg = resolve_config(FitWorldModelConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    run_dir = run_dir_for(opts, cfg.task)
    manifest = stage.run(cfg, run_dir, force=force)
    m = manifest.metrics
    path = run_dir / stage.OUTPUT_DIR
    psnr = m.get("val_psnr_1chunk")
    copy = m.get("val_psnr_copy_last")
    val = "n/a (no held-out episodes)" if psnr is None else f"{psnr:.2f} dB (copy-last-frame {copy:.2f} dB)"
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]trained[/green] world model {manifest.id} for {cfg.task}: {m['steps']} steps in {m['wall_s']:.0f} s,"
        f" val PSNR at 1 chunk {val}, real budget {m['real_episodes']} episodes -> {path / stage.EXPORT_DIR}",
    )


def register(app: typer.Typer) -> None:
    app.command(name="fit-world-model")(fit_world_model)
