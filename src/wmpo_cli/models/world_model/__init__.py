"""The action-conditioned pixel world model (diffusers UNet, rectified flow, EMA)."""

from wmpo_cli.models.world_model.config import WORLD_MODEL_FORMAT, WorldModelConfig
from wmpo_cli.models.world_model.model import WorldModel, WorldModelLoadError

__all__ = ["WORLD_MODEL_FORMAT", "WorldModel", "WorldModelConfig", "WorldModelLoadError"]
