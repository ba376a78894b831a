"""`ShardedVideoFolder`: the videofolder builder with one stream shard per metadata file, in a fixed order.

``datasets`` 5.2 collects the metadata files found inside archives in a ``set``: their order then follows
string hashing, which differs between processes (PYTHONHASHSEED), and a set is not a list, so a split of
ZIP shards streams as one single shard. Processes and dataloader workers could then neither take shards
of their own nor agree on an order. Sorting them into a list fixes both: a sharded split streams as one
shard per ZIP shard, the same in every process.

This module holds the class alone on purpose: in streaming mode ``datasets`` rewrites the ``os.path``
and ``open`` of a builder's module to its remote-aware versions, which must not touch other code.
"""

from __future__ import annotations

from typing import Any

from datasets.packaged_modules.videofolder.videofolder import VideoFolder

__all__ = ["ShardedVideoFolder"]


class ShardedVideoFolder(VideoFolder):
    def _split_generators(self, dl_manager: Any) -> list[Any]:
        generators = super()._split_generators(dl_manager)
        for generator in generators:
            found = generator.gen_kwargs["metadata_files"]
            generator.gen_kwargs["metadata_files"] = sorted(found, key=lambda item: str(item[-1]))
        return generators
