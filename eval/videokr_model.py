"""lighteval custom-model file: the video-capable Qwen2.5-VL / Qwen3-VL model for VideoKR-Eval.

``lighteval custom`` instantiates the first `LightevalModel` subclass this module exposes (in
alphabetical order of names), so it exposes exactly one. The model name carries the settings, e.g.
``model_name=Qwen/Qwen3-VL-8B-Instruct,max_frames=64,batch_size=4`` (see `VideoModelConfig`).
"""

from videokr.evaluation.model import VideoLightevalModel

__all__ = ["VideoLightevalModel"]
