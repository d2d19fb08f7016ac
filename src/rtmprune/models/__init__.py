"""RTMPose models (CSPNeXt + RTMCCHead) with MMPose's state-dict layout, and checkpoint I/O."""

from rtmprune.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from rtmprune.models.rtmpose import RTMPose, build_model, list_models

__all__ = ["RTMPose", "build_model", "list_models", "load_checkpoint", "read_checkpoint", "save_checkpoint"]
