"""AIR with a spatial `where`: each step picks a cell of a feature map that stays spatial.

The regressing AIR (air.py) compresses the image into one code and regresses every step's
position from the recurrent state: one vector must carry up to ten positions. Here the
image becomes a feature map (B, C, h, w), and at step t a small convolutional head reads
that map beside a map of the objects found at steps < t (their projected footprints: DAIR,
Eslami et al. 2016 section 3.2, with the camera instead of the renderer) and proposes, per
cell, a logit (is an unexplained object here?) and an offset (where in and around the
cell). The step's z_where is then
  cell ~ Categorical(logits over the h * w cells)   (argmax in "mean" mode)
  image point = the cell's centre + its offset (tanh, up to one cell either way)
  coarse ground position = that point read through the camera onto the plane at
      ModelConfig.glimpse_height (renderer/camera.py's unproject_to_plane)
and from there the step is AIR's own (air.py, `_attend`): a glimpse at the coarse position
refines it into q's Gaussian over the ground position u and decides presence, a second
glimpse centred on the refined position reads shape and yaw. One object per step, z_pres,
stopping at the first absent step: still AIR. Counting rests on the maps, not on one
vector: what is left to explain is visible cell by cell, and the recurrent state only
carries the pooled code of what is left and the last step's latents.

Like SPAIR (Crawford & Pineau 2019) and SPACE (Lin et al. 2020), each location proposes;
unlike them, the proposals are visited one per step, so the prior over the count, the
stopping rule and the sleep/ELBO training of air.py stay as they are.

Training. Sleep (objective.sleep_loss): steps are matched to true objects as for AIR (the
first K steps, Hungarian on ground distance); each matched step's logits are trained by
cross-entropy towards its object's cell, and the offset of that cell (not the chosen one)
towards the object's point. ELBO (objective.elbo_terms): the cell is a discrete choice and
gets a score-function gradient with NVIL's baseline, like presence and shape. Not a
relaxation (Gumbel-softmax): a relaxed cell would blend glimpses at every cell, and the
renderer would draw an object at a blend of positions that no scene has. The offsets and
the refinement reach the likelihood through the reparameterised position, as in AIR. The
cell is an auxiliary latent: the bound uses r(cell | u, x) = q(cell | x) (Agakov & Barber
2004), so log q(cell) cancels from the ELBO itself and the prior over positions stays the
world's; the bound is looser by the information the cell holds about u, which is small
where neighbouring cells' offsets overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.distributions import Categorical

from air3d.model.air import AIR, AIROutput, Mode, StepInputs, StepOutput, StepState
from air3d.model.config import ModelConfig
from air3d.model.networks import MapEncoder, mlp
from air3d.renderer import ShapeLibrary, World
from air3d.renderer.camera import project, unproject_to_plane

# A found object's footprint on the map: a Gaussian whose standard deviation is this share
# of the object's apparent height (the image distance between its base and its top).
FOOTPRINT_SHARE = 0.5
MIN_FOOTPRINT_CELLS = 0.5  # and never narrower than half a cell
# A coarse position stays this share of the half-width inside the workspace (|u| <= 1.8).
COARSE_MARGIN = 0.05


@dataclass(frozen=True)
class CellGrid:
    """The feature map's cells and the ground: which image point a cell and an offset name,
    the ground point seen there, and, back, the cell and offset of a ground point.

    Image points are grid_sample coordinates (renderer/camera.py's `project`): (x, y) in
    [-1, 1], (-1, -1) the top-left corner. Cells are numbered row by row. Rows and columns
    are kept apart: a map need not be square."""

    matrix: torch.Tensor  # (4, 4) world -> clip, row vectors (renderer/camera.py), or
    #                       (B, 4, 4): one per image (q's camera latent, model/camera.py)
    height: float  # image points are read on the plane y = height (ModelConfig.glimpse_height)
    rows: int
    cols: int

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def cell_size(self) -> torch.Tensor:
        """(2,): a cell's width and height in image coordinates."""
        return self.matrix.new_tensor([2.0 / self.cols, 2.0 / self.rows])

    def centres(self) -> torch.Tensor:
        """(C, 2): each cell's centre in image coordinates."""
        size = self.cell_size
        col = torch.arange(self.cols, device=self.matrix.device, dtype=self.matrix.dtype)
        row = torch.arange(self.rows, device=self.matrix.device, dtype=self.matrix.dtype)
        grid_y, grid_x = torch.meshgrid(row, col, indexing="ij")
        return torch.stack([grid_x, grid_y], -1).view(-1, 2) * size + size / 2 - 1.0

    def image_point(self, cell: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Takes cells (B,) and offsets (B, 2) in cells to image points (B, 2)."""
        return self.centres()[cell] + offset * self.cell_size

    def ground(self, point: torch.Tensor) -> torch.Tensor:
        """Takes image points (..., 2) to the (x, z) (..., 2) seen there on the plane. A
        point above the horizon has none: nan_to_num keeps it finite, and the latents'
        unsquash then clamps it to the workspace's edge."""
        matrix = self._matrix(point.dim() - 1)
        return torch.nan_to_num(unproject_to_plane(point, matrix, self.height))

    def locate(self, xz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Takes ground positions (..., 2) to the cell (...) long that sees each (at the
        grid's height) and the offset (..., 2) from that cell's centre, in cells."""
        point = self._project(xz, torch.full_like(xz[..., 0], self.height))
        scaled = (point + 1.0) / self.cell_size  # in cells from the top-left corner
        col = scaled[..., 0].floor().clamp(0, self.cols - 1)
        row = scaled[..., 1].floor().clamp(0, self.rows - 1)
        offset = scaled - torch.stack([col, row], -1) - 0.5
        return (row * self.cols + col).long(), offset

    def footprints(self, xz: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
        """Takes objects' ground positions (B, 2) and heights (B,) to their footprints on
        the map (B, 1, rows, cols) in [0, 1]: a Gaussian around the projection of each
        object's middle, as wide as a share of its apparent height."""
        base = self._project(xz, torch.zeros_like(heights))
        top = self._project(xz, heights)
        middle = (base + top) / 2 / self.cell_size  # (B, 2) in cells, from the centre
        extent = ((top - base) / self.cell_size).norm(dim=-1)  # apparent height in cells
        sigma = (FOOTPRINT_SHARE * extent).clamp(min=MIN_FOOTPRINT_CELLS)  # (B,)
        centres = self.centres() / self.cell_size  # (C, 2) in cells, from the centre
        distance2 = (centres[None] - middle[:, None]).pow(2).sum(-1)  # (B, C)
        blob = torch.exp(-distance2 / (2 * sigma[:, None] ** 2))
        return blob.view(-1, 1, self.rows, self.cols)

    def _project(self, xz: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        points = torch.stack([xz[..., 0], y, xz[..., 1]], -1)
        return project(points, self._matrix(points.dim() - 1))

    def _matrix(self, leading: int) -> torch.Tensor:
        """The matrix for points with `leading` dimensions before their coordinates, the
        first the image's: a per-image (B, 4, 4) viewed as (B, 1, ..., 4, 4)."""
        if self.matrix.dim() == 2:
            return self.matrix
        return self.matrix.view(self.matrix.shape[0], *[1] * (leading - 1), 4, 4)


class WhereMap(nn.Module):
    """Takes a feature map (B, C, h, w) and the map of objects found so far (B, 1, h, w) to
    cell logits (B, h * w), cell offsets (B, h * w, 2) in cells and a code (B, 2 * C) of
    what is left to explain (the map's mean and max over cells)."""

    def __init__(self, channels: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.heads = nn.Conv2d(channels, 1 + 2, 1)  # logit, offset (x, y)
        # Start uniform over cells with every offset at its cell's centre.
        nn.init.zeros_(self.heads.weight)
        nn.init.zeros_(self.heads.bias)

    def forward(
        self, features: torch.Tensor, found: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        left = self.trunk(torch.cat([features, found], dim=1))  # (B, C, h, w)
        heads = self.heads(left).flatten(2)  # (B, 3, h * w)
        logits = heads[:, 0]
        offsets = torch.tanh(heads[:, 1:]).transpose(1, 2)  # (B, h * w, 2)
        code = torch.cat([left.mean(dim=(2, 3)), left.amax(dim=(2, 3))], dim=1)
        return logits, offsets, code


@dataclass
class SpatialState(StepState):
    """AIR's state plus the map of the objects found so far."""

    found: torch.Tensor  # (B, 1, h, w) in [0, 1]: the union of their footprints


@dataclass
class SpatialInputs(StepInputs):
    """AIR's inputs (`features` is the pooled code the NVIL baseline reads) plus the map."""

    feature_map: torch.Tensor  # (B, C, h, w)
    grid: CellGrid


class SpatialAIR(AIR):
    """Takes images (B, 3, S, S) to per-step latent distributions and latents, each step's
    `where` a categorical over the cells of a feature map (this module's docstring).

    AIR's parts are kept (recurrent core, glimpses, refinement, what and scale heads); its
    image encoder and where_head (image code -> position) are replaced by a map encoder,
    the where map, and a pooled code for the NVIL baseline."""

    def __init__(self, config: ModelConfig, world: World, shapes: ShapeLibrary):
        super().__init__(config, world, shapes)
        del self.encoder, self.where_head, self.core
        channels = config.map_channels[-1]
        self.map_encoder = MapEncoder(config.map_channels, config.map_context)
        self.where_map = WhereMap(channels)
        self.core = nn.GRUCell(2 * channels + self.latent_dim, config.hidden_dim)
        self.code = mlp(2 * channels, config.feature_dim, config.feature_dim)

    def forward(
        self, images: torch.Tensor, mode: Mode = "mean", max_steps: int | None = None
    ) -> AIROutput:
        """As AIR.forward; the output also holds the grid (cells <-> ground)."""
        feature_map = self.map_encoder(images)  # (B, C, h, w)
        B, _, rows, cols = feature_map.shape
        pooled = torch.cat([feature_map.mean(dim=(2, 3)), feature_map.amax(dim=(2, 3))], 1)
        features = self.code(pooled)
        camera = self.estimate_camera(features, mode)  # read from the pooled code
        matrix = self.matrices(camera)
        grid = CellGrid(matrix, self.config.glimpse_height, rows, cols)
        inputs = SpatialInputs(
            images, features, self._glimpse_projection(matrix), feature_map, grid
        )
        start = self.initial_state(B, images.device)
        state = SpatialState(
            start.hidden, start.previous, start.alive, feature_map.new_zeros(B, 1, rows, cols)
        )
        steps = []
        for t in range(max_steps or self.max_steps):
            step, state = self.step(t, state, inputs, mode)
            steps.append(step)
        return AIROutput(steps, inputs.features, grid, camera)

    def step(
        self, t: int, state: SpatialState, inputs: SpatialInputs, mode: Mode
    ) -> tuple[StepOutput, SpatialState]:
        """One step: pick a cell of what is left, then AIR's attend-infer from its point."""
        logits, offsets, left = self.where_map(inputs.feature_map, state.found)
        hidden = self.core(torch.cat([left, state.previous], dim=1), state.hidden)
        cell = Categorical(logits=logits).sample() if mode == "sample" else logits.argmax(-1)
        offset = offsets.gather(1, cell[:, None, None].expand(-1, 1, 2))[:, 0]  # (B, 2)
        grid = inputs.grid
        # Held just inside the workspace: a cell that sees beyond it (the background, the
        # table's far edge) would otherwise give |u| up to 5, and errors in u that swamp
        # the sleep loss while the cells are still untrained.
        ground = grid.ground(grid.image_point(cell, offset))
        coarse_u = self.latents.unsquash(ground, eps=COARSE_MARGIN)
        step, next_state = self._attend(state, inputs, mode, hidden, coarse_u)
        step = replace(step, where_logits=logits, cell=cell, cell_offsets=offsets)
        # The object this step found joins the map (its mean position, detached: the map
        # says what is explained, it is not a path for gradients).
        on = (step.z_pres * state.alive.float()).detach()
        heights = self.latents.heights[step.shape]
        drawn = grid.footprints(self.latents.squash(step.xz_u).detach(), heights)
        found = torch.maximum(state.found, drawn * on[:, None, None, None])
        return step, SpatialState(next_state.hidden, next_state.previous, next_state.alive, found)
