"""croissant.json for a built videofolder: valid for mlcroissant, faithful to the parquet, reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
import mlcroissant as mlc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videokr.data.croissant import CONTEXT, CroissantError, validate_croissant, write_croissant
from videokr.sample.encode import write_clip

STRING = datasets.Value("string")
FEATURES = datasets.Features(
    {
        "id": STRING,
        "video": datasets.Video(),
        "question": STRING,
        "options": datasets.List(STRING),
        "answer": STRING,
        "problem_type": STRING,
        "skill": STRING,
        "subject": STRING,
        "discipline": STRING,
        "knowledge_point": STRING,
        "source_url": STRING,
        "creator": STRING,
        "license": STRING,
        "attribution": STRING,
        "duration_s": datasets.Value("float64"),
        "dataset": STRING,
        "origin": STRING,
    }
)
CLIP_A = "videos/000/videos_0007__abc.mp4"
CLIP_B = "videos/001/videos_0009__def.mp4"


def _row(row_id: str, file_name: str, options: list[str] | None, duration: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {name: f"{name} of {row_id}" for name, f in FEATURES.items() if f == STRING}
    row.update(id=row_id, file_name=file_name, options=options, duration_s=duration)
    return row


ROWS = [
    _row("q1", CLIP_A, ["A. red", "B. blue"], 1.5),
    _row("q2", CLIP_A, ["A. one", "B. two", "C. three"], 1.5),  # same clip as q1
    _row("q3", CLIP_B, None, None),  # an open-ended question with no options, clip without duration
]


def _write_split(repo: Path, split: str, rows: list[dict[str, Any]], features: datasets.Features) -> None:
    """What the builder writes for a split: one MP4 per clip, and the rows in metadata.parquet."""
    for index, file_name in enumerate(sorted({row["file_name"] for row in rows})):
        frames = [np.full((16, 16, 3), 40 * index + 10 * t, dtype=np.uint8) for t in range(3)]
        write_clip(repo / split / file_name, frames, fps=4)
    columns = {"file_name": STRING} | {k: v for k, v in features.items() if not isinstance(v, datasets.Video)}
    schema = datasets.Features(columns).arrow_schema
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows], schema=schema)
    pq.write_table(table, repo / split / "metadata.parquet")


def _write(repo: Path, **overrides: Any) -> Path:
    kwargs: dict[str, Any] = {
        "name": "VideoKR-Eval",
        "description": "Knowledge- and reasoning-intensive video questions — evaluation set.",
        "license": "apache-2.0",
        "url": "https://huggingface.co/datasets/example/VideoKR-Eval",
        "cite_as": "@misc{videokr, title={VideoKR}, eprint={2606.05259}}",
        "version": "1.0.0",
        "features": FEATURES,
        "splits": ["test"],
        "date_published": "2026-06-05",
    }
    return write_croissant(repo, **(kwargs | overrides))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "VideoKR-Eval"
    _write_split(repo, "test", ROWS, FEATURES)
    return repo


def _records(path: Path, record_set: str) -> list[dict[str, Any]]:
    return list(mlc.Dataset(jsonld=path).records(record_set))


def test_croissant_validates_with_no_errors_or_warnings(repo: Path) -> None:
    path = _write(repo)
    assert path == repo / "croissant.json"
    assert validate_croissant(path) == []
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert document["isLiveDataset"] is False
    assert document["datePublished"] == "2026-06-05"
    assert "@misc{videokr" in document["citeAs"]


def test_without_a_publication_date_the_only_warning_says_so(repo: Path) -> None:
    warnings = validate_croissant(_write(repo, date_published=None))
    assert len(warnings) == 1 and "datePublished" in warnings[0]


def test_the_context_is_the_one_mlcroissant_treats_as_standard() -> None:
    # mlcroissant only logs (does not report) a non-standard @context, so compare with its own.
    from mlcroissant._src.core.context import Context, CroissantVersion
    from mlcroissant._src.core.rdf import make_context

    standard = make_context(Context(conforms_to=CroissantVersion.V_1_1))
    assert {key: CONTEXT.get(key) for key in standard} == standard


def test_sha256_is_the_parquets(repo: Path) -> None:
    document = json.loads(_write(repo).read_text(encoding="utf-8"))
    parquet = repo / "test" / "metadata.parquet"
    (file_object,) = [d for d in document["distribution"] if d["@type"] == "cr:FileObject"]
    assert file_object["contentUrl"] == "test/metadata.parquet"
    assert file_object["encodingFormat"] == "application/x-parquet"
    assert file_object["sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert file_object["contentSize"] == f"{parquet.stat().st_size} B"
    (file_set,) = [d for d in document["distribution"] if d["@type"] == "cr:FileSet"]
    assert file_set["encodingFormat"] == "video/mp4"
    assert file_set["includes"] == "test/videos/*/*.mp4"


def test_record_fields_are_the_features_with_their_types(repo: Path) -> None:
    document = json.loads(_write(repo).read_text(encoding="utf-8"))
    (record_set,) = document["recordSet"]
    fields = {field["name"]: field for field in record_set["field"]}
    assert list(fields) == list(FEATURES)
    assert record_set["key"] == {"@id": "test/id"}
    assert fields["options"]["dataType"] == "sc:Text"
    assert fields["options"]["isArray"] is True
    assert fields["duration_s"]["dataType"] == "sc:Float"
    assert all(fields[name]["dataType"] == "sc:Text" for name, f in FEATURES.items() if f == STRING)
    # The video is the videofolder's path column, resolved against the split folder.
    assert fields["video"]["source"]["extract"] == {"column": "file_name"}
    assert "`test/` + this value" in fields["video"]["description"]
    for name, field in fields.items():
        assert field["@id"] == f"test/{name}"
        if name != "video":
            assert field["source"] == {
                "fileObject": {"@id": "test/metadata.parquet"},
                "extract": {"column": name},
            }


def test_mlcroissant_reads_the_rows(repo: Path) -> None:
    records = _records(_write(repo), "test")
    assert [r["test/id"] for r in records] == [b"q1", b"q2", b"q3"]
    assert [r["test/options"] for r in records] == [
        [b"A. red", b"B. blue"],
        [b"A. one", b"B. two", b"C. three"],
        None,
    ]
    assert [r["test/duration_s"] for r in records] == [1.5, 1.5, None]
    assert [r["test/video"] for r in records] == [CLIP_A.encode(), CLIP_A.encode(), CLIP_B.encode()]
    assert records[2]["test/skill"] == b"skill of q3"
    assert set(records[0]) == {f"test/{name}" for name in FEATURES}
    for record in records:  # the documented resolution rule gives the real clip
        assert (repo / "test" / record["test/video"].decode()).is_file()


def test_output_is_byte_identical_across_writes(repo: Path) -> None:
    first = _write(repo).read_bytes()
    second = _write(repo).read_bytes()
    assert first == second
    assert not list(repo.glob("*.partial"))


def test_every_split_gets_its_own_files_and_records(repo: Path) -> None:
    _write_split(repo, "validation", [_row("v1", CLIP_B, ["A. yes", "B. no"], 2.0)], FEATURES)
    path = _write(repo, splits=["test", "validation"])
    assert validate_croissant(path) == []
    document = json.loads(path.read_text(encoding="utf-8"))
    assert [r["@id"] for r in document["recordSet"]] == ["test", "validation"]
    assert [d["@id"] for d in document["distribution"]] == [
        "test/metadata.parquet",
        "test/videos",
        "validation/metadata.parquet",
        "validation/videos",
    ]
    assert [r["validation/id"] for r in _records(path, "validation")] == [b"v1"]


def test_a_missing_parquet_is_named(repo: Path) -> None:
    parquet = repo / "test" / "metadata.parquet"
    parquet.unlink()
    with pytest.raises(CroissantError, match=r"test/metadata\.parquet: missing"):
        _write(repo)
    assert not (repo / "croissant.json").exists()


def test_validation_names_a_parquet_deleted_after_writing(repo: Path) -> None:
    path = _write(repo)
    (repo / "test" / "metadata.parquet").unlink()
    with pytest.raises(CroissantError, match=r"points to test/metadata\.parquet, which is missing"):
        validate_croissant(path)


def test_validation_catches_a_stale_parquet(repo: Path) -> None:
    path = _write(repo)
    _write_split(repo, "test", [*ROWS, _row("q4", CLIP_B, ["A. x"], None)], FEATURES)
    with pytest.raises(CroissantError, match=r"Hash of downloaded file .*metadata\.parquet is not identical"):
        validate_croissant(path)


def test_validation_names_a_missing_clip(repo: Path) -> None:
    path = _write(repo)
    (repo / "test" / CLIP_B).unlink()
    with pytest.raises(CroissantError, match=f"points to test/{CLIP_B}, which is missing"):
        validate_croissant(path)


def test_validation_rejects_what_mlcroissant_rejects(repo: Path) -> None:
    path = _write(repo)
    document = json.loads(path.read_text(encoding="utf-8"))
    del document["distribution"][0]["encodingFormat"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        CroissantError, match=r"(?s)mlcroissant validation failed.*encodingFormat. is mandatory"
    ):
        validate_croissant(path)


def test_a_parquet_that_disagrees_with_the_features_is_refused(repo: Path) -> None:
    extra = datasets.Features(FEATURES | {"think": STRING})
    with pytest.raises(CroissantError, match=r"metadata\.parquet: missing column\(s\) \['think'\]"):
        _write(repo, features=extra)
    retyped = datasets.Features(FEATURES | {"duration_s": STRING})
    with pytest.raises(CroissantError, match="column 'duration_s' is Value\\('float64'\\)"):
        _write(repo, features=retyped)


def test_a_feature_without_a_croissant_mapping_is_named(repo: Path) -> None:
    features = datasets.Features(FEATURES | {"thumbnail": datasets.Image()})
    with pytest.raises(CroissantError, match="column 'thumbnail': no Croissant mapping"):
        _write(repo, features=features)
