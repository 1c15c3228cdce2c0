"""The HTTP service: FastAPI over the Predictor and the renderer (`air3d serve`)."""

from air3d.service.app import create_app
from air3d.service.settings import Settings

__all__ = ["Settings", "create_app"]
