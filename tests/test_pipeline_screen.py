"""Visual relevance and safety screening keep and drop exactly what the model's verdicts say."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pipeline_fixtures import image_count, message_text

from videokr.data.release import ClipStore
from videokr.pipeline.client import CallableBackend, ModelClient
from videokr.pipeline.common import read_jsonl, write_jsonl
from videokr.pipeline.screen import SAFETY_FRAMES, check_safety, judge_visual_relevance


@pytest.fixture(scope="module")
def candidates(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four downloaded candidates: three real sample clips and one file that is not a video."""
    folder = tmp_path_factory.mktemp("downloads")
    store = ClipStore(sample_corpus / "VideoKR-Train")
    rows = []
    for index, ref in enumerate(sorted(store, key=lambda r: r.name)[:3]):
        path = folder / f"clip{index}.mp4"
        ref.copy_to(path)
        point = ["Flame tests", "Ohm's law", "Half-life"][index]
        rows.append({"id": f"yt-{index}", "path": str(path), "knowledge_point": point, "subject": "Science"})
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    rows.append({"id": "yt-broken", "path": str(folder / "broken.mp4"), "knowledge_point": "Optics"})
    rows.append({"id": "yt-nopath", "knowledge_point": "Optics"})
    return write_jsonl(folder / "candidates.jsonl", rows)


def test_visual_relevance_keeps_what_the_judge_accepts(candidates: Path, tmp_path: Path) -> None:
    frames_seen: list[int] = []

    def judge(payload: Mapping[str, Any]) -> str:
        frames_seen.append(image_count(payload))
        relevant = "Ohm's law" not in message_text(payload)
        return json.dumps({"relevant": relevant, "reason": "" if relevant else "slides only"})

    client = ModelClient(CallableBackend(judge, "judge"), cache_dir=tmp_path / "cache")
    report = judge_visual_relevance(client, candidates, tmp_path / "kept.jsonl", progress=False)
    assert [r["id"] for r in read_jsonl(tmp_path / "kept.jsonl")] == ["yt-0", "yt-2"]
    assert report.dropped_ids["visually_irrelevant"] == ["yt-1"]
    assert report.dropped_ids["undecodable"] == ["yt-broken"]
    assert report.dropped_ids["incomplete"] == ["yt-nopath"]
    assert len(frames_seen) == 3 and all(n == 4 for n in frames_seen)  # short clips: the minimum

    again = judge_visual_relevance(client, candidates, tmp_path / "kept.jsonl", progress=False)
    assert len(frames_seen) == 3, "a re-run is answered from the ledger and cache, no new calls"
    assert again.dropped_ids == report.dropped_ids


def test_safety_check_shows_four_frames_and_drops_unsafe(candidates: Path, tmp_path: Path) -> None:
    frames_seen: list[int] = []

    def checker(payload: Mapping[str, Any]) -> str:
        frames_seen.append(image_count(payload))
        return json.dumps({"safe": len(frames_seen) != 2, "reason": "gore"})

    client = ModelClient(CallableBackend(checker, "safety"), max_concurrency=1)
    report = check_safety(client, candidates, tmp_path / "safe.jsonl", workers=1, progress=False)
    assert frames_seen == [SAFETY_FRAMES] * 3
    assert [r["id"] for r in read_jsonl(tmp_path / "safe.jsonl")] == ["yt-0", "yt-2"]
    assert report.dropped_ids["unsafe"] == ["yt-1"]
    assert report.dropped_ids["undecodable"] == ["yt-broken"]
