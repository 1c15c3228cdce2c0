"""Scale-out: `air3d infer` and `air3d rerender` under torchrun, two CPU processes (gloo)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from batch_helpers import REPO, cli, read_lines, subprocess_env

pytestmark = pytest.mark.slow


def torchrun(*args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "air3d.cli", *map(str, args)]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=subprocess_env(), cwd=REPO
    )


def test_two_ranks_write_shards_that_merge_into_the_single_process_output(
    images, tmp_path, tiny_checkpoint
):
    (images / "broken.png").write_bytes(b"not an image")
    common = ("--checkpoint", tiny_checkpoint, "--batch-size", 1, "--no-progress")
    single, sharded = tmp_path / "single.jsonl", tmp_path / "sharded.jsonl"
    assert cli("infer", images, "--out", single, *common) == 0
    # resume across a change of scale: one image done before, by a single process
    assert cli("infer", images / "000002.png", "--out", sharded, *common) == 0

    result = torchrun("infer", images, "--out", sharded, *common)
    assert result.returncode == 0, result.stderr
    # sorted sources 000000 ... 000005, broken.png: rank 0 takes 0, 2 (done), 4, broken
    assert (
        "rank 0 of 2: 2 inferred (0 flagged not a scene), 1 unreadable (error lines), 1 already"
        in result.stderr
    )
    assert (
        "rank 1 of 2: 3 inferred (0 flagged not a scene), 0 unreadable (error lines), 0 already"
        in result.stderr
    )
    assert "merged 2 shards" in result.stderr
    assert sorted(p.name for p in tmp_path.glob("sharded*")) == ["sharded.jsonl"]

    def as_set(path):
        return {json.dumps(line, sort_keys=True) for line in read_lines(path)}

    lines = read_lines(sharded)
    assert len(lines) == 7 and len({line["source"] for line in lines}) == 7
    assert [line["source"] for line in lines] == sorted(line["source"] for line in lines)
    assert as_set(sharded) == as_set(single)


def test_two_ranks_rerender_disjoint_shares_and_one_index(images, tmp_path, tiny_checkpoint):
    inferences = tmp_path / "inf.jsonl"
    assert cli("infer", images, "--out", inferences, "--checkpoint", tiny_checkpoint,
               "--no-progress") == 0  # fmt: skip
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert cli("rerender", inferences, "--out", single, "--compare", "--no-progress") == 0
    result = torchrun("rerender", inferences, "--out", sharded, "--compare", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "rank 0 of 2: 3 rendered" in result.stderr
    assert "rank 1 of 2: 3 rendered" in result.stderr

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(sharded) == files(single)  # same renders, sheets and index.html
