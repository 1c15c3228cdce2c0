"""Fits our renderer's look (a world with `shading`) to Blender's renders of prior scenes.

    .venv/bin/python benchmarks/fit_look.py [--world clevr] [--fit-seed 0] [--held-seed 1]
        [--scenes 8] [--steps 300] [--samples 32] [--cache DIR]

Blender (renderer/blender.py, cached as benchmarks/blender_look.py keeps it) draws --scenes
prior scenes of --fit-seed; our crisp renders of the same scenes are fitted to them by Adam
on the mean absolute sRGB difference of the frame rows. What is fitted: the appearance θ
(renderer/appearance.py: ambient and sun, the lamps' positions and intensities, their
shadows and blur, the floor's and background's colours, the mirrors' horizon) and, per
material value, its albedo factor, specular, shininess, reflect and tint (the colours stay
CLEVR's). The tone curve and the geometry stay. Prints the difference before and after on
the fit scenes, on --scenes held-out scenes of --held-seed and on blender_look's kinds alone
(never fitted), and the fitted values as world.yaml lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import blender_look  # noqa: E402

from air3d.renderer import WORLD_HELP, SceneBatch, SceneRenderer, open_world  # noqa: E402

LEARNED = ("light", "ground", "background", "shadows", "lamps", "gloss")


class MaterialLook:
    """Per material value: albedo factor, specular, shininess, reflect and tint as free
    parameters, and what they make of each kind (colour, highlight, mirror)."""

    def __init__(self, world, shapes):
        material = world.attribute("material")
        colors = world.attribute("color")
        self.names = material.values
        settings = [dict(s) for s in material.settings]

        def free(key, default, link):
            values = torch.tensor([float(s.get(key, default)) for s in settings])
            return link(values).requires_grad_(True)

        def logit(v):
            return torch.logit(v.clamp(1e-3, 1 - 1e-3))

        self.albedo = free("albedo", 1.0, logit)
        self.specular = free("specular", 0.0, lambda v: v.clamp(min=1e-3).log())
        self.shininess = free("shininess", 1.0, torch.log)
        self.reflect = free("reflect", 0.0, logit)
        self.tint = free("tint", 0.0, logit)
        index = {name: i for i, name in enumerate(self.names)}
        self.material = torch.tensor([index[dict(s.attributes)["material"]] for s in shapes.specs])
        self.raw = torch.tensor([colors.setting(dict(s.attributes)["color"]) for s in shapes.specs])

    def params(self) -> list[torch.Tensor]:
        return [self.albedo, self.specular, self.shininess, self.reflect, self.tint]

    def apply(self, renderer: SceneRenderer) -> None:
        """Makes the renderer read the kinds' colours, highlights and mirrors from here."""
        m = self.material
        albedo, tint = torch.sigmoid(self.albedo)[m, None], torch.sigmoid(self.tint)[m, None]
        colors = (self.raw * albedo).clamp(1e-4, 1.0)
        mirrors = torch.sigmoid(self.reflect)[m, None] * (tint * self.raw + 1.0 - tint)
        renderer.appearance.object_colors = lambda: colors
        renderer.appearance.mirrors = lambda: mirrors
        renderer._materials = torch.stack([self.specular.exp()[m], self.shininess.exp()[m]], -1)

    def describe(self) -> str:
        lines = []
        for i, name in enumerate(self.names):
            values = {
                "albedo": torch.sigmoid(self.albedo[i]),
                "specular": self.specular[i].exp(),
                "shininess": self.shininess[i].exp(),
                "reflect": torch.sigmoid(self.reflect[i]),
                "tint": torch.sigmoid(self.tint[i]),
            }
            inner = ", ".join(f"{k}: {float(v.detach()):.3g}" for k, v in values.items())
            lines.append(f"    {name}: {{{inner}}}")
        return "\n".join(lines)


def frames(renderer: SceneRenderer, scenes) -> torch.Tensor:
    """Our crisp renders' frame rows (B, 3, h, S), differentiable in the look."""
    first, last = renderer.world.frame_rows
    batch = SceneBatch.from_scenes(list(scenes.values()), renderer.shapes)
    return renderer(batch, "crisp")[:, :, first:last]


def gap(renderer, scenes, reference) -> float:
    with torch.no_grad():
        ours = frames(renderer, scenes)
    return float((ours - reference).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--fit-seed", type=int, default=0)
    parser.add_argument("--held-seed", type=int, default=1)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--cache", default="/tmp/look-cache/blender")
    args = parser.parse_args()
    torch.set_num_threads(1)
    world, shapes = open_world(args.world)
    if world.shading is None:
        raise SystemExit(f"world {args.world!r} has no `shading` to fit")
    blender = blender_look.BlenderCache(world, shapes, args.samples, args.cache)
    sets = {
        "fit": blender_look.prior_scenes(world, shapes, args.scenes, args.fit_seed),
        "held out": blender_look.prior_scenes(world, shapes, args.scenes, args.held_seed),
        "kinds alone": blender_look.kinds_alone(world, shapes),
    }
    references = {
        name: torch.stack(list(blender_look.blender_frames(world, scenes, blender).values()))
        for name, scenes in sets.items()
    }
    renderer = SceneRenderer(world, shapes)
    before = {name: gap(renderer, sets[name], references[name]) for name in sets}
    materials = MaterialLook(world, shapes)
    params = renderer.appearance.learn(LEARNED) + materials.params()
    optimizer = torch.optim.Adam(params, lr=args.lr)
    for step in range(args.steps):
        materials.apply(renderer)
        loss = (frames(renderer, sets["fit"]) - references["fit"]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step}: fit {loss.item():.4f}", flush=True)
    materials.apply(renderer)
    after = {name: gap(renderer, sets[name], references[name]) for name in sets}
    print("\n| mean abs sRGB difference from Blender | before | after |\n|---|---:|---:|")
    for name in sets:
        print(f"| {name} ({len(sets[name])} scenes) | {before[name]:.4f} | {after[name]:.4f} |")
    fitted, _ = renderer.appearance.to_config(world, shapes)
    print("\nlight:", fitted.light, "\nground:", fitted.ground.color)
    print("background:", fitted.background, "\nshading:", fitted.shading)
    print("materials:\n" + materials.describe())


if __name__ == "__main__":
    main()
