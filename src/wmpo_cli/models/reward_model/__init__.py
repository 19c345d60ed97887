"""The video reward model: a VideoMAE success classifier over sliding clips, with a calibrated threshold."""

from wmpo_cli.models.reward_model.config import REWARD_MODEL_FORMAT, RewardModelConfig
from wmpo_cli.models.reward_model.model import RewardModel, RewardModelLoadError

__all__ = ["REWARD_MODEL_FORMAT", "RewardModel", "RewardModelConfig", "RewardModelLoadError"]
