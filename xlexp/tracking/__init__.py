"""Experiment trackers: the ``Tracker`` protocol and the null tracker (``base``), Weights & Biases
(``wandb_tracker``) and secret masking (``masking``). Trackers see results only after the store has
them, so a tracker failure never loses a result.
"""
