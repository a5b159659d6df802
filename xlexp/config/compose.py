"""Composing a config: Hydra's search path with the user's folders, and the compose API.

``xlexp run`` (``xlexp.cli.run``), the sweep-worker app (``xlexp.sweep.launch``) and
:func:`compose_config` (sweep trials, ``xlexp reproduce``) all compose from the package's
``conf`` folder; :func:`register_search_path` puts the ``XLEXP_CONFIG_PATH`` folders in front of it
(see :mod:`xlexp.config.paths` for the order). ``hydra.searchpath=[file:///dir]`` still works as in
any Hydra app: Hydra appends those folders after the package's. ``CONF_DIR`` is re-exported here
for the modules that compose directly.
"""

from __future__ import annotations

from xlexp.config.names import check_task_files, safe_folder_name, searchpath_dirs
from xlexp.config.paths import CONF_DIR, config_dirs, user_config_dirs
from xlexp.errors import XlexpError

__all__ = ["CONF_DIR", "compose_config", "normalize_overrides", "register_search_path"]

# groups that the root config lists as `group: null` (lightning-hydra-template's `experiment: null`):
# Hydra refuses `+group=x` for them ("Multiple values"), so the `+` of older docs and habits is dropped
NULL_DEFAULT_GROUPS = ("experiment",)


def normalize_overrides(overrides: list[str]) -> list[str]:
    """``+experiment=NAME`` (and ``++``) -> ``experiment=NAME``: both spellings select a preset, as in
    lightning-hydra-template, whose root config has ``experiment: null`` in its defaults list."""
    out = []
    for item in overrides:
        key = item.lstrip("+").split("=", 1)[0]
        out.append(item.lstrip("+") if item.startswith("+") and "=" in item and key in NULL_DEFAULT_GROUPS else item)
    return out


def slurm_job_name(experiment: str, app_job_name: str) -> str:
    """The SLURM job name of a launcher job: ``xlexp-<experiment>`` for ``xlexp run -m`` (so
    ``xlexp status`` finds an experiment's array tasks with ``squeue --name``/``sacct --name``), the
    app's own job name (``xlexp-sweep-<study>``) for the sweep-worker app, which has no ``name``."""
    return f"xlexp-{safe_folder_name(experiment)}" if experiment else str(app_job_name)


def register_resolvers() -> None:
    """``${xlexp_safe:${name}}`` (see :func:`safe_folder_name`) and ``${xlexp_uid:}``: a short random id,
    cached for the process like Hydra's ``now``, so two runs started in the same second with one name
    get two output folders (and two ``run.log`` files) instead of interleaving one."""
    import uuid

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("xlexp_safe"):
        OmegaConf.register_new_resolver("xlexp_safe", safe_folder_name)
    if not OmegaConf.has_resolver("xlexp_groups"):  # the group list of `xlexp run --help`
        from xlexp.config.paths import group_listing

        OmegaConf.register_new_resolver("xlexp_groups", group_listing)
    if not OmegaConf.has_resolver("xlexp_data_dir"):  # paths.data_dir: $XLEXP_DATA_DIR, ../shared/data or data
        from xlexp.config.paths import default_data_dir

        OmegaConf.register_new_resolver("xlexp_data_dir", default_data_dir)
    if not OmegaConf.has_resolver(
        "xlexp_job_name"
    ):  # hydra.launcher.name of xlexp_slurm: `squeue --name` finds a run's jobs
        OmegaConf.register_new_resolver("xlexp_job_name", slurm_job_name)
    if not OmegaConf.has_resolver("xlexp_uid"):
        OmegaConf.register_new_resolver("xlexp_uid", lambda: uuid.uuid4().hex[:6], use_cache=True)


def register_search_path(overrides: list[str] | tuple[str, ...] = ()) -> None:
    """Make every Hydra app whose primary config folder is the package's search ``XLEXP_CONFIG_PATH``
        first. Checks the variable now (a missing folder: one-line XlexpError) and registers the
        SearchPathPlugin once per process (Hydra ignores a second registration); registers xlexp's
        resolvers too (the package config's ``hydra.run.dir`` uses them). Every task file of every config
    folder (and of a ``hydra.searchpath=`` override) is checked to be data only first
    (:func:`xlexp.config.names.check_task_files`)."""
    user_config_dirs()
    # task files are data: refused before Hydra composes them if they could set hydra.* or name code
    check_task_files([*config_dirs(), *searchpath_dirs(overrides)])
    register_resolvers()
    from hydra.core.plugins import Plugins

    from xlexp.config.hydra_plugin import UserConfigFolders

    Plugins.instance().register(UserConfigFolders)


def compose_config(overrides: list[str], job_name: str = "xlexp", what: str = "run"):
    """The config ``xlexp run <overrides>`` would get, via Hydra's compose API; works inside a
    running Hydra app too (the submitit launcher's jobs), whose global state is put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    register_search_path(overrides)
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=job_name):
            return compose("config", overrides=normalize_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise XlexpError(f"cannot compose the {what} config {overrides}: {str(e).strip().splitlines()[0]}") from None
    finally:
        restore_gh_from_backup(backup)
