"""`wmpo tasks [--sheet FILE.png]`: list the task suite; optionally draw a contact sheet."""

from __future__ import annotations

from pathlib import Path

import typer

from wmpo_cli import console


def tasks(
    ctx: typer.Context,
    sheet: Path | None = typer.Option(
        None, "--sheet", help="Also write a PNG of initial frames per task/variant/scenario."
    ),
    size: int = typer.Option(128, "--size", help="Tile size of the contact sheet in pixels."),
    workers: int = typer.Option(0, "--workers", help="Render processes for the sheet (0 = one per core)."),
) -> None:
    """List tasks, variants and scenarios; --sheet renders every scene's initial agentview frame."""
    from wmpo_cli.pipeline import tasks as listing

    rows = listing.describe()
    data: dict[str, object] = {"tasks": rows}
    if sheet is not None:
        seed = ctx.obj.seed if ctx.obj.seed is not None else 0
        data["sheet"] = listing.contact_sheet(sheet, size=size, seed=seed, workers=workers)
    console.result(data, listing.render_table(rows))
    if sheet is not None:
        console.log(f"contact sheet -> {sheet}")


def register(app: typer.Typer) -> None:
    app.command()(tasks)
