"""Fixtures for the batch tests: a few synthetic images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from air3d.data import make_dataset


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, world, shapes) -> Path:
    """A data set of 6 rendered scenes (images/000000.png ... 000005.png)."""
    out = tmp_path_factory.mktemp("batch_data")
    make_dataset(out, 6, seed=3, world=world, shapes=shapes, progress=False)
    return out


@pytest.fixture
def images(dataset, tmp_path) -> Path:
    """A private copy of the data set's images, for tests that add files to it."""
    return Path(shutil.copytree(dataset / "images", tmp_path / "images"))
