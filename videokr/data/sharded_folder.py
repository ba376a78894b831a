"""`ShardedVideoFolder`: the videofolder builder that reads a sharded split without listing its archives.

Two things in ``datasets`` 5.2's folder builder cost a sharded split (`videokr.data.shards`) dearly:

* **The listing.** Before the first row, ``_split_generators`` walks every member of every archive, to
  find metadata files and infer labels, calling (in streaming) the URL-aware ``os.path`` helpers a few
  times per member. At the full SFT set's 85,934 clips in 18 shards a plain streamed ``load_dataset``
  waits 16.4 s for its first row on an idle machine; this builder, 2.8 s (`bench/build.py`). A shard's
  layout is ours and fixed, one ``metadata.parquet`` at its root, so when every file of a split is a
  shard and the features are known (the card gives them), the metadata files are named directly and
  nothing is listed. Anything else takes the upstream path.
* **The order.** It collects the metadata files found inside archives in a ``set``: their order then
  follows string hashing, which differs between processes (PYTHONHASHSEED), and a set is not a list, so
  a split of ZIP shards streams as one single shard. Processes and dataloader workers could then neither
  take shards of their own nor agree on an order. Both paths here give a list sorted by shard: one stream
  shard per ZIP shard, the same in every process.

This module holds the class alone on purpose: in streaming mode ``datasets`` rewrites the ``os.path``
and ``open`` of a builder's module to its remote-aware versions (so the ``os.path.join`` below builds
``zip://metadata.parquet::<shard URL>``), which must not touch other code.
"""

from __future__ import annotations

import os
from typing import Any

import datasets
from datasets.packaged_modules.videofolder.videofolder import VideoFolder

from videokr.data.shards import METADATA_MEMBER, shard_index

__all__ = ["ShardedVideoFolder"]


def _is_shard(path: Any) -> bool:
    try:
        shard_index(os.path.basename(str(path)))
    except ValueError:
        return False
    return True


class ShardedVideoFolder(VideoFolder):
    def _split_generators(self, dl_manager: Any) -> list[Any]:
        data_files = self.config.data_files or {}
        known = self.config.features is not None and not self.config.drop_metadata
        sharded = bool(data_files) and all(
            files and all(map(_is_shard, files)) for files in data_files.values()
        )
        if known and sharded:
            return [self._shard_split(dl_manager, split, files) for split, files in data_files.items()]
        generators = super()._split_generators(dl_manager)
        for generator in generators:
            found = generator.gen_kwargs["metadata_files"]
            generator.gen_kwargs["metadata_files"] = sorted(found, key=lambda item: str(item[-1]))
        return generators

    def _shard_split(self, dl_manager: Any, split: str, files: list[Any]) -> datasets.SplitGenerator:
        """One split of ZIP shards: each shard's ``metadata.parquet``, in shard order, unlisted."""
        dl_manager.download_config.extract_on_the_fly = True
        archives = sorted(files, key=lambda path: shard_index(os.path.basename(str(path))))
        folders = dl_manager.download_and_extract(archives)
        metadata = [(None, folder, os.path.join(folder, METADATA_MEMBER)) for folder in folders]
        return datasets.SplitGenerator(
            name=split,
            gen_kwargs={"files": (), "metadata_files": metadata, "add_labels": False, "add_metadata": True},
        )
