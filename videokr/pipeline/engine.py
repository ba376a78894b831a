"""Construction stages as datatrove pipelines: one machine, a Slurm cluster or a Ray cluster.

A stage is a `Stage`: a name, how to load what every unit needs once per task (the bank, the seeds), and
``work(row, clients, context) -> Outcome``, the same unit function the per-stage commands run. This
module turns it into datatrove steps:

- `StageRows` reads the stage's input JSONL and gives task ``rank`` every ``world_size``-th row (datatrove's
  readers shard by *file*, and a stage's input is one file), each as a `Document` carrying the row and its
  position in the input.
- A stage without a model runs its units in `UnitStep`; a stage with one runs them inside datatrove's
  `InferenceRunner` against an OpenAI-compatible endpoint (`server_type="endpoint"`). The rollout runs
  our unit function in a thread with a `ModelClient` whose backend is the runner's ``generate`` callback,
  so request building and reply parsing stay ours, and so do the two things the runner does not do: the
  per-request disk cache (a re-run, or a task redone after a crash, pays for nothing already answered)
  and the one JSON-repair turn.
- `OutcomeWriter` (a `JsonlWriter`) writes each unit's outcome (kept rows, drops with reasons, model
  counters) to ``<stage>/outcomes/<rank>.jsonl`` and draws the task's progress bar (done / total, rate,
  ETA, model tokens).
- `MergeOutcomes` (one task) puts every unit back in input order, refuses to go on if a unit is missing,
  and writes ``<stage>/rows.jsonl`` plus ``<stage>/report.json``: units finish in any order on any number
  of tasks, but the stage output is byte for byte the same.

Resuming is datatrove's: a finished task is skipped (``completions/`` in its logging folder), an
unfinished one is redone whole, and the request cache makes redoing it free.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.writers.jsonl import JsonlWriter
from tqdm.auto import tqdm

from videokr.errors import VideoKRError
from videokr.pipeline.client import Completion, Counters, ModelClient, RequestError, TransientError
from videokr.pipeline.common import UNIT_ERRORS, Outcome, StageReport, read_jsonl, write_jsonl

Work = Callable[[dict[str, Any], Sequence[ModelClient], Any], Outcome]
#: Model calls a unit may have in flight is bounded by the runner; threads only wait on replies.
THREADS_PER_TASK = 16


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server: ``base_url`` as clients write it (``http://host:8000/v1``)."""

    base_url: str
    api_key_env: str | None = "VIDEOKR_API_KEY"  # the variable's name: the key itself is never stored
    concurrency: int = 8
    timeout_s: float | None = 600

    @property
    def server_url(self) -> str:
        """The URL datatrove's endpoint server wants: it appends ``/v1/chat/completions`` itself."""
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass(frozen=True)
class Stage:
    """One construction stage over JSONL rows.

    `model` names the model `work`'s one client talks to (None: `work` gets no client). `context` loads,
    once per task, what every unit shares; it must be picklable (a module-level function or a
    `functools.partial`), since tasks run in other processes or on other machines.
    """

    name: str
    work: Work
    model: str | None = None
    context: Callable[[], Any] | None = None
    unit_id: Callable[[dict[str, Any]], str] = field(default=lambda row: str(row["id"]))


# --------------------------------------------------------------------------------------------- files


def stage_dir(root: str | Path, stage: str) -> Path:
    return Path(root) / stage


def rows_path(root: str | Path, stage: str) -> Path:
    """The stage's output in input order: the next stage's input."""
    return stage_dir(root, stage) / "rows.jsonl"


def stage_report_path(root: str | Path, stage: str) -> Path:
    return stage_dir(root, stage) / "report.json"


def _outcome_dict(outcome: Outcome, counters: dict[str, Counters]) -> dict[str, Any]:
    return {
        "kept": outcome.kept,
        "dropped": [list(d) for d in outcome.dropped],
        "models": {name: asdict(c) for name, c in counters.items()},
    }


def _run_unit(stage: Stage, row: dict[str, Any], clients: Sequence[ModelClient], context: Any) -> Outcome:
    """A unit's outcome; a failure that belongs to the unit (bad reply, unreadable clip) drops it."""
    try:
        return stage.work(row, clients, context)
    except UNIT_ERRORS as exc:
        return Outcome(dropped=[(stage.unit_id(row), f"{type(exc).__name__}: {exc}")])


# --------------------------------------------------------------------------------------------- steps


class StageRows(PipelineStep):
    """Rows ``rank``, ``rank + world_size``, … of the stage input, as documents that know their position."""

    name = "stage rows"
    type = "Reader"

    def __init__(self, path: str | Path, unit_id: Callable[[dict[str, Any]], str]) -> None:
        super().__init__()
        self.path = str(path)
        self.unit_id = unit_id

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        mine = [(i, row) for i, row in enumerate(read_jsonl(self.path)) if i % world_size == rank]
        for index, row in mine:
            self.stat_update("rows")
            yield Document(text=json.dumps(row, ensure_ascii=False), id=self.unit_id(row),
                           metadata={"index": index, "task_units": len(mine)})  # fmt: skip


class UnitStep(PipelineStep):
    """Runs a model-free stage's unit function on every document; the outcome goes in its metadata."""

    name = "units"
    type = "Stage"

    def __init__(self, stage: Stage) -> None:
        super().__init__()
        self.stage = stage

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        context = self.stage.context() if self.stage.context else None
        for document in data or ():
            with self.track_time():
                outcome = _run_unit(self.stage, json.loads(document.text), (), context)
            document.metadata["outcome"] = [_outcome_dict(outcome, {})]
            yield document


class GenerateBackend:
    """A `Backend` whose replies come from the inference runner's ``generate`` callback.

    The unit function runs in a worker thread and blocks here while the runner's event loop sends the
    request (with its concurrency limit, its retries on connection errors, and its token metrics). The
    runner does not retry an overloaded or failing endpoint (HTTP 429, 5xx); those become
    `TransientError`, which `ModelClient` retries with backoff, as it does for the per-stage commands.
    """

    def __init__(self, model: str, generate: Callable[[dict], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self._generate = generate
        self._loop = loop

    def complete(self, payload: dict[str, Any]) -> Completion:
        from datatrove.pipeline.inference.types import InferenceError, ServerError

        future = asyncio.run_coroutine_threadsafe(self._generate(dict(payload)), self._loop)
        try:
            result = future.result()
        except ServerError as exc:
            raise TransientError(f"{self.model}: {exc}") from None
        except InferenceError as exc:
            message = f"{self.model}: {exc.error}"
            if _TRANSIENT_STATUS.search(str(exc.error)):
                raise TransientError(message) from None
            raise RequestError(message) from None
        usage = result.usage or {}
        return Completion(
            result.text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )


_TRANSIENT_STATUS = re.compile(r"http status (429|5\d\d)\b", re.IGNORECASE)


class UnitRollout:
    """The runner's rollout function: one unit of a model stage, through our cache and repair turn."""

    def __init__(
        self, stage: Stage, model: str, cache_dir: str | None, *, retries: int = 4, backoff_s: float = 1.0
    ) -> None:
        self.stage = stage
        self.model = model
        self.cache_dir = cache_dir
        self.retries = retries
        self.backoff_s = backoff_s

    async def __call__(
        self,
        document: Document,
        generate: Callable[[dict], Any],
        *,
        context: Any,
        threads: ThreadPoolExecutor,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        client = ModelClient(
            GenerateBackend(self.model, generate, loop),
            cache_dir=self.cache_dir,
            max_concurrency=1 << 16,  # the runner bounds concurrency
            retries=self.retries,
            backoff_s=self.backoff_s,
        )
        row = json.loads(document.text)
        outcome = await loop.run_in_executor(threads, _run_unit, self.stage, row, [client], context)
        return _outcome_dict(outcome, {self.model: client.counters})


@contextmanager
def _rollout_context(stage: Stage, threads: int) -> Iterator[dict[str, Any]]:
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=stage.name)
    try:
        yield {"context": stage.context() if stage.context else None, "threads": pool}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class _RolloutContext:
    """Picklable factory for the runner's shared context (loaded in the task, not in the launcher)."""

    def __init__(self, stage: Stage, threads: int) -> None:
        self.stage = stage
        self.threads = threads

    def __call__(self) -> Any:
        return _rollout_context(self.stage, self.threads)


class EndpointRunner(InferenceRunner):
    """datatrove's inference runner, given the endpoint's API key only in the task that uses it.

    The runner's config is written to the job's ``executor.json`` (and pickled for Slurm and Ray), so it
    holds the name of the environment variable; the key is read from it when the task starts.
    """

    def __init__(self, api_key_env: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key_env = api_key_env

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.config.api_key = os.environ.get(self.api_key_env) if self.api_key_env else None
        try:
            return super().run(data, rank, world_size)
        finally:
            self.config.api_key = None


class OutcomeWriter(JsonlWriter):
    """Writes one outcome line per unit and shows the task's progress (units, rate, ETA, tokens)."""

    name = "outcomes"

    def __init__(self, folder: str | Path, stage: str, *, progress: bool = True) -> None:
        super().__init__(
            str(folder), output_filename="${rank}.jsonl", compression=None, adapter=_outcome_line
        )
        self.stage = stage
        self.progress = progress
        self._bar: tqdm | None = None
        self._tokens = 0

    def write(self, document: Document, rank: int = 0, **kwargs: Any) -> None:
        super().write(document, rank, **kwargs)
        outcome = document.metadata["outcome"][0]
        if self._bar is None:
            self._bar = tqdm(total=document.metadata["task_units"], desc=f"{self.stage} [task {rank}]",
                             unit="unit", disable=not self.progress)  # fmt: skip
        for counters in outcome["models"].values():
            self._tokens += counters["prompt_tokens"] + counters["completion_tokens"]
        if self._tokens:
            self._bar.set_postfix_str(f"{self._tokens} tokens", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        super().close()


def _outcome_line(self: JsonlWriter, document: Document) -> dict[str, Any]:
    return {"index": document.metadata["index"], "unit": document.id, **document.metadata["outcome"][0]}


class MergeOutcomes(PipelineStep):
    """Every unit's outcome back in input order: ``rows.jsonl`` (kept rows) and ``report.json``."""

    name = "merge"
    type = "Stage"

    def __init__(
        self,
        root: str | Path,
        stage: str,
        input_path: str | Path,
        unit_id: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        super().__init__()
        self.root = str(root)
        self.stage = stage
        self.input_path = str(input_path)
        self.unit_id = unit_id

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Runs at once (not a generator): the executor calls it for its side effect, and so may we."""
        merge_outcomes(self.root, self.stage, self.input_path, self.unit_id)
        return None


def merge_outcomes(
    root: str | Path,
    stage: str,
    input_path: str | Path,
    unit_id: Callable[[dict[str, Any]], str] | None = None,
) -> StageReport:
    """Write the stage's ordered output and report from its tasks' outcome files; returns the report.

    With `unit_id`, every outcome must name the unit at its input position: outcomes left by a run over
    a different input are refused instead of merged.
    """
    folder = stage_dir(root, stage) / "outcomes"
    by_index: dict[int, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in read_jsonl(path):
            by_index[line["index"]] = line
    inputs = read_jsonl(input_path)
    total = len(inputs)
    if unit_id is not None:
        stale = [i for i, line in by_index.items() if i >= total or line["unit"] != unit_id(inputs[i])]
        if stale:
            raise VideoKRError(
                f"stage {stage}: outcomes in {folder} belong to another input (input row {stale[0]}); "
                "use a new work_dir for new inputs"
            )
    missing = [i for i in range(total) if i not in by_index]
    if missing:
        raise VideoKRError(
            f"stage {stage}: {len(missing)} of {total} units have no outcome (first: input row "
            f"{missing[0]}); run the pipeline again to finish them"
        )
    out = rows_path(root, stage)
    report = StageReport(stage=stage, out=str(out), units=total)
    rows: list[dict[str, Any]] = []
    for index in range(total):
        line = by_index[index]
        outcome = Outcome(kept=line["kept"], dropped=[tuple(d) for d in line["dropped"]])
        rows += outcome.kept
        report.record(outcome)
        for model, counters in line["models"].items():
            merged = report.models.setdefault(model, asdict(Counters()))
            for key, value in counters.items():
                merged[key] += value
    write_jsonl(out, rows)
    stage_report_path(root, stage).write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return report


# --------------------------------------------------------------------------------------------- pipelines


def stage_pipeline(
    stage: Stage,
    input_path: str | Path,
    root: str | Path,
    *,
    endpoint: Endpoint | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    backoff_s: float = 1.0,
) -> list[PipelineStep]:
    """The datatrove pipeline of one stage's units (run it on any executor, with any number of tasks).

    A model stage runs in an `InferenceRunner`, which sends every request to one model: a filter that
    asks two models is two stages (see `chain.chain_stages`).
    """
    writer = OutcomeWriter(stage_dir(root, stage.name) / "outcomes", stage.name, progress=progress)
    reader = StageRows(input_path, stage.unit_id)
    if stage.model is None:
        return [reader, UnitStep(stage), writer]
    if endpoint is None:
        raise ValueError(f"stage {stage.name} calls a model: an endpoint is needed")
    model = stage.model
    config = InferenceConfig(
        server_type="endpoint",
        model_name_or_path=model,
        endpoint_url=endpoint.server_url,
        max_concurrent_generations=endpoint.concurrency,
        max_concurrent_documents=endpoint.concurrency,
        request_timeout=endpoint.timeout_s,
        metric_interval=3600,  # the progress bar reports; the runner's table is for long runs' logs
    )
    runner = EndpointRunner(
        endpoint.api_key_env,
        rollout_fn=UnitRollout(
            stage, model, str(cache_dir) if cache_dir is not None else None, backoff_s=backoff_s
        ),
        config=config,
        output_writer=writer,
        shared_context=_RolloutContext(stage, max(THREADS_PER_TASK, endpoint.concurrency)),
        metadata_key="outcome",
    )
    return [reader, runner]
