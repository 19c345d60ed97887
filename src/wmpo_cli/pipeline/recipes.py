"""What `wmpo recipes` lists: each stage's recipe blocks and config keys with their defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Group
from rich.table import Table

from wmpo_cli.config.recipes import load_recipe_file, stages_dir
from wmpo_cli.config.schema import STAGE_CONFIGS
from wmpo_cli.errors import UsageError


def describe(stage: str | None = None) -> dict[str, Any]:
    if stage is not None and stage not in STAGE_CONFIGS:
        raise UsageError(f"unknown stage '{stage}'", hint=f"stages: {', '.join(STAGE_CONFIGS)}")
    stages = [stage] if stage else list(STAGE_CONFIGS)
    data: dict[str, Any] = {"stages_dir": str(stages_dir()), "stages": {}}
    for name in stages:
        cls = STAGE_CONFIGS[name]
        blocks = load_recipe_file(name)
        data["stages"][name] = {
            "blocks": {block: values for block, values in blocks.items()},
            "keys": {f.name: _default(f) for f in dataclasses.fields(cls)},
        }
    return data


def _default(f: dataclasses.Field[Any]) -> Any:
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return list(value) if isinstance(value, tuple) else value


def render(data: dict[str, Any]) -> Group:
    parts: list[Any] = []
    for name, info in data["stages"].items():
        blocks = Table(title=f"stages/{name}.toml", title_justify="left")
        blocks.add_column("block", style="bold")
        blocks.add_column("settings")
        for block, values in info["blocks"].items():
            blocks.add_row(block, ", ".join(f"{k}={v}" for k, v in values.items()))
        keys = Table(title=f"{name} config keys (--set key=value)", title_justify="left")
        keys.add_column("key", style="bold")
        keys.add_column("default")
        for key, value in info["keys"].items():
            keys.add_row(key, repr(value))
        parts += [blocks, keys]
    return Group(*parts)
