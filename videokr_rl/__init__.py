"""VideoKR-RL-114K: verifiable questions for GRPO (answer letters or short reference texts)."""

from videokr.data.builder import ReleaseBuilder
from videokr.data.card import DatasetSpec

SPEC = DatasetSpec(
    kind="rl",
    name="VideoKR-RL-114K",
    split="train",
    pretty_name="VideoKR-RL-114K",
    summary=(
        "Reinforcement-learning split of VideoKR: knowledge- and reasoning-intensive video questions with "
        "verifiable answers, for GRPO with the paper's accuracy + format reward."
    ),
    description=(
        "Each row is one question about one clip, with a multiple-choice letter or a short open-ended "
        "reference answer scored by ROUGE. The clips are disjoint from VideoKR-SFT-201K and from "
        "VideoKR-Eval. The paper runs one GRPO epoch on this split after SFT (group 8, KL 0.01)."
    ),
)


class VideoKRRL(ReleaseBuilder):
    """Arrow builder over `VideoKR-RL-114K.jsonl` and its clip archives."""

    SPEC = SPEC
