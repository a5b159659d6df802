"""The Hydra SearchPathPlugin that puts ``XLEXP_CONFIG_PATH`` folders on xlexp's config search path.

Registered in-process by :func:`xlexp.config.compose.register_search_path` (not through the
``hydra_plugins`` namespace), so only xlexp's processes see it, and it only changes search paths
whose primary folder is the package's ``conf``: other Hydra apps in the same process are left
alone. The user folders go right before the package folder, so a user file replaces the package
file of the same group and name. The folders are read again each time Hydra builds a search path.
A module of its own because Hydra keeps registered plugin classes in state that the submitit
launcher pickles (by reference).
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

from xlexp.config.paths import CONF_DIR, ENV_VAR, search_path

PROVIDER = f"xlexp ({ENV_VAR})"


def is_package_conf(entry: str) -> bool:
    """True when a search-path entry is the package's ``conf`` folder (as a path or a pkg:// URL)."""
    if entry in ("pkg://xlexp.conf", "pkg://xlexp/conf"):
        return True
    path = entry.removeprefix("file://")
    return "://" not in path and Path(path).resolve() == Path(CONF_DIR).resolve()


class UserConfigFolders(SearchPathPlugin):
    def manipulate_search_path(self, search_path_: ConfigSearchPath) -> None:
        mains = [e for e in search_path_.get_path() if e.provider == "main"]
        if not mains or not is_package_conf(mains[0].path):
            return
        for entry in search_path():
            search_path_.prepend(PROVIDER, entry, anchor=SearchPathQuery(provider="main"))
