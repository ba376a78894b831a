"""The three Hub datasets build from the sample release, load with `load_dataset` and report bad input."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

import videokr_eval
import videokr_rl
import videokr_sft
from videokr.data.hub import MANIFEST_PATH, BuildReport, build_repo, load_manifest_clips
from videokr.data.records import read_records, record_features
from videokr.data.release import RELEASE_FILES

SPECS = {"sft": videokr_sft.SPEC, "rl": videokr_rl.SPEC, "eval": videokr_eval.SPEC}
ROOTS = {"sft": "VideoKR-Train", "rl": "VideoKR-Train", "eval": "VideoKR-Eval"}


@pytest.fixture(scope="module")
def built(
    sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, BuildReport]]:
    """Eval first, then SFT disjoint from Eval, then RL disjoint from both — the order a release uses."""
    out = tmp_path_factory.mktemp("built")
    results: dict[str, tuple[Path, BuildReport]] = {}
    for kind, others in (("eval", []), ("sft", ["eval"]), ("rl", ["eval", "sft"])):
        target = out / SPECS[kind].name
        report = build_repo(
            SPECS[kind],
            sample_corpus,
            target,
            disjoint_from=[results[o][0] for o in others],
            workers=2,
            progress=False,
        )
        results[kind] = (target, report)
    return results


def source_records(sample_corpus: Path, kind: str):
    path = sample_corpus / ROOTS[kind] / RELEASE_FILES[kind]
    report = read_records(path, kind)  # type: ignore[arg-type]
    assert report.ok, report.summary()
    return report.records


@pytest.mark.parametrize("kind", ["sft", "rl", "eval"])
def test_built_folder_loads_with_the_record_features_and_all_rows(
    built: dict, sample_corpus: Path, kind: str
) -> None:
    out, report = built[kind]
    assert report.problems == []
    expected = source_records(sample_corpus, kind)
    split = SPECS[kind].split
    dataset = datasets.load_dataset(str(out), split=split)
    assert dataset.features == record_features(kind)  # type: ignore[arg-type]
    assert len(dataset) == len(expected) == report.rows_written
    by_id = {r.id: r for r in expected}
    for row in dataset.select_columns([c for c in dataset.column_names if c != "video"]):
        record = by_id[row["id"]]
        assert (row["question"], row["options"], row["answer"], row["problem_type"]) == (
            record.question,
            record.options,
            record.answer,
            record.problem_type,
        )
        assert row["skill"] == record.skill and row["subject"] == record.subject
        if kind == "sft":
            assert row["think"] == record.think
        assert row["duration_s"] is not None and row["duration_s"] > 0


@pytest.mark.parametrize("kind", ["sft", "eval"])
def test_videos_decode_normal_and_streaming_to_the_clip_frame_count(built: dict, kind: str) -> None:
    from videokr.vision.decode import probe

    out, _ = built[kind]
    split = SPECS[kind].split
    dataset = datasets.load_dataset(str(out), split=split)
    metadata = datasets.load_dataset(
        "parquet", data_files=str(out / split / "metadata.parquet"), split="train"
    )
    for index in (0, len(dataset) - 1):
        decoder = dataset[index]["video"]
        clip = out / split / metadata[index]["file_name"]
        assert decoder.metadata.num_frames == probe(clip).num_frames
        frame = decoder.get_frame_at(decoder.metadata.num_frames - 1)
        assert frame.data.ndim == 3 and frame.data.float().std() > 0
    streamed = datasets.load_dataset(str(out), split=split, streaming=True)
    assert streamed.features == record_features(kind)  # type: ignore[arg-type]
    first = next(iter(streamed))
    assert first["id"] == dataset[0]["id"]
    assert first["video"].get_frame_at(0).data.shape == dataset[0]["video"].get_frame_at(0).data.shape


def test_one_file_per_clip_shared_by_its_rows_and_folders_stay_small(built: dict) -> None:
    out, _ = built["sft"]
    table = datasets.load_dataset(
        "parquet", data_files=str(out / "train" / "metadata.parquet"), split="train"
    )
    names = Counter(table["file_name"])
    files = sorted(p.relative_to(out / "train").as_posix() for p in (out / "train" / "videos").rglob("*.mp4"))
    assert files == sorted(names)
    assert max(names.values()) > 1, "sample clips carry several questions each"
    assert all(len(list(d.iterdir())) <= 1000 for d in (out / "train" / "videos").iterdir())


def parse_tables(card_text: str) -> dict[str, dict[str, int]]:
    """The card's '### Title' tables of '| value | rows | share |' as {title: {value: rows}}."""
    tables: dict[str, dict[str, int]] = {}
    for block in re.split(r"^### ", card_text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        rows = re.findall(r"^\| ([^|]+?) \| (\d+) \| [\d.]+ % \|$", body, flags=re.M)
        if rows:
            tables[title.strip()] = {value: int(count) for value, count in rows}
    return tables


@pytest.mark.parametrize("kind", ["sft", "rl", "eval"])
def test_card_yaml_is_the_loader_and_statistics_match_the_rows(built: dict, kind: str) -> None:
    out, _ = built[kind]
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["configs"][0]["data_files"][0]["split"] == SPECS[kind].split
    assert datasets.Features._from_yaml_list(data["dataset_info"]["features"]) == record_features(kind)  # type: ignore[arg-type]

    rows = datasets.load_dataset(str(out), split=SPECS[kind].split).remove_columns("video")
    tables = parse_tables(card.text)
    expected = {
        "Problem type": Counter(rows["problem_type"]),
        "Skill": Counter(s or "(unknown)" for s in rows["skill"]),
        "Discipline": Counter(d or "(unknown)" for d in rows["discipline"]),
        "Subject": Counter(s or "(unknown)" for s in rows["subject"]),
    }
    if kind == "eval":
        expected["Source benchmark"] = Counter(rows["dataset"])
    for title, counts in expected.items():
        assert tables[title] == dict(counts), title
    assert f"**{len(rows)} rows**" in card.text
    attribution = (out / "ATTRIBUTION.md").read_text()
    assert "CC0-1.0" in attribution


@pytest.mark.parametrize("kind", ["sft", "eval"])
def test_croissant_validates(built: dict, kind: str) -> None:
    from videokr.data.croissant import validate_croissant

    out, _ = built[kind]
    validate_croissant(out / "croissant.json")


def test_rebuild_is_incremental(built: dict, sample_corpus: Path) -> None:
    out, first = built["eval"]
    clips = sorted((out / "test" / "videos").rglob("*.mp4"))
    stamps = [p.stat().st_mtime_ns for p in clips]
    again = build_repo(SPECS["eval"], sample_corpus, out, workers=2, progress=False, check=False)
    assert (again.clips_written, again.clips_reused) == (0, first.clips_written)
    assert [p.stat().st_mtime_ns for p in clips] == stamps
    assert again.rows_written == first.rows_written


@pytest.fixture
def corpus_copy(sample_corpus: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "corpus"
    shutil.copytree(sample_corpus, copy)
    return copy


def rewrite_jsonl(path: Path, edit) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = edit(rows)
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")


def test_planted_problems_are_reported_by_id_and_good_rows_still_build(
    corpus_copy: Path, tmp_path: Path
) -> None:
    root = corpus_copy / "VideoKR-Train"
    jsonl = root / RELEASE_FILES["sft"]
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    ids = [r.get("problem_id") or r.get("id") for r in rows]
    assert all(ids), "sample SFT rows carry ids"
    (root / "Videos" / "broken").mkdir()
    (root / "Videos" / "broken" / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 500)

    def plant(rows: list[dict]) -> list:
        rows[0]["video_path"] = "videos_0099/does_not_exist.mp4"  # missing clip
        rows[1]["video_path"] = "broken/garbage.mp4"  # corrupt clip
        rows[2]["solution"] = "<answer>J</answer>"  # answer not among the options
        return [*rows, dict(rows[3]), "{truncated json"]  # duplicate id, malformed line

    rewrite_jsonl(jsonl, plant)
    out = tmp_path / "sft"
    report = build_repo(SPECS["sft"], corpus_copy, out, workers=2, progress=False)
    assert report.rejected_ids("missing_clip") == [ids[0]]
    assert report.rejected_ids("corrupt_clip") == [ids[1]]
    assert ids[2] in report.rejected_ids("record") and ids[3] in report.rejected_ids("record")
    record_problems = [p.detail for p in report.problems if p.kind == "record"]
    assert any("malformed JSON" in d for d in record_problems)
    assert any("duplicate id" in d for d in record_problems)
    assert report.rows_written == len(rows) - 3
    written = datasets.load_dataset(str(out), split="train")["id"]
    assert sorted(written) == sorted(set(ids) - {ids[0], ids[1], ids[2]})
    assert "garbage" not in " ".join(p.name for p in (out / "train").rglob("*"))
    saved = json.loads((out / MANIFEST_PATH).read_text())["report"]
    assert len(saved["problems"]) == len(report.problems)
    assert "missing_clip" in report.summary() and ids[0] in report.summary()


def test_a_clip_shared_with_another_dataset_is_kept_out(
    built: dict, corpus_copy: Path, tmp_path: Path
) -> None:
    eval_out, _ = built["eval"]
    eval_clip = next((eval_out / "test" / "videos").rglob("*.mp4"))
    root = corpus_copy / "VideoKR-Train"
    (root / "Videos" / "leak").mkdir()
    shutil.copy(eval_clip, root / "Videos" / "leak" / "renamed.mp4")  # same bytes, other name

    def plant(rows: list[dict]) -> list:
        rows[0]["video_path"] = "leak/renamed.mp4"
        return rows

    rewrite_jsonl(root / RELEASE_FILES["rl"], plant)
    report = build_repo(
        SPECS["rl"], corpus_copy, tmp_path / "rl", disjoint_from=[eval_out], workers=2, progress=False
    )
    overlaps = [p for p in report.problems if p.kind == "overlap"]
    assert len(overlaps) == 1 and "same bytes (sha256)" in overlaps[0].detail
    assert len(overlaps[0].row_ids) == 1


def test_a_crash_while_copying_loses_nothing_already_written(
    sample_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from videokr.data import release

    real_copy = release.ClipRef.copy_to
    calls = {"n": 0}

    def flaky_copy(self, destination):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk went away")
        return real_copy(self, destination)

    monkeypatch.setattr(release.ClipRef, "copy_to", flaky_copy)
    out = tmp_path / "eval"
    with pytest.raises(OSError, match="disk went away"):
        build_repo(SPECS["eval"], sample_corpus, out, workers=1, progress=False)
    saved = load_manifest_clips(out)
    assert len(saved) == 3
    monkeypatch.setattr(release.ClipRef, "copy_to", real_copy)
    report = build_repo(SPECS["eval"], sample_corpus, out, workers=1, progress=False)
    assert report.clips_reused == 3 and report.problems == []


def test_the_arrow_builder_yields_the_same_rows(sample_corpus: Path, tmp_path: Path, built: dict) -> None:
    builder = videokr_rl.VideoKRRL(data_dir=str(sample_corpus), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="train")
    assert dataset.features == record_features("rl")
    folder = datasets.load_dataset(str(built["rl"][0]), split="train")
    assert sorted(dataset["id"]) == sorted(folder["id"])
    assert dataset[0]["video"].metadata.num_frames > 0


def test_a_folder_rebuilt_in_place_loads_its_new_rows(sample_corpus: Path, tmp_path: Path) -> None:
    """datasets keys a local folder's cache by its name and card, not its files: the card's data size
    changes with the rows, so a plain `load_dataset` of a rebuilt folder gives the new rows."""
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    out = tmp_path / "rebuilt" / "VideoKR-Eval"
    build_repo(SPECS["eval"], corpus, out, workers=1, progress=False)
    before = len(datasets.load_dataset(str(out), split="test"))
    release = corpus / ROOTS["eval"] / RELEASE_FILES["eval"]
    lines = release.read_text(encoding="utf-8").splitlines(keepends=True)
    release.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    build_repo(SPECS["eval"], corpus, out, workers=1, progress=False)
    after = datasets.load_dataset(str(out), split="test")
    assert len(after) == len(lines) // 2 < before
