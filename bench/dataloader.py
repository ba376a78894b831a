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

**The training view** (``view`` row): the same collator on the rows' training-view clips
(`videokr.data.training_view`: each clip re-encoded once to the frames and size the collator produces at
these settings). For every case the bench prints the view's bytes against the originals', the PSNR of
the view's frames against the full path's (every sampled frame decoded at full size, then torchvision's
antialiased bicubic), and whether the token ids, grids and temporal positions are identical. The goal
is ≥ 10× the common path on HD sources (``--hd``) and ≥ 10× fewer bytes.

``--hd`` adds a generated 60 s 1280×720 30 fps H.264 clip (`generate_hd_clip`; generated once into
``--hd-cache``, default a temporary folder) with ``--hd-samples`` rows, and reports the peak memory of one
loader call at 128 frames of it, each path in a fresh process (the resident size's high-water mark during
the call, minus the resident size before it): the full-size decode + resize the loader did before, the
decoder's scaler it uses now, and the training view.

The ``common`` row needs qwen-vl-utils (``pip install qwen-vl-utils==0.0.14``; it pulls in nothing else
this stack does not already have). Without it that row is skipped with a note.

    .venv/bin/python -m bench.dataloader --arch qwen2_5_vl --samples 64
    .venv/bin/python -m bench.dataloader --arch qwen3_vl --workers 2 --clip lecture.mp4 --max-frames 32
    .venv/bin/python -m bench.dataloader --hd --samples 16 --hd-samples 3
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing
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
from videokr.data.training_view import ViewSettings, build_training_view, encode_view_clip
from videokr.models.tiny import ARCHES, build_tiny_model
from videokr.sample import generate_sample_corpus
from videokr.training import VideoSFTCollator, load_video_dataset, to_sft_rows
from videokr.vision import PAPER_MAX_PIXELS, FrameSampling, Visual, VisualLoader, sample_frames, video_source
from videokr.vision.chat import chat_messages, process, render
from videokr.vision.frames import resize_frames

REAL_CLIP = (
    Path(__file__).resolve().parents[1] / "videokr" / "sample" / "assets" / "real" / "bigbuckbunny.mp4"
)
GOAL_VS_COMMON = 1.5  # ours must be at least this many times faster than the common path
GOAL_VS_FLOOR = 1.3  # ours may take at most this many times the decode-only time
GOAL_VIEW_VS_COMMON = 10.0  # the training view, against the common path on the originals (HD)
GOAL_VIEW_BYTES = 10.0  # the originals' bytes over the view's (HD)
MIN_PSNR = 35.0  # view frames against the full path's

Row = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """Rows to push through every path, the same rows on their training-view clips, and a label."""

    name: str
    rows: list[Row]
    view_rows: list[Row]
    samples: int


# --------------------------------------------------------------------------------------------- rows


def sample_corpus_rows(work: Path, settings: ViewSettings) -> tuple[list[Row], list[Row]]:
    """SFT rows (``id``, ``video``, ``prompt``, ``completion``) of a dataset folder built from the sample
    corpus, and the same rows from its training view at `settings`: the loader and row conversion the SFT
    script uses, so the collator sees real rows."""
    # A private datasets cache: the built folder lives in a fresh temporary directory each run, but its
    # files are byte-identical, so a shared cache would hand back rows pointing into an earlier, deleted
    # folder. (Read at call time by `load_dataset`.)
    datasets.config.HF_DATASETS_CACHE = work / "hf-cache"
    generate_sample_corpus(work / "sample", seed=0)
    build_repo(videokr_sft.SPEC, work / "sample" / "VideoKR-Train", work / "built", workers=1, progress=False)
    build_training_view(work / "built", work / "view", settings, workers=os.cpu_count() or 1, progress=False)
    keys = ("id", "video", "prompt", "completion")
    rows = [{k: row[k] for k in keys} for row in to_sft_rows(load_video_dataset(str(work / "built")))]
    view = {
        row["id"]: {k: row[k] for k in keys} for row in to_sft_rows(load_video_dataset(str(work / "view")))
    }
    return rows, [view[row["id"]] for row in rows]


def view_rows_of(rows: Sequence[Row], work: Path, settings: ViewSettings) -> list[Row]:
    """`rows` pointed at training-view clips of their clips, encoded into `work`."""
    views: dict[str, str] = {}
    for path in sorted({clip_path(row) for row in rows}):
        target = work / f"view-{len(views)}-{Path(path).stem}.mp4"
        encode_view_clip(path, target, settings)
        views[path] = str(target)
    return [dict(row, video=views[clip_path(row)]) for row in rows]


def generate_hd_clip(path: Path, seconds: int = 60, fps: int = 30) -> Path:
    """A 1280×720 H.264 clip that costs what web video costs to decode and to store: a multi-scale colour
    texture panned back and forth (every frame changes), with film grain, x264 ``veryfast`` at an average
    2.5 Mbit/s (typical of 720p web video; the same content at CRF 23 came out at 0.47 Mbit/s, since a
    pure pan is very predictable), default GOP and B-frames. Written once; an existing file is reused."""
    import av
    import numpy as np

    if path.is_file():
        return path
    height, width, margin = 720, 1280, 256
    rng = np.random.default_rng(0)
    texture = torch.zeros(3, height + margin, width + margin)
    for scale in (4, 16, 64):
        coarse = torch.from_numpy(
            rng.random((1, 3, (height + margin) // scale + 2, (width + margin) // scale + 2))
        )
        texture += (
            torch.nn.functional.interpolate(coarse.float(), size=texture.shape[1:], mode="bicubic")[0] / 3
        )
    texture = (texture.clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    grain = [rng.normal(0, 3, (height, width, 3)) for _ in range(8)]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 2_500_000
        stream.options = {"preset": "veryfast"}
        for i in range(seconds * fps):
            x = abs((i * 3) % (2 * margin) - margin)  # back and forth, 3 px a frame
            y = abs((i // 2) % (2 * margin) - margin)
            frame = np.clip(texture[y : y + height, x : x + width] + grain[i % 8], 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    partial.replace(path)
    return path


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


def fidelity(processor: Any, loader: VisualLoader, original: str, view: str) -> tuple[float, bool]:
    """PSNR of the view's frames against the full path's (every sampled frame at full size, then the
    torchvision resize), and whether token ids, grids and temporal positions are identical."""
    import numpy as np

    shown = loader.load(view)
    full = sample_frames(original, indices=list(shown.frame_indices), backend=loader.sampling.backend)
    height, width = full.frames.shape[1:3]
    reference = Visual("video", resize_frames(full.frames, loader.target_size(height, width)), full.metadata)
    error = np.mean((shown.frames.numpy().astype(np.float64) - reference.frames.numpy()) ** 2)
    psnr = float("inf") if error == 0 else float(10 * np.log10(255**2 / error))
    text = render(processor, chat_messages("What happens?"), generation_prompt=True)
    ours, theirs = process(processor, [text], [shown]), process(processor, [text], [reference])
    keys = [
        k for k in ("input_ids", "mm_token_type_ids", "video_grid_thw", "second_per_grid_ts") if k in theirs
    ]
    return psnr, all(torch.equal(ours[k], theirs[k]) for k in keys)


def clip_bytes(rows: Sequence[Row]) -> int:
    return sum(os.path.getsize(p) for p in {clip_path(row) for row in rows})


def run_case(case: Case, processor: Any, sampling: FrameSampling, *, batch_size: int, workers: int) -> None:
    """Time the paths on `case` and print one table."""
    rows, view_rows = repeat(case.rows, case.samples), repeat(case.view_rows, case.samples)
    loader = VisualLoader(processor, sampling)
    indices = {p: list(loader.load(p).metadata.frames_indices) for p in sorted({clip_path(r) for r in rows})}
    nframes = {p: len(i) for p, i in indices.items()}
    merge = int(processor.video_processor.merge_size)

    paths: dict[str, tuple[Callable[[list[Row]], Any], list[Row]]] = {
        "ours (VideoSFTCollator)": (Ours(processor, sampling), rows),
        "floor (decode only)": (Floor(indices, sampling), rows),
        "view (collator on view)": (Ours(processor, sampling), view_rows),
    }
    if have_qwen_vl_utils():
        paths["common (qwen-vl-utils)"] = (Common(processor, nframes, sampling), rows)

    frames = sorted(set(nframes.values()))
    ours_tokens = video_tokens(paths["ours (VideoSFTCollator)"][0](rows[:1]), merge)
    print(
        f"\n== {case.name}: {case.samples} samples, {len(indices)} distinct clips, frames/clip {frames}, "
        f"batch {batch_size}, workers {workers}"
    )
    note = f"video tokens of the first sample: ours {ours_tokens}"
    if "common (qwen-vl-utils)" in paths:
        note += f", common {video_tokens(paths['common (qwen-vl-utils)'][0](rows[:1]), merge)}"
    else:
        note += "; common path skipped: qwen-vl-utils is not installed (pip install qwen-vl-utils==0.0.14)"
    print(note)
    pairs = sorted({(clip_path(a), clip_path(b)) for a, b in zip(case.rows, case.view_rows, strict=True)})
    checks = [fidelity(processor, loader, original, view) for original, view in pairs]
    worst = min(psnr for psnr, _ in checks)
    same = all(identical for _, identical in checks)
    original_bytes, view_bytes = clip_bytes(case.rows), clip_bytes(case.view_rows)
    print(
        f"training view: {view_bytes / 1e6:.2f} MB against {original_bytes / 1e6:.2f} MB of originals "
        f"({original_bytes / view_bytes:.1f}x smaller); frames vs the full path: worst {worst:.1f} dB over "
        f"{len(checks)} clips (goal >= {MIN_PSNR:g}); token ids, grids and positions "
        f"{'identical' if same else 'DIFFER'}"
    )

    ms = {
        name: 1000 * seconds_for(path, path_rows, batch_size, workers) / case.samples
        for name, (path, path_rows) in paths.items()
    }
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
        view = ms["view (collator on view)"]
        verdict = "met" if common / view >= GOAL_VIEW_VS_COMMON else "NOT met"
        print(
            f"view: goal >= {GOAL_VIEW_VS_COMMON:g}x the common path (HD): {verdict} ({common / view:.1f}x)"
        )
    else:
        print(f"goal >= {GOAL_VS_COMMON}x the common path: not measured (qwen-vl-utils missing)")
    verdict = "met" if ours / floor <= GOAL_VS_FLOOR else "NOT met"
    print(f"goal within {GOAL_VS_FLOOR}x of the floor: {verdict} ({ours / floor:.2f}x)")


# --------------------------------------------------------------------------------------------- memory


def _peak_of_one_load(mode: str, clip: str, view: str, num_frames: int, arch: str) -> int:
    """Peak resident bytes added by one loader call; runs in a fresh process (spawned by `peak_memory`)."""
    from videokr.models.tiny import build_tiny_processor

    processor = build_tiny_processor(arch)
    sampling = FrameSampling(num_frames=num_frames)
    loader = VisualLoader(processor, sampling)
    loader.load(view)  # warm-up: imports and the decoder's first call, on the small clip
    # The process's peak so far (building the processor) would hide the call's: reset the kernel's
    # high-water mark, then read it back after the call.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    if mode == "before":  # the loader until now: every sampled frame at full size, then the resize
        full = sample_frames(clip, num_frames=num_frames)
        resize_frames(full.frames, loader.target_size(*full.frames.shape[1:3]))
    else:
        loader.load(clip if mode == "after" else view)
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(clip: Path, work: Path, arch: str, num_frames: int = 128) -> None:
    """Print the peak memory of one loader call at `num_frames` frames of `clip`, per path, each in a
    fresh process so one path's peak cannot hide another's."""
    view = work / "view-128.mp4"
    settings = ViewSettings.of(FrameSampling(num_frames=num_frames), QWEN_FACTORS[arch])
    encode_view_clip(str(clip), view, settings)
    context = multiprocessing.get_context("spawn")
    print(f"\n== peak memory of one loader call, {num_frames} frames of {clip.name} (fresh process each)")
    labels = {
        "before": "before: full-size decode + resize",
        "after": "after: decoder's scaler",
        "view": "training view",
    }
    for mode, label in labels.items():
        with context.Pool(1) as pool:
            peak = pool.apply(_peak_of_one_load, (mode, str(clip), str(view), num_frames, arch))
        print(f"{label:<36}{peak / 2**20:>9.0f} MiB")


QWEN_FACTORS = {"qwen2_5_vl": 28, "qwen3_vl": 32}


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
    parser.add_argument("--hd", action="store_true", help="add the generated 60 s 720p case and peak memory")
    parser.add_argument("--hd-samples", type=int, default=3, help="rows of the HD case (seconds each)")
    parser.add_argument("--hd-cache", type=Path, default=None, help="folder keeping the generated HD clip")
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

    settings = ViewSettings.of(sampling, QWEN_FACTORS[args.arch])
    with tempfile.TemporaryDirectory(prefix="videokr-bench-") as tmp:
        work = Path(tmp)
        template, template_view = sample_corpus_rows(work, settings)
        cases = (
            []
            if args.no_sample_corpus
            else [Case("sample corpus (192x144, 8 fps)", template, template_view, args.samples)]
        )

        def clip_case(name: str, clip: Path, samples: int) -> Case:
            rows = with_clip(template, clip)
            return Case(name, rows, view_rows_of(rows, work, settings), samples)

        cases.append(clip_case(f"real clip {REAL_CLIP.name} (320x180, 25 fps)", REAL_CLIP, args.samples))
        cases += [clip_case(f"--clip {clip.name}", clip.resolve(), args.samples) for clip in args.clip]
        hd = None
        if args.hd:
            hd = generate_hd_clip((args.hd_cache or work) / "hd-60s-1280x720-30fps.mp4")
            bitrate = os.path.getsize(hd) * 8 / 60 / 1e6
            cases.append(
                clip_case(
                    f"generated HD clip (60 s 1280x720 30 fps H.264, {bitrate:.1f} Mbit/s)",
                    hd,
                    args.hd_samples,
                )
            )
        for case in cases:
            run_case(case, processor, sampling, batch_size=args.batch_size, workers=args.workers)
        if hd is not None:
            peak_memory(hd, work, args.arch)


if __name__ == "__main__":
    main()
