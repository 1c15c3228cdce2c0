"""q's answer as one frozen graph: the "mean" forward pass traced and frozen for CPU.

Takes images (B, 3, S, S) to the per-step tensors the Predictor reads, stacked (B, N, ...).
At batch 1 q is some 600 small tensor operations, and Python's dispatch of each costs
about as much as its arithmetic: run as a TorchScript graph they cost about half (3.0 to
1.5 ms on the shipped model). Frozen, the weights are constants, so TorchScript's
`optimize_for_inference` runs the convolutions in oneDNN's blocked layout with the
weights reordered once and each ReLU fused in place (the image encoder takes half the
time at batch 64). The same operations in the same order: equal to the eager forward up
to float summation order (tests/model/test_frozen.py).

The graph is of the weights at the time of freezing: `FrozenQ.fits` tells whether the
model's weights are still those (an optimiser step or load_state_dict bumps a weight's
version), and the Predictor re-freezes when they are not. The model itself is untouched:
it still trains, pickles and saves as before; the graph lives beside it, not in it.
TorchScript is deprecated in favour of torch.compile, which does the same on CPU but
takes tens of seconds to start on two cores (TorchScript: under a second); the
deprecation warnings of tracing and freezing are silenced here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

# The StepOutput fields the Predictor reads, in the graph's output order.
ANSWER_FIELDS = ("pres_logit", "shape_logits", "xz_loc", "shape", "yaw")


class MeanAnswer(nn.Module):
    """Takes images (B, 3, S, S) to q's mean-mode answer: ANSWER_FIELDS stacked over steps."""

    def __init__(self, model: nn.Module, steps: int | None):
        super().__init__()
        self.model, self.steps = model, steps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images, "mean", self.steps)
        return tuple(out.stack(name) for name in ANSWER_FIELDS)


class FrozenQ:
    """MeanAnswer of a model, traced on an example batch and frozen (CPU only)."""

    def __init__(self, model: nn.Module, steps: int | None, image_size: int):
        self.steps = steps
        self._parameters = list(model.parameters())
        self.key = self._weights_key()
        example = torch.zeros(2, 3, image_size, image_size)  # no branch depends on values
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(MeanAnswer(model, steps).eval(), example, check_trace=False)
            self.graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return dict(zip(ANSWER_FIELDS, self.graph(images), strict=True))

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
