"""One exception type for bad input: the CLI prints its message alone, without a traceback."""


class XlexpError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it."""


def unknown_key(key: str, known, where: str, prefix: str = "") -> XlexpError:
    """The one-line error for a key nobody reads (a typo silently ignored can change what a run does:
    ``primary_metrc`` once switched model selection to accuracy): the closest known key first.
    ``prefix`` is prepended to the key names shown (``model.`` for ``model.peeft``)."""
    import difflib

    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return XlexpError(f"unknown key '{prefix}{key}' in {where}{hint} (known: {', '.join(known)})")


def debug() -> bool:
    """``XLEXP_DEBUG=1``: tracebacks too, for failures that otherwise end in one line."""
    import os

    return os.environ.get("XLEXP_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


# Optional dependencies (pyproject.toml [project.optional-dependencies]): top-level module -> (extra, what
# needs it, the package's pip name). A feature that imports one where it is missing fails with one line
# naming the extra.
EXTRAS = {
    "wandb": ("wandb", "W&B tracking (tracker=wandb, xlexp report --wandb)", "wandb"),
    "datasets": (
        "hub",
        "reading tasks from the Hugging Face hub (data.source=hub, or auto without local files)",
        "datasets",
    ),
    "psycopg": ("cluster", "PostgreSQL sweep storages (postgresql://...)", "psycopg"),
    "submitit": ("cluster", "sweep launchers (xlexp sweep --launcher slurm|local)", "submitit"),
    "hydra_plugins.hydra_submitit_launcher": (
        "cluster",
        "sweep launchers (xlexp sweep --launcher slurm|local)",
        "hydra-submitit-launcher",
    ),
    "peft": ("peft", "LoRA adapters (model.peft=lora|qlora)", "peft"),
    "optuna_dashboard": ("dashboard", "xlexp dashboard", "optuna-dashboard"),
    "urielplus": ("predict", "URIEL language features (xlexp predict / recommend)", "urielplus"),
    "bitsandbytes": ("qlora", "4-bit base weights (model.peft=qlora)", "bitsandbytes"),
}


def missing_extra(error: ImportError) -> XlexpError | None:
    """The one-line error for an ImportError of an optional dependency (None for any other module):
    ``W&B tracking (...) needs the optional package 'wandb', which is not installed: pip install 'xlexp[wandb]'``."""
    name = getattr(error, "name", None) or ""
    for module, (extra, feature, package) in EXTRAS.items():
        if name == module or name.startswith(module + "."):
            return XlexpError(
                f"{feature} needs the optional package '{package}', which is not installed: "
                f"pip install 'xlexp[{extra}]'"
            )
    return None


def require_extra(module: str) -> None:
    """Raise :func:`missing_extra`'s error now when ``module`` (a key of EXTRAS) is not importable: for
    features that would otherwise fail later or deep inside another library (a Hydra launcher plugin)."""
    from importlib import util

    try:
        found = util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise missing_extra(ModuleNotFoundError(f"No module named '{module}'", name=module))
