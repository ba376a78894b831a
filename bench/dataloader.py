"""Benchmark: samples/s of the SFT collator path against the decode floor and the common (model-card) path.

Three paths turn the same rows into model input, at the same frames and resolution:

- **ours**: `VideoSFTCollator` (probe + decode the sampled frames, resize to the processor's patch grid,
  render the chat template, one processor call, response labels).
- **floor**: `videokr.vision.sample_frames` with the frame indices `ours` picked, nothing else. Decoding
  has to happen whatever the pipeline, so this is the best any path could do; "ratio vs floor" says how
  much the rest of the collator costs on top.
- **common**: what the model cards show: ``qwen_vl_utils.process_vision_info`` (its own decode, torchvision
  resize) + ``apply_chat_template`` + the processor call (transformers 5 form: ``video_metadata`` and
  ``do_resize=False``, since ``fps=`` raises there). It is given the same frame count (``nframes``) and
  the same pixel bounds as `ours`, so all three decode the same number of frames and `ours` and `common`
  produce the same number of video tokens (printed per case; differing counts would make the ratio
  meaningless). Its default lower bound (128 tokens per frame) would instead upscale small clips.

The processor is the real Qwen processor class of `--arch` with the released checkpoints' pixel settings
(`videokr.models.tiny.build_tiny_model`); only its tokenizer is tiny, which does not change video work.
Frames follow the paper by default: 2 fps, at most 128 frames, 100,352 pixels per frame.

Cases: the rows of a dataset folder built from the sample corpus (≈6 s synthetic clips, 192×144, 8 fps),
the same rows pointed at a real 320×180 clip from ``videokr/sample/assets/real/``, and one case per
``--clip`` (any local video file). Rows are repeated to ``--samples``. Every path first runs a warm-up
batch per worker that is not timed (torchcodec's first call in a process costs seconds).

The ``common`` row needs qwen-vl-utils (``pip install qwen-vl-utils==0.0.14``; it pulls in nothing else
this stack does not already have). Without it that row is skipped with a note.

    .venv/bin/python -m bench.dataloader --arch qwen2_5_vl --samples 64
    .venv/bin/python -m bench.dataloader --arch qwen3_vl --workers 2 --clip lecture.mp4 --max-frames 32
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader

import videokr_sft
from videokr.data import prompts
from videokr.data.hub import build_repo
from videokr.models.tiny import ARCHES, build_tiny_model
from videokr.sample import generate_sample_corpus
from videokr.training import VideoSFTCollator, load_video_dataset, to_sft_rows
from videokr.vision import PAPER_MAX_PIXELS, FrameSampling, VisualLoader, sample_frames, video_source

REAL_CLIP = (
    Path(__file__).resolve().parents[1] / "videokr" / "sample" / "assets" / "real" / "bigbuckbunny.mp4"
)
GOAL_VS_COMMON = 1.5  # ours must be at least this many times faster than the common path
GOAL_VS_FLOOR = 1.3  # ours may take at most this many times the decode-only time

Row = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """Rows to push through every path, and a label for the table."""

    name: str
    rows: list[Row]


# --------------------------------------------------------------------------------------------- rows


def sample_corpus_rows(work: Path) -> list[Row]:
    """SFT rows (``id``, ``video``, ``prompt``, ``completion``) of a dataset folder built from the sample
    corpus: the same loader and row conversion the SFT script uses, so the collator sees real rows."""
    # A private datasets cache: the built folder lives in a fresh temporary directory each run, but its
    # files are byte-identical, so a shared cache would hand back rows pointing into an earlier, deleted
    # folder. (Read at call time by `load_dataset`.)
    datasets.config.HF_DATASETS_CACHE = work / "hf-cache"
    generate_sample_corpus(work / "sample", seed=0)
    build_repo(videokr_sft.SPEC, work / "sample" / "VideoKR-Train", work / "built", workers=1, progress=False)
    dataset = to_sft_rows(load_video_dataset(str(work / "built")))
    return [{k: row[k] for k in ("id", "video", "prompt", "completion")} for row in dataset]


def with_clip(rows: Sequence[Row], clip: Path) -> list[Row]:
    """The same prompts and answers, every row pointed at `clip` (a file outside any dataset folder)."""
    return [dict(row, video=str(clip)) for row in rows]


def repeat(rows: Sequence[Row], n: int) -> list[Row]:
    """`n` rows cycling through `rows`, ids made unique (the collator logs failures by id)."""
    return [dict(rows[i % len(rows)], id=f"{rows[i % len(rows)]['id']}-{i}") for i in range(n)]


def clip_path(row: Row) -> str:
    path, _ = video_source(row["video"])
    if path is None:
        raise ValueError(f"row {row['id']!r} has no clip path")
    return path


# --------------------------------------------------------------------------------------------- paths
# Module-level classes rather than closures so DataLoader workers can receive them under any start method.


class Ours:
    """The SFT collator exactly as the trainer calls it."""

    def __init__(self, processor: Any, sampling: FrameSampling) -> None:
        self.collator = VideoSFTCollator(processor, sampling, on_error="raise")

    def __call__(self, rows: list[Row]) -> Any:
        return self.collator(rows)


class Floor:
    """Decode only: `sample_frames` at the indices `Ours` picked for each clip (looked up, not recomputed)."""

    def __init__(self, indices: dict[str, list[int]], sampling: FrameSampling) -> None:
        self.indices = indices
        self.backend = sampling.backend

    def __call__(self, rows: list[Row]) -> Any:
        return [
            sample_frames(p, indices=self.indices[p], backend=self.backend).frames
            for p in map(clip_path, rows)
        ]


class Common:
    """``process_vision_info`` + chat template + processor, as in the Qwen2.5-VL / Qwen3-VL model cards."""

    def __init__(self, processor: Any, nframes: dict[str, int], sampling: FrameSampling) -> None:
        self.processor = processor
        self.nframes = nframes
        self.sampling = sampling
        self.patch_size = int(processor.video_processor.patch_size)

    def __call__(self, rows: list[Row]) -> Any:
        from qwen_vl_utils import process_vision_info

        conversations = []
        for row in rows:
            path = clip_path(row)
            video = {
                "video": path,
                "nframes": self.nframes[path],
                "max_pixels": self.sampling.max_pixels,
                "min_pixels": self.sampling.min_pixels,
            }
            conversations.append(prompts.build_messages(row["prompt"], video=video, target=row["completion"]))
        texts = [self.processor.apply_chat_template(c, tokenize=False) for c in conversations]
        _, videos, video_kwargs = process_vision_info(
            conversations,
            image_patch_size=self.patch_size,
            return_video_kwargs=True,
            return_video_metadata=True,
        )
        frames, metadata = zip(*videos, strict=True)
        return self.processor(
            text=texts,
            videos=list(frames),
            video_metadata=list(metadata),
            do_resize=False,
            padding=True,
            return_tensors="pt",
            **video_kwargs,
        )


def have_qwen_vl_utils() -> bool:
    return importlib.util.find_spec("qwen_vl_utils") is not None


# --------------------------------------------------------------------------------------------- timing


class WarmThenAll:
    """Batch sampler whose first epoch is a short warm-up and whose later epochs cover every row.

    With persistent workers the same worker processes serve both epochs, so the timed epoch pays neither
    worker start-up nor the decoders' first-call cost, and still runs through the real DataLoader.
    """

    def __init__(self, n: int, batch_size: int, warm_batches: int) -> None:
        self.batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        self.warm_batches = warm_batches
        self.warm = True

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches[: self.warm_batches] if self.warm else self.batches

    def __len__(self) -> int:
        return self.warm_batches if self.warm else len(self.batches)


def seconds_for(path: Callable[[list[Row]], Any], rows: list[Row], batch_size: int, workers: int) -> float:
    """Wall time to turn all `rows` into batches through a torch DataLoader, after an untimed warm-up."""
    sampler = WarmThenAll(len(rows), batch_size, warm_batches=max(1, workers))
    loader = DataLoader(
        rows,  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_sampler=sampler,
        collate_fn=path,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    for _ in loader:
        pass
    sampler.warm = False
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def video_tokens(batch: Any, merge: int) -> int:
    """Video tokens in a batch (what the LM will see); equal across paths means equal work."""
    return int(batch["video_grid_thw"].prod(dim=1).sum()) // (merge * merge)


# --------------------------------------------------------------------------------------------- report


def run_case(
    case: Case, processor: Any, sampling: FrameSampling, *, samples: int, batch_size: int, workers: int
) -> None:
    """Time the three paths on `case` and print one table."""
    rows = repeat(case.rows, samples)
    loader = VisualLoader(processor, sampling)
    indices = {p: list(loader.load(p).metadata.frames_indices) for p in sorted({clip_path(r) for r in rows})}
    nframes = {p: len(i) for p, i in indices.items()}
    merge = int(processor.video_processor.merge_size)

    paths: dict[str, Callable[[list[Row]], Any]] = {"ours (VideoSFTCollator)": Ours(processor, sampling)}
    paths["floor (decode only)"] = Floor(indices, sampling)
    if have_qwen_vl_utils():
        paths["common (qwen-vl-utils)"] = Common(processor, nframes, sampling)

    frames = sorted(set(nframes.values()))
    ours_tokens = video_tokens(paths["ours (VideoSFTCollator)"](rows[:1]), merge)
    print(
        f"\n== {case.name}: {samples} samples, {len(indices)} distinct clips, frames/clip {frames}, "
        f"batch {batch_size}, workers {workers}"
    )
    note = f"video tokens of the first sample: ours {ours_tokens}"
    if "common (qwen-vl-utils)" in paths:
        note += f", common {video_tokens(paths['common (qwen-vl-utils)'](rows[:1]), merge)}"
    else:
        note += "; common path skipped: qwen-vl-utils is not installed (pip install qwen-vl-utils==0.0.14)"
    print(note)

    ms = {name: 1000 * seconds_for(path, rows, batch_size, workers) / samples for name, path in paths.items()}
    ours, floor, common = (
        ms["ours (VideoSFTCollator)"],
        ms["floor (decode only)"],
        ms.get("common (qwen-vl-utils)"),
    )
    print(f"{'path':<26}{'samples/s':>11}{'ms/sample':>11}{'vs common':>11}{'vs floor':>10}")
    for name, value in ms.items():
        speedup = f"{common / value:.2f}x" if common else "-"
        print(f"{name:<26}{1000 / value:>11.1f}{value:>11.1f}{speedup:>11}{value / floor:>9.2f}x")
    if common:
        verdict = "met" if common / ours >= GOAL_VS_COMMON else "NOT met"
        print(f"goal >= {GOAL_VS_COMMON}x the common path: {verdict} ({common / ours:.2f}x)")
    else:
        print(f"goal >= {GOAL_VS_COMMON}x the common path: not measured (qwen-vl-utils missing)")
    verdict = "met" if ours / floor <= GOAL_VS_FLOOR else "NOT met"
    print(f"goal within {GOAL_VS_FLOOR}x of the floor: {verdict} ({ours / floor:.2f}x)")


def main() -> None:
    datasets.disable_progress_bars()  # the one-off dataset build is setup, not part of what is measured
    logging.getLogger("absl").setLevel(logging.ERROR)  # the Croissant validator's advice on the card
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=ARCHES, default="qwen2_5_vl", help="processor to use")
    parser.add_argument("--samples", type=int, default=64, help="rows per case (the rows are repeated)")
    parser.add_argument("--batch-size", type=int, default=1, help="rows per collator call (paper: 1 per GPU)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: in-process)")
    parser.add_argument("--fps", type=float, default=2.0, help="sampling rate (paper: 2)")
    parser.add_argument("--max-frames", type=int, default=128, help="frame cap (paper: 128)")
    parser.add_argument("--num-frames", type=int, default=None, help="fixed frame count instead of --fps")
    parser.add_argument("--max-pixels", type=int, default=PAPER_MAX_PIXELS, help="pixels per frame (paper)")
    parser.add_argument(
        "--backend", default=None, help="videokr.vision.decode backend for ours and the floor"
    )
    parser.add_argument("--clip", type=Path, action="append", default=[], help="extra case: a local video")
    parser.add_argument("--no-sample-corpus", action="store_true", help="skip the sample-corpus case")
    args = parser.parse_args()

    sampling = replace(
        FrameSampling(),
        fps=args.fps,
        max_frames=args.max_frames,
        num_frames=args.num_frames,
        max_pixels=args.max_pixels,
        backend=args.backend,
    )
    _, processor = build_tiny_model(args.arch)
    fixed = f", fixed {sampling.num_frames} frames" if sampling.num_frames else ""
    print(
        f"arch {args.arch} ({type(processor).__name__}), {sampling.fps:g} fps, "
        f"<= {sampling.max_frames} frames"
        f"{fixed}, <= {sampling.max_pixels:,} px/frame, torch threads {torch.get_num_threads()}, "
        f"cpus {os.cpu_count()}"
    )

    with tempfile.TemporaryDirectory(prefix="videokr-bench-") as tmp:
        template = sample_corpus_rows(Path(tmp))
        cases = [] if args.no_sample_corpus else [Case("sample corpus (192x144, 8 fps)", template)]
        cases.append(Case(f"real clip {REAL_CLIP.name} (320x180, 25 fps)", with_clip(template, REAL_CLIP)))
        cases += [Case(f"--clip {clip.name}", with_clip(template, clip.resolve())) for clip in args.clip]
        for case in cases:
            run_case(
                case,
                processor,
                sampling,
                samples=args.samples,
                batch_size=args.batch_size,
                workers=args.workers,
            )


if __name__ == "__main__":
    main()
