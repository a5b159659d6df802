"""Command line: parse arguments, compose the config, call one stage, print. Nothing else.

One module per verb (``xlexp <verb>``: ``run``, ``status``, ``matrix``, ``sweep``, ...), each registering
its name, help, arguments and ``run(args)`` in :mod:`xlexp.cli.registry`; ``main`` looks the verb up, and
``xlexp --help`` and the shell completion are generated from the registry. ``run`` is the Hydra entry
(``xlexp run`` and ``python -m xlexp.cli.run``, which torchrun and cluster launchers call).
"""
