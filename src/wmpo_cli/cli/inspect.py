"""`wmpo inspect PATH [--verify]`: manifest, lineage tree and file check of an artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from wmpo_cli import console


def inspect(
    path: Path = typer.Argument(..., help="An artifact directory (or a file inside it)."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every file and fail on any difference."),
) -> None:
    """Show an artifact's manifest and lineage; with --verify, detect modified or missing files."""
    from wmpo_cli.pipeline import inspect as stage

    report = stage.inspect(path, verify=verify)
    console.result(report.as_dict(), stage.render(report))
    stage.raise_for_problems(report)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
