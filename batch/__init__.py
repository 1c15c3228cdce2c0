"""Offline work in bulk: batch inference of image folders and batch re-rendering of the
inferences, resumable, and scaled out under torchrun (one shard per rank, then a merge)."""

from air3d.batch.infer import InferSummary, find_images, merge_shards, run_inference
from air3d.batch.jsonl import JsonlLine, JsonlWriter, read_jsonl
from air3d.batch.rerender import RerenderSummary, load_items, run_rerender
from air3d.batch.sharding import Shard, current_shard, process_group

__all__ = [
    "InferSummary",
    "JsonlLine",
    "JsonlWriter",
    "RerenderSummary",
    "Shard",
    "current_shard",
    "find_images",
    "load_items",
    "merge_shards",
    "process_group",
    "read_jsonl",
    "run_inference",
    "run_rerender",
]
