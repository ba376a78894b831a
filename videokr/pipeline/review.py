"""The expert audit: export examples to a sheet, read the experts' verdicts and edits back.

Experts work in a spreadsheet, so the export is CSV (or JSONL) with one row per example, the options as
``A. …`` lines in one cell, and empty ``verdict`` / ``note`` columns. On import, ``accept`` keeps the
example, ``reject`` drops it (with the note as the reason), ``edit`` keeps it with the edited cells
applied, and the result must still parse as a record; an unreviewed row (empty verdict) is reported, not
silently accepted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videokr.data.prompts import format_options
from videokr.data.records import RecordError, parse_row
from videokr.pipeline.common import read_jsonl, write_jsonl

EDITABLE = ("question", "options", "answer", "think")
COLUMNS = ("id", "video", "skill", "subject", *EDITABLE, "verdict", "note")
VERDICTS = ("accept", "reject", "edit")


def export_review(examples: str | Path, sheet: str | Path) -> int:
    """Write the review sheet (CSV when `sheet` ends in .csv, else JSONL); returns the number of rows."""
    rows = []
    for row in read_jsonl(examples):
        record = parse_row(row, "sft")
        rows.append(
            {
                "id": record.id,
                "video": record.video,
                "skill": record.skill or "",
                "subject": record.subject or "",
                "question": record.question,
                "options": "\n".join(format_options(record.options)),
                "answer": record.answer,
                "think": record.think or "",
                "verdict": "",
                "note": "",
            }
        )
    sheet = Path(sheet)
    if sheet.suffix.lower() == ".csv":
        sheet.parent.mkdir(parents=True, exist_ok=True)
        with sheet.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        write_jsonl(sheet, rows)
    return len(rows)


@dataclass
class ReviewReport:
    accepted: int = 0
    edited: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    unreviewed: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"review: {self.accepted} accepted, {self.edited} edited, {len(self.rejected)} rejected, "
            f"{len(self.unreviewed)} unreviewed, {len(self.invalid)} invalid after edit"
        )


def _read_sheet(sheet: Path) -> list[dict[str, Any]]:
    if sheet.suffix.lower() == ".csv":
        with sheet.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    return read_jsonl(sheet)


def import_review(examples: str | Path, sheet: str | Path, out: str | Path) -> ReviewReport:
    """Apply the sheet's verdicts to `examples`; write accepted and edited rows to `out`, in input order."""
    verdicts = {row["id"]: row for row in _read_sheet(Path(sheet))}
    report = ReviewReport()
    kept = []
    for row in read_jsonl(examples):
        review = verdicts.get(row["id"])
        verdict = (review or {}).get("verdict", "").strip().lower()
        if verdict not in VERDICTS:
            report.unreviewed.append(row["id"])
            continue
        if verdict == "reject":
            report.rejected[row["id"]] = (review or {}).get("note", "")
            continue
        if verdict == "edit":
            assert review is not None
            # Edit the canonical record, not the raw row: a raw row may spell the answer `solution`,
            # which would shadow an edited `answer`.
            edited = parse_row(row, "sft").to_dict()
            for key in EDITABLE:
                if str(review.get(key, "")).strip():
                    edited[key] = review[key]
            if "options" in edited and isinstance(edited["options"], str):
                edited["options"] = edited["options"].splitlines()
            try:
                row = parse_row(edited, "sft").to_dict()
            except RecordError as exc:
                report.invalid[row["id"]] = str(exc)
                continue
            report.edited += 1
        else:
            report.accepted += 1
        kept.append(row)
    write_jsonl(out, kept)
    return report
