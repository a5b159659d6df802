"""Readers: files and hub datasets -> rows or examples, each bad row reported with its file and line.

Row readers (CSV/TSV with a header, JSONL, hub datasets) give ``(line, {column: value})`` pairs that a
task type turns into examples; the CoNLL and parallel-text readers give examples directly.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlexp.config.paths import EMBEDDED_DATA_DIR, task_data_root
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)
_SAID: set[tuple[str, str]] = set()  # (task, where) pairs already logged: one line per task and origin


@dataclass(frozen=True)
class Example:
    text: str = ""
    label: int = -1
    text_pair: str | None = None  # pair classification; retrieval: the pivot-language side
    tokens: tuple[str, ...] = ()  # token classification
    tags: tuple[int, ...] = ()


# one CSV field may hold a long document (Python's csv default stops at 128 KiB); the tokenizer
# truncates to data.max_length anyway
MAX_FIELD_CHARS = 1 << 26


def task_top_folder(spec) -> str:
    """The first folder of a task's local path pattern (``nusax_senti`` for ``nusax_senti/{folder}/...``):
    its presence under the data root means the task's files are local."""
    pattern = spec.local.get("path") or next(iter(spec.paths.values()), "")
    return pattern.split("{", 1)[0].split("/", 1)[0]


def data_root(spec, data_dir: Path, source: str = "auto") -> Path:
    """The data root a task is read from: ``data_dir``, or (``data.source=auto``, the task's folder absent
    there) the copy embedded in the package (:data:`xlexp.config.paths.EMBEDDED_DATA_DIR`). The order of
    ``auto`` is local files, the embedded copy, the hub; the embedded choice is said in one log line."""
    top = task_top_folder(spec)
    root, how = task_data_root(top, data_dir, source)
    if root != Path(data_dir):
        say_origin(spec.name, how)
    return root


def say_origin(task: str, how: str | Path) -> None:
    """One INFO line per task and origin: where its data come from (local files, embedded copy, hub);
    a path is a data root of local files (the embedded root was already said by :func:`data_root`)."""
    if isinstance(how, Path):
        if how.resolve() == Path(EMBEDDED_DATA_DIR).resolve():
            return
        how = f"local files under {how.resolve()}"
    if (task, how) not in _SAID:
        _SAID.add((task, how))
        log.info("data: task %s is read from %s", task, how)


def read_text(path: Path) -> str:
    """A data file as text; bytes that are not UTF-8 fail with the file and line (not a bare
    UnicodeDecodeError), with a hint to re-encode."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise XlexpError(
            f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x} at offset {e.start}); re-encode the file, "
            f"e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def lines(text: str) -> list[str]:
    """Lines split on newlines only (``str.splitlines`` also splits on U+2028 and friends, which may sit
    inside a JSON string or a token); a trailing CR (Windows files) is dropped."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [line[:-1] if line.endswith("\r") else line for line in out]


QUOTING = {"standard": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}  # local.quoting -> the csv module's


def task_file(spec) -> str:
    """The task's YAML file as Hydra picks it (a user's folder first), for messages that name the fix."""
    from xlexp.config.paths import find_config

    path = find_config("task", spec.name)
    return str(path) if path is not None else f"task/{spec.name}.yaml"


def read_local_rows(
    path: Path, fmt: str, quoting: str = "standard", where_fix: str = "the task's YAML"
) -> list[tuple[int, dict[str, Any]]]:
    """Rows as (line number, {column: value}); CSV/TSV with a header, or JSONL (one object per line).

    CSV and TSV are read as pandas and the ``csv`` module read them by default (``quoting: standard``):
    a field may be quoted (``"a, b"``, ``"a<TAB>b"``, a newline inside quotes, ``""`` for a quote), so
    the MasakhaNEWS and SIB-200 files read as their authors wrote them. ``quoting: none`` (the task's
    ``local.quoting``) takes every quote as text, for files whose fields start with a bare quote that
    is not a quoting one. The line number is the row's first line (a quoted field may span several).
    ``where_fix`` names the file where those options are set, for the error of a bad row."""
    if fmt == "jsonl":
        out = []
        for i, line in enumerate(lines(read_text(path)), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise XlexpError(
                    f"{path}:{i}: not valid JSON ({e.msg}); local.format: jsonl expects one JSON object "
                    f"per line (set local.format in {where_fix} if the file is csv or tsv)"
                ) from None
            if not isinstance(row, dict):
                raise XlexpError(f"{path}:{i}: expected a JSON object per line, found {type(row).__name__}")
            out.append((i, row))
        return out
    if fmt not in ("csv", "tsv"):
        raise XlexpError(f"{path}: unknown local format '{fmt}' (use csv, tsv, jsonl or conll)")
    if quoting not in QUOTING:
        raise XlexpError(f"local.quoting: '{quoting}' is not one of {', '.join(QUOTING)} (in {where_fix})")
    delimiter = "\t" if fmt == "tsv" else ","
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=QUOTING[quoting])
    out: list[tuple[int, dict[str, Any]]] = []
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return []
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row:
                continue
            if len(row) != len(header):
                raise XlexpError(
                    f"{path}:{line}: expected {len(header)} columns ({', '.join(header)}), found "
                    f"{len(row)}; {_row_hint(fmt, quoting, row, where_fix)}"
                )
            out.append((line, dict(zip(header, row))))
    except csv.Error as e:  # e.g. a field over the size limit, NUL bytes, a quote left open at the end
        raise XlexpError(
            f"{path}:{start}: unreadable {fmt.upper()} row ({e}); {_row_hint(fmt, quoting, [], where_fix)}"
        ) from None
    return out


def _row_hint(fmt: str, quoting: str, row: list[str], where_fix: str) -> str:
    """The options that fix a row with the wrong number of columns, most likely first."""
    other = "csv" if fmt == "tsv" else "tsv"
    if quoting == "none" and any('"' in field for field in row):
        first = (
            "the row holds quotes: if they quote fields (as pandas and the csv module read them), set "
            "local.quoting: standard"
        )
    else:
        first = (
            "if quotes in this file are plain text rather than field quoting (a field that starts with a "
            "quote swallows what follows up to the next one), set local.quoting: none"
            if quoting == "standard"
            else "check the row's separators"
        )
    return f"{first}; if the file is {other.upper()}, set local.format: {other} (in {where_fix})"


def label_file_labels(spec, code: str, data_dir: Path) -> tuple[Path, list[str]] | None:
    """A language's own label list (``local.label_file``: a path pattern under the data root with
    ``{folder}``/``{code}``, one label per line, as MasakhaNEWS's per-language ``labels.txt``): the
    labels that language's rows may carry, each of them one of the task's ``labels`` (after
    ``label_map``). None when the task sets no label file."""
    pattern = spec.local.get("label_file")
    if not pattern:
        return None
    path = Path(data_dir) / str(pattern).format(folder=spec.languages[code], code=code)
    if not path.is_file():
        raise XlexpError(
            f"{path}: the label file of language '{code}' (local.label_file in {task_file(spec)}) does not exist"
        )
    mapping = spec.label_map.get(code) or spec.label_map.get("*") or {}
    labels = []
    for i, line in enumerate(lines(read_text(path)), start=1):
        raw = line.strip()
        if not raw:
            continue
        label = str(mapping.get(raw, raw))
        if label not in spec.label_to_id:
            raise XlexpError(
                f"{path}:{i}: label '{label}' of language '{code}' is not in the task's labels "
                f"{list(spec.labels)}: add it to labels: in {task_file(spec)}, or map it with "
                f"label_map: {{{code}: {{'{raw}': <label>}}}}"
            )
        labels.append(label)
    return path, labels


def check_language_labels(spec, code: str, data_dir: Path, rows, where: str) -> None:
    """Every row of a language carries one of the labels of its ``local.label_file`` (if any)."""
    found = label_file_labels(spec, code, data_dir)
    if found is None:
        return
    path, allowed = found
    mapping = spec.label_map.get(code) or spec.label_map.get("*") or {}
    for line, row in rows:
        raw = row.get(spec.label_field)
        for value in raw if isinstance(raw, list) else [raw]:
            label = str(mapping.get(str(value).strip(), str(value).strip()))
            if label not in allowed:
                raise XlexpError(
                    f"{where}:{line}: label '{label}' is not in {path}, the labels of language '{code}' "
                    f"({', '.join(allowed)}); fix the row or the label file (local.label_file in {task_file(spec)})"
                )


def read_hub_rows(spec, code: str, split: str, missing: str):
    """A hub dataset's rows (columns renamed, class ids turned into label names); ``missing`` says
    where the local file was looked for, for the one-line error when the hub cannot be reached."""
    try:
        import datasets  # imported lazily: slow, and only hub users need it
    except ImportError:  # the `hub` extra is not installed: say where the local file was looked for too
        raise XlexpError(
            f"{missing.rstrip('.')}. Reading it from the hub needs the optional package 'datasets', "
            f"which is not installed: pip install 'xlexp[hub]'"
        ) from None

    hub_id, config, hub_split = spec.hub_location(code, split)  # type: ignore[misc]
    try:
        ds = datasets.load_dataset(hub_id, config, split=hub_split)
    except Exception as e:  # offline, unknown config, no such split: one message with both options
        raise XlexpError(
            f"could not load {hub_id} (config {config}, split {hub_split}) from the hub: {type(e).__name__}: {e}. "
            + missing
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


def label_id(spec, code: str, raw: Any, where: str, line: int) -> int:
    label = str(raw).strip()
    mapping = spec.label_map.get(code) or spec.label_map.get("*") or {}
    label = str(mapping.get(label, label))
    ids = spec.label_to_id
    if label not in ids:
        raise XlexpError(
            f"{where}:{line}: label '{label}' is not in the task's label list {list(spec.labels)} "
            f"(map it with label_map: {{{code}: {{'{label}': <label>}}}} in {task_file(spec)})"
        )
    return ids[label]


def _is_label(spec, code: str, raw: str) -> bool:
    mapping = spec.label_map.get(code) or spec.label_map.get("*") or {}
    return str(mapping.get(raw, raw)) in spec.label_to_id


def read_conll(spec, code: str, path: Path) -> list[Example]:
    """``token TAG`` per line (or more columns: ``local.conll_columns``), blank line between sentences."""
    n_fields = int(spec.local.get("conll_fields", 2))
    token_col, tag_col = spec.local.get("conll_columns", [0, -1])
    examples, tokens, tags = [], [], []
    for line_no, line in enumerate(lines(read_text(path)), start=1):
        if not line.strip():
            if tokens:
                examples.append(Example(tokens=tuple(tokens), tags=tuple(tags)))
                tokens, tags = [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        # tab-separated columns, else whitespace; in the 2-column layout a line with more fields whose
        # last one is a label is a word with spaces (UD: French GSD's "10 000 NUM"); a line " O" is an
        # empty token, never a token "" with tag O
        parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
        if "\t" not in line and n_fields == 2 and len(parts) > 2 and _is_label(spec, code, parts[-1]):
            parts = [" ".join(parts[:-1]), parts[-1]]
        if len(parts) != n_fields:
            raise XlexpError(
                f"{path}:{line_no}: expected {n_fields} fields (token TAG), found {len(parts)}: {line!r} "
                f"(other layouts: set local.conll_fields and local.conll_columns in the task YAML)"
            )
        if not all(parts[c] for c in (token_col, tag_col)):
            raise XlexpError(f"{path}:{line_no}: empty token or tag: {line!r}")
        tokens.append(parts[token_col])
        tags.append(label_id(spec, code, parts[tag_col], str(path), line_no))
    if tokens:
        examples.append(Example(tokens=tuple(tokens), tags=tuple(tags)))
    return examples


def read_parallel(path: Path, pivot_path: Path | None) -> list[Example]:
    """Line i of the two files are translations (LASER/XTREME Tatoeba layout)."""
    if pivot_path is None or not pivot_path.exists():
        raise XlexpError(f"{path}: the parallel file {pivot_path} is missing")
    xx = lines(read_text(path))
    pivot = lines(read_text(pivot_path))
    if len(xx) != len(pivot):
        raise XlexpError(f"{path} has {len(xx)} lines but {pivot_path} has {len(pivot)}: they must be line-aligned")
    for i, (a, b) in enumerate(zip(xx, pivot), start=1):
        if not a.strip() or not b.strip():
            raise XlexpError(f"{path if not a.strip() else pivot_path}:{i}: empty sentence")
    return [Example(text=a.strip(), text_pair=b.strip()) for a, b in zip(xx, pivot)]
