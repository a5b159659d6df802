"""Where configs live: the package's YAML tree and the user's config folders, and lookups by name.

The tree ships inside the package (``xlexp/conf``, found through :mod:`importlib.resources`), so a
non-editable install has it. Users add their own folders without touching the package:
``XLEXP_CONFIG_PATH=dir1:dir2``, each laid out like ``xlexp/conf`` (``task/my_task.yaml``,
``model/my_model.yaml``, ...). Those folders come *before* the package on every search: a user file
replaces the package file of the same group and name, and ``dir1`` wins over ``dir2``. The same
order holds for Hydra's composition (:mod:`xlexp.config.hydra_plugin`) and for lookups by name
outside a composition (:func:`find_config`, :func:`list_configs`: tasks by name, the classical
baselines' ``model.tokenizer``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from xlexp.errors import XlexpError

ENV_VAR = "XLEXP_CONFIG_PATH"
CONF_DIR = str(resources.files("xlexp").joinpath("conf"))


DATA_ENV_VAR = "XLEXP_DATA_DIR"
# where local task data is looked for when XLEXP_DATA_DIR is not set, first existing folder wins (relative
# to the working directory). Every command resolves paths.data_dir through this, so `make demo` (which no
# longer sets the variable) and `xlexp run` typed afterwards agree; .ci/run exports the same folder.
DATA_DIR_FALLBACKS = ("../shared/data", "data")


def default_data_dir(environ: Mapping[str, str] | None = None) -> str:
    """The data root ``paths.data_dir`` defaults to: ``$XLEXP_DATA_DIR``; else ``../shared/data`` when that
    folder exists (the layout of a checkout next to the shared datasets); else ``./data``. The same answer
    for ``make demo`` and for the README's ``xlexp run ...`` typed in the same shell afterwards."""
    value = (os.environ if environ is None else environ).get(DATA_ENV_VAR, "").strip()
    if value:
        return value
    for candidate in DATA_DIR_FALLBACKS:
        if Path(candidate).is_dir():
            return str(Path(candidate).resolve())
    return DATA_DIR_FALLBACKS[-1]


# Datasets that ship inside the package (package data, each folder with its LICENSE.md): the quickstart's
# NusaX-senti, laid out as under a data root, so `make demo` works on a clone with no data folder and no
# network. data.source=auto reads a task from here when its folder is not under paths.data_dir.
EMBEDDED_DATA_DIR = str(resources.files("xlexp").joinpath("embedded"))


def task_data_root(top: str, data_dir: str | Path, source: str = "auto") -> tuple[Path, str]:
    """Where a task whose files lie under folder ``top`` is read from, and in what words: ``data_dir``
    when ``data_dir/top`` exists (or ``source`` is not auto, or nothing is embedded), else the embedded
    copy. Stdlib only, so ``make demo`` can ask before it installs anything."""
    local = Path(data_dir) / top
    embedded = Path(EMBEDDED_DATA_DIR) / top
    if top and source == "auto" and not local.is_dir() and embedded.is_dir():
        return Path(EMBEDDED_DATA_DIR), (
            f"the copy embedded in the package ({embedded}; license and attribution: "
            f"{embedded / 'LICENSE.md'}), as {local.absolute()} does not exist"
        )
    return Path(data_dir), f"local files under {local.resolve() if local.is_dir() else local}"


def user_config_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders named by ``XLEXP_CONFIG_PATH`` (``os.pathsep``-separated, empty entries skipped),
    highest priority first; a missing folder is an error that names the variable and the path."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    dirs: list[Path] = []
    for entry in value.split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry.strip()).expanduser().resolve()
        if not path.is_dir():
            raise XlexpError(
                f"{ENV_VAR}: '{entry}' is not a directory; set {ENV_VAR} to existing config folders "
                f"laid out like xlexp/conf (task/, model/, ...), separated by '{os.pathsep}'"
            )
        if path not in dirs:
            dirs.append(path)
    return dirs


def config_dirs() -> list[Path]:
    """Every config folder in lookup order: the user's (``XLEXP_CONFIG_PATH``), then the package's."""
    return [*user_config_dirs(), Path(CONF_DIR)]


def find_config(group: str, name: str) -> Path | None:
    """The YAML file of option ``name`` in ``group`` (e.g. ``task``, ``nusax_senti``) that Hydra would
    pick: the first folder of :func:`config_dirs` that has it; None when none has."""
    for folder in config_dirs():
        path = folder / group / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def list_configs(group: str) -> list[str]:
    """Sorted names of every option of ``group`` in any config folder (user and package)."""
    return sorted({p.stem for folder in config_dirs() for p in (folder / group).glob("*.yaml")})


def search_path() -> list[str]:
    """The user's folders as Hydra search-path entries (``file://...``), in priority order."""
    return [f"file://{d}" for d in user_config_dirs()]


def group_listing() -> str:
    """``group: option, option`` lines for ``xlexp run --help``: every top-level group of every config
    folder, without Hydra's own and without the base files the model configs build on (``model/base``),
    which are not choices."""
    groups = sorted(
        {
            d.name
            for folder in config_dirs()
            if folder.is_dir()
            for d in folder.iterdir()
            if d.is_dir() and d.name != "hydra" and not d.name.startswith((".", "_"))
        }
    )
    return "\n".join(f"{g}: {', '.join(n for n in list_configs(g) if not n.startswith('_'))}" for g in groups)


def _check_quickstart_data(argv: list[str] | None = None) -> int:
    """``python -m xlexp.config.paths [TASK_FOLDER]``: say where the quickstart's data would be read from,
    or fail in one line (``make demo`` runs this before the install and the encoder build)."""
    import sys

    top = (argv if argv is not None else sys.argv[1:] or ["nusax_senti"])[0]
    data_dir = default_data_dir()
    root, how = task_data_root(top, data_dir)
    if not (root / top).is_dir():
        print(
            f"xlexp: error: no '{top}' data: {Path(data_dir).resolve() / top} does not exist and the package's "
            f"embedded copy {Path(EMBEDDED_DATA_DIR) / top} is missing (a partial checkout?); put the data under "
            f"$XLEXP_DATA_DIR, ../shared/data or ./data",
            file=sys.stderr,
        )
        return 2
    print(f"data for '{top}': {how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_check_quickstart_data())
