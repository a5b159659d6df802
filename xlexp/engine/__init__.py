"""The numeric core: the training loop (``loop``), prediction, encoding and metrics (``predict``),
checkpoint keeping and selection rules (``selection``), device and precision (``hardware``) and
torchrun support (``distributed``). Plain values and settings objects in, numbers out. May import
models, data, tasks, results, config and errors.
"""
