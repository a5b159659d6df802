"""Where the YAML config tree lives and how a config is composed outside ``xlexp run``.

The tree ships inside the package (``xlexp/conf``), so a non-editable install has it.
"""

from __future__ import annotations

from pathlib import Path

from xlexp.errors import XlexpError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose_config(overrides: list[str], job_name: str = "xlexp", what: str = "run"):
    """The config ``xlexp run <overrides>`` would get, via Hydra's compose API; works inside a
    running Hydra app too (the submitit launcher's jobs), whose global state is put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=job_name):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise XlexpError(f"cannot compose the {what} config {overrides}: {str(e).strip().splitlines()[0]}") from None
    finally:
        restore_gh_from_backup(backup)
