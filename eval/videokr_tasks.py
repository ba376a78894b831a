"""lighteval custom-task file for VideoKR-Eval and its shortcut probes.

    python -m videokr.evaluation.lighteval_cli custom "model_name=Qwen/Qwen2.5-VL-7B-Instruct" \
        eval/videokr_model.py "videokr_eval|0,videokr_eval_single_frame|0,videokr_eval_text_only|0" \
        --custom-tasks eval/videokr_tasks.py --output-dir results

That is lighteval's own ``custom`` command, with the same arguments as ``lighteval custom …``; run through
this module it also works offline, where the ``lighteval`` executable fails before it reads these files
(its task registry downloads a file when imported; see eval/README.md).

Tasks: ``videokr_eval`` (full video), ``videokr_eval_single_frame`` (one seeded random frame, three
trials), ``videokr_eval_text_only`` (no visual input) and one task per source benchmark
(``videokr_eval_mmvu``, ``videokr_eval_videommmu``, ``videokr_eval_scivideobench``). The dataset is
``$VIDEOKR_EVAL_DATASET`` (a Hub repo id or a folder written by ``videokr build eval``). The prompt
function, the metric and the task definitions live in `videokr.evaluation.tasks`; see eval/README.md.
"""

from videokr.evaluation.tasks import TASKS_TABLE, videokr_prompt

__all__ = ["TASKS_TABLE", "videokr_prompt"]
