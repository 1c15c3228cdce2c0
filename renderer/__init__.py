"""The generative side of air3d: the world, the shape library, scenes and their rendering."""

from air3d.renderer.likelihood import gaussian_log_likelihood
from air3d.renderer.renderer import RenderMode, SceneRenderer
from air3d.renderer.scene import Scene, SceneBatch, SceneObject
from air3d.renderer.shapes import ShapeLibrary, ShapeSpec, load_shape_library
from air3d.renderer.world import World, load_world
from air3d.renderer.worlds import WORLD_HELP, open_world

__all__ = [
    "WORLD_HELP",
    "RenderMode",
    "Scene",
    "SceneBatch",
    "SceneObject",
    "SceneRenderer",
    "ShapeLibrary",
    "ShapeSpec",
    "World",
    "gaussian_log_likelihood",
    "load_shape_library",
    "load_world",
    "open_world",
]
