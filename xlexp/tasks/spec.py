"""Tasks as data: a task is a YAML file under ``conf/task/`` read into a :class:`TaskSpec`.

The spec says which languages exist, where each language's splits live (a local path pattern,
optionally per language, and/or a hub dataset id + config), which fields hold text and labels, the
label list, the metrics and the primary metric. Four task types share it:

- ``sentence_classification``: one text field (csv/tsv/jsonl or hub), one label per row;
- ``pair_classification``: two text fields (premise/hypothesis, sentence1/sentence2);
- ``token_classification``: a label per word (CoNLL ``token TAG`` files or hub ``tokens``/``tags``);
- ``retrieval``: parallel sentences (xx <-> pivot), no labels, no training.

Loading a split validates every row and fails with the file and line of the first bad one.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from xlexp.config.compose import CONF_DIR
from xlexp.errors import XlexpError

SPLITS = ("train", "dev", "test")
TASK_TYPES = ("sentence_classification", "pair_classification", "token_classification", "retrieval")
TASK_DIR = Path(CONF_DIR) / "task"


@dataclass(frozen=True)
class Example:
    text: str = ""
    label: int = -1
    text_pair: str | None = None          # pair classification; retrieval: the pivot-language side
    tokens: tuple[str, ...] = ()          # token classification
    tags: tuple[int, ...] = ()


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
    languages: Mapping[str, str]                       # task code -> local folder name
    paths: Mapping[str, str] = field(default_factory=dict)   # per-language local path patterns
    tags: Mapping[str, str] = field(default_factory=dict)    # per-language BCP-47 tag overrides
    local: Mapping[str, Any] = field(default_factory=dict)
    hub: Mapping[str, Any] = field(default_factory=dict)
    label_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # lang or '*' -> {raw: label}
    pivot: str | None = None                           # retrieval: the language every target is paired with
    layer: int | None = None                           # retrieval: hidden layer to pool (None = last)
    max_train_examples: int | None = None              # CPU-friendly default subsample of the train split

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> "TaskSpec":
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        name = raw.get("name", "<unnamed task>")
        where = f"conf/task/{name}.yaml"
        task_type = raw.get("type")
        if task_type not in TASK_TYPES:
            raise XlexpError(f"task '{name}': type '{task_type}' is not one of {', '.join(TASK_TYPES)} ({where})")
        required = ["name", "languages"] + ([] if task_type == "retrieval" else ["labels"])
        missing = [k for k in required if not raw.get(k)]
        if missing:
            raise XlexpError(f"task '{name}': missing key(s) {missing} in {where}")
        folders, paths, tags = _parse_languages(raw["languages"], name, where)
        labels = tuple(str(x) for x in raw.get("labels") or ())
        if len(set(labels)) != len(labels):
            raise XlexpError(f"task '{name}': duplicate labels in {list(labels)} ({where})")
        metrics = tuple(raw.get("metrics") or ("accuracy",))
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metrics:
            raise XlexpError(f"task '{name}': primary_metric '{primary}' is not one of metrics {list(metrics)} ({where})")
        default_fields = {"pair_classification": ["premise", "hypothesis"], "token_classification": ["tokens"]}
        return cls(
            name=name, type=task_type, version=int(raw.get("version", 1)),
            text_fields=tuple(raw.get("text_fields") or default_fields.get(task_type, ["text"])),
            label_field=raw.get("label_field") or ("tags" if task_type == "token_classification" else "label"),
            labels=labels, metrics=metrics, primary_metric=primary, languages=folders, paths=paths, tags=tags,
            local=raw.get("local") or {}, hub=raw.get("hub") or {}, label_map=raw.get("label_map") or {},
            pivot=raw.get("pivot"), layer=raw.get("layer"), max_train_examples=raw.get("max_train_examples"),
        )

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def trains(self) -> bool:
        return self.type != "retrieval"

    def fingerprint(self) -> str:
        """Hash of everything in the spec that changes what is read (for caches)."""
        blob = json.dumps(
            [self.name, self.type, self.version, self.text_fields, self.label_field, self.labels, dict(self.local),
             dict(self.hub), dict(self.paths), dict(self.label_map)], sort_keys=True,
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
        file_split = (self.local.get("split_names") or {}).get(split, split)
        rel = pattern.format(folder=self.languages[code], code=code, split=file_split, **extra)
        return Path(data_dir) / rel

    def hub_location(self, code: str, split: str) -> tuple[str, str | None, str] | None:
        if not self.hub.get("id"):
            return None
        config = self.hub.get("config")
        config = config.format(code=code, folder=self.languages[code]) if config else None
        hub_split = (self.hub.get("split_names") or {}).get(split, split)
        return self.hub["id"], config, hub_split

    def has_split(self, code: str, split: str, data_dir: Path, source: str = "auto") -> bool:
        """Whether (language, split) can be read: the local file exists, or (when the task's local
        folder is absent and the hub is allowed) the hub dataset is assumed to have it."""
        if self.type == "retrieval" and split != "test":
            return False
        path = self.probe_path(code, split, data_dir)
        if source != "hub" and path is not None and path.exists():
            return True
        local_present = _local_task_dir_exists(self, data_dir)
        return source != "local" and not local_present and self.hub_location(code, split) is not None

    def probe_path(self, code: str, split: str, data_dir: Path) -> Path | None:
        """The file whose presence means (language, split) exists locally."""
        extra = {"side": code} if self.type == "retrieval" else {}
        return self.local_path(code, split, data_dir, **extra)


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


def _local_task_dir_exists(spec: TaskSpec, data_dir: Path) -> bool:
    """True when the task's local data folder exists: then a missing file is a missing split."""
    pattern = spec.local.get("path") or next(iter(spec.paths.values()), "")
    top = pattern.split("{", 1)[0].split("/", 1)[0]
    return bool(top) and (Path(data_dir) / top).is_dir()


def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_task(name: str) -> TaskSpec:
    """Registry lookup by name (for tools outside a Hydra run, e.g. ``xlexp matrix``)."""
    path = TASK_DIR / f"{name}.yaml"
    if not path.exists():
        raise XlexpError(f"unknown task '{name}'. Available tasks: {', '.join(available_tasks())}")
    return TaskSpec.from_config(OmegaConf.load(path))


# -- reading ----------------------------------------------------------------------------------
def load_split(spec: TaskSpec, code: str, split: str, data_dir: Path, source: str = "auto") -> list[Example]:
    """Read and validate one (language, split). ``source``: auto (local if present) | local | hub."""
    spec.check_language(code, "")
    path = spec.probe_path(code, split, data_dir)
    if source != "hub" and path is not None and path.exists():
        examples, where = _read_local(spec, code, split, data_dir, path)
    elif source == "local" or _local_task_dir_exists(spec, data_dir) or spec.hub_location(code, split) is None:
        raise XlexpError(_missing_message(spec, code, split, path, data_dir))
    else:
        rows, where = _read_hub_rows(spec, code, split, path, data_dir)
        examples = _rows_to_examples(spec, code, rows, where)
    if not examples:
        raise XlexpError(f"{where}: split '{split}' of language '{code}' has zero examples")
    return examples


def _read_local(spec: TaskSpec, code: str, split: str, data_dir: Path, path: Path) -> tuple[list[Example], str]:
    fmt = spec.local.get("format", "csv")
    if spec.type == "retrieval":
        pivot = spec.local_path(code, split, data_dir, side=spec.pivot or "eng")
        return _read_parallel(path, pivot), f"{path} + {pivot}"
    if fmt == "conll":
        return _read_conll(spec, code, path), str(path)
    return _rows_to_examples(spec, code, _read_local_rows(path, fmt), str(path)), str(path)


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


def _read_local_rows(path: Path, fmt: str) -> list[tuple[int, dict[str, Any]]]:
    """Rows as (line number, {column: value}); CSV/TSV with a header, or JSONL."""
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as f:
            out = []
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    out.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise XlexpError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            return out
    if fmt not in ("csv", "tsv"):
        raise XlexpError(f"{path}: unknown local format '{fmt}' (use csv, tsv, jsonl or conll)")
    delimiter = "\t" if fmt == "tsv" else ","
    # TSV files in the wild (SIB-200) contain bare quotes inside text: don't treat them as quoting.
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            return []
        out = []
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise XlexpError(
                    f"{path}:{line}: expected {len(header)} columns ({', '.join(header)}), found {len(row)}"
                )
            out.append((line, dict(zip(header, row))))
        return out


def _read_hub_rows(spec: TaskSpec, code: str, split: str, path: Path | None, data_dir: Path):
    import datasets  # imported lazily: slow, and only hub users need it

    hub_id, config, hub_split = spec.hub_location(code, split)  # type: ignore[misc]
    try:
        ds = datasets.load_dataset(hub_id, config, split=hub_split)
    except Exception as e:  # offline, unknown config, no such split: one message with both options
        raise XlexpError(
            f"could not load {hub_id} (config {config}, split {hub_split}) from the hub: {type(e).__name__}: {e}. "
            + _missing_message(spec, code, split, path, data_dir)
        ) from None
    columns = dict(spec.hub.get("columns") or {})  # spec field -> hub column, where the names differ
    feature = ds.features.get(columns.get(spec.label_field, spec.label_field))
    inner = getattr(feature, "feature", None)  # Sequence(ClassLabel) for token tags
    label_feature = inner if inner is not None else feature
    to_name = label_feature.int2str if isinstance(label_feature, datasets.ClassLabel) else None  # ids -> names
    rows = []
    for i, row in enumerate(ds):
        row = dict(row)
        for name, column in columns.items():
            row[name] = row.pop(column)
        if to_name is not None and spec.label_field in row:
            value = row[spec.label_field]
            row[spec.label_field] = [to_name(v) for v in value] if isinstance(value, list) else to_name(value)
        rows.append((i + 1, row))
    return rows, f"hub:{hub_id}/{config}/{hub_split}"


def _label_id(spec: TaskSpec, code: str, raw: Any, where: str, line: int) -> int:
    label = str(raw).strip()
    mapping = spec.label_map.get(code) or spec.label_map.get("*") or {}
    label = str(mapping.get(label, label))
    ids = spec.label_to_id
    if label not in ids:
        raise XlexpError(
            f"{where}:{line}: label '{label}' is not in the task's label list {list(spec.labels)} "
            f"(map it with label_map: {{{code}: {{'{label}': <label>}}}} in conf/task/{spec.name}.yaml)"
        )
    return ids[label]


def _rows_to_examples(spec: TaskSpec, code: str, rows: Iterable[tuple[int, Mapping[str, Any]]], where: str) -> list[Example]:
    if spec.type == "retrieval":
        return [Example(text=str(r["text"]).strip(), text_pair=str(r["text_pair"]).strip()) for _, r in rows]
    examples = []
    for line, row in rows:
        for key in (*spec.text_fields, spec.label_field):
            if key not in row:
                raise XlexpError(f"{where}:{line}: no column '{key}' (columns: {', '.join(row)})")
        if spec.type == "token_classification":
            tokens, tags = list(row[spec.text_fields[0]]), list(row[spec.label_field])
            if len(tokens) != len(tags) or not tokens:
                raise XlexpError(f"{where}:{line}: {len(tokens)} tokens but {len(tags)} tags")
            examples.append(Example(tokens=tuple(map(str, tokens)),
                                    tags=tuple(_label_id(spec, code, t, where, line) for t in tags)))
            continue
        texts = [str(row[k]).strip() for k in spec.text_fields]
        if not all(texts):
            raise XlexpError(f"{where}:{line}: empty text in column(s) {list(spec.text_fields)}")
        label = _label_id(spec, code, row[spec.label_field], where, line)
        if spec.type == "pair_classification":
            examples.append(Example(text=texts[0], text_pair=texts[1], label=label))
        else:
            examples.append(Example(text=" ".join(texts), label=label))
    return examples


def _read_conll(spec: TaskSpec, code: str, path: Path) -> list[Example]:
    """``token TAG`` per line (or more columns: ``local.conll_columns``), blank line between sentences."""
    n_fields = int(spec.local.get("conll_fields", 2))
    token_col, tag_col = spec.local.get("conll_columns", [0, -1])
    examples, tokens, tags = [], [], []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if tokens:
                    examples.append(Example(tokens=tuple(tokens), tags=tuple(tags)))
                    tokens, tags = [], []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            parts = line.split("\t") if "\t" in line else line.split(" ")
            if len(parts) != n_fields:
                raise XlexpError(f"{path}:{line_no}: expected {n_fields} fields (token TAG), found {len(parts)}: {line!r}")
            tokens.append(parts[token_col])
            tags.append(_label_id(spec, code, parts[tag_col], str(path), line_no))
    if tokens:
        examples.append(Example(tokens=tuple(tokens), tags=tuple(tags)))
    return examples


def _read_parallel(path: Path, pivot_path: Path | None) -> list[Example]:
    """Line i of the two files are translations (LASER/XTREME Tatoeba layout)."""
    if pivot_path is None or not pivot_path.exists():
        raise XlexpError(f"{path}: the parallel file {pivot_path} is missing")
    xx = path.read_text(encoding="utf-8").splitlines()
    pivot = pivot_path.read_text(encoding="utf-8").splitlines()
    if len(xx) != len(pivot):
        raise XlexpError(f"{path} has {len(xx)} lines but {pivot_path} has {len(pivot)}: they must be line-aligned")
    for i, (a, b) in enumerate(zip(xx, pivot), start=1):
        if not a.strip() or not b.strip():
            raise XlexpError(f"{path if not a.strip() else pivot_path}:{i}: empty sentence")
    return [Example(text=a.strip(), text_pair=b.strip()) for a, b in zip(xx, pivot)]
