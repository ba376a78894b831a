"""Freeze the vision tower and/or the projector of a Qwen-VL model (the paper freezes both in SFT).

Parameters are frozen with ``requires_grad_(False)`` before the trainer builds its optimizer, so they get
no optimizer state and (with DeepSpeed / FSDP) no gradient buffers; the tower still runs in every forward,
which is what makes the frozen features reach the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Projector modules inside `model.model.visual`: the patch merger, plus Qwen3-VL's DeepStack mergers that
# feed intermediate vision features into the language model.
PROJECTOR_PREFIXES: tuple[str, ...] = ("merger", "deepstack_merger_list")


def vision_parts(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(tower parameters, projector parameters) of a Qwen2.5-VL / Qwen3-VL model."""
    visual = model.model.visual
    tower, projector = [], []
    for name, parameter in visual.named_parameters():
        (projector if name.startswith(PROJECTOR_PREFIXES) else tower).append(parameter)
    if not projector:
        raise ValueError(f"{type(visual).__name__} has no {PROJECTOR_PREFIXES} module: unknown vision layout")
    return tower, projector


def freeze_vision(model: torch.nn.Module, *, tower: bool = True, projector: bool = True) -> dict[str, int]:
    """Freeze the requested parts; returns how many parameters each part holds and how many train."""
    tower_params, projector_params = vision_parts(model)
    for parameter in tower_params if tower else []:
        parameter.requires_grad_(False)
    for parameter in projector_params if projector else []:
        parameter.requires_grad_(False)
    return {
        "vision_tower": sum(p.numel() for p in tower_params),
        "projector": sum(p.numel() for p in projector_params),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
