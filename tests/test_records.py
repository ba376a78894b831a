"""The record parser accepts every official spelling and refuses bad rows with a message a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videokr.data.records import MULTIPLE_CHOICE, OPEN_ENDED, Record, parse_row, read_records
from videokr.errors import RecordError

SFT_ROW = {
    "problem_id": "sft-001",
    "question": "Which ball moves first?",
    "options": ["A. The red ball", "B. The blue ball", "C. Both at once", "D. Neither"],
    "problem_type": "multiple choice",
    "solution": "<answer>B</answer>",
    "think": "<think>The blue ball starts at 0.5 s, the red one at 1.5 s.</think>",
    "video_path": "./videos_0007/clip_a.mp4",
    "skill": "VidR",
    "subject": "Physics",
    "discipline": "Natural Sciences",
    "knowledge_point": "Kinematics",
    "license": "CC0-1.0",
    "duration": 6.0,
}


def write_jsonl(path: Path, rows: list[object | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sft_row_in_release_format_becomes_the_canonical_record() -> None:
    record = parse_row(SFT_ROW, "sft")
    assert record == Record(
        id="sft-001",
        video="videos_0007/clip_a.mp4",
        question="Which ball moves first?",
        options=["The red ball", "The blue ball", "Both at once", "Neither"],
        answer="B",
        problem_type=MULTIPLE_CHOICE,
        think="The blue ball starts at 0.5 s, the red one at 1.5 s.",
        skill="VidR",
        subject="Physics",
        discipline="Natural Sciences",
        knowledge_point="Kinematics",
        license="CC0-1.0",
        duration_s=6.0,
    )
    assert record.answer_text == "The blue ball"


@pytest.mark.parametrize(
    "options",
    [
        ["A. red", "B. blue", "C. green"],
        ["A) red", "B) blue", "C) green"],
        ["(A) red", "(B) blue", "(C) green"],
        ["A: red", "B: blue", "C: green"],
        {"A": "red", "B": "blue", "C": "green"},
        {"C": "green", "A": "red", "B": "blue"},
        ["red", "blue", "green"],
        "A. red\nB. blue\nC. green",
    ],
)
def test_every_option_spelling_gives_the_same_texts(options: object) -> None:
    row = {"id": "x", "question": "Colour?", "options": options, "answer": "B", "video": "v.mp4"}
    record = parse_row(row, "rl")
    assert record.options == ["red", "blue", "green"]
    assert record.answer == "B"
    assert record.problem_type == MULTIPLE_CHOICE


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B. blue", "B"),
        ("<answer>B</answer>", "B"),
        ("blue", "B"),
    ],
)
def test_mc_answer_spellings(answer: str, expected: str) -> None:
    row = {
        "id": "x",
        "question": "Colour?",
        "option": ["A. red", "B. blue"],
        "solution": answer,
        "path": "v.mp4",
    }
    assert parse_row(row, "eval").answer == expected


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("multiple choice", MULTIPLE_CHOICE),
        ("multiple-choice", MULTIPLE_CHOICE),
        ("Multiple Choice", MULTIPLE_CHOICE),
        ("mcq", MULTIPLE_CHOICE),
        ("open-ended", OPEN_ENDED),
        ("open_ended", OPEN_ENDED),
        ("free-form", OPEN_ENDED),
        ("numerical", OPEN_ENDED),
    ],
)
def test_problem_type_spellings(spelling: str, expected: str) -> None:
    options = ["A. 1", "B. 2"] if expected == MULTIPLE_CHOICE else None
    row = {"id": "x", "question": "How many?", "options": options, "problem_type": spelling, "answer": "2"}
    row["video_file"] = "v.mp4"
    assert parse_row(row, "rl").problem_type == expected


def test_problem_type_is_inferred_from_options_when_absent() -> None:
    with_options = {"id": "a", "question": "Q?", "options": ["A. x", "B. y"], "answer": "A", "video": "v.mp4"}
    without = {"id": "b", "question": "Q?", "answer": "4.2 m", "video": "v.mp4"}
    assert parse_row(with_options, "rl").problem_type == MULTIPLE_CHOICE
    record = parse_row(without, "rl")
    assert (record.problem_type, record.answer, record.options) == (OPEN_ENDED, "4.2 m", [])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("video_path", "./videos_0001/a.mp4", "videos_0001/a.mp4"),
        ("path", "././videos_0001/a.mp4", "videos_0001/a.mp4"),
        ("file_name", "videos_0001/a.mp4", "videos_0001/a.mp4"),
        ("video", "videos_0001/a.mp4", "videos_0001/a.mp4"),
        ("video_file", "videos_0001/a.mp4", "videos_0001/a.mp4"),
        ("videos", ["videos_0001/a.mp4"], "videos_0001/a.mp4"),
        ("videos", [{"video": "./videos_0001/a.mp4", "fps": 2.0}], "videos_0001/a.mp4"),
    ],
)
def test_video_path_keys(key: str, value: object, expected: str) -> None:
    row = {"id": "x", "question": "Q?", "answer": "yes", key: value}
    assert parse_row(row, "rl").video == expected


def test_rl_aliases_for_question_answer_and_id() -> None:
    row = {"problem_id": 17, "prompt": "<video>\nHow many flashes?", "ground_truth": "<answer>3</answer>"}
    row["videos"] = ["videos_0002/b.mp4"]
    record = parse_row(row, "rl")
    assert (record.id, record.question, record.answer) == ("17", "How many flashes?", "3")
    row2 = dict(row, correct_answer="5")
    del row2["ground_truth"]
    assert parse_row(row2, "rl").answer == "5"


def test_embedded_options_are_not_listed_twice() -> None:
    row = {
        "id": "x",
        "question": "Which way does it turn?\nOptions:\nA. clockwise\nB. counter-clockwise",
        "options": ["A. clockwise", "B. counter-clockwise"],
        "answer": "A",
        "video": "v.mp4",
    }
    assert parse_row(row, "rl").question == "Which way does it turn?"


def test_missing_id_gets_a_stable_content_id() -> None:
    row = {k: v for k, v in SFT_ROW.items() if k != "problem_id"}
    first, second = parse_row(row, "sft"), parse_row(dict(reversed(list(row.items()))), "sft")
    assert first.id == second.id and first.id.startswith("sft-")
    other = parse_row(dict(row, question="Which ball moves last?"), "sft")
    assert other.id != first.id


def test_eval_fields_and_long_skill_names() -> None:
    row = {
        "id": "mmvu_12",
        "video_path": "videos/MMVU/12.mp4",
        "question": "Which element?",
        "option": {"A": "Sodium", "B": "Copper"},
        "problem_type": "multiple-choice",
        "answer": "B",
        "dataset": "MMVU",
        "subject": "Chemistry",
        "origin": "Re-annotated",
        "skill": "knowledge-enhanced video perception",
        "discipline": "natural sciences",
    }
    record = parse_row(row, "eval")
    assert (record.dataset, record.origin, record.skill, record.discipline) == (
        "MMVU",
        "re-annotated",
        "KnowVid",
        "Natural Sciences",
    )
    assert record.think is None and record.source_url is None  # unknown stays unknown
    # The official evaluation reads the subject from "source" when "subject" is absent; only Eval rows.
    sourced = {k: v for k, v in row.items() if k != "subject"} | {"source": "Chemistry"}
    assert parse_row(sourced, "eval").subject == "Chemistry"
    assert parse_row({**sourced, "think": "t"}, "sft").subject is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"question": "  "}, "question", "question is empty"),
        ({"question": None}, "question", "missing question"),
        ({"solution": "<answer>F</answer>"}, "solution", "out of range"),
        ({"solution": "<answer>purple ball</answer>"}, "solution", "not among the options"),
        ({"solution": "B. The red ball"}, "solution", "not option B"),
        ({"solution": None}, "answer", "missing answer"),
        ({"problem_type": "essay"}, "problem_type", "unknown problem_type"),
        ({"think": "<think>  </think>"}, "think", "rationale"),
        ({"think": None}, "think", "rationale"),
        ({"video_path": None}, "video", "missing video"),
        ({"options": ["A. red", "C. blue"]}, "options", "in order"),
        ({"options": ["A. red"]}, "options", "at least 2"),
        ({"skill": "Juggling"}, "skill", "unknown skill"),
        ({"discipline": "Astrology"}, "discipline", "unknown discipline"),
        ({"duration": "long"}, "duration_s", "not a number"),
    ],
)
def test_bad_rows_name_file_line_id_and_field(change: dict, field: str, message: str) -> None:
    row = {**SFT_ROW, **change}
    row = {k: v for k, v in row.items() if v is not None}
    with pytest.raises(RecordError) as info:
        parse_row(row, "sft", file="VideoKR-COT-201K.jsonl", line=42)
    error = info.value
    assert (error.file, error.line, error.row_id, error.field) == (
        "VideoKR-COT-201K.jsonl",
        42,
        "sft-001",
        field,
    )
    assert message in str(error)
    assert str(error).startswith("VideoKR-COT-201K.jsonl:42 id='sft-001'")


def test_rl_and_eval_rows_do_not_need_a_rationale() -> None:
    row = {k: v for k, v in SFT_ROW.items() if k != "think"}
    assert parse_row(row, "rl").think is None
    assert parse_row(row, "eval").think is None


def test_read_records_reports_every_bad_row_and_keeps_the_good(tmp_path: Path) -> None:
    good_2 = dict(SFT_ROW, problem_id="sft-002")
    path = write_jsonl(
        tmp_path / "VideoKR-COT-201K.jsonl",
        [
            SFT_ROW,
            "{not json",
            dict(SFT_ROW, problem_id="sft-003", solution="<answer>Z</answer>"),
            "",
            good_2,
            dict(SFT_ROW),  # duplicate of line 1
            ["a", "list"],
        ],
    )
    report = read_records(path, "sft")
    assert [r.id for r in report.records] == ["sft-001", "sft-002"]
    assert [(e.line, e.row_id, e.field) for e in report.errors] == [
        (2, None, None),
        (3, "sft-003", "solution"),
        (6, "sft-001", "id"),
        (7, None, None),
    ]
    assert "malformed JSON" in str(report.errors[0])
    assert "duplicate id (first seen at line 1)" in str(report.errors[2])
    assert report.error_ids() == ["line 2", "sft-003", "sft-001", "line 7"]
    assert "2 rows parsed, 4 rejected" in report.summary()


def test_read_records_strict_raises_at_the_first_problem(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rl.jsonl", [SFT_ROW, "{oops"])
    with pytest.raises(RecordError, match=r"rl.jsonl:2: malformed JSON"):
        read_records(path, "rl", strict=True)


def test_a_line_that_is_not_utf8_is_a_rejected_row_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    good = json.dumps(SFT_ROW).encode()
    other = json.dumps(SFT_ROW | {"problem_id": "sft-003"}).encode()
    bad = json.dumps(SFT_ROW | {"problem_id": "sft-002"}).encode().replace(b"Which", b"Wh\xe9ch")
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + bad + b"\n" + other + b"\n")  # with a BOM
    report = read_records(path, "sft")
    assert [r.id for r in report.records] == ["sft-001", "sft-003"]
    (error,) = report.errors
    assert error.line == 2 and str(error).startswith(f"{path}:2: not valid UTF-8: byte ")
    assert "\\xe9" in str(error)
    with pytest.raises(RecordError, match=r":2: not valid UTF-8"):
        read_records(path, "sft", strict=True)
