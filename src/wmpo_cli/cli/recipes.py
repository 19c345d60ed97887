"""`wmpo recipes [STAGE]`: the recipe blocks of each stage and the keys a stage accepts."""

from __future__ import annotations

import typer

from wmpo_cli import console


def recipes(stage: str | None = typer.Argument(None, help="Only this stage (e.g. collect).")) -> None:
    """List recipe blocks (debug, tiny, gpu, per-task) and every config key with its default."""
    from wmpo_cli.pipeline import recipes as listing

    data = listing.describe(stage)
    console.result(data, listing.render(data))


def register(app: typer.Typer) -> None:
    app.command()(recipes)
