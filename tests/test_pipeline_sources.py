"""Where videos come from and what may enter: the subject bank, licence policy, collection adapters
(local manifest; YouTube Data API against a loopback fake) and decontamination on planted copies."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pipeline_fixtures import message_text

from videokr.pipeline.bank import DISCIPLINE_SIZES, SUBJECTS, expand_bank, subjects
from videokr.pipeline.client import CallableBackend, ModelClient
from videokr.pipeline.collect import YouTubeSearch, collect_local, collect_youtube, parse_iso_duration
from videokr.pipeline.common import read_jsonl
from videokr.pipeline.decontaminate import BenchmarkIndex, decontaminate, frame_hashes, hamming, video_id
from videokr.pipeline.licenses import evaluate_license
from videokr.sample.encode import write_clip


def test_bank_has_82_subjects_in_the_papers_disciplines() -> None:
    assert {d: len(s) for d, s in SUBJECTS.items()} == DISCIPLINE_SIZES
    assert sum(DISCIPLINE_SIZES.values()) == len(subjects()) == 82
    assert len({s.subject for s in subjects()}) == 82
    with pytest.raises(ValueError, match="unknown subjects"):
        subjects(["Alchemy"])


def test_bank_expansion_is_hierarchical_and_resumable(tmp_path: Path) -> None:
    calls: list[str] = []

    def curriculum(payload: Mapping[str, Any]) -> str:
        text = message_text(payload)
        calls.append(text)
        level = "kp" if "knowledge points" in text else "lecture" if "Course:" in text else "course"
        return json.dumps({"items": [f"{level} {i}" for i in range(3)]})  # one more than asked: trimmed

    client = ModelClient(CallableBackend(curriculum, "m"), cache_dir=tmp_path / "cache")
    out = tmp_path / "bank.jsonl"
    report = expand_bank(
        client, out, only=["Optics", "Nursing"], courses=2, lectures=2, points=2, progress=False
    )
    rows = read_jsonl(out)
    assert report.kept == len(rows) == 2 * 2 * 2 * 2
    assert {r["subject"]: r["discipline"] for r in rows} == {
        "Optics": "Natural Sciences",
        "Nursing": "Healthcare",
    }
    assert len({r["id"] for r in rows}) == 16
    assert len(calls) == 2 * (1 + 2 + 4)
    again = expand_bank(
        client, out, only=["Optics", "Nursing"], courses=2, lectures=2, points=2, progress=False
    )
    assert again.resumed_units == 2 and len(calls) == 14 and len(read_jsonl(out)) == 16


@pytest.mark.parametrize(
    ("raw", "accepted", "canonical"),
    [
        ("CC BY 4.0", True, "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/", True, "CC-BY-SA-4.0"),
        ("Creative Commons Attribution 3.0 Unported", True, "CC-BY-3.0"),
        ("creativeCommon", True, "CC-BY-3.0"),  # the YouTube Data API's value
        ("CC0", True, "CC0-1.0"),
        ("CC BY-NC 4.0", False, "CC-BY-NC-4.0"),
        ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0", False, "CC-BY-NC-SA-4.0"),
        ("CC-BY-ND-4.0", False, "CC-BY-ND-4.0"),
        ("youtube", False, "youtube"),
        ("CC BY", False, "CC-BY-?"),
        ("MIT", False, None),
        (None, False, None),
    ],
)
def test_license_policy(raw: str | None, accepted: bool, canonical: str | None) -> None:
    decision = evaluate_license(raw)
    assert (decision.accepted, decision.license) == (accepted, canonical)
    assert (decision.reason is None) == accepted


def test_license_rejections_say_why() -> None:
    assert "non-commercial" in str(evaluate_license("CC BY-NC 4.0").reason)
    assert "no derivatives" in str(evaluate_license("CC BY-ND 4.0").reason)
    assert "standard YouTube" in str(evaluate_license("youtube").reason)
    assert str(evaluate_license("").reason).startswith("unknown")


def test_collect_local_applies_the_license_policy(sample_corpus: Path, tmp_path: Path) -> None:
    source = sorted((sample_corpus / "VideoKR-Eval" / "videos").rglob("*.mp4"))[:4]
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, path in enumerate(source):
        (folder / f"clip{i}.mp4").write_bytes(path.read_bytes())
    manifest = [
        {"file": "clip0.mp4", "license": "CC BY 4.0", "creator": "Ada", "title": "Pendulum", "kp_id": "kp-1"},
        {"file": "clip1.mp4", "license": "CC BY-NC 4.0"},
        {"file": "clip2.mp4", "license": "youtube"},
        {"file": "gone.mp4", "license": "CC0"},
    ]  # clip3.mp4 has no entry
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    report = collect_local(folder, tmp_path / "manifest.jsonl", tmp_path / "videos.jsonl", progress=False)
    (kept,) = read_jsonl(tmp_path / "videos.jsonl")
    assert kept["id"] == "clip0" and kept["license"] == "CC-BY-4.0" and kept["kp_id"] == "kp-1"
    assert kept["attribution"].startswith('"Pendulum" by Ada') and 0 < kept["duration_s"] < 60
    assert report.dropped == {"license": 3, "missing": 1}
    assert sorted(report.dropped_ids["license"]) == ["clip1", "clip2", "clip3"]


@pytest.fixture
def fake_youtube() -> Iterator[tuple[str, list[str]]]:
    """A loopback stand-in for the Data API's search.list and videos.list, recording request URLs."""
    seen: list[str] = []
    videos = {
        "aaaaaaaaaaa": ("PT12M3S", "creativeCommon"),
        "bbbbbbbbbbb": ("PT45M", "creativeCommon"),  # too long
        "ccccccccccc": ("PT3M", "youtube"),  # search filters are not trusted
        "ddddddddddd": ("PT29M59S", "creativeCommon"),
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path.endswith("/search"):
                body = {"items": [{"id": {"kind": "youtube#video", "videoId": v}} for v in videos]}
            else:
                body = {
                    "items": [
                        {
                            "id": v,
                            "snippet": {"title": f"T{v[0]}", "channelTitle": "Chan", "description": "d"},
                            "contentDetails": {"duration": videos[v][0]},
                            "status": {"license": videos[v][1]},
                        }
                        for v in query["id"][0].split(",")
                    ]
                }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/youtube/v3", seen
    server.shutdown()
    server.server_close()


def test_youtube_adapter_keeps_cc_videos_up_to_30_minutes(
    fake_youtube: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, seen = fake_youtube
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"id": "q1", "kp_id": "kp-1", "keyword": "pendulum period"})
        + "\n"
        + json.dumps({"id": "q2", "kp_id": "kp-2", "keyword": "simple harmonic motion"})
        + "\n"
    )
    report = collect_youtube(
        YouTubeSearch("KEY", base_url=base), queries, tmp_path / "c.jsonl", progress=False
    )
    rows = read_jsonl(tmp_path / "c.jsonl")
    assert [r["id"] for r in rows] == ["aaaaaaaaaaa", "ddddddddddd"]
    assert rows[0]["license"] == "CC-BY-3.0" and rows[0]["duration_s"] == 723
    assert (
        rows[0]["source_url"] == "https://www.youtube.com/watch?v=aaaaaaaaaaa" and rows[0]["kp_id"] == "kp-1"
    )
    assert report.dropped == {"duration": 2, "license": 2, "duplicate": 2}
    search = urllib.parse.parse_qs(urllib.parse.urlparse(seen[0]).query)
    assert search["videoLicense"] == ["creativeCommon"] and search["key"] == ["KEY"]
    assert search["maxResults"] == ["10"] and search["q"] == ["pendulum period"]
    assert parse_iso_duration("PT1H0M1S") == 3601 and parse_iso_duration("garbage") is None


# ------------------------------------------------------------------------------------- decontamination


def block_scenes(
    seed: int, seconds: int, fps: int = 2, size: tuple[int, int] = (96, 128)
) -> list[np.ndarray]:
    """Footage that changes every second: random coarse colour blocks (distinct low-frequency content)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(seconds):
        grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(grid).resize(size[::-1], Image.BILINEAR)).astype(int)
        frames += [
            (base + rng.integers(-10, 10, (*size, 3))).clip(0, 255).astype(np.uint8) for _ in range(fps)
        ]
    return frames


def moving_ball(seconds: int, fps: int = 2, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(seconds * fps):
        t = i / fps
        cx, cy = w / 2 + 40 * np.cos(0.7 * t), h / 2 + 25 * np.sin(1.1 * t)
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 2] = (xx * 255 // w) // 3
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < 225] = (240, 200, 40)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decon")
    bench = block_scenes(1, 30)
    # The copy: seconds 5–30 of the benchmark clip, cropped, rescaled and re-encoded at lower quality.
    copy = [
        np.asarray(Image.fromarray(np.ascontiguousarray(f[6:-6, 8:-8])).resize((160, 120)))
        for f in bench[10:]
    ]
    return {
        "bench": write_clip(root / "bench.mp4", bench, 2),
        "other_bench": write_clip(root / "other_bench.mp4", block_scenes(2, 30), 2),
        "copy": write_clip(root / "copy.mp4", copy, 2, qp=35),
        "unrelated": write_clip(root / "unrelated.mp4", moving_ball(30), 2),
    }


def test_reencoded_cropped_copy_is_caught_and_unrelated_clip_is_not(
    planted: dict[str, Path], tmp_path: Path
) -> None:
    index = BenchmarkIndex.from_paths({"bench": planted["bench"], "other": planted["other_bench"]})
    copy = frame_hashes(planted["copy"])
    assert len(copy) == 25  # 1 fps
    found = index.match(copy)
    assert found is not None and (found.benchmark, found.offset) == ("bench", 5) and found.fraction >= 0.7

    unrelated = frame_hashes(planted["unrelated"])
    assert index.match(unrelated) is None
    # Not trivially: many single frames of the unrelated clip are within distance 30 of benchmark
    # frames, so a per-frame rule would flag it; the 20 s aligned-window rule does not.
    assert (hamming(unrelated, index.hashes["bench"]) <= 30).mean() > 0.2

    index.save(tmp_path / "index.npz")
    assert BenchmarkIndex.load(tmp_path / "index.npz").match(copy) == found


def test_decontaminate_stage_drops_by_id_and_by_footage(planted: dict[str, Path], tmp_path: Path) -> None:
    index = BenchmarkIndex.from_paths({"bench": planted["bench"]}, {"bench": "dQw4w9WgXcQ"})
    rows = [
        {"id": "copy", "path": str(planted["copy"])},
        {"id": "same-id", "path": str(planted["unrelated"]), "source_url": "https://youtu.be/dQw4w9WgXcQ"},
        {"id": "clean", "path": str(planted["unrelated"])},
    ]
    report = decontaminate(rows, index, tmp_path / "kept.jsonl", progress=False)
    assert [r["id"] for r in read_jsonl(tmp_path / "kept.jsonl")] == ["clean"]
    assert report.dropped_ids == {"near_duplicate": ["copy"], "video_id": ["same-id"]}
    assert video_id("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3") == "dQw4w9WgXcQ"
    assert video_id("videos_0001/dQw4w9WgXcQ.mp4") == "dQw4w9WgXcQ" and video_id("clip.mp4") is None
