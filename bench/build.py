"""Benchmark: building a Hub dataset folder and loading it back, up to the full release's size.

The release is synthetic but shaped like the real one: the sample corpus's smallest clips (about 4 KB,
as in the release the issue measured) copied under new names
into tar archives of 200 clips, each copy made distinct (its muxer tag carries a counter, so every clip
has its own sha256), and rows drawn from the sample's rows, re-pointed at the copies with unique ids.
`--clips 85934 --rows 201156` (`--full`) gives the real SFT set's counts; `--scale N` repeats the sample N
times (26 N clips, 64 N rows) as before.

Each phase runs in its own process, so peak memory (max RSS of the process and its workers) is the
phase's own: cold build (with the self-check the CLI runs), a rebuild with nothing changed, files in the
built repo, `load_dataset` (first and cached), and streaming (time to the first row, peak, all rows),
both plain `datasets` and the training path (`videokr.training.data.stream_video_dataset`).
The in-run baseline is a plain untar of the same clips: the I/O floor a build cannot beat.

    .venv/bin/python -m bench.build --scale 20 --workers 2
    .venv/bin/python -m bench.build --full --workers 2 --layout shards
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

FULL_CLIPS, FULL_ROWS = 85_934, 201_156


def make_release(
    sample: Path, out: Path, clips: int, rows: int, clips_per_tar: int = 200, max_clip_bytes: int = 4_100
) -> None:
    """A release of `clips` distinct clips and `rows` rows (each clip used by ⌊rows/clips⌋ or one more)."""
    from videokr.data.release import RELEASE_FILES, ClipStore

    root = sample / "VideoKR-Train"
    store = ClipStore(root)
    templates = [json.loads(line) for line in (root / RELEASE_FILES["sft"]).read_text().splitlines() if line]
    used = sorted({store.resolve(r["video_path"]).name for r in templates})  # type: ignore[union-attr]
    payload = [store.resolve(name).open().read() for name in used]  # type: ignore[union-attr]
    # the smallest sample clips (about 4 KB): the release measured in the issue had 346 MB for 85,934
    payload = [data for data in payload if len(data) <= max_clip_bytes] or [min(payload, key=len)]
    target = out / "VideoKR-Train"
    (target / "Videos").mkdir(parents=True)
    names = [f"videos_{k // 1000:04d}/clip_{k:06d}.mp4" for k in range(clips)]
    for start in range(0, clips, clips_per_tar):
        with tarfile.open(target / "Videos" / f"videos_{start // clips_per_tar:04d}.tar", "w") as tar:
            for k in range(start, min(start + clips_per_tar, clips)):
                data = _distinct(payload[k % len(payload)], k)
                info = tarfile.TarInfo(names[k])
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with (target / RELEASE_FILES["sft"]).open("w") as handle:
        for n in range(rows):
            row = dict(templates[n % len(templates)])
            id_key = "id" if "id" in row else "problem_id"
            row[id_key] = f"bench-{n:07d}"
            row["video_path"] = names[n % clips]
            handle.write(json.dumps(row) + "\n")


def _distinct(data: bytes, k: int) -> bytes:
    """The clip with a counter in its muxer or encoder tag ("Lavf…" in the metadata, else "Lavc…" in the
    encoder's SEI text): same length, still valid, its own bytes."""
    at = data.find(b"Lavf")
    at = at if at >= 0 else data.index(b"Lavc")
    tag = f"{k:08x}".encode()
    return data[: at + 4] + tag + data[at + 4 + len(tag) :]


def phase(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one phase in a fresh process; returns its seconds and peak memory (max RSS, GB)."""
    command = [sys.executable, "-m", "bench.build", "--phase", name, "--work", str(args.work)]
    command += ["--workers", str(args.workers), "--layout", args.layout]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"phase {name} failed ({child.returncode}):\n{output}")
    result = json.loads(output.strip().splitlines()[-1])
    result.setdefault("seconds", time.perf_counter() - start)
    result["peak_gb"] = usage.ru_maxrss * 1024 / 1e9
    return result


def run_phase(name: str, work: Path, workers: int, layout: str) -> dict[str, float]:
    import datasets

    out, cache = work / "built", work / "cache"
    if name in ("cold", "rebuild"):
        import videokr_sft
        from videokr.data.hub import build_repo

        kwargs = {} if layout == "default" else {"layout": layout}
        start = time.perf_counter()
        report = build_repo(
            videokr_sft.SPEC, work / "release", out, workers=workers, progress=False, **kwargs
        )
        return {
            "seconds": time.perf_counter() - start,
            "rows": report.rows_written,
            "clips_written": report.clips_written,
            "rejected": report.rows_rejected,
        }
    if name == "files":
        return {"files": sum(1 for p in out.rglob("*") if p.is_file() and ".videokr" not in p.parts)}
    if name in ("load_first", "load_cached"):
        start = time.perf_counter()
        dataset = datasets.load_dataset(str(out), split="train", cache_dir=str(cache))
        return {"seconds": time.perf_counter() - start, "rows": len(dataset)}
    if name == "stream":  # plain `datasets`: what any user of the repo gets
        start = time.perf_counter()
        stream = datasets.load_dataset(str(out), split="train", streaming=True)
        first = next(iter(stream.decode(False)))
        first_row = time.perf_counter() - start
        decoded = next(iter(stream))
        decoded["video"].get_frame_at(0)  # the first use imports torchcodec (and torch): seconds
        first_frame = time.perf_counter() - start
        count = sum(1 for _ in stream.decode(False))
        assert first["id"] == decoded["id"]
        return {
            "seconds": time.perf_counter() - start,
            "first_row_s": first_row,
            "first_frame_s": first_frame,
            "rows": count,
        }
    if name == "stream_videokr":  # what `--streaming` training reads: rows with their clip's bytes
        from videokr.training.data import stream_video_dataset

        start = time.perf_counter()
        stream = stream_video_dataset(str(out), "train")
        first = next(iter(stream))
        first_row = time.perf_counter() - start
        count = sum(1 for _ in stream.select_columns(["id"]))
        assert first["video"]["bytes"] or first["video"]["path"]
        return {"seconds": time.perf_counter() - start, "first_row_s": first_row, "rows": count}
    raise SystemExit(f"unknown phase {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=20, help="copies of the sample release (default 20)")
    parser.add_argument("--clips", type=int, help="clips in the release (with --rows; instead of --scale)")
    parser.add_argument("--rows", type=int, help="rows in the release")
    parser.add_argument("--full", action="store_true", help=f"{FULL_CLIPS:,} clips, {FULL_ROWS:,} rows")
    parser.add_argument("--workers", type=int, default=2, help="build workers (default 2)")
    parser.add_argument(
        "--layout", default="auto", help="auto | loose | shards, or 'default' to pass none (older code)"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.work, args.workers, args.layout)))
        return
    clips, rows = (FULL_CLIPS, FULL_ROWS) if args.full else (args.clips, args.rows)
    if clips is None or rows is None:
        clips, rows = 26 * args.scale, 64 * args.scale

    from videokr.sample import generate_sample_corpus

    with tempfile.TemporaryDirectory(prefix="videokr-bench-") as tmp:
        args.work = Path(tmp)
        generate_sample_corpus(args.work / "sample", seed=0)
        make_release(args.work / "sample", args.work / "release", clips, rows)
        size = sum(p.stat().st_size for p in (args.work / "release").rglob("*.tar")) / 1e6
        print(
            f"release: {clips:,} clips, {rows:,} rows, {size:,.1f} MB of tars; workers={args.workers}, "
            f"layout={args.layout}, {os.cpu_count()} CPUs"
        )
        start = time.perf_counter()
        _untar_all(args.work / "release", args.work / "baseline")
        untar = time.perf_counter() - start
        shutil.rmtree(args.work / "baseline")
        print(f"{'baseline: untar all clips':<36} {untar:8.1f} s")
        results = {}
        for name, label in [
            ("cold", "build, cold (with self-check)"),
            ("rebuild", "build, nothing changed"),
            ("files", "files in the repo"),
            ("load_first", "load_dataset, first (prepare)"),
            ("load_cached", "load_dataset, cached"),
            ("stream", "streaming: all rows, no decode"),
            ("stream_videokr", "streaming for training (ours)"),
        ]:
            result = results[name] = phase(name, args)
            extra = f"   first row {result['first_row_s']:.2f} s" if "first_row_s" in result else ""
            if "first_frame_s" in result:
                extra += f", its first frame {result['first_frame_s']:.2f} s"
            if name == "files":
                print(f"{label:<36} {result['files']:>8,}")
                continue
            print(f"{label:<36} {result['seconds']:8.1f} s   peak {result['peak_gb']:.2f} GB{extra}")
            if "rows" in result and result["rows"] != rows:
                raise SystemExit(
                    f"{name}: {result['rows']} rows, expected {rows}: figures would be meaningless"
                )
        print(
            f"cold build vs untar: {results['cold']['seconds'] / untar:.1f}x; "
            f"no-change rebuild {results['cold']['seconds'] / results['rebuild']['seconds']:.1f}x faster"
        )
        print(json.dumps({"clips": clips, "rows": rows, "untar_s": untar, **results}))


def _untar_all(release: Path, out: Path) -> None:
    for archive in sorted((release / "VideoKR-Train" / "Videos").glob("*.tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")


if __name__ == "__main__":
    main()
