"""The `videokr` command line: one entry point, one subcommand per job.

Each subcommand imports its module lazily, so `videokr --help` answers instantly and a subcommand that
needs torch does not slow down one that reads JSONL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from videokr import __version__
from videokr.errors import VideoKRError


def _sample(args: argparse.Namespace) -> int:
    from videokr.sample import sample_command

    sample_command(args.out, seed=args.seed)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from videokr.demo import demo_command

    return demo_command(args.out, small=args.small, check=args.check, seed=args.seed)


def _tiny_model(args: argparse.Namespace) -> int:
    from videokr.models.tiny import tiny_model_command

    tiny_model_command(args.arch, args.out)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from videokr.data.records import read_records

    failed = 0
    for path in args.files:
        report = read_records(path, args.kind)
        print(report.summary())
        failed += len(report.errors)
    return 1 if failed else 0


DATASET_PACKAGES = {"sft": "videokr_sft", "rl": "videokr_rl", "eval": "videokr_eval"}


def _build(args: argparse.Namespace) -> int:
    import importlib

    from videokr.data.hub import build_repo

    spec = importlib.import_module(DATASET_PACKAGES[args.dataset]).SPEC
    report = build_repo(
        spec,
        args.source,
        args.out,
        disjoint_from=args.disjoint_from,
        verify=args.verify,
        workers=args.workers,
        check=not args.no_check,
        repo_id=args.repo_id,
        allow_non_cc=args.allow_non_cc,
        layout=args.layout,
    )
    print(report.summary())
    print(f"wrote {args.out} (report: {args.out}/.videokr/build.json)")
    return 1 if report.problems and args.strict else 0


def _training_view(args: argparse.Namespace) -> int:
    from videokr.data.training_view import ViewSettings, build_training_view

    settings = ViewSettings(
        args.fps, args.max_frames, args.num_frames, args.max_pixels, args.min_pixels, args.factor
    )
    report = build_training_view(args.folder, args.out, settings, workers=args.workers, layout=args.layout)
    print(report.summary())
    print(f"wrote {args.out} (report: {args.out}/.videokr/training_view.json)")
    return 1 if report.kept_out and args.strict else 0


def _publish(args: argparse.Namespace) -> int:
    from videokr.data.publish import publish_command

    return publish_command(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run)


def add_layout(parser: argparse.ArgumentParser, note: str = "") -> None:
    """``--layout``, shared by the commands that write a dataset folder (`videokr.data.shards`)."""
    parser.add_argument(
        "--layout",
        choices=("auto", "loose", "shards"),
        default="auto",
        help="loose: one file per clip; shards: ZIP shards of clips with their rows; auto (default): "
        f"loose up to 2,000 clips and 2 GiB of source clips, shards beyond{note}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videokr",
        description="VideoKR on the Hugging Face stack: sample corpus, Hub datasets, pipeline, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"videokr {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error instead of one line"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    demo = add(
        "demo",
        _demo,
        "Run the whole chain offline on CPU: learning corpus, tiny model, the three datasets, SFT, GRPO, "
        "evaluation with probes, leaderboard, and the relations the results must show.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("videokr-demo"), help="output folder (re-running resumes)"
    )
    demo.add_argument("--small", action="store_true", help="smaller corpus and budget (about 3 minutes)")
    demo.add_argument(
        "--check", action="store_true", help="exit 1 when a relation the results must show fails"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seeds the corpus, the base weights and training (default: 0)"
    )

    sample = add(
        "sample",
        _sample,
        "Write the embedded sample corpus (procedural CC0 clips) in the official release layout.",
    )
    sample.add_argument("out", type=Path, help="output folder (created; regenerated deterministically)")
    sample.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")

    tiny = add(
        "tiny-model",
        _tiny_model,
        "Write a tiny, randomly initialised Qwen2.5-VL or Qwen3-VL with its processor, built offline.",
    )
    tiny.add_argument("out", type=Path, help="output folder for save_pretrained")
    tiny.add_argument("--arch", choices=("qwen2_5_vl", "qwen3_vl"), required=True, help="architecture")

    validate = add(
        "validate",
        _validate,
        "Parse release JSONL files into canonical records and list every bad row by line and id.",
    )
    validate.add_argument("kind", choices=("sft", "rl", "eval"), help="which dataset the files belong to")
    validate.add_argument("files", type=Path, nargs="+", help="JSONL files")
    build = add(
        "build",
        _build,
        "Build a no-code Hub dataset folder (videofolder, card, Croissant) from release files, then prove "
        "it loads with load_dataset, normal and streaming.",
    )
    build.add_argument("dataset", choices=tuple(DATASET_PACKAGES), help="which dataset to build")
    build.add_argument("--source", type=Path, required=True, help="release folder or its JSONL file")
    build.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output repository folder: new, empty, or an earlier build of the same dataset (anything else "
        "is refused before writing)",
    )
    build.add_argument(
        "--disjoint-from",
        type=Path,
        nargs="*",
        default=[],
        metavar="DIR",
        help="built folders whose clips this dataset must not share (rows on shared clips are reported)",
    )
    build.add_argument(
        "--verify",
        action="store_true",
        help="decode frames across every clip in parallel (a plain build probes each clip and checks its "
        "bitstream structure, which misses damage inside a frame)",
    )
    build.add_argument("--workers", type=int, default=None, help="parallel workers (default: min(8, CPUs))")
    build.add_argument("--no-check", action="store_true", help="skip the load_dataset check at the end")
    add_layout(build)
    build.add_argument("--repo-id", default=None, help="ORG/NAME it will be published as (named in the card)")
    build.add_argument("--strict", action="store_true", help="exit 1 when any row was kept out")
    build.add_argument(
        "--allow-non-cc",
        action="store_true",
        help="keep rows whose clip licence is not Creative Commons or not given (kept out by default); the "
        "card then counts clips by licence",
    )

    from videokr.vision.sampling import (
        PAPER_FPS,
        PAPER_MAX_FRAMES,
        PAPER_MAX_PIXELS,
        PAPER_MIN_PIXELS,
        QWEN2_5_VL_FACTOR,
    )

    view = add(
        "training-view",
        _training_view,
        "Write the training view of a built folder: each clip re-encoded once to exactly the frames and "
        "size the model is shown at these settings, with the source's timestamps (defaults: the paper's). "
        "Re-running resumes.",
    )
    view.add_argument("folder", type=Path, help="a folder written by `videokr build`")
    view.add_argument("out", type=Path, help="output folder: new, empty, or an earlier view of it (resumed)")
    view.add_argument("--fps", type=float, default=PAPER_FPS, help="frames sampled per second (paper: 2)")
    view.add_argument(
        "--max-frames", type=int, default=PAPER_MAX_FRAMES, help="frames per clip at most (128)"
    )
    view.add_argument("--num-frames", type=int, default=None, help="a fixed frame count instead of --fps")
    view.add_argument("--max-pixels", type=int, default=PAPER_MAX_PIXELS, help="pixels per frame at most")
    view.add_argument("--min-pixels", type=int, default=PAPER_MIN_PIXELS, help="pixels per frame at least")
    view.add_argument(
        "--factor",
        type=int,
        default=QWEN2_5_VL_FACTOR,
        help="the processor's patch size × merge size: 28 for Qwen2/2.5-VL (default), 32 for Qwen3-VL",
    )
    view.add_argument("--workers", type=int, default=1, help="clips encoded in parallel (default: 1)")
    add_layout(view, "; a resumed view keeps its layout")
    view.add_argument("--strict", action="store_true", help="exit 1 when any row was kept out")

    publish = add(
        "publish",
        _publish,
        "Upload a built folder to a Hub dataset repo (created if needed; resumable). The token is read the "
        "usual huggingface_hub way (HF_TOKEN or a saved login) and never printed.",
    )
    publish.add_argument("folder", type=Path, help="a folder written by `videokr build`")
    publish.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repo")
    publish.add_argument("--private", action="store_true", help="create the repo as private")
    publish.add_argument(
        "--dry-run",
        action="store_true",
        help="list every file that would be uploaded, with its size; send nothing",
    )

    from videokr.pipeline.cli import add_pipeline_commands

    add_pipeline_commands(commands)

    from videokr.evaluation.cli import add_eval_commands

    add_eval_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"videokr {args.command}: interrupted (re-running resumes where it stopped)", file=sys.stderr)
        return 130
    except (VideoKRError, OSError, ValueError) as exc:
        if args.debug:
            raise
        # Bad input is the user's to fix: one line naming it, no traceback.
        print(f"videokr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"videokr {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(videokr --debug … shows the traceback; please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
