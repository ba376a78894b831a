"""Construction stages on the sample corpus: generation and verification through the real HTTP client
(loopback server) and the in-process tiny model, resumption without repeated calls, the keep/drop rules
of the filters and the single-frame probe, the split and the release layout `videokr build` reads."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pipeline_fixtures import ChatServer, image_count, message_text

from videokr.data.records import parse_row, read_records
from videokr.data.release import ClipStore
from videokr.pipeline.client import CallableBackend, ModelClient, OpenAIBackend, TransformersBackend
from videokr.pipeline.common import read_jsonl, report_path
from videokr.pipeline.filters import validate_rationales, video_dependency
from videokr.pipeline.generate import generate
from videokr.pipeline.probe import single_frame_probe
from videokr.pipeline.split import split_by_video, write_eval_release, write_training_release
from videokr.pipeline.verify import verify

TRAIN = "VideoKR-Train"


@pytest.fixture(scope="module")
def videos(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three training clips of the sample corpus as loose files, described like collected candidates."""
    folder = tmp_path_factory.mktemp("videos")
    store = ClipStore(sample_corpus / TRAIN)
    rows, seen = [], set()
    for record in read_records(sample_corpus / TRAIN / "VideoKR-COT-201K.jsonl", "sft").records:
        taken = {r["discipline"] for r in rows}
        if record.video in seen or record.discipline in taken or not record.knowledge_point:
            continue
        seen.add(record.video)
        ref = store.resolve(record.video)
        assert ref is not None
        path = folder / Path(record.video).name
        ref.copy_to(path)
        rows.append(
            {
                "id": path.stem,
                "path": str(path),
                "subject": record.subject,
                "discipline": record.discipline,
                "knowledge_point": record.knowledge_point,
                "license": record.license,
                "creator": record.creator,
                "attribution": record.attribution,
                "duration_s": record.duration_s,
            }
        )
        if len(rows) == 3:
            break
    out = folder / "videos.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def seeds(sample_corpus: Path) -> Path:
    return sample_corpus / TRAIN / "VideoKR-COT-201K.jsonl"


def oracle(payload: Mapping[str, Any]) -> str:
    """A scripted model: writes two examples per skill (one invalid for KnowVidR) and answers questions.

    It answers "B" / "3" unless the question says WRONG, so verification has something to drop.
    """
    text = message_text(payload)
    skill = re.search(r"Skill to test: (\w+)", text)
    if skill:
        name = skill.group(1)
        mc = {
            "question": f"{name}: what happens after 5 s?",
            "problem_type": "multiple choice",
            "options": ["It stops", "It grows", "It turns", "It fades"],
            "answer": "B",
        }
        second = {"question": f"{name}: how many times? WRONG", "problem_type": "open-ended", "answer": "3"}
        if name == "KnowVidR":
            second = {**mc, "question": "bad", "answer": "F"}  # a letter the options do not have
        return json.dumps({"examples": [mc, second]})
    if "based on the visual content" in text:
        answer = "7" if "WRONG" in text else ("B" if "\nA. " in text else "3")
        think = f"At 5 s the frames show the change; so the answer is {answer}."
        return f"<think>{think}</think><answer>{answer}</answer>"
    raise AssertionError(f"unexpected request: {text[:200]}")


def test_generate_and_verify_through_http(videos: Path, seeds: Path, tmp_path: Path) -> None:
    with ChatServer(oracle) as server:
        client = ModelClient(OpenAIBackend(server.base_url, "gen"), cache_dir=tmp_path / "cache")
        report = generate(client, videos, seeds, tmp_path / "generated.jsonl", progress=False)
        verified = verify(client, tmp_path / "generated.jsonl", tmp_path / "verified.jsonl", progress=False)

    n = len(read_jsonl(videos))
    # Per video: 3 skills × 2 examples, of which the KnowVidR letter "F" is invalid.
    assert report.kept == 5 * n and report.dropped == {"invalid_example": n}
    rows = read_jsonl(tmp_path / "generated.jsonl")
    assert {r["skill"] for r in rows} == {"VidR", "KnowVid", "KnowVidR"}
    assert all(parse_row(r, "rl").video.endswith(".mp4") for r in rows)
    assert all(r["knowledge_point"] is None for r in rows if r["skill"] == "VidR")
    assert all(r["knowledge_point"] for r in rows if r["skill"] != "VidR")
    generation_requests = [p for p in server.requests if "Skill to test" in message_text(p)]
    assert len(generation_requests) == 3 * n
    first = message_text(generation_requests[0])
    # Frames at 0.2 fps, each preceded by its time in the clip.
    stamps = re.findall(r"\[(\d+\.\d)s\]", first)
    assert len(stamps) == image_count(generation_requests[0]) >= 1
    assert first.count("\n- {") == 3, "three seed examples per prompt"
    # Verification: the open-ended "WRONG" questions are re-derived as 7, not 3, and dropped.
    assert verified.kept == 3 * n and verified.dropped == {"inconsistent": 2 * n}
    kept = read_jsonl(tmp_path / "verified.jsonl")
    assert all(parse_row(r, "sft").think.startswith("At 5 s the frames show") for r in kept)
    saved = json.loads(report_path(tmp_path / "verified.jsonl").read_text())
    assert saved["models"]["gen"]["calls"] == 5 * n


def test_interrupted_stage_resumes_without_repeated_calls(videos: Path, seeds: Path, tmp_path: Path) -> None:
    calls: list[str] = []

    def counting(payload: Mapping[str, Any]) -> str:
        calls.append(message_text(payload))
        return oracle(payload)

    clean = generate(
        ModelClient(CallableBackend(counting, "m"), cache_dir=tmp_path / "c1"),
        videos,
        seeds,
        tmp_path / "clean.jsonl",
        workers=2,
        progress=False,
    )
    clean_calls = len(calls)
    calls.clear()

    def crashing(payload: Mapping[str, Any]) -> str:
        if len(calls) == 4:
            raise RuntimeError("power cut")
        return counting(payload)

    cache = tmp_path / "c2"
    with pytest.raises(RuntimeError, match="power cut"):
        generate(
            ModelClient(CallableBackend(crashing, "m"), cache_dir=cache),
            videos,
            seeds,
            tmp_path / "resumed.jsonl",
            workers=1,
            progress=False,
        )
    assert 0 < len(read_jsonl(tmp_path / "resumed.jsonl")) < clean.kept
    resumed = generate(
        ModelClient(CallableBackend(counting, "m"), cache_dir=cache),
        videos,
        seeds,
        tmp_path / "resumed.jsonl",
        workers=2,
        progress=False,
    )
    assert len(calls) == clean_calls, "every call is made exactly once across the crash"
    assert len(set(calls)) == len(calls)
    assert resumed.resumed_units == 1 and resumed.kept == clean.kept
    assert (tmp_path / "resumed.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()
    # A third run does nothing at all.
    calls.clear()
    again = generate(
        ModelClient(CallableBackend(counting, "m"), cache_dir=cache),
        videos,
        seeds,
        tmp_path / "resumed.jsonl",
        progress=False,
    )
    assert calls == [] and again.resumed_units == again.units


def test_in_process_tiny_model_runs_a_stage(videos: Path, seeds: Path, tmp_path: Path) -> None:
    from videokr.models.tiny import build_tiny_model

    model, processor = build_tiny_model("qwen3_vl")
    backend = TransformersBackend(model.eval(), processor, name="tiny", max_new_tokens=6)
    client = ModelClient(backend, cache_dir=tmp_path / "cache", max_concurrency=1)
    one_video = tmp_path / "one.jsonl"
    one_video.write_text(videos.read_text().splitlines()[0] + "\n")
    report = generate(client, one_video, seeds, tmp_path / "gen.jsonl", progress=False)
    # A random tiny model cannot write JSON: each skill gets one repair turn, then the video is dropped
    # with the structured-output error (units are videos). The calls and tokens are real.
    assert report.kept == 0 and report.dropped == {"StructuredOutputError": 1}
    assert client.counters.calls == 2 and client.counters.repairs == 1
    assert client.counters.prompt_tokens > 100 and client.counters.completion_tokens > 0


def scripted_answers(rules: dict[str, dict[str, bool]]) -> dict[str, ModelClient]:
    """One client per model; model M answers an item right when rules[marker][M] for the marker in it."""

    def make(model: str) -> ModelClient:
        def answer(payload: Mapping[str, Any]) -> str:
            text = message_text(payload)
            marker = next(m for m in rules if m in text)
            right = rules[marker][model]
            if callable(right):
                right = right(payload)
            return f"<think>x</think><answer>{'A' if right else 'B'}</answer>"

        return ModelClient(CallableBackend(answer, model))

    models = {m for r in rules.values() for m in r}
    return {m: make(m) for m in sorted(models)}


def mc_rows(videos: Path, markers: list[str], tmp_path: Path) -> Path:
    clip = read_jsonl(videos)[0]["path"]
    rows = [
        {
            "id": f"q-{m}",
            "video": clip,
            "question": f"Question {m}?",
            "options": ["yes", "no"],
            "answer": "A",
            "think": "UNSUPPORTED claim" if "BAD" in m else "seen at 5 s",
        }
        for m in markers
    ]
    path = tmp_path / "examples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_video_dependency_drops_only_items_both_models_answer(videos: Path, tmp_path: Path) -> None:
    rules = {
        "BOTH": {"m1": True, "m2": True},
        "FIRST": {"m1": True, "m2": False},
        "SECOND": {"m1": False, "m2": True},
        "NEITHER": {"m1": False, "m2": False},
    }
    clients = scripted_answers(rules)
    examples = mc_rows(videos, list(rules), tmp_path)
    report = video_dependency(list(clients.values()), examples, tmp_path / "kept.jsonl", progress=False)
    assert [r["id"] for r in read_jsonl(tmp_path / "kept.jsonl")] == ["q-FIRST", "q-SECOND", "q-NEITHER"]
    assert report.dropped_ids == {"video_independent": ["q-BOTH"]}
    assert report.models["m1"]["calls"] == 4 and report.models["m2"]["calls"] == 4
    with pytest.raises(ValueError, match="two models"):
        video_dependency([clients["m1"]], examples, tmp_path / "x.jsonl", progress=False)


def test_dependency_filter_shows_four_random_frames(videos: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def answer(payload: Mapping[str, Any]) -> str:
        seen.append(image_count(payload))
        return "<answer>B</answer>"

    clients = [ModelClient(CallableBackend(answer, m)) for m in ("a", "b")]
    video_dependency(clients, mc_rows(videos, ["ONE"], tmp_path), tmp_path / "k.jsonl", progress=False)
    assert seen == [4, 4]


def test_rationale_validation_drops_unsupported_steps(videos: Path, tmp_path: Path) -> None:
    def checker(payload: Mapping[str, Any]) -> str:
        supported = "UNSUPPORTED" not in message_text(payload)
        return json.dumps({"supported": supported, "unsupported_step": "" if supported else "step 1"})

    client = ModelClient(CallableBackend(checker, "judge"))
    examples = mc_rows(videos, ["GOOD", "BAD"], tmp_path)
    report = validate_rationales(client, examples, tmp_path / "kept.jsonl", progress=False)
    assert [r["id"] for r in read_jsonl(tmp_path / "kept.jsonl")] == ["q-GOOD"]
    assert report.dropped_ids == {"unsupported_rationale": ["q-BAD"]}


@pytest.fixture
def eval_subset(sample_corpus: Path, tmp_path: Path) -> Path:
    """Five multiple-choice candidates of the sample benchmark, with their clips, in a scratch folder."""
    root = tmp_path / "candidates"
    root.mkdir()
    rows = [
        r
        for r in read_jsonl(sample_corpus / "VideoKR-Eval" / "VideoKR_eval.jsonl")
        if r.get("options") or r.get("option")
    ]
    for row in rows[:5]:
        (root / row["video_path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample_corpus / "VideoKR-Eval" / row["video_path"], root / row["video_path"])
    (root / "VideoKR_eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    return root / "VideoKR_eval.jsonl"


def test_single_frame_probe_keeps_items_no_model_solves(eval_subset: Path, tmp_path: Path) -> None:
    records = read_records(eval_subset, "eval").records
    ids = [r.id for r in records]
    answers = {r.id: r.answer for r in records}
    plan = {  # item -> model -> trials (by seed) it gets right
        ids[0]: {"m1": {0, 1, 2}},  # solvable by m1: removed
        ids[1]: {"m1": {0, 1}, "m2": {1, 2}, "m3": {0, 2}},  # two of three trials each: kept
        ids[2]: {},  # nobody: kept
        ids[3]: {"m3": {0, 1, 2}, "m2": {0, 1, 2}},  # solvable by two models: removed
        ids[4]: {"m2": {0}},  # kept
    }
    by_question = {r.question: r.id for r in records}
    requests: list[dict[str, Any]] = []

    def make(model: str) -> ModelClient:
        def answer(payload: Mapping[str, Any]) -> str:
            requests.append(dict(payload))
            text = message_text(payload)
            item = next(i for q, i in by_question.items() if text.startswith(q))
            right = payload["seed"] in plan[item].get(model, set())
            letter = answers[item] if right else ("B" if answers[item] == "A" else "A")
            return f"<answer>{letter}</answer>"

        return ModelClient(CallableBackend(answer, model))

    clients = [make(m) for m in ("m1", "m2", "m3")]
    out = tmp_path / "probed.jsonl"
    report = single_frame_probe(clients, eval_subset, out, progress=False)
    kept = read_jsonl(out)
    assert [r["id"] for r in kept] == [ids[1], ids[2], ids[4]]
    assert all(r["origin"] == "retained" for r in kept)
    assert kept[0]["single_frame_probe"]["m2"] == {"trials": [False, True, True], "solvable": False}
    queue = read_jsonl(tmp_path / "probed.reannotate.jsonl")
    assert [(q["id"], q["solvable_by"]) for q in queue] == [(ids[0], ["m1"]), (ids[3], ["m2", "m3"])]
    assert report.dropped == {"single_frame_solvable": 2}
    assert len(requests) == 5 * 3 * 3 and all(image_count(p) == 1 for p in requests)

    # The kept items become a release folder the Eval builder reads.
    kept_records = [parse_row(r, "eval") for r in kept]
    root = write_eval_release(kept_records, tmp_path / "release", clip_root=eval_subset.parent)
    written = read_records(root / "VideoKR_eval.jsonl", "eval", strict=True).records
    store = ClipStore(root)
    assert [r.id for r in written] == [ids[1], ids[2], ids[4]]
    assert all(store.resolve(r.video) is not None and r.origin == "retained" for r in written)


def test_split_is_by_video_and_release_builds(sample_corpus: Path, videos: Path, tmp_path: Path) -> None:
    import importlib

    from videokr.data.hub import build_repo

    clips = [row["path"] for row in read_jsonl(videos)]
    records = [
        parse_row(
            {
                "id": f"e{i}",
                "video": clips[i % 3],
                "question": f"Q{i}?",
                "options": ["a", "b"],
                "answer": "A",
                "think": "because",
                "skill": "VidR",
                "license": "CC0-1.0",
            },
            "sft",
        )
        for i in range(12)
    ]
    sft, rl = split_by_video(records, sft_fraction=0.6, seed=0)
    assert {r.video for r in sft}.isdisjoint({r.video for r in rl}) and sft and rl
    assert len(sft) + len(rl) == 12
    assert split_by_video(reversed(records), sft_fraction=0.6, seed=0)[0] == list(reversed(sft))

    root = write_training_release(sft, rl, tmp_path / "release")
    assert read_records(root / "VideoKR-COT-201K.jsonl", "sft", strict=True).records[0].think == "because"
    spec = importlib.import_module("videokr_sft").SPEC
    built = build_repo(spec, tmp_path / "release" / TRAIN, tmp_path / "built", progress=False, check=True)
    assert built.rows_written == len(sft) and not built.problems
    with pytest.raises(ValueError, match="both SFT and RL"):
        write_training_release(sft, sft, tmp_path / "bad")
