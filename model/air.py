"""Attend-Infer-Repeat (Eslami et al., NIPS 2016, arXiv 1603.08575) over 3D scenes.

q(z | x) is a recurrent net that attends to one object per step. At step t it reads the
image code and what it found at step t-1, updates its state h_t, and emits:
  z_pres  (Bernoulli)  is there one more object?
  z_where (Gaussian over the workspace, squashed)  where it stands on the ground plane;
          a coarse guess from h_t decides where to look, a glimpse there refines it
  z_what  (categorical shape; Gaussian yaw)  what it is and how it is turned, read
          from a second glimpse centred on the refined position.
It stops at the first absent step or after max_objects steps (Figure 2 of [1]). Departs
from the paper: z_where is a 3D ground position rather than a 2D box (the glimpse is
centred on its projection through the known camera), and z_what is the renderer's own
identity and rotation rather than a learned code decoded by a VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

from air3d.model.camera import CameraEstimate, CameraHead
from air3d.model.config import ModelConfig
from air3d.model.latents import LatentSpace
from air3d.model.networks import GlimpseEncoder, ImageEncoder, extract_glimpses, mlp
from air3d.renderer import ShapeLibrary, World
from air3d.renderer.camera import projection_matrices, projection_matrix

if TYPE_CHECKING:
    from air3d.model.spatial import CellGrid

softplus = nn.functional.softplus

Mode = Literal["sample", "mean"]


@dataclass
class StepState:
    """What the recurrent core carries from one step to the next."""

    hidden: torch.Tensor  # (B, hidden_dim)
    previous: torch.Tensor  # (B, latent_dim): the last step's latents, embedded
    alive: torch.Tensor  # (B,) bool: no absent step yet (always True in "mean" teacher mode)


@dataclass
class StepInputs:
    """What every step reads, computed once per forward pass."""

    images: torch.Tensor  # (B, 3, S, S)
    features: torch.Tensor  # (B, feature_dim) the image code
    # (2, 3), (3,): see AIR._glimpse_projection; (B, 2, 3), (B, 3) with q's camera latent
    projection: tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepOutput:
    """One step's distributions (parameters) and the latents taken from them."""

    pres_logit: torch.Tensor  # (B,)
    coarse_u: torch.Tensor  # (B, 2) where the glimpse looked (unconstrained)
    xz_loc: torch.Tensor  # (B, 2) q's mean of u
    xz_scale: torch.Tensor  # (B, 2)
    shape_logits: torch.Tensor  # (B, K) one per kind (shape and attribute values)
    yaw_vector: torch.Tensor  # (B, 2) predicted (cos, sin) of k * yaw (k: symmetry order)
    yaw_direction: torch.Tensor  # (B,) its angle
    yaw_scale: torch.Tensor  # (B,) std of yaw, radians
    hidden: torch.Tensor  # (B, hidden_dim)
    z_pres: torch.Tensor  # (B,) float 0/1, already 0 after the first absent step
    xz_u: torch.Tensor  # (B, 2) sampled (or mean) unconstrained position
    shape: torch.Tensor  # (B,) long
    yaw: torch.Tensor  # (B,) radians
    alive_before: torch.Tensor  # (B,) bool: the step was reached (all earlier present)
    # Spatial where only (model/spatial.py; None in AIR): the step's categorical over the
    # feature map's C = h * w cells, the cell it chose, and the offset each cell proposes.
    where_logits: torch.Tensor | None = None  # (B, C)
    cell: torch.Tensor | None = None  # (B,) long
    cell_offsets: torch.Tensor | None = None  # (B, C, 2) in cells, (x, y), each in (-1, 1)


@dataclass
class AIROutput:
    """Steps stacked along dim 1 (N = max_objects); see StepOutput for the fields."""

    steps: list[StepOutput]
    features: torch.Tensor  # (B, feature_dim) the image code
    grid: CellGrid | None = None  # spatial where only: the map's cells <-> the ground
    camera: CameraEstimate | None = None  # q's camera (a world with camera jitter only)

    def stack(self, name: str) -> torch.Tensor:
        return torch.stack([getattr(step, name) for step in self.steps], dim=1)


def kind_value_matrix(shapes: ShapeLibrary) -> torch.Tensor:
    """Takes a library to its (K, V) 0/1 matrix: kind k holds value v of some factor (shape
    or attribute), the values of all factors side by side in the library's order."""
    index = torch.as_tensor(shapes.factor_index())  # (K, A)
    sizes = [len(values) for _, values in shapes.factors]
    offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
    kinds = torch.zeros(len(shapes), sum(sizes))
    kinds.scatter_(1, index + offsets, 1.0)
    return kinds


class AIR(nn.Module):
    """Takes images (B, 3, S, S) to per-step latent distributions and latents."""

    def __init__(self, config: ModelConfig, world: World, shapes: ShapeLibrary):
        super().__init__()
        self.config, self.max_steps = config, world.max_objects
        self.num_shapes = len(shapes)
        self.latents = LatentSpace(world, shapes)
        self.register_buffer("camera", projection_matrix(world))
        self._world = world
        # q's camera latent (model/camera.py), only in a world whose camera moves per scene:
        # elsewhere no head, no parameters, and the world's camera as before.
        self.camera_head = (
            CameraHead(config.feature_dim, config.hidden_dim, world, config.min_scale)
            if CameraHead.applies(world)
            else None
        )
        # A kind is a shape and a value of each attribute; q's head gives one logit per
        # value of each (`factor_values`), and a kind's logit is the sum of its values'
        # (kinds (K, values) 0/1 matrix): softmax over kinds is then the product of one
        # softmax per attribute. In a world without attributes the matrix is the identity.
        kinds = kind_value_matrix(shapes)
        self.factor_values = kinds.shape[1]
        self.register_buffer("kind_values", kinds, persistent=False)
        self.latent_dim = 1 + 2 + self.factor_values + 2
        hidden = config.hidden_dim
        self.encoder = ImageEncoder(world.image_size, config.encoder_channels, config.feature_dim)
        self.core = nn.GRUCell(config.feature_dim + self.latent_dim, hidden)
        self.where_head = mlp(hidden, hidden, 2)  # h -> coarse u
        glimpse = (config.glimpse_size, config.glimpse_channels, config.glimpse_dim)
        self.where_glimpse_encoder = GlimpseEncoder(*glimpse)
        self.what_glimpse_encoder = GlimpseEncoder(*glimpse)
        # (h, glimpse at the coarse guess, coarse u) -> presence logit, u offset
        self.refine_head = mlp(hidden + config.glimpse_dim + 2, hidden, 1 + 2)
        # (h, glimpse centred on the refined position) -> shape logits, yaw vector
        self.what_head = mlp(hidden + config.glimpse_dim, hidden, self.factor_values + 2)
        # q's standard deviations are read from the heads' hidden layers through a stop-
        # gradient: their NLL gradients (~ error^2 / std^3) are large and noisy, and when
        # they reached the shared layers presence and yaw stopped learning altogether.
        self.xz_scale_head = nn.Linear(hidden, 2)
        self.yaw_scale_head = nn.Linear(hidden, 1)
        self._initialise_outputs()

    def _initialise_outputs(self) -> None:
        """Start near-uniform over shapes, unsure about position and yaw, and presence
        slightly on: the published AIR failure 'all steps off' starts from a net that
        switches everything off early."""
        for head in (self.refine_head, self.what_head):
            nn.init.zeros_(head[-1].bias)
            head[-1].weight.data.mul_(0.1)

    def initial_state(self, batch: int, device: torch.device) -> StepState:
        return StepState(
            hidden=torch.zeros(batch, self.config.hidden_dim, device=device),
            previous=torch.zeros(batch, self.latent_dim, device=device),
            alive=torch.ones(batch, dtype=torch.bool, device=device),
        )

    def forward(
        self, images: torch.Tensor, mode: Mode = "mean", max_steps: int | None = None
    ) -> AIROutput:
        """max_steps defaults to the world's max_objects; more steps than trained with is
        how AIR is asked to generalise to scenes with more objects (section 3.1 of [1])."""
        features = self.encoder(images)
        camera = self.estimate_camera(features, mode)
        inputs = StepInputs(images, features, self._glimpse_projection(self.matrices(camera)))
        state = self.initial_state(images.shape[0], images.device)
        steps = []
        for t in range(max_steps or self.max_steps):
            step, state = self.step(t, state, inputs, mode)
            steps.append(step)
        return AIROutput(steps, features, camera=camera)

    def estimate_camera(self, features: torch.Tensor, mode: Mode) -> CameraEstimate | None:
        """q's camera from the image code (B, F), once per image; None without a head."""
        if self.camera_head is None:
            return None
        return self.camera_head(features, mode == "sample")

    def matrices(self, camera: CameraEstimate | None) -> torch.Tensor:
        """The world -> clip matrix that q reads positions through: the world's (4, 4), or
        one per image (B, 4, 4) at q's eye (detached: the camera learns from its own terms
        and the renderer, not through where the glimpses look)."""
        if camera is None:
            return self.camera
        return projection_matrices(self._world, camera.eye.detach())

    def step(
        self, t: int, state: StepState, inputs: StepInputs, mode: Mode
    ) -> tuple[StepOutput, StepState]:
        """One attend-infer step: (t, state, inputs) -> (this step's output, next state)."""
        hidden = self.core(torch.cat([inputs.features, state.previous], dim=1), state.hidden)
        return self._attend(state, inputs, mode, hidden, self.where_head(hidden))

    def _attend(
        self,
        state: StepState,
        inputs: StepInputs,
        mode: Mode,
        hidden: torch.Tensor,
        coarse_u: torch.Tensor,
    ) -> tuple[StepOutput, StepState]:
        """The step from its new state h (B, hidden_dim) and a coarse guess of where its
        object stands (B, 2, unconstrained) on: presence, position, shape and yaw."""
        # Look at the coarse guess, then look again where that glimpse says the object is:
        # the second glimpse is centred on the object, which is what reading its shape
        # and yaw needs (both are small details at 64x64).
        where_code = self.where_glimpse_encoder(self._glimpse(inputs, coarse_u))
        where_features = self.refine_head[:-1](torch.cat([hidden, where_code, coarse_u], dim=1))
        where = self.refine_head[-1](where_features)
        pres_logit = where[:, 0] + 2.0  # bias towards "present" at initialisation
        xz_loc = coarse_u + where[:, 1:3]
        floor = self.config.min_scale
        xz_scale = softplus(self.xz_scale_head(where_features.detach()) - 2.0) + floor
        what_code = self.what_glimpse_encoder(self._glimpse(inputs, xz_loc.detach()))
        what_features = self.what_head[:-1](torch.cat([hidden, what_code], dim=1))
        what = self.what_head[-1](what_features)
        S = self.factor_values
        shape_logits = what[:, :S] @ self.kind_values.T  # (B, K) kinds' logits
        yaw_vector = what[:, S : S + 2]
        yaw_direction = torch.atan2(yaw_vector[:, 1], yaw_vector[:, 0] + 1e-6)
        yaw_scale = softplus(self.yaw_scale_head(what_features.detach())[:, 0] - 1.0) + floor

        if mode == "sample":
            z_pres = Bernoulli(logits=pres_logit).sample()
            xz_u = Normal(xz_loc, xz_scale).rsample()
            shape = Categorical(logits=shape_logits).sample()
        else:
            z_pres = (pres_logit > 0).float()
            xz_u, shape = xz_loc, shape_logits.argmax(-1)
        yaw_mean = yaw_direction / self.latents.order(shape)
        yaw = Normal(yaw_mean, yaw_scale).rsample() if mode == "sample" else yaw_mean
        yaw = torch.where(self.latents.has_yaw[shape], yaw, torch.zeros_like(yaw))

        alive_before = state.alive
        if mode == "sample":  # the process stops at the first absent step
            z_pres = z_pres * alive_before.float()
        step = StepOutput(
            pres_logit, coarse_u, xz_loc, xz_scale, shape_logits, yaw_vector, yaw_direction,
            yaw_scale, hidden, z_pres, xz_u, shape, yaw, alive_before,
        )  # fmt: skip
        next_state = StepState(hidden, self._embed(step), alive_before & (z_pres > 0.5))
        return step, next_state

    def _glimpse_projection(
        self, camera: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where a glimpse looks, as one affine map: tanh(u) (B, 2) @ matrix (2, 3) + offset
        (3,) = (x, y, w) with image coordinates (x / w, y / w). It composes the latents'
        squash (xz = centre + half_width * tanh(u)), the point at a fixed height above the
        ground and `camera.project` (clip = [x, height, z, 1] @ camera, keeping the columns
        that give -ndc and w), so a step projects with one matmul. `camera`: the (4, 4)
        matrix (None: the world's), or (B, 4, 4), one per image: then (B, 2, 3), (B, 3)."""
        camera = self.camera if camera is None else camera
        columns = camera[..., [0, 1, 3]] * camera.new_tensor([-1.0, -1.0, 1.0])
        xz_rows = columns[..., [0, 2], :]  # (2, 3) or (B, 2, 3)
        offset = (
            self.config.glimpse_height * columns[..., 1, :]
            + columns[..., 3, :]
            + self.latents.centre @ xz_rows
        )
        return self.latents.half_width[:, None] * xz_rows, offset

    def _glimpse(self, inputs: StepInputs, u: torch.Tensor) -> torch.Tensor:
        """Takes unconstrained positions (B, 2) to glimpses of the images centred on
        their projections."""
        matrix, offset = inputs.projection
        if matrix.dim() == 2:
            clip = torch.addmm(offset, torch.tanh(u), matrix)  # (B, 3)
        else:  # one camera per image
            clip = torch.baddbmm(offset[:, None], torch.tanh(u)[:, None], matrix)[:, 0]
        centre = clip[:, :2] / clip[:, 2:]
        return extract_glimpses(inputs.images, centre, self.config.glimpse_size)

    def _embed(self, step: StepOutput) -> torch.Tensor:
        """The step's latents as the next step's input. Detached: the next step learns
        from what was found, the gradient does not flow back through the choice."""
        k = self.latents.order(step.shape)
        # Not nn.functional.one_hot: it checks the indices' range, a reduction and a read
        # back per call, as long as the rest of the step at batch 1.
        shapes = torch.arange(self.num_shapes, device=step.shape.device)
        one_hot = (step.shape[:, None] == shapes).float() @ self.kind_values  # its values
        parts = [
            step.z_pres[:, None],
            torch.tanh(step.xz_u),
            one_hot,
            torch.cos(k * step.yaw)[:, None],
            torch.sin(k * step.yaw)[:, None],
        ]
        return torch.cat(parts, dim=1).detach()
