"""q's answer as one frozen graph: the "mean" forward pass traced and frozen for CPU.

Takes images (B, 3, S, S) to the per-step tensors the Predictor reads, stacked (B, N, ...).
At batch 1 q is some 600 small tensor operations, and Python's dispatch of each costs
about as much as their arithmetic: as a TorchScript graph they cost a third less. For
batches, the frozen graph also goes through TorchScript's `optimize_for_inference`: the
convolutions run in oneDNN's blocked layout with their weights reordered once and each
ReLU in place (the image encoder takes half the time at batch 64); at batch 1 the layout
conversions cost more than they save, so a batch of one runs the graph without them,
traced from a channels-last copy of the model (its convolutions then copy no weights).
The same operations in the same order: equal to the eager forward up to float summation
order (tests/model/test_fast_inference.py).

The graph is of the weights at the time of freezing: `FrozenQ.fits` tells whether the
model's weights are still those (an optimiser step or load_state_dict bumps a weight's
version), and the Predictor re-freezes when they are not. The model itself is untouched:
it still trains, pickles and saves as before; the graph lives beside it, not in it.
TorchScript is deprecated in favour of torch.compile, but torch.compile (inductor, with
freezing) measured worse on both counts on the 2-core CPU: 80-115 s to compile each batch
size against about a second here, and 2.95 against 2.18 ms at batch 1, 27.4 against 23.8
ms at batch 64 (benchmarks/RESULTS.md). The deprecation warnings of tracing and freezing
are silenced here.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

# The StepOutput fields the Predictor reads, in the graph's output order; then, for a model
# with a camera latent (model/camera.py), q's mean eye (B, 3) as "eye".
ANSWER_FIELDS = ("pres_logit", "shape_logits", "xz_loc", "shape", "yaw")


class MeanAnswer(nn.Module):
    """Takes images (B, 3, S, S) to q's mean-mode answer: ANSWER_FIELDS stacked over steps."""

    def __init__(self, model: nn.Module, steps: int | None):
        super().__init__()
        self.model, self.steps = model, steps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images, "mean", self.steps)
        eye = () if out.camera is None else (out.camera.mean_eye,)
        return (*(out.stack(name) for name in ANSWER_FIELDS), *eye)


class FrozenQ:
    """MeanAnswer of a model, traced on an example batch and frozen (CPU only); the graph
    for batches of one and the one for larger batches are each made on first use."""

    def __init__(self, model: nn.Module, steps: int | None, image_size: int):
        self.steps, self.image_size = steps, image_size
        self.model = model
        self._parameters = list(model.parameters())
        self.key = self._weights_key()
        self._graphs: dict[bool, torch.jit.ScriptModule] = {}  # by "batch of one"

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        single = images.shape[0] == 1
        if single not in self._graphs:
            self._graphs[single] = self._freeze(single)
        with torch.inference_mode():
            outputs = self._graphs[single](images)
        names = ANSWER_FIELDS + ("eye",) * (len(outputs) - len(ANSWER_FIELDS))
        return dict(zip(names, outputs, strict=True))

    def _freeze(self, single: bool) -> torch.jit.ScriptModule:
        """Traced at batch 1 or 2: the encoders branch on "one image" (networks.py), and
        nothing branches on the values."""
        example = torch.zeros(1 if single else 2, 3, self.image_size, self.image_size)
        model = self.model
        if single:  # channels-last convolutions want their weights so (else a copy per call)
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        answer = MeanAnswer(model, self.steps).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # that branch, known
            graph = torch.jit.freeze(torch.jit.trace(answer, example, check_trace=False))
            return graph if single else torch.jit.optimize_for_inference(graph)

    def fits(self, steps: int | None) -> bool:
        """Whether the graph still computes the model's answer with this many steps: its
        weights are those frozen (same storage, no change in place since)."""
        return steps == self.steps and self._weights_key() == self.key

    def _weights_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version) for p in self._parameters)

    @staticmethod
    def applies(model: nn.Module) -> bool:
        """On CPU, with weights that track their versions (not made in inference mode)."""
        parameters = list(model.parameters())
        return all(p.device.type == "cpu" and not torch.is_inference(p) for p in parameters)
