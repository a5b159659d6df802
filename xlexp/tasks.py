"""Tasks as data: a task is a YAML file under ``conf/task/`` read into a :class:`TaskSpec`.

The spec says which languages exist, where each language's splits live (a local path pattern
and/or a hub dataset id + config), which fields hold text and label, the label list and the
metrics. Loading a split validates every row and fails with the file and line of the first bad one.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from xlexp.errors import XlexpError

SPLITS = ("train", "dev", "test")
TASK_DIR = Path(__file__).resolve().parent.parent / "conf" / "task"


@dataclass(frozen=True)
class Example:
    text: str
    label: int


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
    local: Mapping[str, Any] = field(default_factory=dict)
    hub: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> "TaskSpec":
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        name = raw.get("name", "<unnamed task>")
        missing = [k for k in ("name", "type", "text_fields", "label_field", "labels", "languages") if not raw.get(k)]
        if missing:
            raise XlexpError(f"task '{name}': missing key(s) {missing} in conf/task/{name}.yaml")
        langs = raw["languages"]
        if isinstance(langs, list):
            dupes = sorted({c for c in langs if langs.count(c) > 1})
            if dupes:
                raise XlexpError(f"task '{name}': duplicate language entries {dupes} in conf/task/{name}.yaml")
            langs = {code: code for code in langs}
        labels = tuple(str(x) for x in raw["labels"])
        if len(set(labels)) != len(labels):
            raise XlexpError(f"task '{name}': duplicate labels in {list(labels)}")
        metrics = tuple(raw.get("metrics") or ("accuracy",))
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metrics:
            raise XlexpError(f"task '{name}': primary_metric '{primary}' is not one of metrics {list(metrics)}")
        if raw["type"] != "sentence_classification":
            raise XlexpError(
                f"task '{name}': type '{raw['type']}' is not supported yet; supported: sentence_classification"
            )
        return cls(
            name=name,
            type=raw["type"],
            version=int(raw.get("version", 1)),
            text_fields=tuple(raw["text_fields"]),
            label_field=raw["label_field"],
            labels=labels,
            metrics=metrics,
            primary_metric=primary,
            languages=dict(langs),
            local=raw.get("local") or {},
            hub=raw.get("hub") or {},
        )

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def fingerprint(self) -> str:
        """Hash of everything in the spec that changes what is read (for caches)."""
        blob = json.dumps(
            [self.name, self.version, self.text_fields, self.label_field, self.labels, dict(self.local), dict(self.hub)],
            sort_keys=True,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def check_language(self, code: str, role: str) -> None:
        if code not in self.languages:
            raise XlexpError(
                f"unknown {role} language '{code}' for task '{self.name}'. "
                f"Valid languages ({len(self.languages)}): {', '.join(sorted(self.languages))}"
            )

    # -- where a split lives ------------------------------------------------------------------
    def local_path(self, code: str, split: str, data_dir: Path) -> Path | None:
        if not self.local.get("path"):
            return None
        file_split = (self.local.get("split_names") or {}).get(split, split)
        rel = self.local["path"].format(folder=self.languages[code], code=code, split=file_split)
        return Path(data_dir) / rel

    def hub_location(self, code: str, split: str) -> tuple[str, str | None, str] | None:
        if not self.hub.get("id"):
            return None
        config = self.hub.get("config")
        config = config.format(code=code, folder=self.languages[code]) if config else None
        hub_split = (self.hub.get("split_names") or {}).get(split, split)
        return self.hub["id"], config, hub_split

    def has_split(self, code: str, split: str, data_dir: Path, source: str = "auto") -> bool:
        path = self.local_path(code, split, data_dir)
        if source != "hub" and path is not None and path.exists():
            return True
        # a hub dataset is assumed to have the split; loading says so if not
        return source != "local" and self.hub_location(code, split) is not None and not _local_task_dir_exists(self, data_dir)


def _local_task_dir_exists(spec: TaskSpec, data_dir: Path) -> bool:
    """True when the task's local data folder exists: then a missing file is a missing split."""
    pattern = spec.local.get("path")
    if not pattern:
        return False
    top = pattern.split("{", 1)[0]
    return (Path(data_dir) / top).is_dir() and bool(top.strip("/"))


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
    path = spec.local_path(code, split, data_dir)
    if source != "hub" and path is not None and path.exists():
        rows = _read_local_rows(path, spec.local.get("format", "csv"))
        where = str(path)
    elif source == "local" or _local_task_dir_exists(spec, data_dir) or spec.hub_location(code, split) is None:
        raise XlexpError(_missing_message(spec, code, split, path, data_dir))
    else:
        rows, where = _read_hub_rows(spec, code, split, path, data_dir)
    examples = _rows_to_examples(spec, rows, where)
    if not examples:
        raise XlexpError(f"{where}: split '{split}' of language '{code}' has zero examples")
    return examples


def _missing_message(spec: TaskSpec, code: str, split: str, path: Path | None, data_dir: Path) -> str:
    msg = f"no '{split}' split for language '{code}' of task '{spec.name}'"
    if path is not None:
        msg += f": looked for {path} (data root {Path(data_dir).resolve()}; set paths.data_dir=... or XLEXP_DATA_DIR)"
        existing = sorted(p.stem for p in path.parent.glob("*")) if path.parent.is_dir() else []
        if existing:
            msg += f"; that folder has: {', '.join(existing)}"
    loc = spec.hub_location(code, split)
    if loc is not None:
        msg += f". With a network, use the hub instead: data.source=hub (dataset {loc[0]}, config {loc[1]})"
    return msg


def _read_local_rows(path: Path, fmt: str) -> list[tuple[int, dict[str, str]]]:
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
        raise XlexpError(f"{path}: unknown local format '{fmt}' (use csv, tsv or jsonl)")
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
    feature = ds.features.get(spec.label_field)
    to_name = feature.int2str if isinstance(feature, datasets.ClassLabel) else None  # ids -> label names
    rows = []
    for i, row in enumerate(ds):
        row = dict(row)
        if to_name is not None:
            row[spec.label_field] = to_name(row[spec.label_field])
        rows.append((i + 1, row))
    return rows, f"hub:{hub_id}/{config}/{hub_split}"


def _rows_to_examples(spec: TaskSpec, rows: list[tuple[int, Mapping[str, Any]]], where: str) -> list[Example]:
    label_ids = spec.label_to_id
    examples = []
    for line, row in rows:
        for key in (*spec.text_fields, spec.label_field):
            if key not in row:
                raise XlexpError(f"{where}:{line}: no column '{key}' (columns: {', '.join(row)})")
        text = " ".join(str(row[k]).strip() for k in spec.text_fields)
        if not text.strip():
            raise XlexpError(f"{where}:{line}: empty text in column(s) {list(spec.text_fields)}")
        label = str(row[spec.label_field]).strip()
        if label not in label_ids:
            raise XlexpError(
                f"{where}:{line}: label '{label}' is not in the task's label list {list(spec.labels)}"
            )
        examples.append(Example(text=text, label=label_ids[label]))
    return examples
