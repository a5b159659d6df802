"""Tasks as data: a task is a YAML file under ``task/`` of a config folder read into a :class:`TaskSpec`.

The spec says which languages exist, where each language's splits live (a local path pattern,
optionally per language, and/or a hub dataset id + config), which fields hold text and labels, the
label list, the metrics and the primary metric. What differs between task types (sentence, pair
and token classification, retrieval, ...) is the type's module in ``xlexp.tasks.types``; file and
hub readers are in ``xlexp.tasks.readers``.

Loading a split validates every row and fails with the file and line of the first bad one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlexp.config.names import check_name, check_relative_pattern
from xlexp.config.paths import find_config, list_configs
from xlexp.errors import XlexpError, unknown_key
from xlexp.tasks import types
from xlexp.tasks.readers import Example, data_root, read_hub_rows, say_origin

SPLITS = ("train", "dev", "test")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str
    version: int
    text_fields: tuple[str, ...]
    label_field: str
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    languages: Mapping[str, str]  # task code -> local folder name
    paths: Mapping[str, str] = field(default_factory=dict)  # per-language local path patterns
    tags: Mapping[str, str] = field(default_factory=dict)  # per-language BCP-47 tag overrides
    local: Mapping[str, Any] = field(default_factory=dict)
    hub: Mapping[str, Any] = field(default_factory=dict)
    label_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # lang or '*' -> {raw: label}
    max_train_examples: int | None = None  # CPU-friendly default subsample of the train split
    options: Mapping[str, Any] = field(default_factory=dict)  # the task type's own keys (TaskType.options)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TaskSpec:
        """From the task YAML as a mapping (a plain dict, or the composed config's ``task`` node:
        any Mapping works, nested values are copied out as plain dicts and lists)."""
        raw = _plain(cfg)
        name = raw.get("name", "<unnamed task>")
        where = str(find_config("task", name) or f"task/{name}.yaml in a config folder")  # the real file
        task_type = raw.get("type")
        kind = types.get(task_type, f"task '{name}', {where}")
        _check_keys(raw, kind, name, where)
        required = ["name", "languages"] + (["labels"] if kind.needs_labels else [])
        missing = [k for k in required if not raw.get(k)]
        if missing:
            raise XlexpError(f"task '{name}': missing key(s) {missing} in {where}")
        check_name(name, "task name", where)
        folders, paths, tags = _parse_languages(raw["languages"], name, where)
        _check_names_and_patterns(raw, kind, folders, paths, name, where)
        labels = tuple(str(x) for x in raw.get("labels") or ())
        if len(set(labels)) != len(labels):
            raise XlexpError(f"task '{name}': duplicate labels in {list(labels)} ({where})")
        metrics = tuple(raw.get("metrics") or ("accuracy",))
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metrics:
            raise XlexpError(
                f"task '{name}': primary_metric '{primary}' is not one of metrics {list(metrics)} ({where})"
            )
        if kind.known_metrics is not None and (bad := [m for m in metrics if m not in kind.known_metrics]):
            raise XlexpError(
                f"task '{name}': metric(s) {bad} do not apply to task type {kind.name}; its metrics: "
                f"{', '.join(kind.known_metrics)} ({where})"
            )
        options = {key: raw.get(key, default) for key, default in kind.options.items()}
        kind.check_options(options, name, where)
        return cls(
            name=name,
            type=task_type,
            version=int(raw.get("version", 1)),
            text_fields=tuple(raw.get("text_fields") or kind.text_fields),
            label_field=raw.get("label_field") or kind.label_field,
            labels=labels,
            metrics=metrics,
            primary_metric=primary,
            languages=folders,
            paths=paths,
            tags=tags,
            local=raw.get("local") or {},
            hub=raw.get("hub") or {},
            label_map=raw.get("label_map") or {},
            max_train_examples=raw.get("max_train_examples"),
            options=options,
        )

    @property
    def pivot(self) -> str | None:
        """Retrieval: the language every target is paired with."""
        return self.options.get("pivot")

    @property
    def layer(self) -> int | None:
        """Retrieval: the hidden layer to pool (None = last)."""
        return self.options.get("layer")

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def kind(self) -> types.TaskType:
        """The task type's unit (``xlexp.tasks.types``)."""
        return types.get(self.type)

    @property
    def trains(self) -> bool:
        return self.kind.trains

    @property
    def token_level(self) -> bool:
        """One label per word (a token-classification head) instead of one per example."""
        return self.kind.token_level

    def fingerprint(self) -> str:
        """Hash of everything in the spec that changes what is read (for caches)."""
        blob = json.dumps(
            [
                self.name,
                self.type,
                self.version,
                self.text_fields,
                self.label_field,
                self.labels,
                dict(self.local),
                dict(self.hub),
                dict(self.paths),
                dict(self.label_map),
                dict(self.options),
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def check_language(self, code: str, role: str) -> None:
        if code not in self.languages:
            raise XlexpError(
                f"unknown {role + ' ' if role else ''}language '{code}' for task '{self.name}'. "
                f"Valid languages ({len(self.languages)}): {', '.join(sorted(self.languages))}"
            )

    # -- where a split lives ------------------------------------------------------------------
    def local_path(self, code: str, split: str, data_dir: Path, **extra: str) -> Path | None:
        pattern = self.paths.get(code) or self.local.get("path")
        if not pattern:
            return None
        file_split = self.kind.file_split(self, code, split)
        if file_split is None:  # the type says this language has no such split (e.g. QA: test-only XQuAD)
            return None
        rel = pattern.format(folder=self.languages[code], code=code, split=file_split, **extra)
        return Path(data_dir) / rel

    def hub_location(self, code: str, split: str) -> tuple[str, str | None, str] | None:
        """(dataset id, config, split) on the hub; the task type may override it per language and
        split (QA: English SQuAD as the source of a task whose targets are another dataset)."""
        return self.kind.hub_location(self, code, split)

    def default_hub_location(self, code: str, split: str) -> tuple[str, str | None, str] | None:
        if not self.hub.get("id"):
            return None
        config = self.hub.get("config")
        config = config.format(code=code, folder=self.languages[code]) if config else None
        hub_split = (self.hub.get("split_names") or {}).get(split, split)
        return self.hub["id"], config, hub_split

    def has_split(self, code: str, split: str, data_dir: Path, source: str = "auto") -> bool:
        """Whether (language, split) can be read: the local file exists, or (when the task's local
        folder is absent and the hub is allowed) the hub dataset is assumed to have it."""
        if split not in self.kind.splits:
            return False
        data_dir = data_root(self, data_dir, source)  # auto: local files, else the embedded copy, else the hub
        path = self.probe_path(code, split, data_dir)
        if source != "hub" and path is not None and path.exists():
            return True
        local_present = _local_task_dir_exists(self, data_dir)
        return source != "local" and not local_present and self.hub_location(code, split) is not None

    def probe_path(self, code: str, split: str, data_dir: Path) -> Path | None:
        """The file whose presence means (language, split) exists locally."""
        return self.local_path(code, split, data_dir, **self.kind.path_fields(code))

    def local_files(self, code: str, split: str, data_dir: Path) -> list[Path]:
        """Every local file (language, split) is read from (the type's ``local_files``)."""
        return self.kind.local_files(self, code, split, data_dir)


def _plain(value: Any) -> Any:
    """Mappings -> dicts and sequences -> lists, recursively (a Hydra node resolves on access)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


# The keys every task YAML may have (a type adds its own through TaskType.options), and those of its
# nested blocks. Anything else is refused with the closest valid key: a typo'd key that is silently
# ignored changes what a run does (``primary_metrc`` switched model selection to accuracy).
COMMON_KEYS = (
    "name",
    "type",
    "version",
    "text_fields",
    "label_field",
    "labels",
    "metrics",
    "primary_metric",
    "languages",
    "local",
    "hub",
    "label_map",
    "max_train_examples",
)
LOCAL_KEYS = ("path", "format", "split_names", "conll_fields", "conll_columns", "quoting", "label_file")
HUB_KEYS = ("id", "config", "split_names", "columns")
LANGUAGE_KEYS = ("folder", "path", "tag")


def _check_keys(raw: Mapping[str, Any], kind: types.TaskType, name: str, where: str) -> None:
    known = (*COMMON_KEYS, *kind.options)
    for key in raw:
        if key not in known:
            raise unknown_key(key, known, f"{where} (task type {kind.name})")
    for block, keys in (("local", LOCAL_KEYS), ("hub", HUB_KEYS)):
        value = raw.get(block)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise XlexpError(f"task '{name}': '{block}' must be a mapping of {', '.join(keys)} ({where})")
        for key in value:
            if key not in keys:
                raise unknown_key(key, keys, where, prefix=f"{block}.")
    languages = raw.get("languages")
    if isinstance(languages, Mapping):
        for code, entry in languages.items():
            for key in entry if isinstance(entry, Mapping) else ():
                if key not in LANGUAGE_KEYS:
                    raise unknown_key(key, LANGUAGE_KEYS, where, prefix=f"languages.{code}.")


def _parse_languages(raw: Any, name: str, where: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``[code, ...]`` (folder = code) or ``{code: folder}`` or ``{code: {folder, path, tag}}``."""
    if isinstance(raw, list):
        dupes = sorted({c for c in raw if raw.count(c) > 1})
        if dupes:
            raise XlexpError(f"task '{name}': duplicate language entries {dupes} in {where}")
        return {str(c): str(c) for c in raw}, {}, {}
    folders, paths, tags = {}, {}, {}
    for code, entry in raw.items():
        if isinstance(entry, dict):
            folders[code] = str(entry.get("folder", code))
            if entry.get("path"):
                paths[code] = str(entry["path"])
            if entry.get("tag"):
                tags[code] = str(entry["tag"])
        else:
            folders[code] = str(entry if entry is not None else code)
    return folders, paths, tags


def _check_names_and_patterns(
    raw: Mapping[str, Any],
    kind: types.TaskType,
    folders: Mapping[str, str],
    paths: Mapping[str, str],
    name: str,
    where: str,
) -> None:
    """Language codes name cache and records files, folders and path patterns are joined to the data
    folder: each must stay one plain name / a path inside it (``xlexp.config.names``)."""
    extra = set(kind.path_fields("x"))
    fields = {"folder", "code", "split", *extra}
    for code, folder in folders.items():
        check_name(code, "language code", f"task '{name}', {where}")
        check_relative_pattern(folder, f"folder of language '{code}'", f"task '{name}', {where}", ())
    for code, pattern in paths.items():
        check_relative_pattern(pattern, f"path of language '{code}'", f"task '{name}', {where}", fields)
    local = raw.get("local") or {}
    if local.get("path"):
        check_relative_pattern(local["path"], "local.path", f"task '{name}', {where}", fields)
    hub = raw.get("hub") or {}
    if hub.get("config"):
        check_relative_pattern(hub["config"], "hub.config", f"task '{name}', {where}", ("code", "folder"))


def _local_task_dir_exists(spec: TaskSpec, data_dir: Path) -> bool:
    """True when the task's local data folder exists: then a missing file is a missing split."""
    pattern = spec.local.get("path") or next(iter(spec.paths.values()), "")
    top = pattern.split("{", 1)[0].split("/", 1)[0]
    return bool(top) and (Path(data_dir) / top).is_dir()


def available_tasks() -> list[str]:
    """Every task name: the package's ``conf/task`` and the ``task/`` of each XLEXP_CONFIG_PATH folder."""
    return list_configs("task")


def load_task(name: str) -> TaskSpec:
    """Registry lookup by name (for tools outside a Hydra run, e.g. ``xlexp matrix``); a user's
    ``task/<name>.yaml`` in an XLEXP_CONFIG_PATH folder wins over the package's, as in a run."""
    path = find_config("task", name)
    if path is None:
        raise XlexpError(f"unknown task '{name}'. Available tasks: {', '.join(available_tasks())}")
    return TaskSpec.from_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


# -- reading ----------------------------------------------------------------------------------
def load_split(
    spec: TaskSpec, code: str, split: str, data_dir: Path, source: str = "auto", allow_empty: bool = False
) -> list[Example]:
    """Read and validate one (language, split). ``source``: auto (local if present) | local | hub.
    An empty split is an error unless ``allow_empty`` (a split the plan does not need: then a log line)."""
    spec.check_language(code, "")
    data_dir = data_root(spec, data_dir, source)  # auto: local files, else the embedded copy, else the hub
    path = spec.probe_path(code, split, data_dir)
    if source != "hub" and path is not None and path.exists():
        say_origin(spec.name, data_dir)
        examples, where = spec.kind.read_local(spec, code, split, data_dir, path)
    elif source == "local" or _local_task_dir_exists(spec, data_dir) or spec.hub_location(code, split) is None:
        raise XlexpError(_missing_message(spec, code, split, path, data_dir))
    else:
        rows, where = read_hub_rows(spec, code, split, _missing_message(spec, code, split, path, data_dir))
        say_origin(spec.name, f"the hub ({spec.hub_location(code, split)[0]})")
        examples = spec.kind.examples(spec, code, rows, where)
    if not examples:
        if allow_empty:
            log.info(
                "%s: split '%s' of language '%s' is empty; this run does not need it, so it is ignored",
                where,
                split,
                code,
            )
            return []
        raise XlexpError(f"{where}: split '{split}' of language '{code}' has zero examples")
    return examples


def _missing_message(spec: TaskSpec, code: str, split: str, path: Path | None, data_dir: Path) -> str:
    msg = f"no '{split}' split for language '{code}' of task '{spec.name}'"
    if path is not None:
        msg += f": looked for {path} (data root {Path(data_dir).resolve()}; set paths.data_dir=... or XLEXP_DATA_DIR)"
        existing = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
        if existing:
            msg += f"; that folder has: {', '.join(existing[:20])}"
    loc = spec.hub_location(code, split)
    if loc is not None:
        msg += f". With a network, use the hub instead: data.source=hub (dataset {loc[0]}, config {loc[1]})"
    return msg
