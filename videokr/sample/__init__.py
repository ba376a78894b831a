"""The embedded sample corpus: procedurally rendered CC0 clips with questions whose answers are known.

`generate_sample_corpus` writes it in the official release layout (`VideoKR-Train/` with SFT and RL JSONL
and clips in tars, one of them split; `VideoKR-Eval/` with its JSONL and loose clips), so the dataset
builders, the tests and a new user all exercise the same code paths the real release does, offline and
in seconds. `real_clips` gives the two small real, freely licensed clips that ship with the package.
`generate_learning_corpus` writes a corpus in the same layout that a tiny model can learn from, each row
labelled with what answering it needs (``needs``: text, one frame, or several frames).
"""

from __future__ import annotations

from videokr.sample.corpus import EVAL_DIR, TRAIN_DIR, SampleCorpus, generate_sample_corpus, sample_command
from videokr.sample.learning import LearningCorpus, generate_learning_corpus
from videokr.sample.real import RealClip, real_clips

__all__ = [
    "EVAL_DIR",
    "TRAIN_DIR",
    "LearningCorpus",
    "RealClip",
    "SampleCorpus",
    "generate_learning_corpus",
    "generate_sample_corpus",
    "real_clips",
    "sample_command",
]
