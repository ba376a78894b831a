"""Model clients and tiny offline models.

`tiny` builds real Qwen2.5-VL / Qwen3-VL models small enough for CPU tests; importing this package stays
cheap because each module imports torch and transformers only inside the functions that need them.
"""

from videokr.models.tiny import ARCHES, build_tiny_model, save_tiny_model, tiny_model_command

__all__ = ["ARCHES", "build_tiny_model", "save_tiny_model", "tiny_model_command"]
