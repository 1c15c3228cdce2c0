"""The world config (assets/worlds/NAME/world.yaml): loading, round trip, bad configs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from air3d.renderer import World, load_world
from air3d.renderer.world import DEFAULT_WORLD_PATH


def test_shipped_config_loads(world: World) -> None:
    assert world.image_size == 64
    assert world.max_objects == 3
    assert len(world.prior.count_probs) == world.max_objects + 1
    assert sum(world.prior.count_probs) == pytest.approx(1.0)
    assert world.workspace.width == pytest.approx(world.workspace.x[1] - world.workspace.x[0])
    assert world.workspace.contains(0.0, 0.0) and not world.workspace.contains(5.0, 0.0)
    assert world.pixel_sigma > 0
    # The whole workspace must lie on the ground square.
    h = world.ground.half_extent
    assert max(map(abs, world.workspace.x + world.workspace.z)) < h


def test_plain_data_round_trip(world: World) -> None:
    data = world.to_dict()
    assert data["likelihood"] == {"pixel_sigma": world.pixel_sigma}
    assert World.from_dict(yaml.safe_load(yaml.safe_dump(data))) == world


def test_load_from_a_path(tmp_path: Path, world: World) -> None:
    path = tmp_path / "scene.yaml"
    data = world.to_dict()
    data["image_size"] = 32
    path.write_text(yaml.safe_dump(data))
    assert load_world(path).image_size == 32
    assert load_world(str(path)).camera == world.camera


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_WORLD_PATH.read_text()))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("camera"), r"invalid scene config: KeyError\('camera'\)"),
        (lambda d: d["camera"].pop("fov_deg"), r"missing 1 required .* 'fov_deg'"),
        (lambda d: d["light"].update(colour=1), r"unexpected keyword argument 'colour'"),
        (lambda d: d["likelihood"].pop("pixel_sigma"), r"KeyError\('pixel_sigma'\)"),
        (
            lambda d: d["prior"].update(count_probs=[0.5, 0.5]),
            r"prior\.count_probs has 2 entries; max_objects=3 needs 4",
        ),
        (
            lambda d: d["prior"].update(count_probs=[0.5, 0.5, 0.5, 0.5]),
            r"prior\.count_probs must be >= 0 and sum to 1",
        ),
        (
            lambda d: d["prior"].update(count_probs=[1.5, -0.5, 0.0, 0.0]),
            r"prior\.count_probs must be >= 0 and sum to 1",
        ),
        (
            lambda d: d["prior"].update(shape_probs=[0.5, 0.2, 0.2, 0.2]),
            r"prior\.shape_probs must be >= 0 and sum to 1, got \[0\.5, 0\.2, 0\.2, 0\.2\]",
        ),
        (
            lambda d: d["workspace"].update(x=[1.0, -1.0]),
            r"workspace\.x must be \[low, high\], low < high; got \[1\.0, -1\.0\]",
        ),
        (
            lambda d: d["likelihood"].update(pixel_sigma=0.0),
            r"likelihood\.pixel_sigma must be > 0, got 0\.0",
        ),
        (lambda d: d.update(image_size=4), r"image_size must be at least 8, got 4"),
    ],
)
def test_broken_config_is_refused(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        World.from_dict(_broken(change))


def test_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scene.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="scene config must be a mapping of sections, got list"):
        load_world(path)
    path.write_text("")
    with pytest.raises(ValueError, match="got NoneType"):
        load_world(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_world(tmp_path / "nope.yaml")


def test_lamps_and_surfaces_round_trip() -> None:
    # the clevr world's Blender lamps and its materials' physically based surface
    from air3d.renderer import open_world

    world = open_world("clevr")[0]
    assert [lamp.kind for lamp in world.lamps] == ["area", "area", "area", "sun"]
    assert dict(world.attribute("material").setting("metal"))["metallic"] == 1.0
    text = yaml.safe_dump(world.to_dict(), sort_keys=False)  # attribute values keep their order
    assert World.from_dict(yaml.safe_load(text)) == world


def test_a_world_without_lamps_keeps_its_plain_form(world: World) -> None:
    assert world.lamps == () and not world.to_dict()["lamps"]
    material = {"attributes": {"material": {"matte": {"albedo": 0.5}}}}
    assert World.from_dict({**world.to_dict(), **material}).to_dict()["attributes"] == {
        "material": {"matte": {"albedo": 0.5, "specular": 0.0, "shininess": 1.0}}
    }


@pytest.mark.parametrize(
    ("lamps", "message"),
    [
        ({"kind": "area"}, r"lamps must be a list"),
        ([{"kind": "spot", "position": [0, 1, 0], "energy": 1}], r"lamps\[0\]\.kind: 'spot'"),
        ([{"kind": "sun", "position": [0, 1, 0], "energy": -1}], r"energy must be >= 0"),
        ([{"kind": "sun", "position": [0, 1], "energy": 1}], r"position and color are 3"),
        ([{"kind": "sun", "position": [0, 1, 0], "energy": 1, "color": [2, 1, 1]}], r"color"),
        ([{"kind": "sun", "position": [0, 1, 0]}], r"missing 1 required .* 'energy'"),
    ],
)
def test_broken_lamps_are_refused(lamps: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        World.from_dict(_broken(lambda d: d.update(lamps=lamps)))


def test_a_material_out_of_range_is_refused() -> None:
    def metal(d):
        d["attributes"] = {"material": {"metal": {"metallic": 2.0}}}

    with pytest.raises(ValueError, match=r"attributes\.material\.metal\.metallic: must be in"):
        World.from_dict(_broken(metal))


def test_model_facing_drops_what_only_blender_reads() -> None:
    # a checkpoint trained before the clevr world had lamps is of the same world
    from air3d.renderer import open_world

    world = open_world("clevr")[0]
    plain = world.model_facing()
    assert plain.lamps == () and plain.camera == world.camera
    assert set(dict(plain.attribute("material").setting("metal"))) == {
        "albedo",
        "specular",
        "shininess",
        "reflect",  # our renderer's mirror (worlds with `shading`) stays
        "tint",
    }
    data = world.to_dict()
    del data["lamps"]
    for setting in data["attributes"]["material"].values():
        for key in ("metallic", "roughness", "sheen"):
            setting.pop(key, None)
    assert World.from_dict(data).model_facing() == plain
