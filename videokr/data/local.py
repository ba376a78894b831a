"""Loading a built dataset *folder* with `datasets` without getting another folder's rows.

`datasets` (5.2) keys the cache of a local folder by the folder's base name and its card's YAML: not by
where the folder is, nor by what its files hold. Two folders named ``sft`` (a demo run and a real build, a
copy elsewhere), or one folder rebuilt in place with other rows, can share one cache entry, and
``load_dataset(folder)`` silently returns the rows, and absolute clip paths, of whichever was prepared
first. Measured: a folder of 45 rows rebuilt in place with 40 still loads 45. (Our cards carry the data's
byte size, which separates most rebuilds; a moved folder still gets the old place's clip paths.)

`load_local` gives each folder state its own cache directory (keyed by the real path and the size and
modification time of the card and metadata files), so a changed or different folder is prepared afresh.
`refresh_shared_cache` is for code that calls ``load_dataset(folder)`` itself with the default cache
(lighteval): it prepares the folder again into that shared entry right before.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

__all__ = ["cache_dir_for", "load_local", "refresh_shared_cache"]


def cache_dir_for(folder: str | os.PathLike[str]) -> str:
    """A datasets cache directory of this folder's current state."""
    import datasets

    root = os.path.realpath(folder)
    files = [Path(root, "README.md"), *sorted(Path(root).glob("*/metadata.parquet"))]
    stats = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    key = hashlib.sha256(json.dumps([root, stats]).encode()).hexdigest()[:16]
    return os.path.join(datasets.config.HF_DATASETS_CACHE, "videokr-local", key)


def load_local(
    folder: str | os.PathLike[str], split: str | None = None
) -> datasets.Dataset | datasets.DatasetDict:
    """``load_dataset(folder, split=split)`` through the folder's own cache directory."""
    import datasets

    return datasets.load_dataset(os.fspath(folder), split=split, cache_dir=cache_dir_for(folder))


def refresh_shared_cache(location: str | os.PathLike[str]) -> None:
    """When `location` is a local folder, prepare it again into the default cache entry that a plain
    ``load_dataset(folder)`` reads; a Hub id is left alone (its cache is keyed by revision)."""
    import datasets

    folder = os.path.expanduser(location)
    if os.path.isdir(folder):
        datasets.load_dataset(folder, download_mode="force_redownload", verification_mode="no_checks")
