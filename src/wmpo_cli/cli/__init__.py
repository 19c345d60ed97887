"""The ``wmpo`` command line: thin typer commands over ``wmpo_cli.pipeline``.

Heavy libraries (robosuite, mujoco, torch, h5py) are imported inside the commands, never at
module level, so ``wmpo --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from wmpo_cli import __version__, console
from wmpo_cli.cli._common import GlobalOptions
from wmpo_cli.errors import WmpoError

app = typer.Typer(
    name="wmpo",
    help="World-Model-based Policy Optimization: improve robot policies with RL in a learned world model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Options that belong to `wmpo` itself but may also be written after the subcommand
# (`wmpo collect --recipe tiny ...`); main() moves them in front of it.
_GLOBAL_VALUE_OPTIONS = ("--run-dir", "--recipe", "--set", "--seed")
_GLOBAL_FLAG_OPTIONS = ("--json", "--quiet")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wmpo {__version__}")
        raise typer.Exit()


@app.callback()
def global_options(
    ctx: typer.Context,
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory (default: runs/<task>)."),
    recipe: list[str] = typer.Option([], "--recipe", help="Recipe block (debug, tiny, gpu); repeatable."),
    set_: list[str] = typer.Option([], "--set", help="Override any config key: --set key=value; repeatable."),
    seed: int | None = typer.Option(None, "--seed", help="Base random seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or log lines."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Global options; they may be given before or after the subcommand."""
    console.mode.json = json_out
    console.mode.quiet = quiet
    ctx.obj = GlobalOptions(run_dir=run_dir, recipes=tuple(recipe), sets=tuple(set_), seed=seed)


def _register() -> None:
    from wmpo_cli.cli import (
        collect,
        demo,
        eval,
        fit_policy,
        fit_reward_model,
        fit_world_model,
        imagine,
        inspect,
        recipes,
        tasks,
    )

    for module in (
        collect, fit_policy, eval, fit_world_model, imagine, fit_reward_model, tasks, inspect, recipes, demo
    ):  # fmt: skip
        module.register(app)


_register()


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options that appear after the subcommand in front of it."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if name in _GLOBAL_VALUE_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(argv[i : i + 2])
                i += 1
        elif arg in _GLOBAL_FLAG_OPTIONS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning WmpoError into one-line messages and exit codes."""
    # CPU-friendly headless rendering unless the user chose otherwise (EGL on GPU machines).
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    if os.environ["MUJOCO_GL"] == "osmesa":
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        # One llvmpipe thread: faster at our frame sizes, and no fight with worker processes.
        os.environ.setdefault("LP_NUM_THREADS", "1")
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="wmpo", standalone_mode=True)
    except WmpoError as exc:
        console.err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        if exc.hint:
            console.err.print(f"[dim]hint:[/dim] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.err.print("[red]interrupted[/red]: partial work is kept; re-run the same command to resume")
        sys.exit(130)
