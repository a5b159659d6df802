"""Sweeps: Optuna searches over xlexp configs, with pruning, resume and many workers.

Owns the sweep file (``space``), one sweep's job and study (``job``), the worker that runs trials
as ordinary experiments (``worker``) and scores them (``objective``), the Optuna storage with its
heartbeats and exact trial budget (``storage``), many workers (``processes``, ``launch``), the
study table (``status``), the study browser (``dashboard``) and the ``xlexp sweep`` command
(``driver``).

The modules here form no import cycle.
"""
