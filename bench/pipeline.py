"""Benchmark: the construction chain on datatrove against the loopback oracle, units per second per stage.

Inputs are the sample corpus's clips laid out by `videokr.pipeline.oracle.prepare_sample_run`, each
good clip repeated ``--copies`` times under new ids (hard links), so stages have enough units to keep
workers busy. The oracle answers every request right (no injected faults): what is timed is our side
(frame decoding, JPEG encoding, request building and parsing, the cache, datatrove's executor and
inference runner) plus a loopback server that decodes each request's first frames to know the clip.

Three runs over the same inputs, each with a fresh work folder and cache (every request really made):

- ``datatrove, 1 worker``: the local executor, ``--tasks`` tasks per stage, one process at a time;
- ``datatrove, 2 workers``: the same with two processes (the rate from 1 to 2 workers is the ratio);
- ``run_stage, 4 threads``: the per-stage commands' own engine on the same stage inputs, the baseline.

    .venv/bin/python -m bench.pipeline --copies 6
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL_STAGES = ("relevance", "visual-relevance", "safety", "generate", "verify", "filter-rationale")


def replicate(run: Any, copies: int) -> None:
    """Add `copies - 1` copies of every manifest row (same clip bytes, new id and file name)."""
    from videokr.pipeline.common import read_jsonl, write_jsonl

    rows = read_jsonl(run.manifest)
    extra = []
    for row in rows:
        source = run.clips / row["file"]
        for k in range(1, copies):
            name = f"{source.stem}-c{k}{source.suffix}"
            if not (run.clips / name).exists():
                os.link(source, run.clips / name)
            extra.append({**row, "file": name, "id": f"{row['id']}-c{k}"})
            truth = run.truth.get(row["id"])
            if truth is not None:
                run.truth[f"{row['id']}-c{k}"] = truth
    write_jsonl(run.manifest, rows + extra)


def chain_run(run: Any, base_url: str, work: Path, tasks: int, workers: int) -> dict[str, dict[str, Any]]:
    from videokr.pipeline.chain import RunConfig, run_chain

    shutil.rmtree(work, ignore_errors=True)
    raw = run.config(work / "work", work / "release", base_url,
                     executor={"type": "local", "tasks": tasks, "workers": workers})  # fmt: skip
    raw["endpoint"]["concurrency"] = 8
    reports = run_chain(RunConfig.from_dict(raw))
    return {r["stage"]: r for r in reports}


def baseline_run(run: Any, base_url: str, chained: Path, out: Path) -> dict[str, float]:
    """The six single-model stages through `run_stage` (4 threads) on the chained run's stage inputs."""
    from videokr.pipeline.client import ModelClient, OpenAIBackend
    from videokr.pipeline.collect import judge_relevance
    from videokr.pipeline.filters import validate_rationales
    from videokr.pipeline.generate import generate
    from videokr.pipeline.screen import check_safety, judge_visual_relevance
    from videokr.pipeline.verify import verify

    shutil.rmtree(out, ignore_errors=True)
    client = ModelClient(OpenAIBackend(base_url, "oracle"), cache_dir=out / "cache", max_concurrency=8)
    rows = {name: chained / name / "rows.jsonl" for name in ("collect-local", "relevance",
            "visual-relevance", "safety", "generate", "verify", "filter-dependency")}  # fmt: skip
    calls = {
        "relevance": lambda o: judge_relevance(client, rows["collect-local"], run.bank, o, progress=False),
        "visual-relevance": lambda o: judge_visual_relevance(client, rows["relevance"], o, progress=False),
        "safety": lambda o: check_safety(client, rows["visual-relevance"], o, progress=False),
        "generate": lambda o: generate(client, rows["safety"], run.seeds, o, progress=False),
        "verify": lambda o: verify(client, rows["generate"], o, progress=False),
        "filter-rationale": lambda o: validate_rationales(
            client, rows["filter-dependency"], o, progress=False
        ),
    }
    seconds = {}
    for stage, call in calls.items():
        start = time.perf_counter()
        call(out / f"{stage}.jsonl")
        seconds[stage] = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> int:
    from videokr.pipeline.chain import preload
    from videokr.pipeline.oracle import Faults, Oracle, OracleServer, prepare_sample_run
    from videokr.sample import generate_sample_corpus

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=6, help="copies of each sample clip (default 6)")
    parser.add_argument("--tasks", type=int, default=2, help="datatrove tasks per stage (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="videokr-bench-pipeline-") as tmp:
        root = Path(tmp)
        generate_sample_corpus(root / "sample", seed=0)
        run = prepare_sample_run(root / "sample", root / "inputs", clips=6)
        replicate(run, args.copies)
        results: dict[str, Any] = {"copies": args.copies, "tasks": args.tasks, "cpus": os.cpu_count()}
        preload()  # the decoders' import (seconds) is paid before any timing, not by the first stage
        with OracleServer(Oracle(run, Faults())) as server:
            one = chain_run(run, server.base_url, root / "w1", args.tasks, 1)
            two = chain_run(run, server.base_url, root / "w2", args.tasks, 2)
            base = baseline_run(run, server.base_url, root / "w1" / "work", root / "baseline")
        print(f"{'stage':<20} {'units':>6} {'1 worker u/s':>13} {'2 workers u/s':>14} {'2w/1w':>6} "
              f"{'run_stage u/s':>14} {'1w/run_stage':>13}")  # fmt: skip
        rows = []
        for stage, report in one.items():
            units = report["units"]
            r1 = units / report["seconds"]
            r2 = units / two[stage]["seconds"]
            rb = units / base[stage] if stage in base else None
            rows.append({"stage": stage, "units": units, "datatrove_1_worker": r1, "datatrove_2_workers": r2,
                         "run_stage_4_threads": rb})  # fmt: skip
            shown_b = f"{rb:>14.2f} {r1 / rb:>13.2f}" if rb else f"{'':>14} {'':>13}"
            print(f"{stage:<20} {units:>6} {r1:>13.2f} {r2:>14.2f} {r2 / r1:>6.2f} {shown_b}")
        total1 = sum(r["seconds"] for r in one.values())
        total2 = sum(r["seconds"] for r in two.values())
        print(f"whole chain: {total1:.1f} s with 1 worker, {total2:.1f} s with 2 ({total1 / total2:.2f}x)")
        results.update(stages=rows, chain_seconds_1_worker=total1, chain_seconds_2_workers=total2)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
