"""Byte-deterministic tar archives, whole or split into ``.part.aa``, ``.part.ab`` … like ``split -n``.

The release ships clips in tars, the largest split into byte chunks that users join with ``cat``. A
sample corpus must be byte-identical for a seed, so every header field that tar would take from the
file system (time, owner, mode, order) is fixed here instead.
"""

from __future__ import annotations

import io
import json
import math
import string
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from videokr.atomic import write_bytes_atomic
from videokr.data.release import RELEASE_FILES

#: The release's folder of clip archives, under the training root.
VIDEOS_DIR = "Videos"

# 2026-01-01T00:00:00Z: a fixed, plausible modification time for every member.
FIXED_MTIME = 1_767_225_600


def _info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o755 if directory else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A ustar archive of ``(path, data)`` members, sorted by path, each folder listed before its files."""
    files = sorted(members)
    names = [name for name, _ in files]
    if len(set(names)) != len(names):
        raise ValueError("duplicate member names")
    folders = sorted({str(Path(name).parent) for name in names} - {"."})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for folder in folders:
            tar.addfile(_info(folder + "/", directory=True))
        for name, data in files:
            tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
    return buffer.getvalue()


def part_suffixes(count: int) -> list[str]:
    """``aa``, ``ab``, … — the suffixes ``split`` gives its chunks."""
    letters = string.ascii_lowercase
    return [letters[i // 26] + letters[i % 26] for i in range(count)]


def write_archive(path: Path, data: bytes, *, parts: int = 1) -> list[Path]:
    """Write ``data`` as ``path`` or, with ``parts`` > 1, as ``path.part.aa`` … of near-equal size.

    Chunk boundaries fall wherever the byte count says, not on tar blocks, as with ``split``; only the
    concatenation is a tar.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if parts <= 1:
        return [write_bytes_atomic(path, data)]
    chunk = math.ceil(len(data) / parts)
    return [
        write_bytes_atomic(path.with_name(f"{path.name}.part.{suffix}"), data[i * chunk : (i + 1) * chunk])
        for i, suffix in enumerate(part_suffixes(parts))
    ]


def write_release(
    train_root: Path,
    eval_root: Path,
    archives: Mapping[str, list[tuple[str, bytes]]],
    rows: Mapping[str, list[dict[str, Any]]],
    *,
    split_parts: int = 2,
) -> tuple[list[Path], dict[str, Path]]:
    """The training clips as ``Videos/<stem>.tar`` archives (the last stem split into `split_parts`, as
    the release splits its largest) and each kind's rows as its release JSONL (Eval under `eval_root`).
    Returns the archive files written and the JSONL file of each kind."""
    written: list[Path] = []
    last = max(archives) if archives else None
    for stem in sorted(archives):
        parts = split_parts if stem == last else 1
        written += write_archive(
            train_root / VIDEOS_DIR / f"{stem}.tar", tar_bytes(archives[stem]), parts=parts
        )
    files = {kind: (eval_root if kind == "eval" else train_root) / RELEASE_FILES[kind] for kind in rows}
    for kind, kind_rows in rows.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kind_rows)
        write_bytes_atomic(files[kind], text.encode("utf-8"))
    return written, files
