"""The data layer: the record and its parser, the official prompts and answer format, the release reader,
the Hub folder build (card, Croissant, attribution), publishing and loading built folders.

Nothing here imports torch, a model or a processor: a dataset can be built, checked and published on a
machine with no training stack. Everything above (`videokr.vision`, `videokr.training`,
`videokr.evaluation`, `videokr.pipeline`) reads records through this package.
"""
