"""The numeric core: the training loop (``loop``), inference, encoding and metrics (``inference``),
checkpoint keeping and selection rules (``selection``), device and precision (``hardware``) and
torchrun support (``distributed``). Plain values and settings objects in, numbers out.
"""
