"""Recipe resolution: precedence, strictness about keys and types, hashing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wmpo_cli.config import (
    CollectConfig,
    FitRewardModelConfig,
    FitWorldModelConfig,
    config_diff,
    config_hash,
    resolve_config,
)
from wmpo_cli.config.recipes import load_recipe_file, parse_set_option, stages_dir
from wmpo_cli.config.schema import STAGE_CONFIGS
from wmpo_cli.errors import ConfigError

RECIPE = """
[defaults]
episodes = 11
image_size = 40
horizon = 7

[stack_three]
episodes = 22
horizon = 9

[debug]
episodes = 33
workers = 1

[tiny]
image_size = 48
"""


@pytest.fixture
def stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "collect.toml").write_text(RECIPE)
    monkeypatch.setenv("WMPO_STAGES_DIR", str(tmp_path))
    return tmp_path


def test_precedence_defaults_task_recipes_flags_set(stages: Path) -> None:
    base = resolve_config(CollectConfig, task="lift")
    assert (base.episodes, base.image_size, base.horizon, base.workers) == (11, 40, 7, 0)
    task = resolve_config(CollectConfig, task="stack_three")
    assert (task.episodes, task.horizon) == (22, 9)
    recipe = resolve_config(CollectConfig, task="stack_three", recipes=["debug", "tiny"])
    assert (recipe.episodes, recipe.workers, recipe.image_size, recipe.horizon) == (33, 1, 48, 9)
    flag = resolve_config(CollectConfig, task="stack_three", recipes=["debug"], flags={"episodes": 44, "workers": None})
    assert (flag.episodes, flag.workers) == (44, 1)
    override = resolve_config(
        CollectConfig, task="stack_three", recipes=["debug"], flags={"episodes": 44}, overrides=["episodes=55"]
    )
    assert override.episodes == 55


def test_task_from_set_selects_its_block(stages: Path) -> None:
    cfg = resolve_config(CollectConfig, task=None, overrides=["task=stack_three"])
    assert (cfg.task, cfg.episodes) == ("stack_three", 22)


def test_config_is_frozen_and_tuple_valued(stages: Path) -> None:
    cfg = resolve_config(CollectConfig, task="lift", overrides=['cameras=["agentview", "robot0_eye_in_hand"]'])
    assert cfg.cameras == ("agentview", "robot0_eye_in_hand")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.episodes = 3  # type: ignore[misc]


def test_unknown_keys_are_errors_everywhere(stages: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'episode'") as err:
        resolve_config(CollectConfig, task="lift", overrides=["episode=3"])
    assert "did you mean 'episodes'" in err.value.hint
    (stages / "collect.toml").write_text(RECIPE + "\n[gpu]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"\[gpu\]: unknown key 'bogus'"):
        resolve_config(CollectConfig, task="lift")


def test_wrong_types_and_unknown_recipes(stages: Path) -> None:
    with pytest.raises(ConfigError, match="'episodes' must be an integer"):
        resolve_config(CollectConfig, task="lift", overrides=["episodes=many"])
    with pytest.raises(ConfigError, match="'successes_only' must be true or false"):
        resolve_config(CollectConfig, task="lift", overrides=["successes_only=1"])
    with pytest.raises(ConfigError, match="recipe 'huge' is not a block"):
        resolve_config(CollectConfig, task="lift", recipes=["huge"])
    with pytest.raises(ConfigError, match="recipe 'defaults' is not a block"):
        resolve_config(CollectConfig, task="lift", recipes=["defaults"])


def test_parse_set_option_reads_toml_literals() -> None:
    assert parse_set_option("episodes=5") == ("episodes", 5)
    assert parse_set_option("expert_noise=0.25") == ("expert_noise", 0.25)
    assert parse_set_option("successes_only=true") == ("successes_only", True)
    assert parse_set_option("task=stack_three") == ("task", "stack_three")
    assert parse_set_option('cameras=["a","b"]') == ("cameras", ["a", "b"])
    assert parse_set_option("variant=D1=x") == ("variant", "D1=x")
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_option("episodes")


def test_hash_ignores_execution_only_fields_and_diff_lists_changes() -> None:
    a = CollectConfig(workers=1)
    b = CollectConfig(workers=2)
    c = CollectConfig(episodes=7)
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 64
    diff = config_diff(dataclasses.asdict(a), dataclasses.asdict(c), ignore=["workers"])
    assert diff == ["episodes: 50 -> 7"]


def test_bundled_recipes_resolve_for_every_block_and_task() -> None:
    assert (stages_dir() / "collect.toml").exists()
    for stage, cls in STAGE_CONFIGS.items():
        blocks = load_recipe_file(stage)
        assert {"defaults", "debug", "tiny", "gpu"} <= set(blocks)
        for task in ("lift", "stack_three", "square", "three_piece_assembly", "coffee"):
            for recipe in ("debug", "tiny", "gpu"):
                cfg = resolve_config(cls, task=task, recipes=[recipe])
                assert cfg.task == task
    debug = resolve_config(CollectConfig, task="lift", recipes=["debug"])
    # horizon 0 = the task's own per-variant collection horizon (TaskSpec.horizon_for).
    assert (debug.episodes, debug.image_size, debug.horizon) == (2, 32, 0)


def test_reward_model_state_loss_is_per_task_and_on_every_recipe() -> None:
    """The measured reward-model rows of the README depend on these resolved values."""

    def resolved(task: str, recipe: str) -> FitRewardModelConfig:
        return resolve_config(FitRewardModelConfig, task=task, recipes=[recipe])

    assert [resolved("lift", r).state_loss_weight for r in ("debug", "tiny", "gpu")] == [1.0, 1.0, 1.0]
    assert [resolved("stack_three", r).state_loss_weight for r in ("debug", "tiny", "gpu")] == [3.0, 3.0, 3.0]
    assert resolved("square", "tiny").state_loss_weight == 1.0
    tiny = resolved("stack_three", "tiny")
    assert (tiny.stride, tiny.max_steps, tiny.batch_size, tiny.hidden_size) == (3, 1300, 32, 128)
    assert (
        resolve_config(
            FitRewardModelConfig, task="stack_three", recipes=["tiny"], overrides=["state_loss_weight=0"]
        ).state_loss_weight
        == 0.0
    )


def test_world_model_recipes_resolve_to_the_measured_values() -> None:
    """The README's world-model audit rows depend on these resolved values."""

    def resolved(recipe: str) -> FitWorldModelConfig:
        return resolve_config(FitWorldModelConfig, task="stack_three", recipes=[recipe])

    assert [resolved(r).time_shift for r in ("debug", "tiny", "gpu")] == [3.0, 3.0, 3.0]
    tiny = resolved("tiny")
    assert (tiny.max_steps, tiny.batch_size, tiny.lr, tiny.sample_steps, tiny.objective) == (4000, 16, 5e-4, 8, "x0")
    assert tiny.block_out_channels == (32, 64, 128)
