"""Reading the official release as it is published: JSONL files plus clips in tars, split tars or folders.

The release keeps 145K clips in `Videos/*.tar` archives, some split into `*.tar.part.aa`, `.ab`, …
byte chunks, while rows name clips as `videos_0007/xxx.mp4`. Users today join and unpack everything by
hand. `ClipStore` instead indexes the archives where they lie (a split archive is read through one
seekable view of its parts, never joined on disk) and serves each clip by its row path, so a builder
copies exactly the clips its rows use, once each.

A row always gets exactly the clip its path names. Where two different clips answer one path (the same
member name in two archives, or an archive and an extracted folder that disagree), `resolve` refuses
to pick one and raises `AmbiguousClipError`; identical copies are fine and the first is served. A
split archive with a part missing, or an archive damaged in the middle, is an error naming the part or
the byte offset, never a silently shorter list of clips.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from videokr.atomic import atomic_path
from videokr.errors import VideoKRError

RELEASE_FILES = {
    "sft": "VideoKR-COT-201K.jsonl",
    "rl": "VideoKR-RL-114K.jsonl",
    "eval": "VideoKR_eval.jsonl",
}
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".m4v")
#: The suffixes the official evaluation loader tries on a row's path, in its order ("": as given).
OFFICIAL_SUFFIXES = ("", ".mp4", ".MP4", ".mkv", ".avi", ".mov")
_PART = re.compile(r"^(?P<stem>.+\.tar)\.part\.(?P<suffix>[a-z]+)$")
_COPY_CHUNK = 1 << 20


def find_release_file(source: Path, kind: str) -> Path:
    """The JSONL file of `kind` in `source`: the file itself, or a release folder that holds it.

    Searches the folder and two levels below (a local snapshot of the release repo, or a folder
    holding both `VideoKR-Train/` and `VideoKR-Eval/`). Raises naming what was looked for.
    """
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise VideoKRError(f"{source}: no such file or folder")
    name = RELEASE_FILES[kind]
    for pattern in (name, f"*/{name}", f"*/*/{name}"):
        hits = sorted(source.glob(pattern))
        if len(hits) > 1:
            raise VideoKRError(f"{source}: several {name} files ({', '.join(map(str, hits))}); pass one")
        if hits:
            return hits[0]
    raise VideoKRError(f"{source}: no {name} here or two levels below; pass the file or the release folder")


class ConcatenatedReader(io.RawIOBase):
    """A read-only, seekable view of several files back to back (the parts of a split tar)."""

    def __init__(self, parts: list[Path]) -> None:
        super().__init__()
        self._parts = parts
        self._sizes = [p.stat().st_size for p in parts]
        self._starts = [sum(self._sizes[:i]) for i in range(len(parts))]
        self._length = sum(self._sizes)
        self._position = 0
        self._handles: dict[int, BinaryIO] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._position < self._length:
            index = max(i for i, start in enumerate(self._starts) if start <= self._position)
            handle = self._handles.get(index)
            if handle is None:
                handle = self._handles[index] = self._parts[index].open("rb")
            handle.seek(self._position - self._starts[index])
            want = min(len(view) - written, self._starts[index] + self._sizes[index] - self._position)
            got = handle.readinto(view[written : written + want])
            if not got:
                break
            written += got
            self._position += got
        return written

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        super().close()


@dataclass(frozen=True)
class ClipRef:
    """Where one clip's bytes lie: a loose file, or a byte range inside an archive (possibly split)."""

    name: str
    size: int
    file: Path | None = None
    archive: tuple[Path, ...] = ()
    offset: int = 0

    @property
    def location(self) -> str:
        if self.file is not None:
            return str(self.file)
        return f"{self.archive[0].name if len(self.archive) == 1 else self.archive[0].name + '…'}:{self.name}"

    def open(self) -> BinaryIO:
        """A binary stream of exactly this clip's bytes."""
        if self.file is not None:
            return self.file.open("rb")
        raw: io.RawIOBase = ConcatenatedReader(list(self.archive))
        raw.seek(self.offset)
        return io.BufferedReader(_Slice(raw, self.size))

    def sha256(self) -> str:
        """The sha256 of the clip's bytes, read without copying them anywhere."""
        digest = hashlib.sha256()
        with self.open() as src:
            while chunk := src.read(_COPY_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def copy_to(self, destination: Path) -> str:
        """Copy the clip to `destination` atomically; returns its sha256 (computed while copying)."""
        digest = hashlib.sha256()
        with atomic_path(destination) as tmp, self.open() as src, tmp.open("wb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        return digest.hexdigest()


class _Slice(io.RawIOBase):
    """The next `size` bytes of a stream, for copying large archive members without loading them."""

    def __init__(self, raw: io.RawIOBase, size: int) -> None:
        super().__init__()
        self._raw, self._left = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")[: self._left]
        got = self._raw.readinto(view) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._raw.close()
        super().close()


class AmbiguousClipError(VideoKRError):
    """Two clips with different bytes answer one row path: serving either could give a row the wrong clip."""

    def __init__(self, path: str, candidates: list[ClipRef]) -> None:
        self.path = path
        self.candidates = candidates
        where = ", ".join(c.location for c in candidates)
        super().__init__(f"{path}: {len(candidates)} different clips answer this path ({where})")


class ClipStore:
    """Every clip under a release root, found by the path a row gives for it.

    Rows say `videos_0007/x.mp4`; the clip may be a member of `Videos/videos_0007.tar`, of the split
    `Videos/videos_0007.tar.part.aa…`, or a file under the root or `Videos/` once extracted. All are
    indexed up front (tar headers only), so lookups are dictionary hits.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._clips: dict[str, ClipRef] = {}
        self._copies: dict[str, list[ClipRef]] = {}  # further copies of a name (another archive/folder)
        self._digests: dict[ClipRef, str] = {}
        self.archives: list[tuple[Path, ...]] = []
        self._index()

    def __len__(self) -> int:
        return len(self._clips)

    def _index(self) -> None:
        split: dict[Path, list[Path]] = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file():
                continue
            part = _PART.match(path.name)
            if part:
                split.setdefault(path.with_name(part.group("stem")), []).append(path)
            elif path.name.endswith(".tar"):
                self._index_archive((path,))
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                name = path.relative_to(self.root).as_posix()
                self._add(ClipRef(name=name, size=path.stat().st_size, file=path))
        for stem in sorted(split):
            parts = tuple(sorted(split[stem]))
            check_parts_complete(stem, parts)
            self._index_archive(parts)

    def _index_archive(self, parts: tuple[Path, ...]) -> None:
        self.archives.append(parts)
        shown = parts[0] if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"
        try:
            with ConcatenatedReader(list(parts)) as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                length = raw.seek(0, os.SEEK_END)
                if length % tarfile.BLOCKSIZE:
                    raise tarfile.TarError(f"{length} bytes is not a whole number of tar blocks")
                for member in tar:
                    if member.offset_data + member.size > length:
                        raise tarfile.TarError(f"member {member.name} runs past the end of the archive")
                    if member.isfile() and Path(member.name).suffix.lower() in VIDEO_SUFFIXES:
                        name = member.name.removeprefix("./")
                        ref = ClipRef(name=name, size=member.size, archive=parts, offset=member.offset_data)
                        self._add(ref)
                # tarfile stops quietly at a header it cannot read past the first one; a whole archive
                # ends with zero blocks (or the end of the bytes), anything else is damage.
                raw.seek(tar.offset)
                block = raw.read(tarfile.BLOCKSIZE)
                if block.strip(b"\0"):
                    raise tarfile.TarError(
                        f"no valid tar header at byte {tar.offset}: the archive is damaged there"
                    )
        except tarfile.TarError as exc:
            raise VideoKRError(f"{shown}: not a readable tar archive ({exc}); is a part missing?") from exc

    def _add(self, ref: ClipRef) -> None:
        # The first copy is served; further copies (an archive and its extracted folder, two archives
        # holding one name) are kept so `resolve` can tell identical copies from conflicting ones.
        if ref.name in self._clips:
            self._copies.setdefault(ref.name, []).append(ref)
        else:
            self._clips[ref.name] = ref

    def digest(self, ref: ClipRef) -> str:
        """sha256 of a clip's bytes, computed once per store."""
        if ref not in self._digests:
            self._digests[ref] = ref.sha256()
        return self._digests[ref]

    def _distinct(self, refs: list[ClipRef]) -> list[ClipRef]:
        """`refs` with identical byte contents collapsed to the first of each (sizes first, then sha256)."""
        kept: list[ClipRef] = []
        for ref in refs:
            if not any(k.size == ref.size and self.digest(k) == self.digest(ref) for k in kept):
                kept.append(ref)
        return kept

    def resolve(self, path: str) -> ClipRef | None:
        """The clip a row names, trying what the official loaders try, in their order: the path with
        leading ``.`` and ``/`` removed, then without or with ``Videos/`` (the training loaders), each as
        given and then with its suffix replaced by each of `OFFICIAL_SUFFIXES` (the evaluation loader:
        ``x`` finds ``x.mp4``, ``x.avi`` finds ``x.mp4``). A name no spelling finds returns None.

        Every clip that answers the path is considered: the first hit with and without ``Videos/``, and
        every copy of those names. When they do not all hold the same bytes the path is ambiguous and
        `AmbiguousClipError` is raised rather than one of them served."""
        path = path.strip().lstrip("./")
        bases = [path, path.removeprefix("Videos/") if path.startswith("Videos/") else f"Videos/{path}"]
        answers: list[ClipRef] = []
        for base in bases:
            for candidate in _suffix_variants(base):
                ref = self._clips.get(candidate)
                if ref is not None:
                    answers += [ref, *self._copies.get(candidate, [])]
                    break
        if not answers:
            return None
        if len(answers) > 1:
            distinct = self._distinct(answers)
            if len(distinct) > 1:
                raise AmbiguousClipError(path, distinct)
        return answers[0]

    def __iter__(self) -> Iterator[ClipRef]:
        return iter(self._clips.values())


def _suffix_number(suffix: str) -> int:
    value = 0
    for char in suffix:
        value = value * 26 + ord(char) - ord("a")
    return value


def _suffix_name(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 26)
        chars.append(chr(ord("a") + digit))
    return "".join(reversed(chars))


def check_parts_complete(stem: Path, parts: tuple[Path, ...]) -> None:
    """Refuse a split archive whose part names skip one (`.aa, .ac` without `.ab`), naming what is missing.

    `split` names parts `.aa, .ab, …` (GNU split widens the suffix past `.yz`, so only parts of equal
    suffix width are compared). A missing last part cannot be seen from the names; the tar check after
    it catches the archive that then ends mid-member.
    """
    suffixes = [_PART.match(p.name).group("suffix") for p in parts]  # type: ignore[union-attr]
    missing: list[str] = []
    first = suffixes[0]
    missing += [_suffix_name(n, len(first)) for n in range(_suffix_number(first))]
    for previous, current in pairwise(suffixes):
        if len(previous) == len(current):
            gap = range(_suffix_number(previous) + 1, _suffix_number(current))
            missing += [_suffix_name(n, len(current)) for n in gap]
    if missing:
        names = [f"{stem.name}.part.{m}" for m in missing]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise VideoKRError(
            f"{stem.parent}: split archive {stem.name} is missing part {shown} "
            f"(found {', '.join(p.name for p in parts[:3])}{', …' if len(parts) > 3 else ''}); "
            "restore the missing part before building"
        )


def _suffix_variants(name: str) -> Iterator[str]:
    """`name` as given, then with its suffix replaced by each official one (``""`` drops it)."""
    yield name
    pure = PurePosixPath(name)
    for suffix in OFFICIAL_SUFFIXES:
        if pure.name not in ("", ".", ".."):
            yield str(pure.with_suffix(suffix))
