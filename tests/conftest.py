"""Shared fixtures. Everything here is built offline, in-process, from the project's own code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach the network: fail fast instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Non-streaming load_dataset writes Arrow caches: keep them out of the user's home.
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="videokr-test-cache-"))


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample corpus in the official release layout, generated once per test session.

    Tests must not modify it; copy it first (see `corpus_copy`).
    """
    from videokr.sample import generate_sample_corpus

    out = tmp_path_factory.mktemp("sample")
    generate_sample_corpus(out, seed=0)
    return out
