"""Training curves from the trainers' own logs: SFT loss and GRPO mean reward per logged step.

Both training scripts end with ``trainer.save_state()``, which writes ``trainer_state.json`` (TRL's and
transformers' ``log_history``) beside the model; nothing here re-derives a number the trainer logged.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["log_series", "plot_curves"]


def log_series(trainer_state: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) for every logged step that has ``key`` (``loss``, ``reward``, …)."""
    state = json.loads(Path(trainer_state).read_text())
    return [(int(e["step"]), float(e[key])) for e in state.get("log_history", []) if key in e]


def _smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_curves(sft_state: Path, grpo_state: Path, out: Path) -> Path:
    """Two panels, SFT loss (log scale) and GRPO mean reward (with a moving average), as a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("SFT: training loss", sft_state, "loss", "loss"),
        ("GRPO: mean reward per step", grpo_state, "reward", "reward (accuracy 0.9 + format 0.1)"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
    for ax, (title, state, key, label) in zip(axes[0], panels, strict=True):
        series = log_series(state, key) if state.is_file() else []
        if series:
            steps, values = zip(*series, strict=True)
            if key == "reward":  # one step's mean over a few groups is noisy: show the trend beside it
                ax.plot(steps, values, alpha=0.35, label="logged")
                window = max(1, len(values) // 10)
                ax.plot(steps, _smooth(list(values), window), label=f"moving average ({window} steps)")
                ax.legend(fontsize="small")
            else:  # logged every few steps, already averaged over them
                ax.plot(steps, values)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        if key == "loss" and series:
            ax.set_yscale("log")  # the loss falls over two orders of magnitude
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
