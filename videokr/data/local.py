"""Loading a built dataset *folder* with `datasets` without getting another folder's rows.

`datasets` (5.2) keys the cache of a local folder by the folder's base name and its card's YAML: not by
where the folder is, nor by what its files hold. Two folders named ``sft`` (a demo run and a real build, a
copy elsewhere), or one folder rebuilt in place with other rows, can share one cache entry, and
``load_dataset(folder)`` silently returns the rows, and absolute clip paths, of whichever was prepared
first. Measured: a folder of 45 rows rebuilt in place with 40 still loads 45. (Our cards carry the data's
byte size, which separates most rebuilds; a moved folder still gets the old place's clip paths.)

`load_local` gives each folder state its own cache directory (keyed by the real path and the size and
modification time of the card and metadata files, or shards), so a changed or different folder is
prepared afresh.
`refresh_shared_cache` is for code that calls ``load_dataset(folder)`` itself with the default cache
(lighteval): it prepares the folder again into that shared entry right before.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from videokr.data.shards import SHARD_GLOB

if TYPE_CHECKING:
    import datasets

__all__ = ["cache_dir_for", "load_local", "paths_view", "refresh_shared_cache"]


def cache_dir_for(folder: str | os.PathLike[str]) -> str:
    """A datasets cache directory of this folder's current state."""
    import datasets

    root = os.path.realpath(folder)
    files = [Path(root, "README.md"), *sorted(Path(root).glob("*/metadata.parquet"))]
    files += sorted(Path(root).glob(f"*/{SHARD_GLOB}"))  # a sharded split's rows live in its shards
    stats = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    key = hashlib.sha256(json.dumps([root, stats]).encode()).hexdigest()[:16]
    return os.path.join(datasets.config.HF_DATASETS_CACHE, "videokr-local", key)


def load_local(
    folder: str | os.PathLike[str], split: str | None = None
) -> datasets.Dataset | datasets.DatasetDict:
    """``load_dataset(folder, split=split)`` through the folder's own cache directory."""
    import datasets

    return datasets.load_dataset(os.fspath(folder), split=split, cache_dir=cache_dir_for(folder))


def paths_view(location: str | os.PathLike[str], split: str) -> str:
    """A folder holding `location`'s `split` with each row's clip as its file path, for code that loads
    the rows itself with a plain ``load_dataset`` (lighteval), returned as the path to give it.

    Two reasons. A ``Video`` column is decoded when a row is read, so building the rows opens every clip:
    one unreadable clip stops the whole run there, before the model could report that one item (paths
    leave the decoding to `videokr.vision`, which reports it). And the view is keyed by the source
    folder's state (`cache_dir_for`), so a rebuilt or moved folder gets its own rows and clip paths, not
    the shared cache entry of another folder of the same name. A Hub id is loaded once through the
    datasets cache; its clips are the cached files.
    """
    import datasets

    folder = os.path.expanduser(location)
    if os.path.isdir(folder):
        dataset = load_local(folder, split)
        root = Path(cache_dir_for(folder))
    else:
        dataset = datasets.load_dataset(os.fspath(location), split=split)
        key = hashlib.sha256(f"{location}:{dataset._fingerprint}".encode()).hexdigest()[:16]
        root = Path(datasets.config.HF_DATASETS_CACHE, "videokr-hub", key)
    view = root / "paths-view"
    target = view / "data" / f"{split}-00000-of-00001.parquet"
    if not target.is_file():
        dataset = dataset.cast_column("video", datasets.Video(decode=False))
        dataset = dataset.map(
            lambda video: {"video_path": (video or {}).get("path")},
            input_columns="video",
            remove_columns="video",
        ).rename_column("video_path", "video")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        dataset.to_parquet(str(partial))
        partial.replace(target)
    return str(view)


def refresh_shared_cache(location: str | os.PathLike[str]) -> None:
    """When `location` is a local folder, prepare it again into the default cache entry that a plain
    ``load_dataset(folder)`` reads; a Hub id is left alone (its cache is keyed by revision)."""
    import datasets

    folder = os.path.expanduser(location)
    if os.path.isdir(folder):
        datasets.load_dataset(folder, download_mode="force_redownload", verification_mode="no_checks")
