"""Typed, frozen stage configs and their resolution from recipes, flags and --set."""

from wmpo_cli.config.recipes import config_diff, config_hash, config_to_dict, resolve_config
from wmpo_cli.config.schema import (
    STAGE_CONFIGS,
    CollectConfig,
    EvalConfig,
    FitPolicyConfig,
    FitRewardModelConfig,
    FitWorldModelConfig,
    ImagineConfig,
)

__all__ = [
    "STAGE_CONFIGS",
    "CollectConfig",
    "EvalConfig",
    "FitPolicyConfig",
    "FitRewardModelConfig",
    "FitWorldModelConfig",
    "ImagineConfig",
    "config_diff",
    "config_hash",
    "config_to_dict",
    "resolve_config",
]
