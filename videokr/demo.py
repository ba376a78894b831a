"""`videokr demo`: the whole VideoKR loop, offline, on CPU, in minutes.

Sample corpus → tiny base model → the three Hub datasets (built, disjoint, loaded back) → SFT → GRPO from
the SFT checkpoint → evaluation of base, SFT and GRPO on the video, single-frame and text-only tasks →
leaderboard. Every stage writes into one folder and marks itself done there, so re-running resumes: a
finished stage is reused, an interrupted one is redone. The numbers mean nothing (a random tiny model on
procedural clips); the point is that every command a real run uses has run, end to end, on this machine.

Training runs as a real run does, ``accelerate launch -m videokr.training.sft`` (then ``…grpo``), from the
installed package: nothing here reads the source repository, so the demo works from a wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EVAL_TASKS = ("videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only")
DONE = ".videokr-demo-done"
STAGES = 7
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Tiny settings: 4 frames of at most 64 × 64 pixels, so a training step takes a fraction of a second.
SAMPLING = ["--num_frames", "4", "--max_pixels", "4096", "--min_pixels", "784"]
# No GPU assumed: bf16 off and CPU forced; nothing reported, nothing saved but the final model.
COMMON = ["--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]
COMMON += ["--seed", "0", "--logging_steps", "1"]


@dataclass
class DemoResult:
    """Where each artefact is, and how long each stage took (seconds; reused stages are near zero)."""

    out: Path
    corpus: Path
    base_model: Path
    datasets: dict[str, Path]
    rows: dict[str, int]
    sft_model: Path
    grpo_model: Path
    results: dict[str, Path]
    leaderboard: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


def _done(path: Path) -> bool:
    return (path / DONE).is_file()


def _mark(path: Path) -> None:
    (path / DONE).write_text("ok\n")


def launch_command(script: str, args: list[str]) -> list[str]:
    """``accelerate launch -m videokr.training.SCRIPT ARGS`` on one CPU process (``script``: sft or grpo):
    the training script as a module of the installed package, not a file of the source repository."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1"]
    command += ["--num_machines", "1", "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*command, "-m", f"videokr.training.{script}", *args]


def _launch(script: str, args: list[str], log: Path) -> None:
    """Run `launch_command` in the log's folder; output goes to `log`."""
    env = {**os.environ, **OFFLINE, "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as handle:
        done = subprocess.run(
            launch_command(script, args),
            cwd=log.parent,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"videokr.training.{script} failed (exit {done.returncode}); log: {log}\n{tail}")


def run_demo(out: Path, *, small: bool = False) -> DemoResult:
    """Run (or resume) the demo under `out`; `small` trains and evaluates on fewer items, for tests."""
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    reused: list[str] = []
    step = 0

    def stage(title: str, target: Path, work: Callable[[], None]) -> None:
        nonlocal step
        step += 1
        print(f"\n[{step}/{STAGES}] {title}", flush=True)
        start = time.perf_counter()
        if _done(target):
            print(f"  reusing {target}", flush=True)
            reused.append(title)
        else:
            target.mkdir(parents=True, exist_ok=True)
            work()
            _mark(target)
        timings[title] = time.perf_counter() - start
        print(f"  done in {timings[title]:.1f}s", flush=True)

    # 1. Sample corpus ------------------------------------------------------------------------------
    corpus = out / "corpus"

    def make_corpus() -> None:
        from videokr.sample import generate_sample_corpus

        generate_sample_corpus(corpus, seed=0)
        print(f"  wrote the sample corpus (official release layout) to {corpus}")

    stage("Generating the sample corpus", corpus, make_corpus)

    # 2. Tiny base model ----------------------------------------------------------------------------
    base = out / "models" / "base"

    def make_base() -> None:
        from videokr.models.tiny import save_tiny_model

        save_tiny_model("qwen2_5_vl", base)
        print(f"  wrote a tiny, randomly initialised Qwen2.5-VL and its processor to {base}")

    stage("Saving the tiny base model", base, make_base)

    # 3. The three datasets -------------------------------------------------------------------------
    hub = out / "hub"
    folders = {"eval": hub / "videokr_eval", "sft": hub / "videokr_sft", "rl": hub / "videokr_rl"}

    def make_datasets() -> None:
        import videokr_eval
        import videokr_rl
        import videokr_sft
        from videokr.data.hub import build_repo

        for name, spec, disjoint in (
            ("eval", videokr_eval.SPEC, []),
            ("sft", videokr_sft.SPEC, [folders["eval"]]),
            ("rl", videokr_rl.SPEC, [folders["eval"], folders["sft"]]),
        ):
            report = build_repo(
                spec, corpus, folders[name], disjoint_from=disjoint, workers=2, progress=False
            )
            print("  " + report.summary().replace("\n", "\n  "))

    stage("Building the three Hub datasets", hub, make_datasets)
    rows = _load_rows(folders)
    for name, count in rows.items():
        print(f"  load_dataset({folders[name]}): {count} rows")

    # 4. SFT ----------------------------------------------------------------------------------------
    sft = out / "models" / "sft"

    def train_sft() -> None:
        args = ["--model_name_or_path", str(base), "--dataset_name", str(folders["sft"]), *SAMPLING]
        args += ["--max_samples", "4" if small else "16", "--per_device_train_batch_size", "2"]
        args += ["--max_steps", "2" if small else "8", "--learning_rate", "1e-3"]
        args += ["--output_dir", str(sft), *COMMON]
        _launch("sft", args, out / "logs" / "sft.log")
        print(f"  SFT checkpoint: {sft} (log: {out / 'logs' / 'sft.log'})")

    (out / "logs").mkdir(exist_ok=True)
    stage("SFT (accelerate launch -m videokr.training.sft)", sft, train_sft)

    # 5. GRPO ---------------------------------------------------------------------------------------
    grpo = out / "models" / "grpo"

    def train_grpo() -> None:
        args = ["--model_name_or_path", str(sft), "--dataset_name", str(folders["rl"]), *SAMPLING]
        args += ["--max_samples", "4" if small else "8", "--per_device_train_batch_size", "4"]
        args += ["--num_generations", "4", "--max_completion_length", "8", "--beta", "0.01"]
        args += ["--max_steps", "1" if small else "2", "--output_dir", str(grpo), *COMMON]
        _launch("grpo", args, out / "logs" / "grpo.log")
        print(f"  GRPO checkpoint: {grpo} (log: {out / 'logs' / 'grpo.log'})")

    stage("GRPO from the SFT checkpoint (accelerate launch -m videokr.training.grpo)", grpo, train_grpo)

    # 6. Evaluation ---------------------------------------------------------------------------------
    models = {"base": base, "sft": sft, "grpo": grpo}
    results = {name: out / "results" / name for name in models}
    step += 1
    print(f"\n[{step}/{STAGES}] Evaluating base, SFT and GRPO on {', '.join(EVAL_TASKS)}", flush=True)
    start = time.perf_counter()
    for name, model in models.items():
        if _done(results[name]):
            print(f"  {name}: reusing {results[name]}", flush=True)
            continue
        from videokr.evaluation.run import eval_command

        print(f"  {name}:", flush=True)
        results[name].mkdir(parents=True, exist_ok=True)
        code = eval_command(
            str(model),
            tasks=EVAL_TASKS,
            dataset=str(folders["eval"]),
            output_dir=results[name],
            max_frames=4,
            max_pixels=4096,
            max_new_tokens=8,
            batch_size=4,
            device="cpu",
            dtype="float32",
            max_samples=4 if small else None,
            cache_dir=out / "frame-cache",
        )
        if code != 0:
            raise RuntimeError(f"evaluation of {model} failed (exit {code})")
        _mark(results[name])
    title = "Evaluation"
    timings[title] = time.perf_counter() - start
    if all(_done(r) for r in results.values()) and timings[title] < 1:
        reused.append(title)
    print(f"  done in {timings[title]:.1f}s", flush=True)

    # 7. Leaderboard --------------------------------------------------------------------------------
    board = out / "leaderboard"
    paths = {k: board / f"leaderboard.{k}" for k in ("md", "csv", "png")}

    def make_board() -> None:
        from videokr.evaluation.leaderboard import write_leaderboard

        write_leaderboard([results[name] for name in models], board)

    stage("Leaderboard (Markdown, CSV, PNG)", board, make_board)
    if _done(board):
        print("  " + paths["md"].read_text().strip().replace("\n", "\n  "))

    result = DemoResult(out, corpus, base, folders, rows, sft, grpo, results, paths, timings, reused)
    print(summary(result), flush=True)
    return result


def _quiet() -> None:
    """No per-file progress bars: the stage headers and timings are the progress report."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _load_rows(folders: dict[str, Path]) -> dict[str, int]:
    from videokr.data.local import load_local

    rows = {}
    for name, folder in folders.items():
        loaded = load_local(folder)
        rows[name] = sum(len(split) for split in loaded.values())
    return rows


def summary(result: DemoResult) -> str:
    """What was made, where it is, and the commands to run the same loop on the real data and models."""
    total = sum(result.timings.values())
    lines = [
        "",
        f"VideoKR demo finished in {total:.0f}s (tiny random model on procedural clips: scores mean nothing)",
        "",
        "Stage timings:",
        *(
            f"  {sec:7.1f}s  {title}" + ("  (reused)" if title in result.reused else "")
            for title, sec in result.timings.items()
        ),
        "",
        "Artefacts:",
        f"  sample corpus     {result.corpus}",
        f"  base model        {result.base_model}",
        *(f"  {name:<17} {path}  ({result.rows[name]} rows)" for name, path in result.datasets.items()),
        f"  SFT checkpoint    {result.sft_model}",
        f"  GRPO checkpoint   {result.grpo_model}",
        *(f"  results {name:<9} {path}" for name, path in result.results.items()),
        *(f"  leaderboard .{k:<4} {path}" for k, path in result.leaderboard.items()),
        f"  training logs     {result.out / 'logs'}",
        "",
        "Not run here: the data pipeline stages that call models (screening, annotation, review); they are",
        "covered by their own tests and need a model endpoint (see `videokr pipeline --help`).",
        "",
        "On the real data and models:",
        "  videokr build eval --source VideoKR-Eval --out videokr_eval",
        "  videokr build sft --source VideoKR-Train --out videokr_sft --disjoint-from videokr_eval",
        "  videokr build rl --source VideoKR-Train --out videokr_rl --disjoint-from videokr_eval videokr_sft",
        "  accelerate launch --config_file train/accelerate/zero2.yaml -m videokr.training.sft "
        "--config train/recipes/<model>/sft.yaml",
        "  accelerate launch --config_file train/accelerate/zero2.yaml -m videokr.training.grpo "
        "--config train/recipes/<model>/grpo.yaml",
        "  videokr eval <checkpoint> --dataset videokr_eval --output-dir results/<name>",
        "  videokr leaderboard results/* --out leaderboard",
        "(train/: the recipes and accelerate configs, in the source repository; any path to them will do)",
    ]
    return "\n".join(lines)


def demo_command(out: Path, *, small: bool = False) -> int:
    """``videokr demo [--out DIR] [--small]``."""
    run_demo(out, small=small)
    return 0
