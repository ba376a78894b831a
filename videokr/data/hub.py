"""Building a no-code Hub dataset repository (videofolder) from the release or from pipeline output.

Shared by the three dataset packages, which only contribute their `DatasetSpec` (name, split, card
text). A build reads the rows, finds every clip they use, copies each clip once into
`<split>/videos/NNN/`, writes `<split>/metadata.parquet`, the card, attribution and Croissant files,
and then proves the folder with `load_dataset`, normal and streaming. Nothing a row needs is silently
dropped or substituted: every problem lands in the report with the ids it affects.

What a build never does:

* serve wrong bytes: a clip is reused on a re-run only when its source still has the sha256 the
  manifest recorded (and the copy is the one written); two different source clips never share one
  output file, even when their flattened names collide; a row path two different clips answer is
  reported as ambiguous, not resolved to one of them;
* lose a user's data: `--out` must be new, empty, or a folder this tool built for the same kind of
  dataset (its manifest says so), else the build stops before writing anything; only files the
  manifest says the tool wrote are ever deleted;
* leave work running: probe workers die with the build, even when it is killed with SIGKILL.

Why a videofolder and not `push_to_hub`: rows share clips (six questions per video in the paper), and
`push_to_hub` would embed the bytes once per row; a videofolder keeps one file per clip and is still a
no-code dataset whose rows decode with `load_dataset`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from videokr.atomic import write_text_atomic
from videokr.data import shards as shard_layout
from videokr.data.card import DatasetSpec, is_creative_commons, write_card_files
from videokr.data.croissant import validate_croissant
from videokr.data.records import Kind, Record, read_records, record_features
from videokr.data.release import AmbiguousClipError, ClipRef, ClipStore, find_release_file
from videokr.data.shards import (
    METADATA_MEMBER,
    ShardContent,
    assign_shards,
    choose_layout,
    member_opener,
    metadata_table,
    shard_fingerprint,
    shard_problem,
    write_metadata,
    write_shard,
)
from videokr.errors import VideoKRError

MANIFEST_PATH = Path(".videokr") / "build.json"
JOURNAL_PATH = Path(".videokr") / "clips.jsonl"
STAGING_DIR = Path(".videokr") / "staging"
TARGET_CLIPS_PER_FOLDER = 500  # hash sharding at this mean keeps every folder far below the 1,000 cap
MAX_CLIPS_PER_FOLDER = 1000
MANIFEST_FLUSH_EVERY = 500  # make the journal durable this often
#: What the probe of a clip recorded in the manifest checked; a clip probed by an older build whose
#: entry lacks it is probed again.
PROBE_CHECKS = "probe+nal-structure"
VERIFY_HINT = (
    "clips were probed, not decoded: container, frame index and H.264/HEVC bitstream structure are "
    "checked, but damage inside a frame shows only when decoding; run with --verify to decode frames "
    "across every clip"
)


@dataclass
class Problem:
    """One thing wrong with the input, with every row id it keeps out of the build."""

    kind: str  # record | license | missing_clip | ambiguous_clip | corrupt_clip | overlap | non_finite
    detail: str
    row_ids: list[str] = field(default_factory=list)


@dataclass
class BuildReport:
    dataset: str
    source: str
    out: str
    rows_read: int = 0
    rows_written: int = 0
    clips_written: int = 0
    clips_reused: int = 0
    verified: bool = False
    problems: list[Problem] = field(default_factory=list)
    #: Values changed in rows that were kept (e.g. a non-finite duration written as null/probed).
    notices: list[Problem] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(len(p.row_ids) or 1 for p in self.problems)

    def rejected_ids(self, kind: str | None = None) -> list[str]:
        return [i for p in self.problems if kind in (None, p.kind) for i in p.row_ids]

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows_written} rows written from {self.rows_read} read; "
            f"{self.clips_written} clips copied, {self.clips_reused} unchanged clips reused",
        ]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_kind[problem.kind].append(problem)
        for kind, problems in sorted(by_kind.items()):
            ids = [i for p in problems for i in p.row_ids]
            lines.append(f"  {kind}: {len(problems)} problems, {len(ids)} rows kept out")
            lines += [
                f"    {p.detail}" + (f" [ids: {', '.join(p.row_ids[:8])}]" if p.row_ids else "")
                for p in problems[:20]
            ]
            if len(problems) > 20:
                lines.append(f"    … {len(problems) - 20} more in {MANIFEST_PATH}")
        for notice in self.notices:
            ids = f" [ids: {', '.join(notice.row_ids[:8])}]" if notice.row_ids else ""
            lines.append(f"  {notice.kind}: {notice.detail}{ids}")
        if not self.verified:
            lines.append(f"  note: {VERIFY_HINT}")
        return "\n".join(lines)


def shard_count(num_clips: int) -> int:
    return max(1, math.ceil(num_clips / TARGET_CLIPS_PER_FOLDER))


def clip_file_name(source_name: str, shards: int, *, disambiguate: bool = False) -> str:
    """Where a clip goes inside its split: `videos/NNN/<source path with / as __>`.

    The shard is a hash of the source path, so a clip keeps its place when other clips come and go
    (incremental rebuilds rewrite nothing), and the flattened source path keeps provenance readable.
    Flattening is not one-to-one (`a/b__c.mp4` and `a__b/c.mp4` both give `a__b__c.mp4`); names that
    collide get `disambiguate`: a short hash of the full source path before the suffix.
    """
    shard = zlib.crc32(source_name.encode()) % shards
    flat = source_name.strip("/").replace("/", "__")
    if disambiguate:
        stem, dot, suffix = flat.rpartition(".")
        tag = hashlib.sha1(source_name.encode()).hexdigest()[:10]
        flat = f"{stem}~{tag}.{suffix}" if dot and stem else f"{flat}~{tag}"
    return f"videos/{shard:03d}/{flat}"


def assign_file_names(names: Iterable[str], shards: int) -> dict[str, str]:
    """Each source clip's output file, one file per source clip: never two clips in one file.

    Names whose flattened paths collide (compared case-insensitively, as on macOS and Windows disks)
    are all disambiguated, so which clip gets which file does not depend on the order they come in.
    """
    plain = {name: clip_file_name(name, shards) for name in names}
    groups: dict[str, list[str]] = defaultdict(list)
    for name, file_name in plain.items():
        groups[file_name.casefold()].append(name)
    assigned = {
        name: clip_file_name(name, shards, disambiguate=len(group) > 1)
        for group in groups.values()
        for name in group
    }
    seen: dict[str, str] = {}
    for name, file_name in sorted(assigned.items()):
        other = seen.setdefault(file_name.casefold(), name)
        if other != name:
            raise VideoKRError(f"clips {other} and {name} would both be written to {file_name}")
    return assigned


def _probe_clip(path: str) -> tuple[str, float | None, str | None]:
    """(path, duration in seconds, error) — run in worker processes; never raises.

    The probe reads every packet of the container (timestamps, index) and decodes the first frame;
    the bitstream check then walks the same packets' H.264/HEVC NAL units, which catches a clip whose
    middle was overwritten or lost without decoding it.
    """
    from videokr.vision.decode import probe

    try:
        info = probe(path)
        problem = check_bitstream(path)
    except Exception as exc:  # a corrupt clip must be reported, whatever the decoder raises
        return path, None, str(exc)
    if problem is not None:
        return path, None, f"{path}: {problem}"
    duration = float(info.duration)
    return path, duration if math.isfinite(duration) else None, None


def check_bitstream(path: str) -> str | None:
    """A cheap structural check of an H.264 or HEVC stream stored with NAL length prefixes (MP4, MKV).

    Every packet must split exactly into NAL units (length prefixes that add up to the packet size)
    whose headers are valid: overwritten or missing bytes almost always break that. No frame is
    decoded, so damage inside one NAL unit's payload is not seen (`--verify` decodes). Other codecs
    and Annex-B streams are not checked here. Returns what is wrong, or None.
    """
    import av

    with av.open(path) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        extra = bytes(stream.codec_context.extradata or b"")
        if codec == "h264" and len(extra) > 4 and extra[0] == 1:
            length_size, hevc = (extra[4] & 3) + 1, False
        elif codec == "hevc" and len(extra) > 22 and extra[0] == 1:
            length_size, hevc = (extra[21] & 3) + 1, True
        else:
            return None
        for index, packet in enumerate(container.demux(stream)):
            if packet.size == 0:
                continue
            problem = _nal_problem(memoryview(packet), length_size, hevc)
            if problem is not None:
                return f"corrupt {codec} stream: video packet {index} (at byte {packet.pos}) {problem}"
    return None


def _nal_problem(data: memoryview, length_size: int, hevc: bool) -> str | None:
    position, units, size = 0, 0, len(data)
    while position < size:
        if position + length_size > size:
            if any(data[position:]):
                return f"ends with {size - position} bytes that are not a NAL unit"
            break
        length = int.from_bytes(data[position : position + length_size], "big")
        position += length_size
        if length == 0:
            continue
        if position + length > size:
            return f"holds a NAL unit of {length} bytes but only {size - position} bytes are left"
        header = data[position]
        if header & 0x80:
            return "holds a NAL unit whose forbidden bit is set"
        if hevc:
            if length < 2 or (header >> 1) & 0x3F > 47 or not data[position + 1] & 7:
                return "holds an invalid HEVC NAL unit header"
        elif not 1 <= header & 0x1F <= 23:
            return f"holds a NAL unit of type {header & 0x1F}, which no encoder writes"
        units += 1
        position += length
    return None if units else "holds no NAL unit"


def _die_with_parent(parent_pid: int) -> None:
    """Probe-pool initializer: a worker must never outlive the build, even one killed with SIGKILL.

    On Linux the kernel kills the worker when its parent dies (PR_SET_PDEATHSIG), which works even while
    the worker is busy in a decoder; a watcher thread covers other systems and the moment before the
    signal was armed (a parent already gone, or the worker re-parented).
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    first_parent = os.getppid()
    if not _alive(parent_pid) or first_parent == 1:  # the build died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, first_parent), name="videokr-watch-parent", daemon=True
    ).start()


def _watch_parent(parent_pid: int, first_parent: int) -> None:
    while os.getppid() == first_parent and _alive(parent_pid):
        time.sleep(0.5)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _verify_decode(path: str) -> tuple[str, str | None]:
    """Decode frames spread over the whole clip, the last one included; returns an error or None."""
    from videokr.vision.decode import sample_frames

    try:
        sample_frames(path, num_frames=8)
    except Exception as exc:
        return path, str(exc)
    return path, None


def _verify_packed(url: str) -> tuple[str, str | None]:
    """`_probe_clip`'s checks and `_verify_decode` on a member of a shard (``zip://member::archive``),
    read into a temporary file (the decoders read files); returns an error or None."""
    member, archive = url[len("zip://") :].split("::", 1)
    try:
        with zipfile.ZipFile(archive) as handle, tempfile.NamedTemporaryFile(suffix=".mp4") as copy:
            with handle.open(member) as source:
                shutil.copyfileobj(source, copy)
            copy.flush()
            error = _probe_clip(copy.name)[2] or _verify_decode(copy.name)[1]
    except Exception as exc:  # a damaged archive is this clip's error too
        return url, str(exc)
    return url, None if error is None else error.replace(copy.name, member)


class _Manifest:
    """What a build wrote: clips (with sha256, for incremental rebuilds and overlap checks) and problems.

    `build.json` holds the dataset, kind, layout, shard states and the last report; each clip's entry is
    a line appended to `clips.jsonl` as it is written (the last line for a name wins), so recording a
    clip costs one short write however large the dataset, and a crash loses at most the line being
    written. `compact` rewrites the journal only when superseded lines outnumber the live ones.

    `build.json` is written before the first clip, naming the dataset and kind, so a folder a build left
    half done is still recognised as this tool's; `owned_files` are every clip file a build wrote or was
    writing into the split (the only files a later build may delete).
    """

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST_PATH
        self.journal = out / JOURNAL_PATH
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        # An older build kept every clip inside build.json: read it, and move it to the journal.
        self.clips: dict[str, dict[str, Any]] = data.pop("clips", {})
        self._migrate = bool(self.clips)
        self._lines = 0
        if self.journal.is_file():
            for line in self.journal.read_bytes().splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash: the clip it named is copied again
                self._lines += 1
                name = item.pop("name")
                if item.pop("removed", False):
                    self.clips.pop(name, None)
                else:
                    self.clips[name] = item
        self.data = data
        self.owned_files = {e["file_name"] for e in self.clips.values() if e.get("file_name")}
        self.owned_files |= set(data.get("pending", []))
        self._handle: Any = None

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.clips[name] = entry
        self._append({"name": name, **entry})

    def forget(self, name: str) -> None:
        if self.clips.pop(name, None) is not None:
            self._append({"name": name, "removed": True})

    def _append(self, item: dict[str, Any]) -> None:
        if self._handle is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.journal.open("ab")
            if self._handle.tell() and not _ends_with_newline(self.journal):
                self._handle.write(b"\n")  # after a line a crash cut short
        self._handle.write(json.dumps(item, sort_keys=True).encode() + b"\n")
        self._lines += 1

    def flush(self, **extra: Any) -> None:
        if self._migrate:
            self.compact(force=True)
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self.data.update(extra)
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    def compact(self, *, force: bool = False) -> None:
        """Rewrite the journal with one line per live clip, when superseded lines outnumber live ones."""
        if not force and self._lines <= 2 * len(self.clips) + 1000:
            return
        self.close()
        lines = [json.dumps({"name": n, **e}, sort_keys=True) + "\n" for n, e in sorted(self.clips.items())]
        write_text_atomic(self.journal, "".join(lines))
        self._lines, self._migrate = len(lines), False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def check_out_folder(out: Path, spec: DatasetSpec) -> None:
    """Refuse an `--out` that a build could damage, before anything is written.

    Allowed: a folder that does not exist, an empty one, or one this tool built for the same kind of
    dataset (its manifest says so: a re-run or a resumed build). Anything else (the release folder
    itself, a folder of the user's, another dataset's build) is refused with one line saying why.
    """
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise VideoKRError(f"--out {out} is a file; give a new or empty folder (nothing was written)")
    manifest = out / MANIFEST_PATH
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise VideoKRError(
                f"--out {out}: its {MANIFEST_PATH} cannot be read ({exc}); give a new or empty folder "
                "(nothing was written)"
            ) from exc
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind == spec.kind:
            return
        held = f"the {data.get('dataset') or kind} dataset ({kind})" if kind else "an unfinished older build"
        raise VideoKRError(
            f"--out {out} already holds {held}; building {spec.name} ({spec.kind}) there would replace "
            "it. Give a new or empty folder (nothing was written)"
        )
    entries = sorted(p.name for p in out.iterdir() if not _only_build_state(p))
    if entries:
        shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
        raise VideoKRError(
            f"--out {out} is not empty ({len(entries)} entries: {shown}) and is not a folder videokr built; "
            "give a new or empty folder (nothing was written)"
        )


def _only_build_state(path: Path) -> bool:
    """A `.videokr/` left by a build killed before its first manifest write (only `.partial` files)."""
    if path.name != MANIFEST_PATH.parent.name or not path.is_dir() or path.is_symlink():
        return False
    return all(child.name.endswith(".partial") and child.is_file() for child in path.iterdir())


def load_clip_hashes(built: Path) -> dict[str, str]:
    """source clip name → sha256 for an already built repo folder (for the SFT/RL/Eval overlap check)."""
    if not (Path(built) / MANIFEST_PATH).exists():
        raise VideoKRError(f"{built}: no {MANIFEST_PATH}; is this a folder written by `videokr build`?")
    return {name: entry["sha256"] for name, entry in load_manifest_clips(built).items()}


def load_manifest_clips(built: Path) -> dict[str, dict[str, Any]]:
    """source clip name → what the build recorded for it (sha256, where it was written, duration)."""
    return _Manifest(Path(built)).clips


def clip_key(name: str) -> str:
    """A clip's identity across datasets: its file stem (the video id in the release's naming)."""
    return Path(name).stem


def build_repo(
    spec: DatasetSpec,
    source: Path,
    out: Path,
    *,
    disjoint_from: Iterable[Path] = (),
    verify: bool = False,
    workers: int | None = None,
    progress: bool = True,
    check: bool = True,
    repo_id: str | None = None,
    allow_non_cc: bool = False,
    layout: str = "auto",
) -> BuildReport:
    """Build `out` as a no-code Hub dataset folder for `spec` from release files (or pipeline output).

    `disjoint_from` names other built folders (e.g. SFT and Eval when building RL): rows whose clip
    is also there (same video id or same bytes) are kept out and reported, so no clip is ever in two
    of SFT, RL and Eval. Rows whose clip licence is not Creative Commons (or not given) are kept out
    unless `allow_non_cc`; the card then counts clips by licence instead of calling them CC-licensed.
    Re-running is incremental: clips already written from the same bytes (sha256) are not copied
    again, and progress is saved as it goes, so a crash loses nothing already written. `out` must be
    new, empty or an earlier build of the same kind (`check_out_folder`).

    `layout` is `loose` (one file per clip under `<split>/videos/`), `shards` (ZIP shards holding clips
    and rows, `videokr.data.shards`) or `auto`: loose for small datasets, shards beyond
    `shards.LOOSE_MAX_CLIPS` clips or `shards.LOOSE_MAX_BYTES` bytes.
    """
    out = Path(out)
    jsonl = find_release_file(Path(source), spec.kind)
    check_out_folder(out, spec)
    options = {"allow_non_cc": allow_non_cc, "layout": layout, "repo_id": repo_id}
    inputs = None if verify else input_state(spec, jsonl, disjoint_from, options)
    unchanged = _unchanged_build(out, spec.split, inputs)
    if unchanged is not None:  # the folder is the one the last build wrote and checked, byte for byte
        unchanged["report"].out, unchanged["report"].source = str(out), str(jsonl)
        return unchanged["report"]
    report = BuildReport(dataset=spec.name, source=str(jsonl), out=str(out), verified=verify)
    workers = workers or min(8, os.cpu_count() or 1)

    parsed = read_records(jsonl, spec.kind)
    report.rows_read = len(parsed.records) + len(parsed.errors)
    for error in parsed.errors:
        ids = [error.row_id] if error.row_id is not None else []
        report.problems.append(Problem("record", str(error), ids))
    records = _null_non_finite(parsed.records, report)
    records = _apply_license_policy(records, report, allow_non_cc)

    store = ClipStore(jsonl.parent)
    rows_by_clip: dict[str, list[Record]] = defaultdict(list)
    refs: dict[str, ClipRef] = {}
    missing: dict[str, list[str]] = defaultdict(list)
    ambiguous: dict[str, tuple[AmbiguousClipError, list[str]]] = {}
    for record in records:
        try:
            ref = store.resolve(record.video)
        except AmbiguousClipError as exc:
            ambiguous.setdefault(record.video, (exc, []))[1].append(record.id)
            continue
        if ref is None:
            missing[record.video].append(record.id)
            continue
        refs[ref.name] = ref
        rows_by_clip[ref.name].append(record)
    for path, ids in sorted(missing.items()):
        report.problems.append(Problem("missing_clip", f"{path}: not found under {jsonl.parent}", ids))
    for _, (exc, ids) in sorted(ambiguous.items(), key=lambda item: item[0]):
        detail = f"{exc}; a row must name exactly one clip: remove or rename all but one"
        report.problems.append(Problem("ambiguous_clip", detail, ids))

    split_dir = out / spec.split
    layout = choose_layout(layout, len(refs), sum(ref.size for ref in refs.values()))
    manifest = _Manifest(out)
    if layout == "loose":
        file_names = assign_file_names(refs, shard_count(len(refs)))
    else:  # one flat namespace per split: a member's name is unique in the split, not only its shard
        file_names = {
            n: f.replace("videos/000/", "videos/", 1) for n, f in assign_file_names(refs, 1).items()
        }
    owned = manifest.owned_files | (set(file_names.values()) if layout == "loose" else set())
    # The first write into `out`: from here on the folder is recognisably this build's.
    manifest.flush(dataset=spec.name, kind=spec.kind, layout=layout, pending=sorted(owned), inputs=None)
    try:
        if layout == "loose":
            placed = _copy_clips(refs, file_names, split_dir, manifest, report, workers, progress)
        else:
            placed = _stage_clips(refs, file_names, out, split_dir, manifest, report, workers, progress)

        _drop_overlaps(disjoint_from, manifest, rows_by_clip, report)
        # Clips kept inside their shard: `--verify` checks the bytes that are published, in place.
        packed = {
            name: f"zip://{manifest.clips[name]['member']}::{split_dir / manifest.clips[name]['shard']}"
            for name in (rows_by_clip if verify else ())
            if name not in placed and manifest.clips.get(name, {}).get("shard")
        }
        durations = _check_clips(placed, rows_by_clip, manifest, report, workers, progress, verify, packed)
        for name in sorted(set(manifest.clips) - set(rows_by_clip)):
            manifest.forget(name)

        features = record_features(spec.kind)
        rows = []
        for name in sorted(rows_by_clip):
            for record in rows_by_clip[name]:
                row = {name: value for name, value in record.to_dict().items() if name in features}
                del row["video"]
                if row["duration_s"] is None:
                    row["duration_s"] = durations.get(name)
                rows.append({"file_name": file_names[name], **row})
        rows.sort(key=lambda r: r["id"])
        if layout == "loose":
            write_metadata(split_dir / METADATA_MEMBER, metadata_table(rows, features))
            _remove_shards(split_dir, manifest, keep=set())
            changed = None
        else:
            changed = _write_shards(
                rows_by_clip, rows, file_names, placed, split_dir, manifest, features, workers, progress
            )
            (split_dir / METADATA_MEMBER).unlink(missing_ok=True)  # a loose build's, if the layout changed
        _remove_stale_clips(split_dir, set(file_names.values()) if layout == "loose" else set(), owned)
        shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
        report.rows_written = len(rows)

        clip_durations = {file_names[n]: durations.get(n) for n in rows_by_clip}
        write_card_files(spec, out, rows, durations=clip_durations, repo_id=repo_id, layout=layout)
        manifest.data.pop("pending", None)
        manifest.compact()
        manifest.flush(dataset=spec.name, kind=spec.kind, layout=layout, report=asdict(report), inputs=inputs)
    finally:
        manifest.close()
    if check:
        check_repo(out, spec.kind, shards=changed)
    return report


#: The modules whose code decides what a build writes: a change to any of them is a change of input.
_OUTPUT_CODE = ("hub.py", "shards.py", "card.py", "croissant.py", "records.py", "release.py")


def input_state(
    spec: DatasetSpec, jsonl: Path, disjoint_from: Iterable[Path], options: dict[str, Any]
) -> str:
    """A digest of everything a build's output depends on: the options, the code that writes it, and the
    bytes of every file under the release folder (the JSONL, its archives and clips) and of the clip
    lists of the `disjoint_from` builds.

    Equal digests mean the same output, so a rebuild with nothing changed costs one read of the inputs
    (no parsing, no per-clip work, and no new check: every file is the one the last build checked);
    bytes are hashed rather than trusting sizes and times, so a clip
    replaced in place with preserved timestamps is still seen.
    """
    digest = hashlib.sha256(json.dumps([spec.name, spec.kind, spec.split, options], sort_keys=True).encode())
    here = Path(__file__).parent
    for name in _OUTPUT_CODE:
        digest.update((here / name).read_bytes())
    roots = [(jsonl.parent, "source")] + [(Path(o) / JOURNAL_PATH, "other") for o in disjoint_from]
    for root, label in roots:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            digest.update(f"{label}:{path.relative_to(root) if root.is_dir() else path.name}".encode())
            digest.update(_file_sha256(path).encode() if path.is_file() else b"missing")
    return digest.hexdigest()


def _unchanged_build(out: Path, split: str, inputs: str | None) -> dict[str, Any] | None:
    """The last build's record when `out` holds a finished build of exactly these inputs, untouched since
    (every file it wrote has the size and time recorded); else None. Its report is returned with every
    clip counted as reused."""
    path = out / MANIFEST_PATH
    if inputs is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("inputs") != inputs or "report" not in data or data.get("pending"):
        return None
    if not all((out / name).is_file() for name in ("README.md", "ATTRIBUTION.md", "croissant.json")):
        return None
    if data.get("layout") == "shards":
        written = [
            (out / split / name, state.get("written")) for name, state in data.get("shards", {}).items()
        ]
    else:
        clips = _Manifest(out).clips.values()
        written = [(out / split / str(e.get("file_name")), e.get("written")) for e in clips]
    if not all(_is_plain_file(path) and stamp == _stamp(path) for path, stamp in written):
        return None
    report = BuildReport(**{k: v for k, v in data["report"].items() if k not in ("problems", "notices")})
    report.problems = [Problem(**p) for p in data["report"]["problems"]]
    report.notices = [Problem(**p) for p in data["report"]["notices"]]
    report.clips_reused += report.clips_written
    report.clips_written = 0
    return {"layout": data.get("layout"), "report": report}


def _null_non_finite(records: list[Record], report: BuildReport) -> list[Record]:
    """A NaN or infinite duration (JSON `NaN`, `Infinity`, `1e999`) is no duration: written as the
    probed one instead, and counted in the report."""
    ids = []
    for record in records:
        if record.duration_s is not None and not math.isfinite(record.duration_s):
            record.duration_s = None
            ids.append(record.id)
    if ids:
        detail = (
            f"{len(ids)} rows gave a non-finite duration_s (NaN or infinity); the probed duration is written"
        )
        report.notices.append(Problem("non_finite", detail, ids))
    return records


def _apply_license_policy(records: list[Record], report: BuildReport, allow_non_cc: bool) -> list[Record]:
    """Keep out rows whose clip licence is not Creative Commons (or missing), by licence, with their ids."""
    refused: dict[str, list[str]] = defaultdict(list)
    kept = []
    for record in records:
        if allow_non_cc or is_creative_commons(record.license):
            kept.append(record)
        else:
            refused[record.license or ""].append(record.id)
    for license, ids in sorted(refused.items()):
        what = f"licence {license!r} is not Creative Commons" if license else "no licence given"
        detail = f"{what}; pass --allow-non-cc to keep such rows (the card then lists clips by licence)"
        report.problems.append(Problem("license", detail, ids))
    return kept


def _copy_clips(
    refs: dict[str, ClipRef],
    file_names: dict[str, str],
    split_dir: Path,
    manifest: _Manifest,
    report: BuildReport,
    workers: int,
    progress: bool,
) -> dict[str, Path]:
    """Copy each clip once (threads: the work is I/O and hashing, both release the GIL).

    A clip the manifest lists is reused only when its source still hashes to the recorded sha256 and
    the written copy is intact (unchanged since written, or hashing to the same sha256); a source
    fixed in place with the same size is therefore copied again.
    """
    placed = {name: split_dir / file_names[name] for name in refs}

    def place(name: str) -> tuple[str, str, bool]:
        ref, destination = refs[name], placed[name]
        entry = manifest.clips.get(name)
        if entry and entry.get("file_name") == file_names[name] and _is_plain_file(destination):
            digest = ref.sha256()
            if digest == entry.get("sha256") and _copy_intact(destination, entry, digest):
                return name, digest, True
        return name, ref.copy_to(destination), False

    bar = tqdm(total=len(refs), desc="copy clips", unit="clip", disable=not progress or not refs)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for done, (name, digest, reused) in enumerate(pool.map(place, sorted(refs)), start=1):
                stat = placed[name].stat()
                entry = dict(manifest.clips.get(name, {})) if reused else {}
                entry.update(
                    file_name=file_names[name],
                    sha256=digest,
                    source_size=refs[name].size,
                    source=refs[name].location,
                    written=[stat.st_size, stat.st_mtime_ns],
                )
                manifest.record(name, entry)
                if reused:
                    report.clips_reused += 1
                else:
                    report.clips_written += 1
                bar.update()
                if done % MANIFEST_FLUSH_EVERY == 0:
                    manifest.flush()
    finally:
        # Whatever happened, record the clips that are fully written, so a re-run skips them.
        bar.close()
        manifest.flush()
    for directory in {p.parent for p in placed.values()}:
        count = sum(1 for _ in directory.glob("*.mp4"))
        if count > MAX_CLIPS_PER_FOLDER:
            raise VideoKRError(
                f"{directory}: {count} clips exceeds the {MAX_CLIPS_PER_FOLDER} per-folder cap"
            )
    return placed


def _is_plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _copy_intact(destination: Path, entry: dict[str, Any], digest: str) -> bool:
    """Whether the written copy still holds the bytes the manifest recorded for it."""
    stat = destination.stat()
    if entry.get("written") == [stat.st_size, stat.st_mtime_ns]:
        return True  # untouched since this tool wrote it
    return _file_sha256(destination) == digest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _drop_overlaps(
    others: Iterable[Path],
    manifest: _Manifest,
    rows_by_clip: dict[str, list[Record]],
    report: BuildReport,
) -> None:
    """Keep out rows whose clip another built dataset already has (same video id or same sha256)."""
    for other in others:
        theirs = load_clip_hashes(Path(other))
        their_keys = {clip_key(n): n for n in theirs}
        their_hashes = {h: n for n, h in theirs.items()}
        for name in sorted(rows_by_clip):
            match = their_keys.get(clip_key(name)) or their_hashes.get(manifest.clips[name]["sha256"])
            if match is None:
                continue
            ids = [r.id for r in rows_by_clip.pop(name)]
            how = "same video id" if clip_key(match) == clip_key(name) else "same bytes (sha256)"
            report.problems.append(Problem("overlap", f"{name}: also in {other} as {match} ({how})", ids))


def _check_clips(
    placed: dict[str, Path],
    rows_by_clip: dict[str, list[Record]],
    manifest: _Manifest,
    report: BuildReport,
    workers: int,
    progress: bool,
    verify: bool,
    packed: dict[str, str],
) -> dict[str, float]:
    """Probe every new clip (duration; a corrupt container is caught); `verify` decodes all of them.

    Durations are kept in the manifest, so an incremental re-run probes only clips it copied anew;
    clips reused inside their shard are not in `placed` and keep their recorded duration. With `verify`
    those (`packed`: name → ``zip://member::shard``) are probed and decoded from the shard itself, one at
    a time through a temporary file: the bytes that are published, never copied out again.
    """
    names = [n for n in sorted(rows_by_clip) if n in placed]
    by_path = {str(placed[n]): n for n in names}
    unprobed = [
        p
        for p, n in by_path.items()
        if manifest.clips[n].get("duration_s") is None or manifest.clips[n].get("checked") != PROBE_CHECKS
    ]
    broken: dict[str, str] = {}
    pool = ProcessPoolExecutor(workers, initializer=_die_with_parent, initargs=(os.getpid(),))
    with pool:
        results = pool.map(_probe_clip, unprobed, chunksize=16)
        for path, duration, error in tqdm(
            results,
            total=len(unprobed),
            desc="probe clips",
            unit="clip",
            disable=not progress or not unprobed,
        ):
            if error is not None:
                broken[by_path[path]] = error
            else:
                name = by_path[path]
                manifest.record(
                    name, {**manifest.clips[name], "duration_s": duration, "checked": PROBE_CHECKS}
                )
        if verify:
            healthy = [p for p, n in by_path.items() if n not in broken]
            by_path |= {url: name for name, url in packed.items()}
            results = itertools.chain(
                pool.map(_verify_decode, healthy, chunksize=4),
                pool.map(_verify_packed, sorted(packed.values()), chunksize=4),
            )
            total = len(healthy) + len(packed)
            bar = tqdm(results, total=total, desc="decode clips", unit="clip", disable=not progress)
            for path, error in bar:
                if error is not None:
                    broken[by_path[path]] = error
    for name, error in sorted(broken.items()):
        ids = [r.id for r in rows_by_clip.pop(name)]
        report.problems.append(Problem("corrupt_clip", f"{name}: does not decode: {error}", ids))
        if name in placed:
            placed[name].unlink(missing_ok=True)
        manifest.forget(name)  # a clip packed in a shard leaves it when the shard is rewritten
    return {n: manifest.clips[n].get("duration_s") for n in rows_by_clip}


def _stage_clips(
    refs: dict[str, ClipRef],
    members: dict[str, str],
    out: Path,
    split_dir: Path,
    manifest: _Manifest,
    report: BuildReport,
    workers: int,
    progress: bool,
) -> dict[str, Path]:
    """Sharded layout: copy each clip that is not already in an intact shard to the staging folder.

    A clip is reused, not copied, when its source still hashes to the recorded sha256 and its shard is
    the file the manifest recorded (same size and modification time: the archive is only ever written
    whole, by this tool). Returns the staged copies (the clips to probe and to pack); `--verify` checks
    the reused ones inside their shard (`_check_clips`).
    """
    staging = out / STAGING_DIR
    shards = manifest.data.setdefault("shards", {})

    def intact(shard: str | None) -> bool:
        state = shards.get(shard or "")
        path = split_dir / (shard or "")
        return bool(state) and _is_plain_file(path) and state.get("written") == _stamp(path)

    staged: dict[str, Path] = {}

    def place(name: str) -> tuple[str, str, bool]:
        ref, entry = refs[name], manifest.clips.get(name) or {}
        if entry.get("member") == members[name] and intact(entry.get("shard")):
            digest = ref.sha256()
            if digest == entry.get("sha256"):
                return name, digest, True
        return name, ref.copy_to(staging / members[name]), False

    bar = tqdm(total=len(refs), desc="stage clips", unit="clip", disable=not progress or not refs)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for done, (name, digest, reused) in enumerate(pool.map(place, sorted(refs)), start=1):
                previous = manifest.clips.get(name) or {}
                entry = {
                    "member": members[name],
                    "sha256": digest,
                    "source_size": refs[name].size,
                    "source": refs[name].location,
                }
                if reused:
                    entry |= {k: previous[k] for k in ("shard", "duration_s", "checked") if k in previous}
                    report.clips_reused += 1
                else:
                    # keep the shard a changed clip had, so only that shard is rewritten
                    if previous.get("shard") in shards:
                        entry["shard"] = previous["shard"]
                    staged[name] = staging / members[name]
                    report.clips_written += 1
                manifest.record(name, entry)
                bar.update()
                if done % MANIFEST_FLUSH_EVERY == 0:
                    manifest.flush()
    finally:
        bar.close()
        manifest.flush()
    return staged


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _write_shards(
    rows_by_clip: dict[str, list[Record]],
    rows: list[dict[str, Any]],
    members: dict[str, str],
    staged: dict[str, Path],
    split_dir: Path,
    manifest: _Manifest,
    features: datasets.Features,
    workers: int,
    progress: bool,
) -> list[str]:
    """Pack clips and rows into shards, writing only shards whose content changed; returns those.

    Kept clips stay in their shard (`shards.assign_shards`); a shard is rewritten when a clip of it was
    added, removed or changed, or one of its rows changed (its fingerprint differs) or the file is not
    the one recorded. Clips it keeps are copied from the old archive, new ones from staging.
    """
    states: dict[str, dict[str, Any]] = manifest.data.setdefault("shards", {})
    previous = {
        name: entry["shard"]
        for name, entry in manifest.clips.items()
        if name in rows_by_clip and entry.get("shard") in states
    }
    sizes = {name: manifest.clips[name]["source_size"] for name in rows_by_clip}
    limits = {"max_bytes": shard_layout.MAX_SHARD_BYTES, "max_clips": shard_layout.MAX_SHARD_CLIPS}
    assignment = assign_shards(sizes, previous, **limits)
    clips_of: dict[str, list[str]] = defaultdict(list)
    for name, shard in assignment.items():
        clips_of[shard].append(name)
    clip_of_member = {members[name]: name for name in rows_by_clip}
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        rows_of[assignment[clip_of_member[row["file_name"]]]].append(row)

    def plan(shard: str) -> tuple[str, ShardContent, str] | None:
        names = sorted(clips_of[shard])
        table = metadata_table(rows_of[shard], features)
        fingerprint = shard_fingerprint({members[n]: manifest.clips[n]["sha256"] for n in names}, table)
        state, path = states.get(shard), split_dir / shard
        unchanged = state and state.get("fingerprint") == fingerprint and _is_plain_file(path)
        if unchanged and state.get("written") == _stamp(path):  # type: ignore[union-attr]
            return None
        openers = {
            members[n]: (partial(staged[n].open, "rb") if n in staged else member_opener(path, members[n]))
            for n in names
        }
        return shard, ShardContent(openers, table), fingerprint  # type: ignore[arg-type]

    plans = [p for p in (plan(shard) for shard in sorted(clips_of)) if p is not None]

    def write(item: tuple[str, ShardContent, str]) -> str:
        write_shard(split_dir / item[0], item[1])
        return item[0]

    fingerprints = {shard: fingerprint for shard, _, fingerprint in plans}
    bar = tqdm(total=len(plans), desc="write shards", unit="shard", disable=not progress or not plans)
    try:
        with ThreadPoolExecutor(max(1, min(workers, len(plans)))) as pool:
            for shard in pool.map(write, plans):
                states[shard] = {
                    "fingerprint": fingerprints[shard],
                    "written": _stamp(split_dir / shard),
                    "clips": len(clips_of[shard]),
                    "rows": len(rows_of[shard]),
                }
                for name in clips_of[shard]:
                    if manifest.clips[name].get("shard") != shard:
                        manifest.record(name, {**manifest.clips[name], "shard": shard})
                bar.update()
                manifest.flush()
    finally:
        bar.close()
    _remove_shards(split_dir, manifest, keep=set(clips_of))
    return [f"{split_dir.name}/{shard}" for shard in sorted(fingerprints)]


def _remove_shards(split_dir: Path, manifest: _Manifest, keep: set[str]) -> None:
    """Delete shards this tool wrote that no clip uses any more, and leftover partial shards."""
    states: dict[str, Any] = manifest.data.setdefault("shards", {})
    for shard in sorted(set(states) - keep):
        (split_dir / shard).unlink(missing_ok=True)
        del states[shard]
    for shard in keep | set(states):
        (split_dir / f"{shard}.partial").unlink(missing_ok=True)


def _remove_stale_clips(split_dir: Path, keep: set[str], owned: set[str]) -> None:
    """Delete clips this tool wrote that no row uses any more, and its leftover partial files.

    Only names in `owned` (files an earlier or this build wrote, per the manifest) are touched: a file
    the tool did not write is never deleted, wherever it lies.
    """
    for name in owned:
        parts = Path(name).parts
        if not parts or parts[0] != "videos" or ".." in parts or Path(name).is_absolute():
            continue  # not a clip path this tool writes: leave it alone
        if name not in keep:
            (split_dir / name).unlink(missing_ok=True)
        (split_dir / f"{name}.partial").unlink(missing_ok=True)


def check_repo(out: Path, kind: Kind, *, shards: list[str] | None = None) -> None:
    """Prove a built folder: `load_dataset`, normal and streaming, gives the record and videos decode.

    A loose folder is loaded whole. For a sharded one, `shards` (paths relative to `out`) are the shards
    this build wrote: each is checked structurally (`shards.shard_problem`: every clip its rows name is
    in it), the first and last of them are loaded with `load_dataset` (features, first and last video
    decoded), and the whole folder is streamed to its first row, so the check costs what changed, and a
    rebuild that changed nothing checks in seconds. Uses a throw-away cache, so checking never leaves
    Arrow files in the user's cache.
    """
    import tempfile

    validate_croissant(out / "croissant.json")
    expected = record_features(kind)
    for shard in shards or []:
        problem = shard_problem(out / shard)
        if problem is not None:
            raise VideoKRError(f"{out / shard}: {problem}")
    with tempfile.TemporaryDirectory(prefix="videokr-check-") as cache:
        split = None
        if shards is None or shards:
            files = {Path(shards[0]).parent.name: sorted({shards[0], shards[-1]})} if shards else None
            dataset = datasets.load_dataset(str(out), data_files=files, cache_dir=cache)
            if len(dataset) != 1:
                raise VideoKRError(f"{out}: expected one split, load_dataset gave {list(dataset)}")
            split = next(iter(dataset.values()))
            if split.features != expected:
                raise VideoKRError(
                    f"{out}: load_dataset features differ from the record:\n{split.features}\n!=\n{expected}"
                )
            for index in sorted({0, len(split) - 1} if len(split) else set()):
                _decode_one(out, split[index])
        streamed = next(iter(datasets.load_dataset(str(out), streaming=True).values()))
        if streamed.features != expected:
            raise VideoKRError(f"{out}: streaming features differ from the record:\n{streamed.features}")
        first = next(iter(streamed), None)
        whole = shards is None and split is not None and len(split)
        if whole and (first is None or first["id"] != split[0]["id"]):  # type: ignore[index]
            raise VideoKRError(f"{out}: streaming gives a different first row than load_dataset")
        if first is not None:
            _decode_one(out, first)


def _decode_one(out: Path, row: dict[str, Any]) -> None:
    decoder = row["video"]
    try:
        frame = decoder.get_frame_at(decoder.metadata.num_frames - 1)
    except Exception as exc:
        raise VideoKRError(
            f"{out}: the video of row {row['id']} does not decode through datasets: {exc}"
        ) from exc
    if frame.data.numel() == 0:
        raise VideoKRError(f"{out}: the video of row {row['id']} decoded to an empty frame")
