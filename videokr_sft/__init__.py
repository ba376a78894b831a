"""VideoKR-SFT-201K: chain-of-thought supervised fine-tuning data (one rationale per question)."""

from videokr.data.builder import ReleaseBuilder
from videokr.data.card import DatasetSpec

SPEC = DatasetSpec(
    kind="sft",
    name="VideoKR-SFT-201K",
    split="train",
    pretty_name="VideoKR-SFT-201K",
    summary=(
        "Supervised fine-tuning split of VideoKR: knowledge- and reasoning-intensive questions about "
        "CC-licensed expert-domain videos, each with a rationale (`think`) and a final answer."
    ),
    description=(
        "Each row is one question about one clip. Questions exercise three skills: basic video reasoning "
        "(VidR), knowledge-enhanced video perception (KnowVid) and knowledge-intensive video reasoning "
        "(KnowVidR). The rationale was re-derived by a model from the question and the frames and kept only "
        "when it reached the generated answer (self-consistency), then checked step by step. The paper "
        "trains one SFT epoch on this split before GRPO on VideoKR-RL-114K; no clip appears in both."
    ),
)


class VideoKRSFT(ReleaseBuilder):
    """Arrow builder over `VideoKR-COT-201K.jsonl` and its clip archives."""

    SPEC = SPEC
