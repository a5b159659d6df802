"""Names that reach the file system, and task files read as data only: checked once, here.

A task name becomes a cache folder, a language code a cache file and a records file name, a study
name a pending folder, a lock file and part of every trial's experiment; a path pattern of a task file
is joined to the data folder. Each is checked where it enters (the task spec, the sweep's study),
by the functions of this module, so every later ``Path(...) / name`` is one plain file name inside
its folder: no ``/``, no ``..``, no leading dot or dash, no control characters.

Task YAMLs are *data* (a colleague's task file must be safe to use), but Hydra composes them as
configs: a ``# @package _global_`` line would let one set ``hydra.callbacks`` (Hydra instantiates a
``_target_`` there: any importable function), and a ``defaults`` list could pull in other groups.
:func:`check_task_files` reads every task file of every config folder before Hydra composes
anything and refuses, in one line naming the file, a package directive, a ``defaults`` or
``hydra`` key, and a ``_target_`` key at any depth.

Free-form labels (the experiment ``name``, shown in tables) are not refused; where they become a
folder they go through :func:`safe_folder_name`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from xlexp.errors import XlexpError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, at most 100 characters"


def check_name(value: Any, what: str, where: str = "") -> str:
    """``value`` if it can be one file name (see :data:`NAME_RULE`); else one-line XlexpError."""
    text = str(value)
    if not isinstance(value, (str, int)) or not NAME_RE.fullmatch(text):
        raise XlexpError(
            f"{what} {text!r}{f' ({where})' if where else ''}: use {NAME_RULE} (it names files and folders)"
        )
    return text


def safe_folder_name(name: Any) -> str:
    """A free-form label as one folder name: no path separators, no leading dot (``../../x`` ->
    ``_.._x``), so a folder made from it always lands inside its parent."""
    return re.sub(r"[^\w.+=,@-]", "_", str(name)).lstrip(".") or "_"


def check_relative_pattern(pattern: Any, what: str, where: str, fields: Iterable[str]) -> str:
    """A path pattern of a task file (``nusax_senti/{folder}/{split}.csv``): relative, no ``..``
    part, and only the named ``{fields}`` (no ``{code.__class__}``, no positional ``{}``)."""
    text = str(pattern)
    allowed = set(fields)
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or text.startswith("~") or ".." in path.parts or re.match(r"^[A-Za-z]:", text):
        raise XlexpError(
            f"{what} {text!r} ({where}): give a path relative to the data folder without '..' "
            f"(point paths.data_dir / XLEXP_DATA_DIR at the data instead)"
        )
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise XlexpError(f"{what} {text!r} ({where}): {e}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            raise XlexpError(
                f"{what} {text!r} ({where}): '{{{field}}}' is not a field of a path pattern; use "
                f"{', '.join('{' + f + '}' for f in sorted(allowed))}"
            )
    return text


def temp_path(final: Path, suffix: str = ".tmp") -> Path:
    """A hidden temp name beside ``final`` for a write-then-rename: ``.<name>.<pid>-<random><suffix>``.
    The pid alone is not unique on a shared folder: two containers' runs are often both pid 1, and
    two writers of one cache file under one temp name interleave their bytes."""
    import os
    import uuid

    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


# -- task files are data -------------------------------------------------------------------------
FORBIDDEN_TASK_KEYS = ("defaults", "hydra")


MAX_TASK_VALUES = 1_000_000  # a task with every FLORES-200 language is ~2,000 values; aliases can make 10**9


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """How many values ``value`` holds once every YAML alias is expanded (what Hydra and the spec
    would copy out), counted without expanding: shared nodes are counted once per reference."""
    if not isinstance(value, (Mapping, list)):
        return 1
    key = id(value)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts as nothing more
        items = value.values() if isinstance(value, Mapping) else value
        memo[key] = 1 + sum(_expanded_size(v, memo) for v in items)
    return memo[key]


def _find_target(value: Any, trail: str, seen: set[int] | None = None) -> str | None:
    seen = set() if seen is None else seen
    if isinstance(value, (Mapping, list)):
        if id(value) in seen:  # an alias of a node already searched
            return None
        seen.add(id(value))
    if isinstance(value, Mapping):
        for k, v in value.items():
            here = f"{trail}.{k}" if trail else str(k)
            if str(k) == "_target_":
                return here
            found = _find_target(v, here, seen)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_target(v, f"{trail}[{i}]", seen)
            if found:
                return found
    return None


def check_task_file(path: Path) -> None:
    """Refuse a task YAML that is more than data (one line naming the file and what to remove)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise XlexpError(f"task file {path}: cannot read it ({e})") from None
    fix = "task files are data only: remove it (options of a run go on the command line or in an experiment preset)"
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(r"\s*#\s*@package\b", line):
            raise XlexpError(f"task file {path}, line {n}: a Hydra '# @package' directive; {fix}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        raise XlexpError(f"task file {path}{at}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if raw is None:
        return
    size = _expanded_size(raw, {})
    if size > MAX_TASK_VALUES:
        raise XlexpError(
            f"task file {path}: its YAML aliases expand to {size:,} values (more than "
            f"{MAX_TASK_VALUES:,}): a task is a few hundred values; write them out"
        )
    if not isinstance(raw, Mapping):
        raise XlexpError(
            f"task file {path}: a task is a mapping of keys (name, type, languages, ...), not a {type(raw).__name__}"
        )
    for key in FORBIDDEN_TASK_KEYS:
        if key in raw:
            raise XlexpError(f"task file {path}: key '{key}' is not allowed in a task; {fix}")
    target = _find_target(raw, "")
    if target:
        raise XlexpError(
            f"task file {path}: key '{target}' (a Hydra '_target_' names code to call) is not allowed in a task; {fix}"
        )


def check_task_files(folders: Iterable[Path]) -> None:
    """Every ``task/**/*.yaml`` of the given config folders, before Hydra composes any of them."""
    for folder in folders:
        task_dir = Path(folder) / "task"
        if task_dir.is_dir():
            for path in sorted(task_dir.rglob("*.yaml")):
                check_task_file(path)


def searchpath_dirs(overrides: Iterable[str]) -> list[Path]:
    """The local folders of a ``hydra.searchpath=[file:///a,/b]`` command-line override."""
    out = []
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        if key != "hydra.searchpath" or not value:
            continue
        for entry in value.strip().strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if entry.startswith("pkg://") or not entry:
                continue
            entry = entry.removeprefix("file://")
            if Path(entry).is_dir():
                out.append(Path(entry))
    return out
