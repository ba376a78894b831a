"""A leaderboard across lighteval runs of VideoKR-Eval: Markdown, CSV and a PNG plot.

Input is any number of folders holding lighteval results files (``results_*.json``, found recursively,
as ``videokr eval`` / ``lighteval custom`` write them). One row per *model setting*: a model evaluated
at 32 and at 128 frames is two rows, because the frame settings are read from the run's model config
and become part of the row's label. Runs of one setting with different sampling seeds (``videokr eval
--runs 3``, the paper's protocol) are averaged: each number is their mean, shown ± their standard
deviation (interval bounds are the mean of the runs' bounds). When a setting was run on the same task
and seed more than once, the newest results file wins, so a stale run never blends in unnoticed.

Columns: the headline is ``acc_official``, the full benchmark scored as the paper's official code scores
it (`videokr.evaluation.official`), with its 95 % bootstrap interval, so a row can be put beside the
paper's table; then ours (``acc``, the robust reading); then, official, accuracy per source benchmark
(from the full task's breakdown, else from the per-source task) and under each probe (single frame, text
only); the single-frame answerable rate, the open-ended ROUGE line and whether a judge scored. The CSV
and the plot carry both scores for every column. Only the standard library and matplotlib (Agg backend)
are used.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PROBE_TASKS",
    "SOURCE_TASKS",
    "Leaderboard",
    "Row",
    "build_leaderboard",
    "leaderboard_command",
    "load_rows",
    "write_leaderboard",
]

SOURCES: tuple[str, ...] = ("MMVU", "VideoMMMU", "SciVideoBench")
#: Probe → task name.
PROBE_TASKS: dict[str, str] = {
    "video": "videokr_eval",
    "single_frame": "videokr_eval_single_frame",
    "text_only": "videokr_eval_text_only",
}
#: Source benchmark → its own task.
SOURCE_TASKS: dict[str, str] = {source: f"videokr_eval_{source.lower()}" for source in SOURCES}
#: Where the eval items carry a ``needs`` label (the learning corpus), the probes checked against it:
#: column → (task, metric). Shown only when some row has them.
TRUTH_COLUMNS: dict[str, tuple[str, str]] = {
    "needs several frames: video": ("videokr_eval", "acc:needs=multi_frame"),
    "needs several frames: 1 frame": ("videokr_eval_single_frame", "acc:needs=multi_frame"),
    "1-frame probe precision": ("videokr_eval_single_frame", "probe_precision"),
    "1-frame probe recall": ("videokr_eval_single_frame", "probe_recall"),
}
#: Frame settings that name a row when they differ from the paper's.
_PAPER_SETTINGS: dict[str, Any] = {
    "fps": 2.0,
    "max_frames": 128,
    "num_frames": None,
    "max_pixels": 100352,
    "single_frame_as": "image",  # a still-video single frame is another probe, never the paper's row
}


@dataclass
class Estimate:
    """A mean with its interval (nan when the run has none) and its item count."""

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    std: float = math.nan  # across runs
    runs: int = 1

    @classmethod
    def read(cls, metrics: Mapping[str, float], name: str) -> Estimate | None:
        if name not in metrics:
            return None
        return cls(
            float(metrics[name]),
            float(metrics.get(f"{name}_ci_low", math.nan)),
            float(metrics.get(f"{name}_ci_high", math.nan)),
            int(metrics.get(f"{name}_n", 0) or 0),
            float(metrics.get(f"{name}_std", math.nan)),
            int(metrics.get(f"{name}_runs", 1) or 1),
        )


@dataclass
class Row:
    """One model setting across its tasks."""

    label: str
    model: str
    settings: dict[str, Any]
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # task → seed → metrics

    def estimate(self, task: str, name: str = "acc") -> Estimate | None:
        metrics = self.tasks.get(task)
        return Estimate.read(metrics, name) if metrics else None

    def source(self, source: str, score: str = "acc") -> Estimate | None:
        """Accuracy (``acc`` or ``acc_official``) on one source benchmark."""
        full = self.estimate(PROBE_TASKS["video"], f"{score}:dataset={source}")
        return full if full is not None else self.estimate(SOURCE_TASKS[source], score)

    def judged(self) -> bool | None:
        metrics = self.tasks.get(PROBE_TASKS["video"]) or next(iter(self.tasks.values()), {})
        return bool(metrics.get("judged")) if "judged" in metrics else None


def _label(model: str, settings: Mapping[str, Any]) -> str:
    name = model.rstrip("/").split("/")[-1] or model
    changed = [f"{k}={settings[k]}" for k, v in _PAPER_SETTINGS.items() if k in settings and settings[k] != v]
    if settings.get("probe"):
        changed.append(f"probe={settings['probe']}")
    return f"{name} ({', '.join(changed)})" if changed else name


def _task_name(key: str) -> str:
    return key.replace(":", "|").split("|")[0]


def load_rows(results_dirs: Iterable[str | Path]) -> list[Row]:
    """Rows from every results file under ``results_dirs`` (newest file wins per setting and task)."""
    files = sorted(
        {
            p
            for d in results_dirs
            for p in ([Path(d)] if Path(d).is_file() else Path(d).rglob("results_*.json"))
        },
        key=lambda p: p.name,  # lighteval names files by ISO timestamp
    )
    rows: dict[str, Row] = {}
    for path in files:
        data = json.loads(path.read_text())
        general = data.get("config_general", {})
        config = general.get("model_config") or {}
        model = str(config.get("model_name") or general.get("model_name") or path.parent.name)
        settings = {k: config[k] for k in (*_PAPER_SETTINGS, "probe") if k in config}
        seed = int(config.get("seed") or 0)
        label = _label(model, settings)
        row = rows.setdefault(label, Row(label, model, settings))
        for key, metrics in data.get("results", {}).items():
            task = _task_name(key)
            if task.startswith("videokr_eval") and "_average" not in task:
                row.runs.setdefault(task, {})[seed] = {**metrics, "_file": str(path)}  # type: ignore[dict-item]
    for row in rows.values():
        for task, by_seed in row.runs.items():
            runs = [dict(by_seed[seed]) for seed in sorted(by_seed)]
            row.files[task] = [str(run.pop("_file")) for run in runs]
            row.tasks[task] = _combine(runs)
    return list(rows.values())


_SUFFIXES = ("_ci_low", "_ci_high", "_n", "_stderr")


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's metrics as they are; several runs' as their mean, with ``name_std`` and ``name_runs``."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, Any] = {}
    for name in runs[0]:
        values = [run.get(name) for run in runs]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[name] = runs[-1][name]
            continue
        mean = sum(values) / len(values)
        out[name] = mean
        if not name.endswith(_SUFFIXES):
            out[f"{name}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            out[f"{name}_runs"] = len(values)
    return out


@dataclass
class Leaderboard:
    rows: list[Row]

    @property
    def truth_columns(self) -> list[str]:
        """The `TRUTH_COLUMNS` some row has (none on the release, which carries no ``needs`` label)."""
        return [
            c for c, (task, name) in TRUTH_COLUMNS.items() if any(r.estimate(task, name) for r in self.rows)
        ]

    @property
    def columns(self) -> list[str]:
        return [
            "model",
            "VideoKR-Eval (official scorer)",
            "ours (robust)",
            *SOURCES,
            "single frame",
            "answerable (1 frame)",
            "text only",
            "open-ended ROUGE",
            *self.truth_columns,
            "judge",
        ]

    def table(self) -> list[list[str]]:
        """Cells as text, best official full-video accuracy first."""
        out = []
        for row in self.rows:
            est = _estimates(row)
            cells = [_cell(est["acc_official"], interval=True), _cell(est["acc"])]
            cells += [_cell(est[f"acc_official_{s}"]) for s in SOURCES]
            # In the header's order: single frame, answerable (1 frame), text only, open-ended ROUGE.
            cells += [_cell(est["acc_official_single_frame"]), _cell(est["answerable_rate"])]
            cells += [_cell(est["acc_official_text_only"]), _cell(est["open_rouge"])]
            cells += [_cell(row.estimate(*TRUTH_COLUMNS[c])) for c in self.truth_columns]
            out.append([row.label, *cells, {True: "yes", False: "no", None: "–"}[row.judged()]])
        return out

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in self.table()]
        note = (
            "\nAccuracy in %, 95 % bootstrap interval in brackets, ± the standard deviation across runs "
            "when a setting was run with several seeds (their mean is shown). The headline and the "
            "per-benchmark and probe columns are the official scorer's (the paper's rules); \"ours\" "
            "reads answers robustly. "
            "Without a judge, accuracy covers the multiple-choice items (the official scorer skips "
            "open-ended ones) and open-ended items are scored by ROUGE on their own column."
        )
        return "\n".join(lines) + "\n" + note + "\n"

    def write_csv(self, path: Path) -> None:
        """Machine-readable: raw fractions, intervals and counts, one line per model setting."""
        settings = [*_PAPER_SETTINGS, "probe"]
        names = list(_estimates(self.rows[0])) if self.rows else []
        header = ["model", "label", *settings]
        header += [f"{m}{s}" for m in names for s in ("", "_ci_low", "_ci_high", "_n", "_std", "_runs")]
        header += ["judged"]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in self.rows:
                line: list[Any] = [row.model, row.label, *(row.settings.get(k) for k in settings)]
                for est in _estimates(row).values():
                    line += [est.value, est.low, est.high, est.n, est.std, est.runs] if est else [""] * 6
                line.append({True: 1, False: 0, None: ""}[row.judged()])
                writer.writerow(line)

    def plot(self, path: Path) -> None:
        """Two panels: accuracy by source benchmark, and by probe; error bars are the 95 % intervals."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        official = "acc_official"
        panels = [
            (
                "By source benchmark (official scorer)",
                ["VideoKR-Eval", *SOURCES],
                lambda r: (
                    [r.estimate(PROBE_TASKS["video"], official)] + [r.source(s, official) for s in SOURCES]
                ),
            ),
            (
                "By probe (official scorer)",
                ["full video", "single frame", "text only"],
                lambda r: [r.estimate(PROBE_TASKS[p], official) for p in PROBE_TASKS],
            ),
        ]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
        width = 0.8 / max(1, len(self.rows))
        for ax, (title, groups, pick) in zip(axes[0], panels, strict=True):
            for i, row in enumerate(self.rows):
                values = pick(row)
                xs = [g + (i - (len(self.rows) - 1) / 2) * width for g in range(len(groups))]
                heights = [100 * e.value if e else math.nan for e in values]
                errors = [_error(e) for e in values]
                ax.bar(xs, heights, width, label=row.label, yerr=list(zip(*errors, strict=True)), capsize=3)
            ax.set_xticks(range(len(groups)), groups)
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 100)
            ax.set_title(title)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(3, max(1, len(labels))), fontsize="small")
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _estimates(row: Row) -> dict[str, Estimate | None]:
    """Every number a row reports, by CSV column stem: each accuracy twice, official and ours."""
    out: dict[str, Estimate | None] = {}
    for score in ("acc_official", "acc"):
        out[score] = row.estimate(PROBE_TASKS["video"], score)
        out.update({f"{score}_{s}": row.source(s, score) for s in SOURCES})
        for probe in ("single_frame", "text_only"):
            out[f"{score}_{probe}"] = row.estimate(PROBE_TASKS[probe], score)
    out["answerable_rate"] = row.estimate(PROBE_TASKS["single_frame"], "answerable_rate")
    out["open_rouge"] = row.estimate(PROBE_TASKS["video"], "open_rouge")
    out["multi_frame_video"] = row.estimate(*TRUTH_COLUMNS["needs several frames: video"])
    out["multi_frame_single_frame"] = row.estimate(*TRUTH_COLUMNS["needs several frames: 1 frame"])
    out["probe_precision"] = row.estimate(*TRUTH_COLUMNS["1-frame probe precision"])
    out["probe_recall"] = row.estimate(*TRUTH_COLUMNS["1-frame probe recall"])
    return out


def _error(e: Estimate | None) -> tuple[float, float]:
    if e is None or math.isnan(e.low) or math.isnan(e.high):
        return (0.0, 0.0)
    return (100 * max(0.0, e.value - e.low), 100 * max(0.0, e.high - e.value))


def _cell(e: Estimate | None, *, interval: bool = False) -> str:
    if e is None or math.isnan(e.value):
        return "–"
    text = f"{100 * e.value:.1f}"
    if e.runs > 1 and not math.isnan(e.std):
        text += f" ± {100 * e.std:.1f}"
    if interval and not (math.isnan(e.low) or math.isnan(e.high)):
        text += f" [{100 * e.low:.1f}, {100 * e.high:.1f}]"
    return text


def build_leaderboard(results_dirs: Sequence[str | Path]) -> Leaderboard:
    rows = load_rows(results_dirs)
    rows.sort(key=lambda r: -(r.estimate(PROBE_TASKS["video"], "acc_official") or Estimate(-1.0)).value)
    return Leaderboard(rows)


def write_leaderboard(results_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` into ``out_dir``."""
    board = build_leaderboard(results_dirs)
    if not board.rows:
        raise FileNotFoundError(f"no VideoKR-Eval results files under {', '.join(map(str, results_dirs))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "png": out / "leaderboard.png",
    }
    paths["markdown"].write_text(board.markdown())
    board.write_csv(paths["csv"])
    board.plot(paths["png"])
    return paths


def leaderboard_command(results_dirs: Sequence[str | Path], out: str | Path | None = None) -> int:
    """``videokr leaderboard RESULTS_DIR… [--out DIR]``: print the Markdown table, write the three files."""
    target = Path(out) if out is not None else Path(results_dirs[0])
    paths = write_leaderboard(results_dirs, target)
    print(paths["markdown"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
