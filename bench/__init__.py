"""Benchmarks of the code training and data loading run, on the project's own modules.

Run from the repository root as modules (``python -m bench.train_step``, ``python -m bench.rollout``,
``python -m bench.dataloader``, ``python -m bench.build``); each module's docstring says what it measures.
What the model benches share (architectures, the video prompt and clip, the trainers, timing) is
`bench.common`.
"""
