"""The knowledge bank: 82 subjects in 4 disciplines, expanded by a model into courses, lectures and
knowledge points (Subject → Course → Lecture → Knowledge point), then into real-world scenarios and
search keywords for each knowledge point.

The subject list is data, not a model output: it fixes the benchmark's coverage (Natural Sciences 20,
Engineering 20, Healthcare 18, Humanities & Social Sciences 24, as in the paper), and every later count
is reported against it. Each expansion level is one cached JSON call per parent, so a re-run, or a run
with more subjects, only pays for new parents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videokr.data.records import DISCIPLINES
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage, stable_id

# fmt: off
SUBJECTS: dict[str, tuple[str, ...]] = {
    "Natural Sciences": (
        "Physics", "Chemistry", "Biology", "Astronomy", "Geology", "Ecology", "Genetics", "Microbiology",
        "Biochemistry", "Botany", "Zoology", "Oceanography", "Meteorology", "Mathematics", "Statistics",
        "Organic Chemistry", "Quantum Mechanics", "Thermodynamics", "Optics", "Neuroscience",
    ),
    "Engineering": (
        "Mechanical Engineering", "Electrical Engineering", "Computer Engineering", "Civil Engineering",
        "Chemical Engineering", "Aerospace Engineering", "Biomedical Engineering", "Materials Science",
        "Environmental Engineering", "Industrial Engineering", "Robotics", "Computer Science",
        "Control Engineering", "Telecommunications", "Nuclear Engineering", "Petroleum Engineering",
        "Automotive Engineering", "Structural Engineering", "Manufacturing Engineering", "Energy Engineering",
    ),
    "Healthcare": (
        "Cardiology", "Nursing", "Pharmacology", "Anatomy", "Physiology", "Pathology", "Surgery",
        "Radiology", "Dentistry", "Public Health", "Nutrition", "Immunology", "Pediatrics", "Neurology",
        "Physical Therapy", "Emergency Medicine", "Obstetrics and Gynecology", "Veterinary Medicine",
    ),
    "Humanities & Social Sciences": (
        "Economics", "Geography", "Music", "History", "Philosophy", "Psychology", "Sociology",
        "Political Science", "Law", "Linguistics", "Literature", "Art History", "Film Studies",
        "Architecture", "Anthropology", "Archaeology", "Education", "Finance", "Accounting",
        "Marketing", "Management", "Journalism", "Religious Studies", "Design",
    ),
}
# fmt: on
DISCIPLINE_SIZES = {
    "Natural Sciences": 20,
    "Engineering": 20,
    "Healthcare": 18,
    "Humanities & Social Sciences": 24,
}


@dataclass(frozen=True)
class Subject:
    discipline: str
    subject: str


def subjects(only: Sequence[str] | None = None) -> list[Subject]:
    """All 82 subjects in a fixed order, or those named in `only` (an unknown name is an error)."""
    everything = [Subject(d, s) for d in DISCIPLINES for s in SUBJECTS[d]]
    if not only:
        return everything
    known = {s.subject: s for s in everything}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown subjects {unknown}; see videokr.pipeline.bank.SUBJECTS")
    return [known[name] for name in only]


def _list_prompt(kind: str, count: int, context: str) -> str:
    return (
        f"You are building a university curriculum. {context}\n"
        f"List {count} distinct {kind}, each a short title (at most 12 words), covering the material "
        f"a student must learn, in teaching order.\n"
        f'Reply with JSON only: {{"items": ["...", "..."]}}'
    )


def _check_items(value: Any) -> None:
    items = value.get("items") if isinstance(value, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError('expected {"items": [non-empty strings]}')


def _ask_list(client: ModelClient, kind: str, count: int, context: str) -> list[str]:
    reply = client.chat_json(
        [{"role": "user", "content": _list_prompt(kind, count, context)}], check=_check_items, max_tokens=1024
    )
    seen: dict[str, None] = {}
    for item in reply["items"]:
        seen.setdefault(" ".join(item.split()), None)
    return list(seen)[:count]


def expand_subject(
    client: ModelClient, subject: Subject, *, courses: int, lectures: int, points: int
) -> Outcome:
    """Every knowledge point of one subject, one row each with its full path and a stable id."""
    rows = []
    where = f"Subject: {subject.subject} (discipline: {subject.discipline})."
    for course in _ask_list(client, "courses", courses, where):
        for lecture in _ask_list(client, "lectures", lectures, f"{where} Course: {course}."):
            context = f"{where} Course: {course}. Lecture: {lecture}."
            for point in _ask_list(
                client, "knowledge points (single facts, laws or skills)", points, context
            ):
                rows.append(
                    {
                        "id": "kp-" + stable_id(subject.subject, course, lecture, point),
                        "discipline": subject.discipline,
                        "subject": subject.subject,
                        "course": course,
                        "lecture": lecture,
                        "knowledge_point": point,
                    }
                )
    return Outcome(kept=rows)


def expand_bank(
    client: ModelClient,
    out: str | Path,
    *,
    only: Sequence[str] | None = None,
    courses: int = 8,
    lectures: int = 8,
    points: int = 12,
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """Write the knowledge bank (one JSONL row per knowledge point) for all or `only` the named subjects."""
    return run_stage(
        "bank",
        subjects(only),
        lambda s: s.subject,
        lambda s: expand_subject(client, s, courses=courses, lectures=lectures, points=points),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )


def _check_scenarios(value: Any) -> None:
    scenarios = value.get("scenarios") if isinstance(value, dict) else None
    if not isinstance(scenarios, list) or not 1 <= len(scenarios) <= 3:
        raise ValueError('expected {"scenarios": [1 to 3 objects]}')
    for item in scenarios:
        if not isinstance(item, dict) or not str(item.get("scenario", "")).strip():
            raise ValueError("each scenario needs a non-empty 'scenario'")
        if not isinstance(item.get("keywords"), list) or not item["keywords"]:
            raise ValueError("each scenario needs a non-empty 'keywords' list")


SCENARIO_PROMPT = (
    "Knowledge point: {knowledge_point}\nSubject: {subject} ({discipline}); course: {course}; lecture: "
    "{lecture}.\nDescribe 1 to 3 real-world scenarios in which this knowledge point can be SEEN in a "
    "video (a demonstration, an experiment, a procedure, a phenomenon), and for each give 1 to 3 YouTube "
    'search keywords that would find such videos.\nReply with JSON only: {{"scenarios": [{{"scenario": '
    '"...", "keywords": ["...", "..."]}}]}}'
)


def plan_queries(
    client: ModelClient, bank: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """For each knowledge point: scenarios in which it is visible and search keywords for them."""
    points = read_jsonl(bank)

    def work(point: dict[str, Any]) -> Outcome:
        reply = client.chat_json(
            [{"role": "user", "content": SCENARIO_PROMPT.format(**point)}], check=_check_scenarios
        )
        rows = []
        for item in reply["scenarios"]:
            for keyword in dict.fromkeys(" ".join(str(k).split()) for k in item["keywords"]):
                if keyword:
                    rows.append(
                        {
                            "id": "q-" + stable_id(point["id"], keyword),
                            "kp_id": point["id"],
                            "scenario": item["scenario"].strip(),
                            "keyword": keyword,
                        }
                    )
        return Outcome(kept=rows)

    return run_stage(
        "queries", points, lambda p: p["id"], work, out, clients=[client], workers=workers, progress=progress
    )
