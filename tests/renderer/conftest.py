"""Shared fixtures for the renderer tests: the shipped world, shape library and renderer."""

from __future__ import annotations

import pytest

from air3d.renderer import SceneRenderer, ShapeLibrary, World, open_world


@pytest.fixture(scope="session")
def world() -> World:
    return open_world()[0]


@pytest.fixture(scope="session")
def shapes() -> ShapeLibrary:
    return open_world()[1]


@pytest.fixture(scope="session")
def renderer(world: World, shapes: ShapeLibrary) -> SceneRenderer:
    return SceneRenderer(world, shapes, "cpu")
