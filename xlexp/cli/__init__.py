"""Command line: parse arguments, compose the config, call one stage, print. Nothing else.

``main`` dispatches ``xlexp <command>``; ``run`` is the Hydra entry (``xlexp run`` and
``python -m xlexp.cli.run``, which torchrun and cluster launchers call); ``reports`` holds the
read-only commands (matrix, report, compare, table). The top layer.
"""
