"""Benchmark: building a Hub dataset folder and loading it back, on the sample corpus scaled up.

The sample release is repeated `--scale` times (every clip copied under a new name into new tar
archives, every row re-pointed at its copy, ids made unique), so the build sees a release shaped like
the real one: many archives, several rows per clip. Prints clips/s and rows/s for each phase of the
build and for `load_dataset` (normal and streaming) of the result, with a plain file copy of the same
clips as the in-run baseline: the I/O floor a build cannot beat.

    .venv/bin/python -m bench.build --scale 20 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import datasets

import videokr_sft
from videokr.data.hub import build_repo
from videokr.data.release import RELEASE_FILES, ClipStore
from videokr.sample import generate_sample_corpus


def scale_release(sample: Path, out: Path, scale: int, clips_per_tar: int = 200) -> tuple[int, int]:
    """Write a release with `scale` renamed copies of every SFT clip and row; returns (clips, rows)."""
    root = sample / "VideoKR-Train"
    store = ClipStore(root)
    rows = [json.loads(line) for line in (root / RELEASE_FILES["sft"]).read_text().splitlines() if line]
    target = out / "VideoKR-Train"
    (target / "Videos").mkdir(parents=True)
    used = sorted({store.resolve(r["video_path"]).name for r in rows})  # type: ignore[union-attr]
    payload = {name: store.resolve(name).open().read() for name in used}  # type: ignore[union-attr]
    members = [(f"videos_{k:04d}/{Path(n).stem}_{k}.mp4", payload[n]) for k in range(scale) for n in used]
    for start in range(0, len(members), clips_per_tar):
        with tarfile.open(target / "Videos" / f"videos_{start // clips_per_tar:04d}.tar", "w") as tar:
            for name, data in members[start : start + clips_per_tar]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    index = {n: i for i, n in enumerate(used)}
    with (target / RELEASE_FILES["sft"]).open("w") as handle:
        for k in range(scale):
            for row in rows:
                name = store.resolve(row["video_path"]).name  # type: ignore[union-attr]
                id_key = "id" if "id" in row else "problem_id"
                copy = dict(row, **{id_key: f"{row[id_key]}-{k}"})
                copy["video_path"] = f"videos_{k:04d}/{Path(used[index[name]]).stem}_{k}.mp4"
                handle.write(json.dumps(copy) + "\n")
    return len(members), len(rows) * scale


def timed(label: str, units: dict[str, int], fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    rates = ", ".join(f"{count / seconds:,.0f} {unit}/s" for unit, count in units.items())
    print(f"{label:<34} {seconds:8.2f} s   {rates}")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=20, help="copies of the sample release (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="build workers (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="videokr-bench-") as tmp:
        work = Path(tmp)
        generate_sample_corpus(work / "sample", seed=0)
        clips, rows = scale_release(work / "sample", work / "release", args.scale)
        size = sum(p.stat().st_size for p in (work / "release").rglob("*.tar")) / 1e6
        print(f"scaled release: {clips} clips, {rows} rows, {size:.1f} MB of tars, workers={args.workers}")
        units = {"clips": clips, "rows": rows}

        extracted = work / "baseline"
        timed("baseline: untar all clips", units, lambda: _untar_all(work / "release", extracted))
        out = work / "built"
        build = lambda **kw: build_repo(  # noqa: E731
            videokr_sft.SPEC, work / "release", out, workers=args.workers, progress=False, check=False, **kw
        )
        report, cold = timed("build (cold)", units, build)
        if report.rows_written != rows or report.clips_written != clips:
            raise SystemExit(f"the build kept rows out, figures would be meaningless:\n{report.summary()}")
        _, warm = timed("build (incremental re-run)", units, build)
        timed("build --verify (decode all clips)", units, lambda: build(verify=True))
        cache = work / "cache"
        timed(
            "load_dataset (prepare Arrow)",
            {"rows": rows},
            lambda: datasets.load_dataset(str(out), cache_dir=str(cache)),
        )
        timed(
            "load_dataset (cached)",
            {"rows": rows},
            lambda: datasets.load_dataset(str(out), cache_dir=str(cache)),
        )
        stream = datasets.load_dataset(str(out), split="train", streaming=True).decode(False)
        timed("streaming: iterate rows (no decode)", {"rows": rows}, lambda: sum(1 for _ in stream))
        print(f"incremental re-run is {cold / warm:.1f}x faster than the cold build")


def _untar_all(release: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    for archive in sorted((release / "VideoKR-Train" / "Videos").glob("*.tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")


if __name__ == "__main__":
    main()
