"""A `datasets.GeneratorBasedBuilder` over the release files, shared by the three dataset packages.

`datasets` ≥ 4 no longer runs loading scripts from the Hub, so the published repos are no-code
videofolders (see `videokr.data.hub`). This builder is the library-side twin: instantiated directly on a
local release (or pipeline output) it yields the same canonical rows with a `Video` feature, for
users who want an Arrow dataset without building a repo folder first::

    builder = VideoKRSFT(data_dir="path/to/VideoKR-Train")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")

Clips inside tar archives are extracted once into the builder's cache, only those the rows use.
Rows that fail validation or whose clip is missing raise, naming file, line and id: a builder cannot
return a report, and silently skipping would misstate the dataset (use `videokr build` for a report).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import datasets

from videokr.data.card import DatasetSpec
from videokr.data.records import read_records, record_features
from videokr.data.release import ClipStore, find_release_file
from videokr.errors import VideoKRError


class ReleaseBuilder(datasets.GeneratorBasedBuilder):
    """Subclasses set `SPEC`; `data_dir` is the release folder or the JSONL file."""

    SPEC: ClassVar[DatasetSpec]
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.SPEC.summary,
            features=record_features(self.SPEC.kind),
            citation="arXiv:2606.05259",
            license="apache-2.0",
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        if not self.config.data_dir:
            raise VideoKRError(f"{type(self).__name__}: pass data_dir=<release folder or JSONL file>")
        jsonl = find_release_file(Path(self.config.data_dir), self.SPEC.kind)
        clip_cache = Path(self._cache_dir_root) / "videokr-clips" / self.SPEC.name
        return [
            datasets.SplitGenerator(
                name=self.SPEC.split, gen_kwargs={"jsonl": str(jsonl), "clip_cache": str(clip_cache)}
            )
        ]

    def _generate_examples(self, jsonl: str, clip_cache: str) -> Iterator[tuple[str, dict[str, Any]]]:
        report = read_records(jsonl, self.SPEC.kind, strict=True)
        store = ClipStore(Path(jsonl).parent)
        for record in report.records:
            ref = store.resolve(record.video)
            if ref is None:
                message = f"{jsonl}: id={record.id!r}: clip {record.video} not found under {store.root}"
                raise VideoKRError(message)
            if ref.file is not None:
                path = ref.file
            else:
                path = Path(clip_cache) / ref.name
                if not path.exists() or path.stat().st_size != ref.size:
                    ref.copy_to(path)
            row = {name: value for name, value in record.to_dict().items() if name in self.info.features}
            row["video"] = str(path)
            yield record.id, row
