"""GRPO on VideoKR-RL: a shim for `videokr.training.grpo`, which also runs with ``-m``.

    accelerate launch --config_file train/accelerate/zero3.yaml train/grpo.py \
        --config train/recipes/qwen2_5_vl_7b/grpo.yaml
"""

from videokr.training.grpo import cli

if __name__ == "__main__":
    cli()
