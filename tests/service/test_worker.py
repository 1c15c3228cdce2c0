"""The forward pass in its own process answers as the predictor does, errors included."""

from __future__ import annotations

import pytest
import torch

from air3d.images import decode_image
from air3d.service.worker import InferenceProcess
from tests.service.conftest import example_png


def test_inference_process_answers_like_the_predictor(tiny_checkpoint, predictor):
    size = predictor.image_size
    images = torch.stack([decode_image(example_png(i), size) for i in range(3)])
    worker = InferenceProcess(tiny_checkpoint, "cpu", threads=1)
    try:
        got = [inference.to_json() for inference in worker(images)]
        with pytest.raises(ValueError, match="images must be"):
            worker(torch.zeros(1, 3, size + 1, size))
        again = worker(images[:1])  # it lives on after an error
    finally:
        worker.close()
    want = [inference.to_json() for inference in predictor.infer(images)]
    assert [g["count"] for g in got] == [w["count"] for w in want]
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g["objects"], w["objects"], strict=True):
            assert a["shape"] == b["shape"]
            assert a["position"] == pytest.approx(b["position"], abs=1e-5)
    assert again[0].to_json()["count"] == want[0]["count"]
    for g, w in zip(got, want, strict=True):  # the fit comes through the process too
        assert g["fit"]["log_likelihood_per_pixel"] == pytest.approx(
            w["fit"]["log_likelihood_per_pixel"], abs=1e-4
        )


def test_inference_process_passes_on_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(bad)):
        InferenceProcess(bad, "cpu", threads=1)


def test_a_dead_inference_process_is_a_clear_error(tiny_checkpoint, predictor):
    worker = InferenceProcess(tiny_checkpoint, "cpu", threads=1)
    worker._process.kill()
    worker._process.join()
    with pytest.raises(RuntimeError, match="inference process exited"):
        worker(torch.zeros(1, 3, predictor.image_size, predictor.image_size))
    worker.close()
