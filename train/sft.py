"""Supervised fine-tuning on VideoKR-SFT: a shim for `videokr.training.sft`, which also runs with ``-m``.

    accelerate launch --config_file train/accelerate/zero3.yaml train/sft.py \
        --config train/recipes/qwen2_5_vl_7b/sft.yaml
"""

from videokr.training.sft import cli

if __name__ == "__main__":
    cli()
