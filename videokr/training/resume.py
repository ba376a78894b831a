"""Which checkpoint a training run resumes from: the answer `Trainer.train(resume_from_checkpoint=…)` needs.

``transformers`` leaves ``TrainingArguments.resume_from_checkpoint`` to the script: a script that calls
``trainer.train()`` ignores it, starts again from step 0, overwrites the checkpoints and exits 0. Both
training scripts pass `checkpoint_to_resume(training_args)` instead, which reads the option as a user
means it:

* ``true`` (or ``last``): the last *complete* checkpoint in ``output_dir``; none there is an error.
  Complete means its ``trainer_state.json`` was written, which the trainer does after the weights, the
  optimizer, the scheduler and the RNG states: a run killed while saving leaves a newer folder without
  it, and resuming from that one would fail or, worse, load half a state.
* a path: that checkpoint, which must exist and be complete.
* not set: a fresh run, unless ``output_dir`` already holds checkpoints, which a fresh run would silently
  overwrite: that is an error naming the last one and the two ways on.

The trainer then restores the optimizer, scheduler, RNG states and the data position (it skips the
batches already seen), so a resumed run ends where an uninterrupted one does, with one exception that
`load_checkpoint_weights` repairs: the **weights**. transformers 5 saves a Qwen2.5-VL / Qwen3-VL
checkpoint in the released key layout (``model.layers.…``, ``visual.…``; ``save_original_format``), but
``Trainer._load_from_checkpoint`` loads it with a plain ``load_state_dict(strict=False)`` and no key
conversion, so no tensor but ``lm_head`` matches, a "missing keys" warning is logged and training goes
on from the *initial* weights with the restored optimizer: a resumed run that looks fine and is not.
The scripts therefore load the checkpoint's weights into the model themselves, mapping every saved key
to the model's own (the inverse of the conversion `save_pretrained` applied), strictly, before the
trainer starts. (Under DeepSpeed and FSDP the trainer restores the weights from their own sharded
states, which use the model's own names; nothing is repaired there.)
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videokr.errors import VideoKRError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ResumeError",
    "checkpoint_to_resume",
    "complete_checkpoints",
    "load_checkpoint_weights",
    "trainer_restores_weights",
]

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
#: Written by the trainer after everything else a checkpoint holds.
_STATE = "trainer_state.json"
_LAST = {"true", "last", "latest", "yes", "1"}
_NONE = {"", "false", "no", "none", "0"}


class ResumeError(VideoKRError, ValueError):
    """A resume that cannot do what was asked (no checkpoint, a missing path, one that would be lost)."""


def complete_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints in `output_dir`, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / _STATE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def checkpoint_to_resume(training_args: Any) -> str | None:
    """The checkpoint to pass to ``trainer.train``, or None for a fresh run (see the module docstring)."""
    asked = training_args.resume_from_checkpoint
    output_dir = training_args.output_dir
    text = "" if asked is None else str(asked).strip()
    if asked is None or asked is False or (isinstance(asked, str) and text.lower() in _NONE):
        existing = complete_checkpoints(output_dir)
        if existing:
            raise ResumeError(
                f"{output_dir} already holds checkpoints (last: {existing[-1].name}); a fresh run would "
                "overwrite them: pass --resume_from_checkpoint true to continue from the last one, or "
                "choose another --output_dir"
            )
        return None
    if asked is True or text.lower() in _LAST:
        existing = complete_checkpoints(output_dir)
        if not existing:
            raise ResumeError(
                f"--resume_from_checkpoint {text or 'true'}: no complete checkpoint in {output_dir} "
                "(a checkpoint-N folder with trainer_state.json); drop the option to start a fresh run"
            )
        _warn_about_incomplete(Path(output_dir), existing[-1])
        logger.info("resuming from %s", existing[-1])
        return str(existing[-1])
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ResumeError(f"--resume_from_checkpoint {text}: no such checkpoint folder")
    if not (path / _STATE).is_file():
        raise ResumeError(
            f"--resume_from_checkpoint {text}: incomplete checkpoint (no {_STATE}; the run was probably "
            "stopped while saving it): resume from an earlier one"
        )
    logger.info("resuming from %s", path)
    return str(path)


def _warn_about_incomplete(output_dir: Path, chosen: Path) -> None:
    chosen_step = int(_CHECKPOINT.match(chosen.name).group(1))  # type: ignore[union-attr]
    for child in output_dir.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and int(match.group(1)) > chosen_step:
            logger.warning("skipping %s: incomplete (no %s), probably stopped while saving", child, _STATE)


def load_checkpoint_weights(model: torch.nn.Module, checkpoint: str | os.PathLike[str]) -> int:
    """Load `checkpoint`'s saved weights into `model`, whatever key layout they were saved in; returns how
    many tensors were loaded. Every saved tensor must land on a parameter or buffer of the model and
    every one of the model's must be given: anything else is a `ResumeError`, never a silent partial load.
    """
    from safetensors.torch import load_file
    from transformers.modeling_utils import revert_weight_conversion

    folder = Path(checkpoint)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        raise ResumeError(f"{folder}: no model.safetensors (or index) to resume the weights from")
    live = model.state_dict()
    # save_pretrained renames (and, for some models, reshapes) tensors into the released layout; the
    # renaming keeps tensor identity, which gives the map back from saved names to the model's.
    saved_names = revert_weight_conversion(model, dict(live))
    own_name = {id(tensor): name for name, tensor in live.items()}
    to_own = {saved: own_name[id(tensor)] for saved, tensor in saved_names.items() if id(tensor) in own_name}
    state: dict[str, Any] = {}
    for shard in shards:
        for name, tensor in load_file(folder / shard, device="cpu").items():
            state[to_own.get(name, name)] = tensor
    result = model.load_state_dict(state, strict=False)
    tied = {name for name in result.missing_keys if _is_tied(model, name)}
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise ResumeError(
            f"{folder}: its weights do not fit the model ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]}): is it a "
            "checkpoint of this model?"
        )
    logger.info("loaded %d tensors from %s into the model", len(state), folder)
    return len(state)


def _is_tied(model: Any, name: str) -> bool:
    """Whether `name` is a weight tied to another (e.g. the head to the embeddings), saved once."""
    tied = getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or {}
    return name in tied


def trainer_restores_weights(training_args: Any, *, adapters: bool) -> bool:
    """Whether the trainer's own resume restores the weights correctly: with DeepSpeed or FSDP (their own
    sharded states) and for PEFT adapters (saved under the adapter's names); not for full weights saved
    by ``save_pretrained`` (see the module docstring)."""
    env = {
        name: os.environ.get(name, "").lower() in {"1", "true"}
        for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")
    }
    sharded = bool(getattr(training_args, "deepspeed", None) or getattr(training_args, "fsdp", None))
    return adapters or sharded or any(env.values())
