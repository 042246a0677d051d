"""Manifests: a stage or shard is done only when its entry is written, after its outputs.

A killed run restarted with the same command skips what its manifest lists as done and redoes the rest;
a partial file never counts, because the entry records its row count and checksum and is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from e2h.jsonl import write_json


def file_checksum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# the files that make a model folder what it is (weights, sizes, vocabulary)
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".json", ".model")


def model_identity(model: str | os.PathLike) -> str:
    """Which model ``model`` is now: for a local folder, the name, size and modification time of each of its
    weight, config and tokenizer files (cheap for a 34B checkpoint, and a model retrained in place at the same
    path gets another identity, so what was sampled or scored with the old one is not reused); a hub id or a path
    that does not exist is its own identity."""
    folder = Path(model)
    if not folder.is_dir():
        return str(model)
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.name.endswith(_MODEL_FILE_SUFFIXES))
    stamp = [[f.name, info.st_size, info.st_mtime_ns] for f in files for info in [f.stat()]]
    return f"{folder.resolve()}@" + hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]


def count_lines(path: str | os.PathLike) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


class Manifest:
    """A JSON file mapping entry names (stages, shards) to what they produced."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.entries = json.loads(self.path.read_text(encoding="utf-8")).get("entries", {})

    def mark_done(self, name: str, outputs: list[str | os.PathLike] = (), **info: Any) -> None:
        files = {}
        for output in outputs:
            output = Path(output)
            if output.is_file():
                files[str(output)] = {"rows": count_lines(output) if output.suffix == ".jsonl" else None,
                                      "sha256": file_checksum(output)}
            elif output.exists():
                files[str(output)] = {"dir": True}
            else:
                raise FileNotFoundError(f"cannot mark '{name}' done: output {output} does not exist")
        self.entries[name] = {"done_at": time.time(), "outputs": files, **info}
        write_json(self.path, {"entries": self.entries})

    def is_done(self, name: str) -> bool:
        """Done means: recorded, and every recorded file still has its checksum."""
        entry = self.entries.get(name)
        if entry is None:
            return False
        for output, meta in entry.get("outputs", {}).items():
            if not Path(output).exists():
                return False
            if "sha256" in meta and file_checksum(output) != meta["sha256"]:
                return False
        return True

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            write_json(self.path, {"entries": self.entries})
