"""The identity of a model's weights, for the prediction cache: what changes when the weights change.

lighteval keys its cache on the model config, which names the checkpoint, not its contents: a checkpoint
retrained in place would be answered from the old weights' cache. The identity is computed from the
weight files themselves, cheaply enough for a 16 GB checkpoint: each file's name and size and a digest of
64 evenly spaced 64 KiB samples of its bytes (optimiser updates touch every tensor, so retrained
weights differ in every sample), plus the model's ``config.json``. A Hub id is resolved to its local
snapshot when one is cached (its folder names the commit); otherwise the id and revision stand in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["weights_identity"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_SAMPLES = 64
_SAMPLE_BYTES = 64 * 1024


def weights_identity(model: str, revision: str | None = None) -> str:
    """A 16-hex-digit identity of the weights `model` (a folder or a Hub id) loads."""
    folder = Path(os.path.expanduser(model))
    if not folder.is_dir():
        folder = _cached_snapshot(model, revision) or folder
    if not folder.is_dir():
        return hashlib.sha256(f"hub:{model}@{revision or 'main'}".encode()).hexdigest()[:16]
    digest = hashlib.blake2b(digest_size=8)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json")
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}:{size}\n".encode())
        with path.open("rb") as handle:
            for k in range(_SAMPLES if size > _SAMPLES * _SAMPLE_BYTES else 1):
                handle.seek(k * max(0, size - _SAMPLE_BYTES) // max(1, _SAMPLES - 1))
                digest.update(handle.read(_SAMPLE_BYTES if size > _SAMPLES * _SAMPLE_BYTES else size))
    return digest.hexdigest()


def _cached_snapshot(model: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:  # not a Hub id, or not cached: the id and revision stand in
        return None
