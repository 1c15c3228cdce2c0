"""The shipped files: scene config, shape library and default model (`air3d.assets`)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
