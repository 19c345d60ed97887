"""`wmpo demo`: the main job behind `make demo` (the whole pipeline at the tiny recipe on CPU)."""

from __future__ import annotations

import typer

from wmpo_cli import console


def demo(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Redo stages whose artifacts are already complete."),
) -> None:
    """Run collect -> fit-policy -> eval on lift and print where the artifacts are."""
    from pathlib import Path

    from wmpo_cli.pipeline import demo as stage

    opts = ctx.obj
    run_dir = opts.run_dir if opts.run_dir is not None else Path("runs") / "demo"
    steps = stage.run(run_dir, recipes=opts.recipes or ("tiny",), sets=opts.sets, seed=opts.seed, force=force)
    console.result({"run_dir": str(run_dir), "steps": steps}, stage.render(run_dir, steps))


def register(app: typer.Typer) -> None:
    app.command()(demo)
