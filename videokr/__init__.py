"""VideoKR on the Hugging Face stack.

The core library: the canonical record (`records`), video decoding (`video`), the official prompts
(`prompts`), answer scoring and rewards (`answers`), tiny offline models (`models`) and the embedded
sample corpus (`sample`). Everything else in the project imports from here.
"""

__version__ = "0.1.0"
