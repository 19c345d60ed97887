"""`wmpo fit-policy`: train the VLA by imitation on an episodes artifact (Lightning)."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def fit_policy(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task the demos are of (lift, stack_three, ...)."),
    demos: str | None = typer.Option(None, help="Episodes artifact to learn from (default: <run>/demos)."),
    encoder: str | None = typer.Option(None, help="Image encoder: efficientnet_lite0 (ImageNet) or vit (scratch)."),
    max_steps: int | None = typer.Option(None, help="Optimiser steps."),
    batch_size: int | None = typer.Option(None, help="Batch size per device."),
    devices: int | None = typer.Option(None, help="Devices (GPUs) to train on; >1 uses DDP."),
    strategy: str | None = typer.Option(None, help="Lightning strategy: auto, ddp, fsdp, ..."),
    accelerator: str | None = typer.Option(None, help="Lightning accelerator: auto, cpu, gpu."),
    force: bool = typer.Option(False, "--force", help="Start fresh instead of resuming / replacing."),
) -> None:
    """Train the policy by imitation; re-running the same command resumes from the last checkpoint."""
    from wmpo_cli.config import FitPolicyConfig, resolve_config
    from wmpo_cli.pipeline import fit_policy as stage

    opts = ctx.obj
    flags = {
        "task": task, "demos": demos, "encoder": encoder, "max_steps": max_steps, "batch_size": batch_size,
        "devices": devices, "strategy": strategy, "accelerator": accelerator, "seed": opts.seed,
    }  # fmt: skip
    cfg = resolve_config(FitPolicyConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    run_dir = run_dir_for(opts, cfg.task)
    manifest = stage.run(cfg, run_dir, force=force)
    m = manifest.metrics
    path = run_dir / stage.OUTPUT_DIR
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]trained[/green] policy {manifest.id} for {cfg.task}: {m['steps']} steps in {m['wall_s']:.0f} s, "
        f"val token accuracy {_number(m['val_token_accuracy'])}, val action L1 {_number(m['val_action_l1'])} "
        f"-> {path / stage.EXPORT_DIR}",
    )


def _number(value: float | None) -> str:
    return "n/a (no held-out episodes)" if value is None else f"{value:.4f}"


def register(app: typer.Typer) -> None:
    app.command(name="fit-policy")(fit_policy)
