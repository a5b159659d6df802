"""Configuration: where the YAML tree lives and what it means.

``paths`` finds the config folders (the package's ``xlexp/conf`` plus the user's ``XLEXP_CONFIG_PATH``
folders, user files first) and looks group files up by name; ``hydra_plugin`` puts those folders on
Hydra's search path; ``compose`` composes a config outside ``xlexp run`` (sweeps, reproduce, tests);
``schema`` turns a composed config into typed, checked settings (frozen dataclasses, every default in
one place; the model families in ``model_settings``, the shared checks and :func:`build` in ``checks``); ``docs`` generates the config and task tables of ``docs/`` from the YAML; ``registry`` finds the
units of a package folder (regimes, task types). The bottom layer above ``xlexp.errors``.
"""
