"""VideoKR-Eval accuracy as an `evaluate` metric: the official scorer and the robust reading, per call.

    import evaluate
    metric = evaluate.load("eval/videokr_metric")          # a local folder: works offline
    metric.compute(predictions=outputs, references=answers, problem_types=types, options=options)

Returns ``acc_official`` (the paper's rule-mode scorer, `videokr.evaluation.official`: multiple choice
only, open-ended items skipped and counted in ``official_skipped``), ``acc`` (the robust reading,
`videokr.evaluation.answers`, over the same multiple-choice items), ``open_rouge`` (mean ROUGE-1/2/L F1
of the open-ended answers, the paper's reward rule) and the item counts. The judge and the bootstrap
intervals are the lighteval task's (`videokr eval`); this module is for scoring outputs you already have.

The folder is a Hub metric repository as it stands (`evaluate.push_to_hub`, or upload the folder to a
Space); it needs the ``videokr`` package installed.
"""

from __future__ import annotations

import datasets
import evaluate

from videokr.data.answer_format import is_multiple_choice
from videokr.evaluation.answers import score_prediction
from videokr.evaluation.official import official_mc_correct

_CITATION = """@misc{fu2026videokrknowledgereasoningintensivevideo,
      title={VideoKR: Towards Knowledge- and Reasoning-Intensive Video Understanding},
      author={Lin Fu and Zheyuan Yang and Yang Wang and Tingyu Song and Arman Cohan and Yilun Zhao},
      year={2026},
      eprint={2606.05259},
      archivePrefix={arXiv},
}"""

_INPUTS = """
Args:
    predictions: the model outputs, raw (reasoning and tags included).
    references: the ground truths: a letter for multiple choice (tags allowed), the text for open-ended.
    problem_types: "multiple choice" or "open-ended" per item (other official spellings accepted).
    options: the option texts per item, in letter order (empty for open-ended).
Returns:
    acc_official, acc, open_rouge (None without open-ended items), n_items, n_multiple_choice,
    official_skipped.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _INPUTS)
class VideokrMetric(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "problem_types": datasets.Value("string"),
                    "options": datasets.Sequence(datasets.Value("string")),
                }
            ),
            codebase_urls=["https://arxiv.org/abs/2606.05259"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        problem_types: list[str],
        options: list[list[str]],
    ) -> dict[str, float | int | None]:
        official, robust, rouge = [], [], []
        for output, answer, kind, choices in zip(
            predictions, references, problem_types, options, strict=True
        ):
            scored = score_prediction(output, answer, kind, choices)
            if is_multiple_choice(kind, choices):
                official.append(official_mc_correct(output, answer))
                robust.append(scored.correct)
            else:
                rouge.append(scored.score)
        mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
        return {
            "acc_official": mean(official),
            "acc": mean(robust),
            "open_rouge": mean(rouge),
            "n_items": len(predictions),
            "n_multiple_choice": len(official),
            "official_skipped": len(rouge),
        }
