"""The canonical VideoKR record, and parsing of every field variant the official release and loaders use.

One row is one question about one clip. The official files spell the same field several ways (the
SFT, RL and Eval loaders of the reference code each accept their own aliases), wrap answers and
rationales in tags, and give options either as ``"A. text"`` strings or as a letter → text dict. This
module turns any of those into one `Record` and refuses a row that cannot honestly become one, with an
error naming the file, line, id and field. Values the source does not carry stay ``None``; nothing is
invented.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from videokr.errors import RecordError

if TYPE_CHECKING:
    import datasets

MULTIPLE_CHOICE = "multiple choice"
OPEN_ENDED = "open-ended"
PROBLEM_TYPES = (MULTIPLE_CHOICE, OPEN_ENDED)
LETTERS = "ABCDEFGHIJ"
SKILLS = ("VidR", "KnowVid", "KnowVidR")
DISCIPLINES = ("Natural Sciences", "Engineering", "Healthcare", "Humanities & Social Sciences")
ORIGINS = ("retained", "re-annotated")
#: What an item needs to be answered, where a corpus knows it (the learning corpus does; the release does
#: not): the question text alone, any one frame, or several frames (order, motion, counting, change).
NEEDS = ("text", "single_frame", "multi_frame")

Kind = Literal["sft", "rl", "eval"]
KINDS: tuple[Kind, ...] = ("sft", "rl", "eval")

# Aliases, first match wins. The order follows the official loaders' own preference.
ID_KEYS = ("id", "problem_id", "question_id", "qid")
QUESTION_KEYS = ("question", "prompt", "problem")
OPTION_KEYS = ("options", "option", "choices")
ANSWER_KEYS = ("solution", "answer", "correct_answer", "ground_truth")
THINK_KEYS = ("think", "rationale", "cot", "reasoning")
VIDEO_KEYS = ("video_path", "path", "file_name", "video", "video_file", "videos")
PROBLEM_TYPE_KEYS = ("problem_type", "question_type")
SKILL_KEYS = ("skill", "task_type", "skill_type")
SOURCE_URL_KEYS = ("source_url", "url", "youtube_url", "video_url")
CREATOR_KEYS = ("creator", "channel", "uploader", "author")
DURATION_KEYS = ("duration_s", "duration")
DATASET_KEYS = ("dataset", "source_benchmark", "benchmark")
#: The official evaluation reads the subject as ``subject``, else ``source``; only Eval rows get the
#: fallback, since elsewhere ``source`` may name something else.
EVAL_SUBJECT_KEYS = ("subject", "source")

_PROBLEM_TYPE_SPELLINGS = {
    "multiple choice": MULTIPLE_CHOICE,
    "multiple-choice": MULTIPLE_CHOICE,
    "multiple_choice": MULTIPLE_CHOICE,
    "multiplechoice": MULTIPLE_CHOICE,
    "mcq": MULTIPLE_CHOICE,
    "mc": MULTIPLE_CHOICE,
    "open-ended": OPEN_ENDED,
    "open_ended": OPEN_ENDED,
    "open ended": OPEN_ENDED,
    "openended": OPEN_ENDED,
    "free-form": OPEN_ENDED,
    "free form": OPEN_ENDED,
    "free_form": OPEN_ENDED,
    "numerical": OPEN_ENDED,
    "oe": OPEN_ENDED,
}
_SKILL_SPELLINGS = {
    "vidr": "VidR",
    "basic video reasoning": "VidR",
    "knowvid": "KnowVid",
    "knowledge-enhanced video perception": "KnowVid",
    "knowledge enhanced video perception": "KnowVid",
    "knowvidr": "KnowVidR",
    "knowledge-intensive video reasoning": "KnowVidR",
    "knowledge intensive video reasoning": "KnowVidR",
}
_DISCIPLINE_SPELLINGS = {d.lower(): d for d in DISCIPLINES} | {
    "humanities and social sciences": "Humanities & Social Sciences",
    "humanities & social science": "Humanities & Social Sciences",
    "natural science": "Natural Sciences",
}
_ORIGIN_SPELLINGS = {"retained": "retained", "re-annotated": "re-annotated", "reannotated": "re-annotated"}
_NEEDS_SPELLINGS = {n: n for n in NEEDS} | {
    "text only": "text",
    "text_only": "text",
    "single frame": "single_frame",
    "single-frame": "single_frame",
    "multi frame": "multi_frame",
    "multi-frame": "multi_frame",
}

# "A. text", "A) text", "(A) text", "A: text", "A text"? — the last is too ambiguous ("A cell …"), so a
# letter must be followed by punctuation.
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Ja-j])\s*[.):：]\s*(.*)$", re.DOTALL)
_TAG = re.compile(r"^\s*<(?P<tag>answer|think)>(?P<body>.*?)</(?P=tag)>\s*$", re.DOTALL | re.IGNORECASE)
_VIDEO_TOKEN = re.compile(r"^\s*(<video>\s*)+", re.IGNORECASE)
_ANSWER_LETTER = re.compile(r"^\(?([A-Ja-j])\)?(?:\s*[.):：]\s*(.*))?$", re.DOTALL)


@dataclass
class Record:
    """One question about one clip, as `load_dataset` yields it (minus the decoded video).

    ``video`` is the clip's path relative to the release root (or absolute for local pipeline output);
    ``options`` are option texts with letters implied A, B, … in order; ``answer`` is a letter for
    multiple choice and the reference text for open-ended.
    """

    id: str
    video: str
    question: str
    options: list[str]
    answer: str
    problem_type: str
    think: str | None = None
    skill: str | None = None
    subject: str | None = None
    discipline: str | None = None
    knowledge_point: str | None = None
    source_url: str | None = None
    creator: str | None = None
    license: str | None = None
    attribution: str | None = None
    duration_s: float | None = None
    dataset: str | None = None
    origin: str | None = None
    needs: str | None = None

    @property
    def is_multiple_choice(self) -> bool:
        return self.problem_type == MULTIPLE_CHOICE

    @property
    def answer_text(self) -> str:
        """The answer as words: the chosen option's text for multiple choice."""
        if self.is_multiple_choice:
            return self.options[LETTERS.index(self.answer)]
        return self.answer

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Record))


def record_features(kind: Kind) -> datasets.Features:
    """The exact features `load_dataset` yields for a dataset of `kind`: the record, as `datasets` types."""
    import datasets

    string = datasets.Value("string")
    columns: dict[str, Any] = {
        "id": string,
        "video": datasets.Video(),
        "question": string,
        "options": datasets.List(string),
        "answer": string,
        "problem_type": string,
    }
    if kind == "sft":
        columns["think"] = string
    for name in ("skill", "subject", "discipline", "knowledge_point"):
        columns[name] = string
    for name in ("source_url", "creator", "license", "attribution"):
        columns[name] = string
    columns["duration_s"] = datasets.Value("float64")
    if kind == "eval":
        columns["dataset"] = string
        columns["origin"] = string
        # Ground truth of what answering needs (`NEEDS`); null for data that does not know it.
        columns["needs"] = string
    return datasets.Features(columns)


@dataclass
class ParseReport:
    """What reading one file gave: the good records and every problem, by line and id."""

    path: str
    records: list[Record] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_ids(self) -> list[str]:
        return [e.row_id if e.row_id is not None else f"line {e.line}" for e in self.errors]

    def summary(self) -> str:
        lines = [f"{self.path}: {len(self.records)} rows parsed, {len(self.errors)} rejected"]
        lines += [f"  {e}" for e in self.errors[:50]]
        if len(self.errors) > 50:
            lines.append(f"  … and {len(self.errors) - 50} more")
        return "\n".join(lines)


def _first(raw: Mapping[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return key, value
    return None, None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def unwrap_tag(text: str, tag: str) -> str:
    """Strip one enclosing ``<tag>…</tag>`` pair (the release wraps answers and rationales in tags)."""
    match = _TAG.match(text)
    if match and match.group("tag").lower() == tag:
        return match.group("body").strip()
    return text.strip()


def normalize_problem_type(value: Any, *, has_options: bool) -> str:
    """Map any official spelling to ``"multiple choice"`` or ``"open-ended"``.

    A missing value is inferred from the presence of options, exactly as the official loaders do.
    An unknown spelling raises, because guessing would change how the row is scored.
    """
    if value is None or not str(value).strip():
        return MULTIPLE_CHOICE if has_options else OPEN_ENDED
    key = re.sub(r"\s+", " ", str(value).strip().lower())
    if key not in _PROBLEM_TYPE_SPELLINGS:
        known = sorted(set(_PROBLEM_TYPE_SPELLINGS))
        raise ValueError(f"unknown problem_type {value!r}; expected one of {known}")
    return _PROBLEM_TYPE_SPELLINGS[key]


def normalize_options(value: Any) -> list[str]:
    """Option texts in letter order, from a list of ``"A. text"``, a letter→text dict, or lines of text.

    Letter prefixes are removed only when every option carries one and they run A, B, C, … in order;
    a list that mixes prefixed and bare options, or skips a letter, is an error rather than a guess.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        items = sorted(((str(k).strip().upper(), v) for k, v in value.items()), key=lambda kv: kv[0])
        letters = "".join(k for k, _ in items)
        if letters != LETTERS[: len(items)]:
            raise ValueError(f"option keys must be consecutive letters from A, got {list(value)}")
        options = [str(v).strip() for _, v in items]
    elif isinstance(value, str):
        options = _strip_letter_prefixes([line for line in value.splitlines() if line.strip()])
    elif isinstance(value, list | tuple):
        options = _strip_letter_prefixes([str(v) for v in value if str(v).strip()])
    else:
        raise ValueError(f"options must be a list, dict or string, got {type(value).__name__}")
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options; at most {len(LETTERS)} (A–J) are supported")
    if any(not o for o in options):
        raise ValueError("an option is empty")
    return options


def _strip_letter_prefixes(options: list[str]) -> list[str]:
    matches = [_OPTION_PREFIX.match(o) for o in options]
    if not any(matches):
        return [o.strip() for o in options]
    letters = "".join(m.group(1).upper() if m else "?" for m in matches)
    if letters != LETTERS[: len(options)]:
        raise ValueError(f"option letters must run A, B, C, … in order, got {letters!r} in {options!r}")
    return [m.group(2).strip() for m in matches if m]


def normalize_mc_answer(value: str, options: list[str]) -> str:
    """The answer letter for a multiple-choice row.

    Accepts ``B``, ``b``, ``(B)``, ``B.``, ``B. text`` (the text must then match option B) or the
    option text itself. A letter beyond the options or a text that is not an option raises.
    """
    text = unwrap_tag(value, "answer")
    match = _ANSWER_LETTER.match(text)
    if match:
        letter = match.group(1).upper()
        index = LETTERS.index(letter)
        if index >= len(options):
            raise ValueError(f"answer letter {letter} is out of range for {len(options)} options")
        tail = (match.group(2) or "").strip()
        if tail and _norm(tail) != _norm(options[index]):
            raise ValueError(f"answer {text!r} names letter {letter} but its text is not option {letter}")
        return letter
    hits = [i for i, option in enumerate(options) if _norm(option) == _norm(text)]
    if len(hits) == 1:
        return LETTERS[hits[0]]
    raise ValueError(f"answer {text!r} is not among the options {options!r}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")


def normalize_video_path(value: Any) -> str:
    """One clip path: a string, or the first of a ``videos`` list of strings or ``{"video"|"path"}`` dicts.

    Leading ``./`` is removed (the release writes both forms). A row with several clips is refused:
    VideoKR is one clip per question, and silently keeping the first would drop data.
    """
    if isinstance(value, list | tuple):
        paths = [_video_entry(v) for v in value]
        paths = [p for p in paths if p]
        if len(paths) != 1:
            raise ValueError(f"expected exactly one video, got {len(paths)}: {paths!r}")
        value = paths[0]
    elif isinstance(value, Mapping):
        value = _video_entry(value)
    path = str(value or "").strip()
    while path.startswith("./"):
        path = path[2:]
    if not path:
        raise ValueError("video path is empty")
    return path


def _video_entry(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("video") or value.get("path") or value.get("video_path") or "").strip()
    return str(value or "").strip()


def _normalize_choice(value: Any, spellings: Mapping[str, str], name: str) -> str | None:
    text = _text(value)
    if text is None:
        return None
    key = re.sub(r"\s+", " ", text.lower())
    if key not in spellings:
        raise ValueError(f"unknown {name} {text!r}; expected one of {sorted(set(spellings.values()))}")
    return spellings[key]


def strip_embedded_options(question: str, options: list[str]) -> str:
    """Remove option lines a question already embeds, so prompts never list the options twice.

    Some release rows carry the options both in ``question`` (after an ``Options:`` line or as
    ``A. …`` lines) and in ``options``; the canonical question is the stem alone.
    """
    if not options:
        return question
    lines = question.rstrip().splitlines()
    expected = [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)]
    tail = [_norm(line) for line in lines[-len(options) :]]
    if tail == [_norm(e) for e in expected] or tail == [_norm(o) for o in options]:
        lines = lines[: -len(options)]
        if lines and lines[-1].strip().lower().rstrip(":") == "options":
            lines = lines[:-1]
        return "\n".join(lines).strip()
    return question


def stable_id(kind: str, video: str, question: str) -> str:
    """An id for rows the release leaves without one: stable under reordering and editing of other rows."""
    digest = hashlib.sha1(f"{video}\n{question}".encode()).hexdigest()[:12]
    return f"{kind}-{digest}"


def parse_row(
    raw: Mapping[str, Any],
    kind: Kind,
    *,
    file: str | None = None,
    line: int | None = None,
) -> Record:
    """Turn one release row into a `Record`, or raise `RecordError` naming file, line, id and field.

    ``kind`` decides what is required: SFT rows need a rationale (``think``); Eval rows may name their
    source benchmark, origin and what answering needs (``needs``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(raw, Mapping):
        raise RecordError(f"row is a JSON {type(raw).__name__}, expected an object", file=file, line=line)
    _, raw_id = _first(raw, ID_KEYS)
    row_id = _text(raw_id)

    def fail(reason: str, field_name: str | None) -> RecordError:
        return RecordError(reason, file=file, line=line, row_id=row_id, field=field_name)

    question_key, raw_question = _first(raw, QUESTION_KEYS)
    if raw_question is None:
        raise fail("missing question (looked for " + ", ".join(QUESTION_KEYS) + ")", "question")
    question = _VIDEO_TOKEN.sub("", str(raw_question)).strip()
    if not question:
        raise fail("question is empty", question_key)

    video_key, raw_video = _first(raw, VIDEO_KEYS)
    if raw_video is None:
        raise fail("missing video path (looked for " + ", ".join(VIDEO_KEYS) + ")", "video")
    try:
        video = normalize_video_path(raw_video)
    except ValueError as exc:
        raise fail(str(exc), video_key) from None

    options_key, raw_options = _first(raw, OPTION_KEYS)
    try:
        options = normalize_options(raw_options)
    except ValueError as exc:
        raise fail(str(exc), options_key) from None
    question = strip_embedded_options(question, options)

    type_key, raw_type = _first(raw, PROBLEM_TYPE_KEYS)
    try:
        problem_type = normalize_problem_type(raw_type, has_options=bool(options))
    except ValueError as exc:
        raise fail(str(exc), type_key) from None
    if problem_type == MULTIPLE_CHOICE and len(options) < 2:
        raise fail(f"multiple-choice row has {len(options)} options; at least 2 are needed", "options")

    answer_key, raw_answer = _first(raw, ANSWER_KEYS)
    if raw_answer is None:
        raise fail("missing answer (looked for " + ", ".join(ANSWER_KEYS) + ")", "answer")
    answer = unwrap_tag(str(raw_answer), "answer")
    if not answer:
        raise fail("answer is empty", answer_key)
    if problem_type == MULTIPLE_CHOICE:
        try:
            answer = normalize_mc_answer(answer, options)
        except ValueError as exc:
            raise fail(str(exc), answer_key) from None

    think_key, raw_think = _first(raw, THINK_KEYS)
    think = unwrap_tag(str(raw_think), "think") if raw_think is not None else None
    think = think or None
    if kind == "sft" and think is None:
        raise fail("SFT rows need a rationale (think) and this one is empty or missing", think_key or "think")

    choices: dict[str, str | None] = {}
    for name, value, spellings in (
        ("skill", _first(raw, SKILL_KEYS)[1], _SKILL_SPELLINGS),
        ("discipline", raw.get("discipline"), _DISCIPLINE_SPELLINGS),
        ("origin", raw.get("origin"), _ORIGIN_SPELLINGS),
        ("needs", raw.get("needs"), _NEEDS_SPELLINGS),
    ):
        try:
            choices[name] = _normalize_choice(value, spellings, name)
        except ValueError as exc:
            raise fail(str(exc), name) from None

    _, raw_duration = _first(raw, DURATION_KEYS)
    try:
        duration_s = float(raw_duration) if raw_duration is not None else None
    except (TypeError, ValueError):
        raise fail(f"duration {raw_duration!r} is not a number of seconds", "duration_s") from None
    if duration_s is not None and duration_s < 0:
        raise fail(f"duration {duration_s} is negative", "duration_s")

    return Record(
        id=row_id or stable_id(kind, video, question),
        video=video,
        question=question,
        options=options,
        answer=answer,
        problem_type=problem_type,
        think=think,
        skill=choices["skill"],
        subject=_text(_first(raw, EVAL_SUBJECT_KEYS)[1] if kind == "eval" else raw.get("subject")),
        discipline=choices["discipline"],
        knowledge_point=_text(raw.get("knowledge_point")),
        source_url=_text(_first(raw, SOURCE_URL_KEYS)[1]),
        creator=_text(_first(raw, CREATOR_KEYS)[1]),
        license=_text(raw.get("license")),
        attribution=_text(raw.get("attribution")),
        duration_s=duration_s,
        dataset=_text(_first(raw, DATASET_KEYS)[1]),
        origin=choices["origin"],
        needs=choices["needs"],
    )


def _parse_json_line(text: str, path: Path, number: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            f"malformed JSON: {exc.msg} at column {exc.colno}", file=str(path), line=number
        ) from None


def read_records(path: str | Path, kind: Kind, *, strict: bool = False) -> ParseReport:
    """Parse a whole release JSONL file, collecting every bad row instead of stopping at the first.

    Duplicate ids are errors (the second and later occurrences, naming the first line). A malformed
    JSON line, or one that is not valid UTF-8, is reported like any other bad row (file and line) and
    the rest of the file still parses; a UTF-8 byte-order mark at the start of the file is skipped.
    With ``strict=True`` the first problem raises instead.
    """
    path = Path(path)
    report = ParseReport(path=str(path))
    first_seen: dict[str, int] = {}
    with path.open("rb") as handle:  # bytes: one bad line must not stop the file, and must say where it is
        for number, data in enumerate(handle, start=1):
            try:
                text = _decode_line(data, path, number)
                if not text.strip():
                    continue
                raw = _parse_json_line(text, path, number)
                record = parse_row(raw, kind, file=str(path), line=number)
                if record.id in first_seen:
                    raise RecordError(
                        f"duplicate id (first seen at line {first_seen[record.id]})",
                        file=str(path),
                        line=number,
                        row_id=record.id,
                        field="id",
                    )
            except RecordError as exc:
                if strict:
                    raise
                report.errors.append(exc)
                continue
            first_seen[record.id] = number
            report.records.append(record)
    return report


def _decode_line(data: bytes, path: Path, number: int) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 4]
        raise RecordError(
            f"not valid UTF-8: byte {exc.start + 1} of the line ({bad!r}) {exc.reason}",
            file=str(path),
            line=number,
        ) from None
    return text.removeprefix("\ufeff") if number == 1 else text
