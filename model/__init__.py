"""The inference side of air3d: q(z | x), its objective, training and inference."""

from air3d.model.air import AIR, AIROutput
from air3d.model.build import build_model
from air3d.model.checkpoint import load_checkpoint, save_checkpoint
from air3d.model.config import ModelConfig
from air3d.model.predictor import Inference, InferredObject, Predictor
from air3d.model.shipped import DEFAULT_CHECKPOINT, choose_checkpoint, shipped_checkpoint
from air3d.model.spatial import SpatialAIR

__all__ = [
    "AIR",
    "AIROutput",
    "DEFAULT_CHECKPOINT",
    "Inference",
    "InferredObject",
    "ModelConfig",
    "Predictor",
    "SpatialAIR",
    "build_model",
    "choose_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "shipped_checkpoint",
]
