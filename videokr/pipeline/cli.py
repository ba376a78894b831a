"""``videokr pipeline <stage> …``: every construction stage as a resumable command.

`add_pipeline_commands(subparsers)` adds one ``pipeline`` command with a sub-command per stage to the
main parser. Model calls go to the OpenAI-compatible endpoint in ``VIDEOKR_API_BASE`` (key in
``VIDEOKR_API_KEY``) under the names given with ``--model``, or to a local checkpoint with
``--local-model``; all answers are cached under ``--cache``, so re-running a command after a crash, or
with more input, only pays for what is new.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path(".videokr-cache")

#: What ``videokr pipeline --help`` tells a user (the module docstring above is for developers).
USER_HELP = """\
Build a VideoKR-style corpus: knowledge bank -> candidate videos -> screening -> generated examples ->
validated, video-grouped release files that `videokr build` takes. Run the stages in the order listed;
each reads the previous stage's JSONL and writes its own, with a report beside it (<out>.report.json:
kept, dropped by reason with ids, calls and tokens per model).

Models: an OpenAI-compatible endpoint (VIDEOKR_API_BASE, key in VIDEOKR_API_KEY) under the names given
with --model, or a local transformers checkpoint with --local-model. Every answer is cached under
--cache (default .videokr-cache): re-running a stage after a crash, or with more input, only pays for
what is new, and gives the same output.

Run `videokr pipeline STAGE --help` for a stage's options."""
Handler = Callable[[argparse.Namespace], int]


def _clients(args: argparse.Namespace, count: int | None = 1) -> list[Any]:
    from videokr.pipeline.client import client_from_env

    names = args.model or [None]
    if count is not None and len(names) < count:
        raise SystemExit(f"this stage needs {count} models: pass --model {count} times")
    return [
        client_from_env(
            name, local_path=args.local_model, cache_dir=args.cache, max_concurrency=args.concurrency
        )
        for name in names
    ]


def _print(report: Any) -> int:
    print(report.summary())
    return 0


def _bank(args: argparse.Namespace) -> int:
    from videokr.pipeline.bank import expand_bank

    return _print(expand_bank(_clients(args)[0], args.out, only=args.subject, courses=args.courses,
                              lectures=args.lectures, points=args.points, workers=args.workers))  # fmt: skip


def _queries(args: argparse.Namespace) -> int:
    from videokr.pipeline.bank import plan_queries

    return _print(plan_queries(_clients(args)[0], args.bank, args.out, workers=args.workers))


def _collect_local(args: argparse.Namespace) -> int:
    from videokr.pipeline.collect import collect_local

    return _print(collect_local(args.folder, args.manifest, args.out))


def _collect_youtube(args: argparse.Namespace) -> int:
    from videokr.pipeline.collect import YouTubeSearch, collect_youtube

    key = os.environ.get("YOUTUBE_API_KEY")
    if not key:
        raise SystemExit("set YOUTUBE_API_KEY to a YouTube Data API v3 key")
    return _print(collect_youtube(YouTubeSearch(key), args.queries, args.out, per_keyword=args.per_keyword))


def _relevance(args: argparse.Namespace) -> int:
    from videokr.pipeline.collect import judge_relevance

    return _print(
        judge_relevance(_clients(args)[0], args.candidates, args.bank, args.out, workers=args.workers)
    )


def _visual_relevance(args: argparse.Namespace) -> int:
    from videokr.pipeline.screen import judge_visual_relevance

    return _print(judge_visual_relevance(_clients(args)[0], args.candidates, args.out, workers=args.workers))


def _safety(args: argparse.Namespace) -> int:
    from videokr.pipeline.screen import check_safety

    return _print(check_safety(_clients(args)[0], args.candidates, args.out, workers=args.workers))


def _decontaminate(args: argparse.Namespace) -> int:
    from videokr.pipeline.decontaminate import BenchmarkIndex, benchmark_index_from_eval, decontaminate

    index_file = Path(args.index) if args.index else None
    if index_file is not None and index_file.exists():
        index = BenchmarkIndex.load(index_file)
    else:
        index = benchmark_index_from_eval(args.benchmark)
        if index_file is not None:
            index.save(index_file)
    return _print(decontaminate(args.candidates, index, args.out, workers=args.workers))


def _generate(args: argparse.Namespace) -> int:
    from videokr.pipeline.generate import generate

    return _print(generate(_clients(args)[0], args.videos, args.seeds, args.out, workers=args.workers))


def _verify(args: argparse.Namespace) -> int:
    from videokr.pipeline.verify import verify

    return _print(verify(_clients(args)[0], args.examples, args.out, workers=args.workers))


def _dependency(args: argparse.Namespace) -> int:
    from videokr.pipeline.filters import video_dependency

    return _print(video_dependency(_clients(args, 2), args.examples, args.out, workers=args.workers))


def _rationale(args: argparse.Namespace) -> int:
    from videokr.pipeline.filters import validate_rationales

    return _print(validate_rationales(_clients(args)[0], args.examples, args.out, workers=args.workers))


def _eligibility(args: argparse.Namespace) -> int:
    from videokr.pipeline.eligibility import assess

    results = [assess(client, args.step, args.labelled) for client in _clients(args, None)]
    for result in results:
        print(result.summary())
    return 0 if all(r.eligible for r in results) else 1


def _review_export(args: argparse.Namespace) -> int:
    from videokr.pipeline.review import export_review

    print(f"wrote {export_review(args.examples, args.sheet)} rows to {args.sheet}")
    return 0


def _review_import(args: argparse.Namespace) -> int:
    from videokr.pipeline.review import import_review

    report = import_review(args.examples, args.sheet, args.out)
    print(report.summary())
    return 1 if report.unreviewed and args.strict else 0


def _split(args: argparse.Namespace) -> int:
    from videokr.pipeline.split import split

    print(json.dumps(split(args.examples, args.out, sft_fraction=args.sft_fraction, seed=args.seed)))
    return 0


def _release(args: argparse.Namespace) -> int:
    from videokr.data.records import parse_row
    from videokr.pipeline.common import read_jsonl
    from videokr.pipeline.split import write_eval_release, write_training_release

    if args.sft or args.rl:
        sft = [parse_row(r, "sft") for r in read_jsonl(args.sft)] if args.sft else []
        rl = [parse_row(r, "rl") for r in read_jsonl(args.rl)] if args.rl else []
        print(f"wrote {write_training_release(sft, rl, args.out)}")
    if args.eval:
        rows = [parse_row(r, "eval") for r in read_jsonl(args.eval)]
        print(f"wrote {write_eval_release(rows, args.out, clip_root=Path(args.eval).parent)}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from videokr.pipeline.probe import single_frame_probe

    report = single_frame_probe(_clients(args, None), args.candidates, args.out, queue=args.queue,
                                workers=args.workers)  # fmt: skip
    return _print(report)


def _run(args: argparse.Namespace) -> int:
    from videokr.pipeline.chain import RunConfig, drops_table, run_chain

    config = RunConfig.load(args.config)
    reports = run_chain(config)
    if not reports:
        print(f"submitted; stage reports will be under {config.work_dir}/<stage>/report.json")
        return 0
    print(drops_table(reports))
    print(f"release folder: {config.release_dir} (next: videokr build)")
    return 0


RUN_HELP = """\
Run the whole chain from a knowledge-bank slice and a folder of licensed clips to a release folder
`videokr build` takes: collect-local, relevance, visual-relevance, safety, decontaminate (with
`benchmark`), generate, verify, filter-dependency, filter-rationale, split and release. Each stage runs
on datatrove; `executor: {type: local|slurm|ray, ...}` in the config says where. Run it again to resume:
finished tasks are skipped and answered requests come from the cache. See the README's Construction pipeline
section for the config keys."""


def add_pipeline_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``pipeline`` (with one sub-command per stage) to the main parser's sub-parsers."""
    pipeline = subparsers.add_parser(
        "pipeline",
        help="Construction stages: knowledge bank → videos → examples → validated, split release files.",
        description=USER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stages = pipeline.add_subparsers(dest="stage", required=True, metavar="STAGE")
    run = stages.add_parser(
        "run",
        help="The whole chain from a config file, on a local, Slurm or Ray executor.",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", type=Path, help="the run config (YAML)")
    run.set_defaults(handler=_run)

    def add(name: str, handler: Handler, help_text: str, *, models: bool = True) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--workers", type=int, default=4, help="units processed at once (default 4)")
        if models:
            sub.add_argument(
                "--model", action="append", help="model name on the endpoint (repeat for several)"
            )
            sub.add_argument("--local-model", help="a local transformers checkpoint instead of an endpoint")
            sub.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="model-call cache folder")
            sub.add_argument("--concurrency", type=int, default=8, help="concurrent calls per model")
        return sub

    p = add("bank", _bank, "Expand subjects into courses, lectures and knowledge points.")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--subject", action="append", help="only these subjects (repeatable; default all 82)")
    p.add_argument("--courses", type=int, default=8)
    p.add_argument("--lectures", type=int, default=8)
    p.add_argument("--points", type=int, default=12)

    p = add("queries", _queries, "Scenarios and search keywords for every knowledge point.")
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = add(
        "collect-local", _collect_local, "Candidates from a local folder + licence manifest.", models=False
    )
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = add(
        "collect-youtube",
        _collect_youtube,
        "Candidates from the YouTube Data API (CC, ≤30 min).",
        models=False,
    )
    p.add_argument("--queries", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-keyword", type=int, default=10)

    p = add("relevance", _relevance, "Metadata relevance judge against each candidate's knowledge point.")
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    for name, handler, text in (
        ("visual-relevance", _visual_relevance, "Visual relevance judge on frames of each downloaded clip."),
        ("safety", _safety, "Safety check on four random frames of each downloaded clip."),
    ):
        p = add(name, handler, text)
        p.add_argument(
            "--candidates", type=Path, required=True, help="candidates JSONL with a `path` per row"
        )
        p.add_argument("--out", type=Path, required=True)

    p = add("decontaminate", _decontaminate, "Drop candidates overlapping benchmark videos.", models=False)
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--benchmark", type=Path, help="the evaluation release file (VideoKR_eval.jsonl)")
    p.add_argument("--index", help="benchmark hash index (.npz): read if present, else written")
    p.add_argument("--out", type=Path, required=True)

    p = add("generate", _generate, "2 examples per skill per video from 0.2 fps frames and seed examples.")
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--seeds", type=Path, required=True, help="expert seed examples (release JSONL)")
    p.add_argument("--out", type=Path, required=True)

    for name, handler, text in (
        (
            "verify",
            _verify,
            "Self-consistency: keep examples the model re-derives; its reasoning becomes think.",
        ),
        ("filter-dependency", _dependency, "Drop examples two models answer from text + 4 random frames."),
        ("filter-rationale", _rationale, "Drop examples whose rationale has an unsupported step."),
    ):
        p = add(name, handler, text)
        p.add_argument("--examples", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)

    p = add("eligibility", _eligibility, "Check each --model's error rate (≤ 3 %%) on expert labels.")
    p.add_argument("--step", choices=("answer", "relevance"), required=True)
    p.add_argument("--labelled", type=Path, required=True, help="JSONL with the expert's `label` per row")

    p = add("review-export", _review_export, "Write the expert review sheet (CSV or JSONL).", models=False)
    p.add_argument("--examples", type=Path, required=True)
    p.add_argument("--sheet", type=Path, required=True)

    p = add("review-import", _review_import, "Apply the experts' verdicts and edits.", models=False)
    p.add_argument("--examples", type=Path, required=True)
    p.add_argument("--sheet", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--strict", action="store_true", help="fail when rows are unreviewed")

    p = add("split", _split, "Video-grouped deterministic SFT / RL split.", models=False)
    p.add_argument("--examples", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for sft.jsonl and rl.jsonl")
    p.add_argument("--sft-fraction", type=float, default=201_156 / 315_537)
    p.add_argument("--seed", type=int, default=0)

    p = add("probe", _probe, "Single-frame probe of benchmark candidates (3 models × 3 trials).")
    p.add_argument("--candidates", type=Path, required=True, help="candidate VideoKR_eval.jsonl")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--queue", type=Path, help="re-annotation queue (default: next to --out)")

    p = add(
        "release",
        _release,
        "Write pipeline output in the release layout `videokr build` reads.",
        models=False,
    )
    p.add_argument("--sft", type=Path)
    p.add_argument("--rl", type=Path)
    p.add_argument("--eval", type=Path, help="probed evaluation rows")
    p.add_argument("--out", type=Path, required=True)
    return pipeline
