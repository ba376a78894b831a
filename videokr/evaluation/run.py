"""``videokr eval``: the lighteval pipeline for VideoKR-Eval in one call.

It does what the plain ``lighteval custom … --custom-tasks eval/videokr_tasks.py`` line does, plus the
things that line cannot: it works offline (see `videokr.evaluation.compat`), takes the model settings
as options rather than packed into a model name, points the tasks at any dataset folder or repo, sets
up the judge, and prints a short summary (accuracy with its 95 % interval per task) instead of
lighteval's full metric table (which it still writes to the results file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from videokr.data.local import paths_view
from videokr.evaluation.compat import ensure_registry_importable, import_pipeline
from videokr.evaluation.judge import JudgeProtocol, JudgeSettings, configure_judge

__all__ = ["DEFAULT_TASKS", "EvalRun", "eval_command", "format_runs_summary", "format_summary", "run_eval"]

DEFAULT_TASKS: tuple[str, ...] = ("videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only")


class EvalRun:
    """What a run produced: lighteval's final dict and where the results (and details) were written."""

    def __init__(self, results: dict[str, Any], results_file: Path | None, output_dir: Path) -> None:
        self.results = results
        self.results_file = results_file
        self.output_dir = output_dir

    def task_metrics(self) -> dict[str, dict[str, float]]:
        """Metrics per task, keyed by task name without the few-shot suffix."""
        out = {}
        for key, metrics in self.results["results"].items():
            if key != "all":
                out[key.replace(":", "|").split("|")[0]] = metrics
        return out


def _task_spec(names: Sequence[str]) -> str:
    return ",".join(name if "|" in name else f"{name}|0" for name in names)


def run_eval(
    model: Any,
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    dataset: str | None = None,
    output_dir: str | Path = "results",
    max_samples: int | None = None,
    save_details: bool = True,
    judge: JudgeSettings | None = None,
) -> EvalRun:
    """Evaluate ``model`` (a `VideoModelConfig`, or an already built lighteval model) on ``tasks``.

    ``dataset`` overrides ``$VIDEOKR_EVAL_DATASET`` for this run. ``judge`` None means no judge (the
    ``VIDEOKR_JUDGE_*`` environment variables are not consulted here: one call, one explicit setting).
    """
    ensure_registry_importable()
    lighteval_pipeline = import_pipeline()
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.models.abstract_model import LightevalModel

    from videokr.evaluation.model import VideoLightevalModel
    from videokr.evaluation.tasks import build_tasks, dataset_location

    configure_judge(judge)
    # lighteval loads the rows itself: give it the split with clip paths, not decoded videos, so one
    # unreadable clip is one reported item, not an aborted run (see `videokr.data.local.paths_view`).
    module = ModuleType("videokr_eval_tasks")
    module.TASKS_TABLE = build_tasks(paths_view(dataset or dataset_location(), "test"))
    if not isinstance(model, LightevalModel):
        model = VideoLightevalModel(model)
    output = Path(output_dir)
    tracker = EvaluationTracker(output_dir=str(output), save_details=save_details)
    params = lighteval_pipeline.PipelineParameters(
        launcher_type=lighteval_pipeline.ParallelismManager.CUSTOM,
        custom_tasks_directory=module,
        max_samples=max_samples,
    )
    pipeline = lighteval_pipeline.Pipeline(
        tasks=_task_spec(tasks), pipeline_parameters=params, evaluation_tracker=tracker, model=model
    )
    before = set(output.rglob("results_*.json"))
    pipeline.evaluate()
    pipeline.save_and_push_results()
    written = sorted(set(output.rglob("results_*.json")) - before)
    return EvalRun(pipeline.get_results(), written[-1] if written else None, output)


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def format_summary(run: EvalRun) -> str:
    """A few lines per task: both accuracies with their intervals, then the lines a reader must not miss."""
    lines = []
    for task, m in sorted(run.task_metrics().items()):
        covered = "all items" if m.get("judged") else "multiple-choice items (no judge)"
        official = "all items" if m.get("official_skipped") == 0 else "multiple-choice items"
        lines.append(
            f"{task}: acc_official {_fmt(m.get('acc_official'))} "
            f"[{_fmt(m.get('acc_official_ci_low'))}, {_fmt(m.get('acc_official_ci_high'))}] "
            f"over {int(m.get('acc_official_n', 0))} {official} (the paper's scorer)"
        )
        lines.append(
            f"  acc {_fmt(m.get('acc'))} [{_fmt(m.get('acc_ci_low'))}, {_fmt(m.get('acc_ci_high'))}] "
            f"over {int(m.get('acc_n', 0))} {covered} (robust reading)"
        )
        if m.get("open_rouge_n"):
            lines.append(
                f"  open-ended: ROUGE {_fmt(m.get('open_rouge'))} over {int(m['open_rouge_n'])} items"
                + (f", judged acc {_fmt(m.get('open_acc'))}" if "open_acc" in m else " (not in acc)")
            )
        if "answerable_rate" in m:
            lines.append(f"  single-frame answerable (right in every trial): {_fmt(m['answerable_rate'])}")
        if m.get("unreadable"):
            lines.append(
                f"  items whose clip could not be read (counted wrong; see the log): {int(m['unreadable'])}"
            )
        if m.get("judge_failures"):
            lines.append(f"  judge failures (counted wrong): {int(m['judge_failures'])}")
        by_source = {k.split("=", 1)[1]: v for k, v in m.items() if _is_group(k, "dataset")}
        if by_source:
            lines.append("  by source: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(by_source.items())))
    return "\n".join(lines)


def format_runs_summary(runs: Sequence[EvalRun]) -> str:
    """Mean ± standard deviation over repeated runs (the paper's protocol reports the mean of 3)."""
    lines = [f"mean ± std over {len(runs)} runs:"]
    tasks = sorted(set().union(*(run.task_metrics() for run in runs)))
    for task in tasks:
        cells = []
        for name in ("acc_official", "acc"):
            values = [run.task_metrics().get(task, {}).get(name) for run in runs]
            values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
            if values:
                mean = sum(values) / len(values)
                std = (
                    math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                    if len(values) > 1
                    else 0.0
                )
                cells.append(f"{name} {100 * mean:.1f} ± {100 * std:.1f}")
        lines.append(f"  {task}: " + ", ".join(cells))
    return "\n".join(lines)


def _is_group(key: str, label: str) -> bool:
    return key.startswith(f"acc:{label}=") and not key.endswith(("_ci_low", "_ci_high", "_n", "_stderr"))


def eval_command(
    model: str,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    dataset: str | None = None,
    output_dir: str | Path = "results",
    fps: float = 2.0,
    max_frames: int = 128,
    num_frames: int | None = None,
    max_pixels: int | None = None,
    batch_size: int = 1,
    probe: str | None = None,
    single_frame_as: str = "image",
    temperature: float | None = None,
    max_new_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    max_samples: int | None = None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    judge_mc: bool = False,
    judge_api_key: str | None = None,
    judge_protocol: JudgeProtocol = "videokr",
    cache_dir: str | Path | None = None,
    runs: int = 1,
    seed: int = 0,
    engine: str = "videokr",
) -> int:
    """``videokr eval MODEL [--tasks …]``: run, print the summary and where the files are; exit code.

    ``runs`` > 1 evaluates with sampling seeds ``seed``, ``seed + 1``, … (each run is its own results
    file; the leaderboard reports their mean ± std), as the paper's protocol does (3 runs). The model is
    loaded once and answers every run's items in the first run's pass (each item prefilled once for all
    its runs; see `videokr.evaluation.model`); the later runs read their answers from the cache.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    ensure_registry_importable()
    import_pipeline()  # before lighteval's model modules, which would switch autograd off
    from videokr.evaluation.model import PAPER_GENERATION, VideoLightevalModel, VideoModelConfig

    generation: dict[str, Any] = dict(PAPER_GENERATION)
    if temperature is not None:
        generation["temperature"] = temperature
    if max_new_tokens is not None:
        generation["max_new_tokens"] = max_new_tokens
    fields: dict[str, Any] = {
        "model_name": model,
        "fps": fps,
        "max_frames": max_frames,
        "num_frames": num_frames,
        "batch_size": batch_size,
        "probe": probe,
        "single_frame_as": single_frame_as,
        "device": device,
        "dtype": dtype,
        "generation_parameters": generation,
        "engine": engine,
    }
    if max_pixels is not None:
        fields["max_pixels"] = max_pixels
    if cache_dir is not None:
        fields["cache_dir"] = str(cache_dir)
    judge = (
        JudgeSettings(
            base_url=judge_url,
            model=judge_model,
            api_key=judge_api_key,
            judge_mc=judge_mc,
            protocol=judge_protocol,
        )
        if judge_url
        else None
    )
    lighteval_model = VideoLightevalModel(VideoModelConfig(**fields, seed=seed, runs=runs))
    done = []
    for k in range(runs):
        if k:
            lighteval_model.next_run()
        run = run_eval(
            lighteval_model,
            tasks,
            dataset=dataset,
            output_dir=output_dir,
            max_samples=max_samples,
            judge=judge,
        )
        if runs > 1:
            print(f"run {k + 1} of {runs} (seed {seed + k}):")
        print(format_summary(run))
        if run.results_file is not None:
            print(f"results: {run.results_file}")
        done.append(run)
    if runs > 1:
        print(format_runs_summary(done))
    return 0
