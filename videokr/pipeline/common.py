"""The machinery every stage shares: resumable, ordered, append-only processing with a report.

A stage is a function of one input unit (a knowledge point, a video, an example) returning the rows it
keeps and the ids it drops with a reason. `run_stage` feeds units to a thread pool and writes results
**in input order**, one unit at a time, to an append-only JSONL file plus a ledger of finished units.
Re-running the same command skips finished units and, because every model call is cached, redoes an
unfinished unit without new calls; writing in input order means an interrupted-then-resumed run leaves
byte for byte the file an uninterrupted run would have. The report says what was kept, what was dropped
and why (by id), and what the models cost.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from videokr.atomic import atomic_path
from videokr.errors import RecordError, VideoDecodeError
from videokr.pipeline.client import Counters, ModelClient, StructuredOutputError

T = TypeVar("T")

# Failures that belong to one unit (a bad reply, an unreadable clip, a malformed row): the unit is dropped
# with the reason. Anything else (an endpoint that stays down, a bug) stops the stage; a re-run resumes.
UNIT_ERRORS = (StructuredOutputError, VideoDecodeError, RecordError)
MAX_IDS_PER_REASON = 1000


@dataclass
class Outcome:
    """What one unit produced: rows to keep (each with an ``id``) and (id, reason) pairs dropped."""

    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StageReport:
    """Counts for one run of a stage; reasons are short codes (``code`` or ``code: detail``)."""

    stage: str
    out: str
    units: int = 0
    resumed_units: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)
    models: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        self.kept += len(outcome.kept)
        for row_id, reason in outcome.dropped:
            code = reason.split(":", 1)[0]
            self.dropped[code] += 1
            ids = self.dropped_ids.setdefault(code, [])
            if len(ids) < MAX_IDS_PER_REASON:
                ids.append(row_id)

    @property
    def calls(self) -> int:
        return sum(m["calls"] for m in self.models.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "out": self.out,
            "units": self.units,
            "resumed_units": self.resumed_units,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "dropped_ids": self.dropped_ids,
            "models": self.models,
        }

    def summary(self) -> str:
        lines = [
            f"{self.stage}: {self.units} units ({self.resumed_units} already done), {self.kept} kept, "
            f"{sum(self.dropped.values())} dropped → {self.out}"
        ]
        for code, count in self.dropped.most_common():
            shown = ", ".join(self.dropped_ids.get(code, [])[:5])
            lines.append(f"  dropped {count} × {code} (e.g. {shown})")
        for model, c in self.models.items():
            lines.append(
                f"  model {model}: {c['calls']} calls, {c['cached']} cached, {c['retries']} retries, "
                f"{c['prompt_tokens']} prompt + {c['completion_tokens']} completion tokens"
            )
        return "\n".join(lines)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a JSONL file (blank lines skipped); a missing file is an empty list."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows atomically (temporary file, then rename): readers never see half a file."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def stable_rng(*parts: object) -> np.random.Generator:
    """A generator seeded from `parts`: the same item always gets the same "random" frames and seeds,
    in any order and any number of workers, so re-runs hit the cache."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def stable_id(*parts: object, length: int = 12) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:length]


def ledger_path(out: Path) -> Path:
    return out.with_name(out.name + ".ledger")


def report_path(out: Path) -> Path:
    return out.with_name(out.name + ".report.json")


def _ordered(
    pool: ThreadPoolExecutor, fn: Callable[[T], Outcome], items: Sequence[T], window: int
) -> Iterator[tuple[T, Outcome]]:
    """Results in input order with at most `window` units in flight (memory stays flat on big inputs)."""
    pending: deque[tuple[T, Future[Outcome]]] = deque()
    iterator = iter(items)
    for item in iterator:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= window:
            break
    while pending:
        item, future = pending.popleft()
        yield item, future.result()
        nxt = next(iterator, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(fn, nxt)))


def run_stage(
    stage: str,
    items: Sequence[T],
    unit_id: Callable[[T], str],
    work: Callable[[T], Outcome],
    out: str | Path,
    *,
    clients: Sequence[ModelClient] = (),
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """Run `work` on every unit not finished before, appending kept rows to `out`; returns the report.

    Unit ids must be unique and stable across runs. Rows already in `out` (a crash between writing a
    unit's rows and its ledger line) are not written twice.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ledger = ledger_path(out)
    done = {entry["unit"]: entry for entry in read_jsonl(ledger)}
    written = {row["id"] for row in read_jsonl(out)}
    report = StageReport(stage=stage, out=str(out), units=len(items))
    starts = [c.counters.snapshot() for c in clients]

    todo = []
    for item in items:
        entry = done.get(unit_id(item))
        if entry is None:
            todo.append(item)
            continue
        report.resumed_units += 1
        report.kept += len(entry["kept"])
        report.record(Outcome(dropped=[tuple(d) for d in entry["dropped"]]))

    def guarded(item: T) -> Outcome:
        try:
            return work(item)
        except UNIT_ERRORS as exc:
            return Outcome(dropped=[(unit_id(item), f"{type(exc).__name__}: {exc}")])

    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
            out.open("a", encoding="utf-8") as rows_file,
            ledger.open("a", encoding="utf-8") as ledger_file,
            tqdm(total=len(items), initial=report.resumed_units, desc=stage, disable=not progress) as bar,
        ):
            for item, outcome in _ordered(pool, guarded, todo, window=max(1, workers) * 4):
                for row in outcome.kept:
                    if row["id"] not in written:
                        rows_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                        written.add(row["id"])
                rows_file.flush()
                entry = {
                    "unit": unit_id(item),
                    "kept": [row["id"] for row in outcome.kept],
                    "dropped": [list(d) for d in outcome.dropped],
                }
                ledger_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                ledger_file.flush()
                report.record(outcome)
                bar.update(1)
    finally:
        for client, start in zip(clients, starts, strict=True):
            delta = client.counters.since(start)
            merged = report.models.setdefault(client.model, Counters().__dict__.copy())
            for key, value in delta.__dict__.items():
                merged[key] += value
        report_path(out).write_text(
            json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return report
