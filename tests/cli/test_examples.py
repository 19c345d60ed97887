"""The shell examples stay runnable: valid bash, and every `wmpo` command line in them names an
existing subcommand and only options that subcommand (or `wmpo` itself) accepts. Running them takes
hours of simulation and training, so this is what a test can check in seconds."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from wmpo_cli.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.sh"))


def _logical_lines(text: str) -> list[str]:
    """Comment-free lines with backslash continuations joined."""
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line.strip() for line in "\n".join(code).replace("\\\n", " ").splitlines() if line.strip()]


def _expand(line: str, variables: dict[str, str]) -> str:
    """Substitute the script's own simple ``NAME="..."`` variables (``$NAME`` / ``${NAME}``)."""
    return re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)


def wmpo_invocations(script: Path) -> list[list[str]]:
    """The argument lists of every `wmpo` call in ``script``, the script's variables expanded."""
    variables: dict[str, str] = {}
    calls = []
    for line in _logical_lines(script.read_text()):
        assignment = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=\"([^\"]*)\"", line)
        if assignment:
            variables[assignment.group(1)] = _expand(assignment.group(2), variables)
            continue
        words = shlex.split(_expand(line, variables), comments=True)
        if words and words[0] == "wmpo":
            calls.append(words[1:])
    return calls


def _options(command: Any) -> set[str]:
    # typer ships its own click (typer._click), so commands are duck-typed here.
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_there_are_examples_to_check() -> None:
    assert "reward_model_stack_three.sh" in [s.name for s in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_script_is_valid_bash(script: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_script_uses_only_real_commands_and_options(script: Path) -> None:
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    global_options = _options(group)
    calls = wmpo_invocations(script)
    assert calls, f"{script.name} runs no wmpo command"
    for words in calls:
        names = [w for w in words if w in group.commands]
        assert len(names) == 1, f"expected one subcommand in: wmpo {' '.join(words)}"
        known = global_options | _options(group.commands[names[0]])
        unknown = {w.split("=", 1)[0] for w in words if w.startswith("--")} - known
        assert not unknown, f"{script.name}: wmpo {names[0]} does not take {sorted(unknown)}"


def test_invocation_parser_expands_variables_and_continuations(tmp_path: Path) -> None:
    script = tmp_path / "x.sh"
    script.write_text(
        '# wmpo comment --not-an-option\nW="wmpo --quiet"\nC="collect --task lift"\n'
        '$W --run-dir "$RUNS/a" $C \\\n    --episodes 3\necho done\n'
    )
    assert wmpo_invocations(script) == [
        ["--quiet", "--run-dir", "$RUNS/a", "collect", "--task", "lift", "--episodes", "3"]
    ]
