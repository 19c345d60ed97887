"""`wmpo collect`: scripted-expert episodes into <run>/demos/episodes.hdf5."""

from __future__ import annotations

import typer

from wmpo_cli import console
from wmpo_cli.cli._common import run_dir_for


def collect(
    ctx: typer.Context,
    task: str | None = typer.Option(None, help="Task: lift, stack_three."),
    variant: str | None = typer.Option(None, help="Task variant, e.g. D0 or D1."),
    scenario: str | None = typer.Option(None, help="Scenario: default."),
    episodes: int | None = typer.Option(None, help="Episodes to keep (successes with --successes-only)."),
    workers: int | None = typer.Option(None, help="Worker processes (0 = one per core)."),
    image_size: int | None = typer.Option(None, help="Square frame size in pixels."),
    cameras: list[str] | None = typer.Option(None, help="Camera(s), repeatable: agentview, robot0_eye_in_hand."),
    expert_noise: float | None = typer.Option(None, help="Std of action noise on the arm (labelled failures)."),
    successes_only: bool | None = typer.Option(None, "--successes-only", help="Keep successful episodes only."),
    force: bool = typer.Option(False, "--force", help="Replace a complete artifact / discard an interrupted one."),
) -> None:
    """Collect scripted-expert demonstrations (physics first, frames rendered from saved states)."""
    from wmpo_cli.config import CollectConfig, resolve_config
    from wmpo_cli.pipeline import collect as stage

    opts = ctx.obj
    flags = {
        "task": task, "variant": variant, "scenario": scenario, "episodes": episodes, "workers": workers,
        "image_size": image_size, "cameras": tuple(cameras) if cameras else None,
        "expert_noise": expert_noise, "successes_only": successes_only, "seed": opts.seed,
    }  # fmt: skip
    cfg = resolve_config(CollectConfig, task=task, recipes=opts.recipes, flags=flags, overrides=opts.sets)
    manifest = stage.run(cfg, run_dir_for(opts, cfg.task), force=force)
    path = run_dir_for(opts, cfg.task) / stage.OUTPUT_DIR
    m = manifest.metrics
    console.result(
        {"path": str(path), "id": manifest.id, "metrics": m},
        f"[green]collected[/green] {m['episodes']} episodes of {cfg.task} {cfg.variant} "
        f"(success {m['successes']}/{m['episodes']}, {m['total_steps']} steps) -> {path / 'episodes.hdf5'}",
    )


def register(app: typer.Typer) -> None:
    app.command()(collect)
