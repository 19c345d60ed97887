"""Recipe resolution: dataclass defaults < [defaults] < task block < --recipe blocks < flags < --set.

Recipes are TOML files, one per stage, in ``stages/`` (bundled into the wheel as
``wmpo_cli/_stages``). Each file has a ``[defaults]`` table, one table per task, and named
recipe blocks such as ``[debug]``, ``[tiny]`` and ``[gpu]``. Every key anywhere must be a field
of the stage's config dataclass; unknown keys and wrongly typed values are errors, never ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from wmpo_cli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 fallback
    import tomli as tomllib

C = TypeVar("C")

RESERVED_BLOCKS = ("defaults",)


def stages_dir() -> Path:
    """Where the stage recipes live: $WMPO_STAGES_DIR, the wheel's copy, or the source checkout's."""
    override = os.environ.get("WMPO_STAGES_DIR")
    if override:
        return Path(override)
    bundled = Path(__file__).resolve().parent.parent / "_stages"
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[3] / "stages"


def load_recipe_file(stage: str) -> dict[str, dict[str, Any]]:
    """Parse ``stages/<stage>.toml``; a stage without a recipe file has no blocks."""
    path = stages_dir() / f"{stage}.toml"
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe file {path} is not valid TOML: {exc}") from exc
    for name, block in data.items():
        if not isinstance(block, dict):
            raise ConfigError(f"{path}: top-level key '{name}' must be a [table] of settings")
    return data


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(cls: type, key: str, value: Any, origin: str) -> Any:
    """Check ``value`` against the declared type of ``key`` and convert lists to tuples."""
    annotated = _field_types(cls)[key]
    err = ConfigError(
        f"{origin}: '{key}' must be {_type_name(annotated)}, got {value!r}",
        hint=f"fix the value of '{key}'",
    )
    if annotated is bool:
        if isinstance(value, bool):
            return value
        raise err
    if annotated is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise err
    if annotated is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise err
    if annotated is str:
        if isinstance(value, str):
            return value
        raise err
    if typing.get_origin(annotated) is tuple:
        item_type = typing.get_args(annotated)[0]
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if isinstance(value, (list, tuple)) and all(isinstance(v, item_type) for v in value):
            return tuple(value)
        raise err
    if typing.get_origin(annotated) in (typing.Union, types.UnionType):
        if value is None or any(isinstance(value, t) for t in typing.get_args(annotated) if t is not type(None)):
            return value
        raise err
    return value


def _type_name(annotated: Any) -> str:
    if typing.get_origin(annotated) is tuple:
        return f"a list of {typing.get_args(annotated)[0].__name__}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(annotated, str(annotated))


def _check_keys(cls: type, block: Mapping[str, Any], origin: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in block:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"{origin}: unknown key '{key}'", hint=suggestion)


def parse_set_option(item: str) -> tuple[str, Any]:
    """Parse one ``--set key=value``; the value is read as a TOML literal, else kept as a string."""
    if "=" not in item:
        raise ConfigError(f"--set '{item}' is not of the form key=value", hint="e.g. --set episodes=20")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set '{item}' has an empty key", hint="e.g. --set episodes=20")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def resolve_config(
    cls: type[C],
    *,
    task: str | None,
    recipes: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> C:
    """Build the frozen config of a stage from all layers, in the documented precedence order.

    ``task`` is the task flag; the task block used is that of the highest-precedence layer
    naming a task, so ``--set task=stack_three`` also picks the stack_three block.
    ``flags`` holds only the typed CLI flags the user actually gave (None values are dropped).
    """
    stage: str = cls.STAGE  # type: ignore[attr-defined]
    blocks = load_recipe_file(stage)
    file_name = f"stages/{stage}.toml"
    for name, block in blocks.items():
        _check_keys(cls, block, f"{file_name} [{name}]")

    set_values: dict[str, Any] = {}
    for item in overrides:
        key, value = parse_set_option(item)
        _check_keys(cls, {key: value}, "--set")
        set_values[key] = value
    flag_values = {k: v for k, v in (flags or {}).items() if v is not None}
    _check_keys(cls, flag_values, "flag")

    if task is not None:
        flag_values.setdefault("task", task)
    # The task block is chosen by the highest-precedence layer that names a task.
    chosen_task = set_values.get("task") or flag_values.get("task") or blocks.get("defaults", {}).get("task")
    layers: list[tuple[str, Mapping[str, Any]]] = [(f"{file_name} [defaults]", blocks.get("defaults", {}))]
    if chosen_task and chosen_task in blocks and chosen_task not in RESERVED_BLOCKS:
        layers.append((f"{file_name} [{chosen_task}]", blocks[chosen_task]))
    for recipe in recipes:
        if recipe in RESERVED_BLOCKS or recipe not in blocks:
            available = [b for b in blocks if b not in RESERVED_BLOCKS]
            raise ConfigError(
                f"recipe '{recipe}' is not a block of {file_name}",
                hint=f"available blocks: {', '.join(available) or 'none'} (`wmpo recipes` lists them)",
            )
        layers.append((f"{file_name} [{recipe}]", blocks[recipe]))
    layers.append(("flag", flag_values))
    layers.append(("--set", set_values))

    values: dict[str, Any] = {}
    for origin, layer in layers:
        for key, value in layer.items():
            values[key] = _coerce(cls, key, value, origin)
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any) -> str:
    """sha256 of the config's canonical JSON, without its execution-only fields."""
    data = config_to_dict(config)
    for key in getattr(config, "EXECUTION_ONLY", ()):
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Sequence[str] = ()) -> list[str]:
    """Human-readable 'key: old -> new' lines for every key whose value differs."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if key in ignore:
            continue
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines
