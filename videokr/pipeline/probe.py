"""The VideoKR-Eval single-frame probe: keep only benchmark items that need more than one frame.

Each of three models sees the question, its options and one random frame, three times (a new random
frame each trial). An item is single-frame-solvable *for a model* if all three of its trials are right
(one lucky guess among several options is not enough to remove an item); it is kept when no model can
solve it that way. Removed items go to a re-annotation queue: experts write new questions on their
videos (`origin` = re-annotated); kept items are written as release rows with `origin` = retained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videokr.data.records import Record, read_records
from videokr.data.release import ClipStore
from videokr.pipeline.ask import attempt, random_frames
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import Outcome, StageReport, ledger_path, read_jsonl, run_stage, write_jsonl

TRIALS = 3
PROBE_TEMPERATURE = 0.0
SOLVABLE = "single_frame_solvable"


def probe_item(
    clients: Sequence[ModelClient], record: Record, path: str, trials: int = TRIALS
) -> dict[str, Any]:
    """Per model: each trial's correctness and whether all were right; frames differ per model and trial."""
    result: dict[str, Any] = {}
    for client in clients:
        outcomes = []
        for trial in range(trials):
            frame = random_frames(path, 1, record.id, client.model, trial)
            outcomes.append(
                attempt(
                    client, record, frame, temperature=PROBE_TEMPERATURE, seed=trial, timestamps=False
                ).correct
            )
        result[client.model] = {"trials": outcomes, "solvable": all(outcomes)}
    return result


def single_frame_probe(
    clients: Sequence[ModelClient],
    eval_jsonl: str | Path,
    out: str | Path,
    *,
    queue: str | Path | None = None,
    trials: int = TRIALS,
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """Probe every candidate of an evaluation release file; kept rows go to `out`, removed ones to `queue`.

    `out` rows keep the candidate's fields (video path as in the source file) with ``origin`` =
    ``retained`` and the per-model probe results under ``single_frame_probe``.
    """
    if len(clients) < 1:
        raise ValueError("the probe needs at least one model (the paper uses three)")
    eval_jsonl = Path(eval_jsonl)
    parsed = read_records(eval_jsonl, "eval", strict=True)
    store = ClipStore(eval_jsonl.parent)
    raw_rows = {}
    for row in read_jsonl(eval_jsonl):
        raw_rows[str(row.get("id") or row.get("problem_id"))] = row
    out = Path(out)
    queue = Path(queue) if queue is not None else out.with_name(out.stem + ".reannotate.jsonl")

    def work(record: Record) -> Outcome:
        ref = store.resolve(record.video)
        if ref is None or ref.file is None:
            return Outcome(dropped=[(record.id, f"missing_clip: {record.video}")])
        results = probe_item(clients, record, str(ref.file), trials)
        solvers = [model for model, r in results.items() if r["solvable"]]
        if solvers:
            return Outcome(dropped=[(record.id, f"{SOLVABLE}: {', '.join(solvers)}")])
        row = {
            **raw_rows.get(record.id, {}),
            "id": record.id,
            "origin": "retained",
            "single_frame_probe": results,
        }
        return Outcome(kept=[row])

    report = run_stage(
        "probe",
        parsed.records,
        lambda r: r.id,
        work,
        out,
        clients=clients,
        workers=workers,
        progress=progress,
    )
    # The queue is rewritten whole from the ledger, so it is complete and ordered after any resume.
    by_id = {r.id: r for r in parsed.records}
    queued = []
    for entry in read_jsonl(ledger_path(out)):
        for row_id, reason in entry["dropped"]:
            code, _, detail = reason.partition(": ")
            if code == SOLVABLE:
                record = by_id[row_id]
                queued.append(
                    {
                        "id": row_id,
                        "video": record.video,
                        "dataset": record.dataset,
                        "subject": record.subject,
                        "question": record.question,
                        "solvable_by": detail.split(", "),
                    }
                )
    write_jsonl(queue, queued)
    return report
