"""``videokr pipeline run CONFIG.yaml``: the whole construction chain, from a knowledge-bank slice and a
folder of licensed clips to a release folder that ``videokr build`` takes.

The chain is collect-local → relevance → visual-relevance → safety → decontaminate (when a benchmark is
named) → generate → verify → filter-dependency (one pass per model) → filter-rationale → release (the
video-grouped SFT / RL split written in the release layout). Each stage is a datatrove pipeline of its
units (`engine.stage_pipeline`) followed by a one-task merge, on the executor the config names:

- ``local`` (default): processes on this machine; stages run one after another.
- ``slurm``: one job array per stage, chained with ``depends``; this command submits and returns.
- ``ray``: tasks on a Ray cluster (``ray.init`` with the config's ``init`` options, e.g. local mode).

Re-running the same config resumes: finished tasks are skipped, unfinished ones are redone from the
request cache, so no answered request is paid for twice and the output is what an uninterrupted run
writes. At the end it prints the drops of every stage by reason.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videokr.errors import VideoKRError
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import Outcome, read_jsonl, write_jsonl
from videokr.pipeline.engine import (
    Endpoint,
    MergeOutcomes,
    Stage,
    rows_path,
    stage_dir,
    stage_pipeline,
    stage_report_path,
)

EXECUTORS = ("local", "slurm", "ray")
MODEL_ROLES = ("relevance", "visual-relevance", "safety", "generate", "verify", "filter-rationale")
ANSWERED = "_answered_without_video"  # the dependency filter's per-model answers between its passes


class ConfigError(VideoKRError):
    """The run config is missing something or names something that does not exist."""


@dataclass(frozen=True)
class RunConfig:
    """What `videokr pipeline run` reads from YAML; relative paths are relative to the config file.

    ``models`` gives a model name per role (``default`` for any role not named); ``filter-dependency`` is
    a list of two (or more) names. ``executor`` holds ``type`` (local, slurm, ray) and that executor's
    options (``tasks``, ``workers``, and e.g. ``partition``/``time`` for Slurm, ``cpus_per_task`` for Ray);
    ``init`` under a Ray executor is passed to ``ray.init``.
    """

    work_dir: Path
    release_dir: Path
    bank: Path
    clips: Path
    manifest: Path
    seeds: Path
    endpoint: Endpoint
    models: dict[str, Any]
    benchmark: Path | None = None
    cache_dir: Path | None = None
    executor: dict[str, Any] = field(default_factory=lambda: {"type": "local"})
    sft_fraction: float | None = None
    split_seed: int = 0
    progress: bool = True

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the run config ({exc})") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, base: str | Path = ".") -> RunConfig:
        base = Path(base)

        def need(key: str) -> Any:
            if raw.get(key) in (None, ""):
                raise ConfigError(f"the run config needs `{key}`")
            return raw[key]

        def where(value: str | None) -> Path | None:
            return None if value is None else (base / Path(value).expanduser()).resolve()

        collect = need("collect")
        endpoint = need("endpoint")
        if not isinstance(endpoint, dict) or not endpoint.get("base_url"):
            raise ConfigError("`endpoint` needs `base_url` (e.g. http://localhost:8000/v1)")
        key_env = endpoint.get("api_key_env", "VIDEOKR_API_KEY")
        executor = dict(raw.get("executor") or {"type": "local"})
        executor.setdefault("type", "local")
        if executor["type"] not in EXECUTORS:
            raise ConfigError(f"executor type {executor['type']!r}: expected one of {', '.join(EXECUTORS)}")
        models = dict(need("models")) if isinstance(raw.get("models"), dict) else {"default": need("models")}
        config = cls(
            work_dir=where(need("work_dir")),  # type: ignore[arg-type]
            release_dir=where(need("release_dir")),  # type: ignore[arg-type]
            bank=where(need("bank")),  # type: ignore[arg-type]
            clips=where(collect.get("folder")) or base,
            manifest=where(collect.get("manifest")) or base,
            seeds=where(need("seeds")),  # type: ignore[arg-type]
            endpoint=Endpoint(
                base_url=str(endpoint["base_url"]),
                api_key_env=key_env,
                concurrency=int(endpoint.get("concurrency", 8)),
                timeout_s=float(endpoint.get("timeout_s", 600)),
            ),
            models=models,
            benchmark=where(raw.get("benchmark")),
            cache_dir=where(raw.get("cache_dir")),
            executor=executor,
            sft_fraction=raw.get("split", {}).get("sft_fraction"),
            split_seed=int(raw.get("split", {}).get("seed", 0)),
            progress=bool(raw.get("progress", True)),
        )
        for role in (*MODEL_ROLES, "filter-dependency"):
            config.model(role)  # fail now, not after hours of earlier stages
        if len(config.dependency_models()) < 2:
            raise ConfigError("`models.filter-dependency` needs at least two model names")
        return config

    @property
    def cache(self) -> Path:
        return self.cache_dir or self.work_dir / "cache"

    def model(self, role: str) -> str:
        name = self.models.get(role, self.models.get("default"))
        if name is None:
            raise ConfigError(f"no model for {role}: set `models.{role}` or `models.default`")
        return name

    def dependency_models(self) -> list[str]:
        names = self.model("filter-dependency")
        return [names] if isinstance(names, str) else list(names)


# --------------------------------------------------------------------------------------------- units
# Module-level functions (not closures): tasks unpickle them in other processes or on other machines.


def _collect(row: dict[str, Any], clients: Sequence[ModelClient], folder: str) -> Outcome:
    from videokr.pipeline.collect import local_candidate

    return local_candidate(folder, row)


def _bank_points(bank: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in read_jsonl(bank)}


def _relevance(row: dict[str, Any], clients: Sequence[ModelClient], points: dict[str, Any]) -> Outcome:
    from videokr.pipeline.collect import relevance_unit

    return relevance_unit(clients[0], points, row)


def _visual_relevance(row: dict[str, Any], clients: Sequence[ModelClient], _: Any) -> Outcome:
    from videokr.pipeline.screen import visual_relevance_unit

    return visual_relevance_unit(clients[0], row)


def _safety(row: dict[str, Any], clients: Sequence[ModelClient], _: Any) -> Outcome:
    from videokr.pipeline.screen import safety_unit

    return safety_unit(clients[0], row)


def _benchmark_index(benchmark: str, index_file: str) -> Any:
    from videokr.pipeline.decontaminate import BenchmarkIndex, benchmark_index_from_eval

    if Path(index_file).exists():
        return BenchmarkIndex.load(index_file)
    index = benchmark_index_from_eval(benchmark)
    index.save(index_file)
    return index


def _decontaminate(row: dict[str, Any], clients: Sequence[ModelClient], index: Any) -> Outcome:
    from videokr.pipeline.decontaminate import decontaminate_unit

    return decontaminate_unit(index, row)


def _seeds(path: str) -> list[Any]:
    from videokr.pipeline.generate import load_seeds

    return load_seeds(path)


def _generate(row: dict[str, Any], clients: Sequence[ModelClient], seeds: list[Any]) -> Outcome:
    from videokr.pipeline.generate import generate_for_video

    return generate_for_video(clients[0], row, seeds)


def _verify(row: dict[str, Any], clients: Sequence[ModelClient], _: Any) -> Outcome:
    from videokr.pipeline.verify import verify_unit

    return verify_unit(clients[0], row)


def _dependency_answer(row: dict[str, Any], clients: Sequence[ModelClient], last: bool) -> Outcome:
    """One pass of the dependency filter: this model's answer joins the row; the last pass decides."""
    from videokr.pipeline.filters import DEPENDENCY_FRAMES, answered_without_video, dependency_verdict

    client = clients[0]
    answered = [*row.get(ANSWERED, []), [client.model, answered_without_video(client, row)]]
    if not last:
        return Outcome(kept=[{**row, ANSWERED: answered}])
    clean = {k: v for k, v in row.items() if k != ANSWERED}
    return dependency_verdict(clean, [(name, right) for name, right in answered], DEPENDENCY_FRAMES)


def _rationale(row: dict[str, Any], clients: Sequence[ModelClient], _: Any) -> Outcome:
    from videokr.pipeline.filters import rationale_unit

    return rationale_unit(clients[0], row)


def chain_stages(config: RunConfig) -> list[Stage]:
    """The stages of a run, in order, each with its model(s) and its once-per-task context."""
    stages = [
        Stage(
            "collect-local",
            _collect,
            context=functools.partial(str, config.clips),
            unit_id=lambda row: row["file"],
        ),
        Stage(
            "relevance",
            _relevance,
            config.model("relevance"),
            context=functools.partial(_bank_points, str(config.bank)),
        ),
        Stage("visual-relevance", _visual_relevance, config.model("visual-relevance")),
        Stage("safety", _safety, config.model("safety")),
    ]
    if config.benchmark is not None:
        index_file = str(config.work_dir / "benchmark-index.npz")
        stages.append(
            Stage(
                "decontaminate",
                _decontaminate,
                context=functools.partial(_benchmark_index, str(config.benchmark), index_file),
            )
        )
    stages += [
        Stage(
            "generate",
            _generate,
            config.model("generate"),
            context=functools.partial(_seeds, str(config.seeds)),
        ),
        Stage("verify", _verify, config.model("verify")),
    ]
    models = config.dependency_models()
    for number, model in enumerate(models, start=1):
        last = number == len(models)
        name = "filter-dependency" if last else f"filter-dependency-{number}"
        stages.append(Stage(name, _dependency_answer, model, context=functools.partial(bool, last)))
    stages.append(Stage("filter-rationale", _rationale, config.model("filter-rationale")))
    return stages


# --------------------------------------------------------------------------------------------- release


def write_release(examples: str | Path, out: str | Path, *, sft_fraction: float | None, seed: int) -> dict:
    """The video-grouped SFT / RL split of validated examples, written in the release layout."""
    from videokr.data.records import parse_row
    from videokr.pipeline.split import SFT_FRACTION, split_by_video, write_training_release

    records = [parse_row(row, "sft") for row in read_jsonl(examples)]
    fraction = SFT_FRACTION if sft_fraction is None else sft_fraction
    sft, rl = split_by_video(records, sft_fraction=fraction, seed=seed)
    write_training_release(sft, rl, out)
    return {"sft_examples": len(sft), "rl_examples": len(rl), "sft_videos": len({r.video for r in sft}),
            "rl_videos": len({r.video for r in rl})}  # fmt: skip


class ReleaseStep(MergeOutcomes):
    """The last step (one task): split and write the release folder `videokr build` takes."""

    name = "release"

    def __init__(
        self, examples: str | Path, out: str | Path, *, sft_fraction: float | None, seed: int
    ) -> None:
        super().__init__(out, "release", examples)
        self.out = str(out)
        self.sft_fraction = sft_fraction
        self.seed = seed

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Any:
        counts = write_release(self.input_path, self.out, sft_fraction=self.sft_fraction, seed=self.seed)
        (Path(self.out) / "split.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")


# --------------------------------------------------------------------------------------------- executors


def _executor(
    config: RunConfig, name: str, pipeline: list[Any], logs: Path, depends: Any, *, tasks: int | None = None
) -> Any:
    """The configured datatrove executor for one job of the chain (`tasks=1`: a merge or the release)."""
    options = {k: v for k, v in config.executor.items() if k not in ("type", "init")}
    if tasks is not None:  # merges and the release are one task each
        options.update(tasks=1, workers=1)
    kind = config.executor["type"]
    if kind == "local":
        from datatrove.executor.local import LocalPipelineExecutor

        # Forked workers inherit the decoders this process imported (`preload`); datatrove's default,
        # forkserver, starts every worker of every stage from a bare interpreter (seconds each).
        options.setdefault("start_method", "fork")
        return LocalPipelineExecutor(pipeline, logging_dir=str(logs), depends=depends, **options)
    if kind == "slurm":
        from datatrove.executor.slurm import SlurmPipelineExecutor

        options.setdefault("tasks", 1)
        options.setdefault("time", "24:00:00")
        if "partition" not in options:
            raise ConfigError("a slurm executor needs `partition` (and usually `time`)")
        return SlurmPipelineExecutor(pipeline, logging_dir=str(logs), depends=depends,
                                     job_name=f"videokr-{name}", **options)  # fmt: skip
    from datatrove.executor.ray import RayPipelineExecutor

    return RayPipelineExecutor(pipeline, logging_dir=str(logs), depends=depends, **options)


def _init_ray(config: RunConfig) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor type ray needs ray: pip install 'videokr[ray]'") from None
    if not ray.is_initialized():
        ray.init(**{"include_dashboard": False, "log_to_driver": False, **config.executor.get("init", {})})


def preload() -> None:
    """Import what every task needs (the stage modules, the video backend) once, before workers fork."""
    import importlib

    for module in ("videokr.pipeline.filters", "videokr.pipeline.generate", "videokr.pipeline.screen"):
        importlib.import_module(module)
    from videokr.vision.decode import available_backends

    available_backends()  # imports the backends (torchcodec brings torch): seconds, paid here once


def units_path(config: RunConfig) -> Path:
    return config.work_dir / "collect-units.jsonl"


def run_chain(config: RunConfig) -> list[dict[str, Any]]:
    """Run (or resume) every stage and write the release; returns each stage's report as a dict.

    With a Slurm executor the jobs are submitted with their dependencies and this returns at once with
    no reports (read ``<work_dir>/<stage>/report.json`` when they finish, or run ``report``).
    """
    from videokr.pipeline.collect import local_units

    config.work_dir.mkdir(parents=True, exist_ok=True)
    units = units_path(config)
    if not units.exists():
        write_jsonl(units, local_units(config.clips, config.manifest))
    kind = config.executor["type"]
    if kind == "ray":
        _init_ray(config)
    if kind == "local" and config.executor.get("workers", 1) != 1:
        preload()
    root = config.work_dir
    previous: Any = None
    source = units
    for stage in chain_stages(config):
        logs = stage_dir(root, stage.name) / "logs"
        pipeline = stage_pipeline(
            stage, source, root, endpoint=config.endpoint, cache_dir=config.cache, progress=config.progress
        )
        merge = MergeOutcomes(root, stage.name, source, stage.unit_id)
        if kind == "local":
            # Stages run one after another here; the merge is a few reads, done in this process.
            start = time.perf_counter()
            _executor(config, stage.name, pipeline, logs / "units", None).run()
            merge.run()
            _add_seconds(stage_report_path(root, stage.name), time.perf_counter() - start)
        else:
            units_job = _executor(config, stage.name, pipeline, logs / "units", previous)
            previous = _executor(config, f"{stage.name}-merge", [merge], logs / "merge", units_job, tasks=1)
        source = rows_path(root, stage.name)
    release = ReleaseStep(
        source, config.release_dir, sft_fraction=config.sft_fraction, seed=config.split_seed
    )
    if kind == "local":
        release.run()
        return stage_reports(config)
    _executor(config, "release", [release], root / "release" / "logs", previous, tasks=1).run()
    return [] if kind == "slurm" else stage_reports(config)


def _add_seconds(report: Path, seconds: float) -> None:
    """This run's wall time for the stage (a resumed stage counts only what this run did)."""
    data = json.loads(report.read_text(encoding="utf-8"))
    data["seconds"] = round(seconds, 3)
    report.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def stage_reports(config: RunConfig) -> list[dict[str, Any]]:
    """The reports of every stage that has finished, in chain order."""
    reports = []
    for stage in chain_stages(config):
        path = stage_report_path(config.work_dir, stage.name)
        if path.exists():
            reports.append(json.loads(path.read_text(encoding="utf-8")))
    return reports


def drops_table(reports: Sequence[dict[str, Any]]) -> str:
    """One line per stage (units in, rows kept, drops) and one per drop reason, with example ids."""
    lines = [
        f"{'stage':<22} {'units':>6} {'kept':>6} {'dropped':>8} {'units/s':>8}  tokens (prompt+completion)"
    ]
    for report in reports:
        tokens = sum(m["prompt_tokens"] + m["completion_tokens"] for m in report["models"].values())
        dropped = sum(report["dropped"].values())
        rate = f"{report['units'] / report['seconds']:.2f}" if report.get("seconds") else "-"
        lines.append(
            f"{report['stage']:<22} {report['units']:>6} {report['kept']:>6} {dropped:>8} {rate:>8}  {tokens}"
        )
        for reason, count in sorted(report["dropped"].items(), key=lambda kv: (-kv[1], kv[0])):
            shown = ", ".join(report["dropped_ids"].get(reason, [])[:3])
            lines.append(f"  {reason:<20} {count:>6} (e.g. {shown})")
    return "\n".join(lines)
