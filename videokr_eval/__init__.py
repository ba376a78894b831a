"""VideoKR-Eval: an expert-annotated benchmark that needs the video, not textual shortcuts."""

from videokr.data.builder import ReleaseBuilder
from videokr.data.card import DatasetSpec

SPEC = DatasetSpec(
    kind="eval",
    name="VideoKR-Eval",
    split="test",
    pretty_name="VideoKR-Eval",
    summary=(
        "VideoKR-Eval: 2,000 knowledge- and reasoning-intensive video questions drawn from VideoMMMU, MMVU "
        "and SciVideoBench, filtered so that no probe model answers them from a single frame."
    ),
    description=(
        "Candidates from the three source benchmarks (`dataset`) were probed by three models, each seeing "
        "the question, the options and one random frame, three times; items some model solved every time "
        "were removed and experts wrote new questions on their videos (`origin` = re-annotated); the rest "
        "are kept as they were (`origin` = retained). Evaluate with the paper's prompts at temperature 0.1."
    ),
)


class VideoKREval(ReleaseBuilder):
    """Arrow builder over `VideoKR_eval.jsonl` and its clips."""

    SPEC = SPEC
