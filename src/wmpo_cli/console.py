"""The one rich Console pair: progress and logs go to stderr, results to stdout.

``--quiet`` silences progress/logs; ``--json`` makes stdout a single JSON document so scripts
can parse a command's result without scraping tables.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class OutputMode:
    json: bool = False
    quiet: bool = False


mode = OutputMode()


def log(message: str) -> None:
    """A progress/log line on stderr (silent with --quiet or --json)."""
    if not (mode.quiet or mode.json):
        err.print(message)


def result(data: dict[str, Any], human: Any = None) -> None:
    """Print a command's result: JSON with --json, else the rich renderable (or the dict)."""
    if mode.json:
        out.print_json(json.dumps(data, default=str))
    elif human is not None:
        out.print(human)
    else:
        out.print(data)


@contextlib.contextmanager
def progress() -> Iterator[Progress]:
    """A rich progress bar on stderr; disabled (but still usable) with --quiet/--json."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err,
        disable=mode.quiet or mode.json,
        transient=False,
    )
    with bar:
        yield bar
