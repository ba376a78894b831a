"""The sharded Hub layout: each split as a few hundred ZIP shards, every shard holding its clips and the
`metadata.parquet` of the rows that use them.

Why this layout. A folder of loose clips costs one file per clip: the real SFT set is 85,934 files, and
`datasets` lists every one of them on each `load_dataset`, even a cached one. Measured with `datasets`
5.2 for the layouts it reads natively:

* WebDataset tars give one sample per file key, so a row is a clip (with its questions as JSON), not a
  question: the record would change shape, or each clip would be stored once per row (2.3x the bytes).
* Parquet with the video bytes in a column stores a clip once per row as well.
* A videofolder whose clips sit in ZIP archives, each with its own `metadata.parquet` inside: rows stay
  one per question, every row names its clip inside the same archive (rows and clips are joined by
  construction), a clip is stored once, and `datasets` reads the members in place (`zip://member::archive`
  paths, normal and streaming; nothing is extracted), over HTTP with range requests.

So a shard is `<split>/shard-NNNNN.zip`: `metadata.parquet` first (row groups of `ROW_GROUP_ROWS`), then
the clips as stored (uncompressed) members `videos/<flattened source path>`. The parquet's `file_name`
is relative to the archive root, exactly what the videofolder loader resolves.

Shards are filled in order and never renumbered: a clip keeps its shard across rebuilds, new clips fill
the last shard and then new ones, so a rebuild rewrites only the shards whose clips or rows changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from videokr.atomic import atomic_path

#: A shard closes at whichever comes first: the Hub handles files of a few GB well, and a few thousand
#: clips per shard keep enough shards for every process and loader worker of a run to stream its own.
MAX_SHARD_BYTES = 2 * 1024**3
MAX_SHARD_CLIPS = 5_000
#: Streaming reads one row group at a time: a few thousand rows keep the first row quick and memory low.
ROW_GROUP_ROWS = 2_000
#: The automatic choice: below both, loose files (one per clip) are simplest to browse and fetch.
LOOSE_MAX_CLIPS = 2_000
LOOSE_MAX_BYTES = 2 * 1024**3
SHARD_GLOB = "shard-*.zip"
METADATA_MEMBER = "metadata.parquet"
_SHARD_NAME = re.compile(r"^shard-(\d{5})\.zip$")
_COPY_CHUNK = 1 << 20


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.zip"


def shard_index(name: str) -> int:
    match = _SHARD_NAME.match(name)
    if match is None:
        raise ValueError(f"{name} is not a shard name")
    return int(match.group(1))


def choose_layout(layout: str, num_clips: int, total_bytes: int) -> str:
    """`auto` becomes `loose` for small datasets and `shards` otherwise; an explicit choice is kept."""
    if layout not in ("auto", "loose", "shards"):
        raise ValueError(f"layout {layout!r}: choose auto, loose or shards")
    if layout != "auto":
        return layout
    return "loose" if num_clips <= LOOSE_MAX_CLIPS and total_bytes <= LOOSE_MAX_BYTES else "shards"


def assign_shards(
    sizes: dict[str, int],
    previous: dict[str, str],
    *,
    max_bytes: int = MAX_SHARD_BYTES,
    max_clips: int = MAX_SHARD_CLIPS,
) -> dict[str, str]:
    """clip name → shard file name. A clip keeps the shard `previous` gave it; new clips (sorted by name)
    fill the last shard up to the limits, then new shards. Shards emptied by removed clips are not reused
    (their numbers stay retired), so no kept clip ever moves."""
    assigned = {name: previous[name] for name in sizes if name in previous}
    load: dict[str, list[int]] = {}
    for name, shard in assigned.items():
        load.setdefault(shard, [0, 0])
        load[shard][0] += sizes[name]
        load[shard][1] += 1
    used = [shard_index(s) for s in set(previous.values())]
    current = max(used) if used else 0
    for name in sorted(n for n in sizes if n not in assigned):
        bytes_, clips = load.setdefault(shard_name(current), [0, 0])
        if clips and (bytes_ + sizes[name] > max_bytes or clips + 1 > max_clips):
            current += 1
            bytes_, clips = load.setdefault(shard_name(current), [0, 0])
        assigned[name] = shard_name(current)
        load[shard_name(current)] = [bytes_ + sizes[name], clips + 1]
    return assigned


def shard_fingerprint(members: dict[str, str], table: pa.Table) -> str:
    """What a shard holds: each member with its clip's sha256, and the rows' bytes. Equal fingerprints
    mean an identical shard, so a rebuild leaves it untouched."""
    digest = hashlib.sha256(json.dumps(sorted(members.items())).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


def metadata_table(rows: list[dict[str, Any]], features: datasets.Features) -> pa.Table:
    """The rows as the videofolder's metadata: `file_name` first, then the record's columns in order."""
    columns = ["file_name"] + [name for name in features if name != "video"]
    schema = datasets.Features(
        {"file_name": datasets.Value("string")} | {c: features[c] for c in columns[1:]}
    ).arrow_schema
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows], schema=schema)


def write_metadata(path: Path, table: pa.Table) -> None:
    """A metadata parquet in row groups of `ROW_GROUP_ROWS`, written atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)


@dataclass(frozen=True)
class ShardContent:
    """What goes into one shard: member name → an opener of its bytes, and the rows."""

    members: dict[str, Callable[[], BinaryIO]]
    table: pa.Table


def write_shard(path: Path, content: ShardContent) -> None:
    """Write the shard atomically: the metadata first (a streaming reader finds the rows at once), then the
    clips, stored uncompressed (video does not compress; stored members are read in place by offset)."""
    buffer = io.BytesIO()
    pq.write_table(content.table, buffer, row_group_size=ROW_GROUP_ROWS)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(_fixed_info(METADATA_MEMBER), buffer.getvalue())
        for member in sorted(content.members):
            with (
                content.members[member]() as source,
                archive.open(_fixed_info(member), "w", force_zip64=True) as dst,
            ):
                while chunk := source.read(_COPY_CHUNK):
                    dst.write(chunk)


def _fixed_info(name: str) -> zipfile.ZipInfo:
    """A member header with a fixed date: the same content gives the same bytes on every build."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def member_opener(archive: Path, member: str) -> Callable[[], BinaryIO]:
    """An opener of one member of an existing shard (used to carry kept clips into a rewritten shard,
    read before the new shard replaces the old one)."""

    def open_member() -> BinaryIO:
        handle = zipfile.ZipFile(archive)
        stream = handle.open(member)
        stream.close = _closing(stream.close, handle.close)  # type: ignore[method-assign]
        return stream  # type: ignore[return-value]

    return open_member


def _closing(*closers: Callable[[], None]) -> Callable[[], None]:
    def close() -> None:
        for closer in closers:
            closer()

    return close


def read_shard_rows(archive: Path, columns: Iterable[str] | None = None) -> pa.Table:
    """The rows of one shard (its inner `metadata.parquet`)."""
    with zipfile.ZipFile(archive) as handle, handle.open(METADATA_MEMBER) as meta:
        return pq.read_table(io.BytesIO(meta.read()), columns=list(columns) if columns else None)


def shard_problem(archive: Path) -> str | None:
    """What is wrong with a shard, or None: it must be a readable ZIP whose `metadata.parquet` names only
    clips the shard holds (cheap: the central directory and one parquet column, no clip is read)."""
    try:
        with zipfile.ZipFile(archive) as handle:
            members = set(handle.namelist())
            with handle.open(METADATA_MEMBER) as meta:
                table = pq.read_table(io.BytesIO(meta.read()), columns=["file_name"])
    except Exception as exc:  # zipfile and pyarrow raise several types for damaged files
        return f"not a readable shard ({exc})"
    missing = sorted(set(table.column("file_name").to_pylist()) - members, key=str)
    if missing:
        return f"its {METADATA_MEMBER} names {len(missing)} clip(s) it does not hold, e.g. {missing[0]}"
    return None
