"""The config and task reference tables of ``docs/``, generated from the package's YAML tree.

``xlexp docs`` (``make docs``; :mod:`xlexp.cli.docs`) rewrites the marked blocks of ``docs/configs.md``
(every group, every option file, every key with its default and its comment) and ``docs/tasks.md``
(every ``conf/task/*.yaml``: type, languages, metrics, local path, hub id); ``--check`` only
compares and exits 1 when a block is stale (``tests/docs/test_docs.py`` runs it). Text outside the
markers is hand-written and left alone. Comments are read from the YAML lines themselves (a
key's trailing ``# ...``, its continuation lines, or the comment lines right above it), values as
written. Only the package's ``conf/`` is read, never ``XLEXP_CONFIG_PATH``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xlexp.config.paths import CONF_DIR
from xlexp.errors import XlexpError

BEGIN = "<!-- BEGIN GENERATED {name}: `make docs` (xlexp docs) writes this block; do not edit -->"
END = "<!-- END GENERATED {name} -->"
BLOCKS = {"configs": "configs.md", "tasks": "tasks.md"}
SUMMARIZED = {"task": {"languages"}}  # keys whose children are counted, not listed (see docs/tasks.md)
KEY = re.compile(r"^(\s*)([A-Za-z0-9_@/.+-]+):(?:\s+(.*))?$")


@dataclass(frozen=True)
class Row:
    key: str  # dotted path
    value: str  # as written in the file ("" for a mapping)
    comment: str


@dataclass
class ConfigFile:
    group: str  # "" for a primary config (config.yaml, sweep_worker.yaml)
    name: str
    header: str = ""
    package: str | None = None
    rows: list[Row] = field(default_factory=list)
    data: dict = field(default_factory=dict)


def _split_comment(text: str) -> tuple[str, str, int]:
    """``value  # comment`` -> (value, comment, index of the '#' or -1), ignoring a '#' inside
    quotes or glued to a word."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip(), i
    return text.rstrip(), "", -1


def _flow(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flow(v)}" for k, v in value.items())
    return "null" if value is None else str(value)


def _lookup(data, dotted: list[str]):
    for part in dotted:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def parse(path: Path, group: str) -> ConfigFile:
    text = path.read_text(encoding="utf-8")
    out = ConfigFile(group, path.stem, data=yaml.safe_load(text) or {})
    lines = text.splitlines()
    header: list[str] = []
    while lines and lines[0].startswith("#"):
        raw = lines.pop(0).lstrip("#")
        line = raw.strip()
        if line.startswith("@package"):
            out.package = line.split(None, 1)[1]
        elif line:
            header.append(f"`{line}`" if raw.startswith("  ") else line)  # an indented example command
    out.header = " ".join(header)
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    continuation_col: int | None = None
    skip_below: int | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_below is not None and (not stripped or indent > skip_below):
            continue
        skip_below = None
        if not stripped:
            pending, continuation_col = [], None
            continue
        if stripped.startswith("#"):
            if continuation_col is not None and line.index("#") == continuation_col:
                last = out.rows[-1]
                out.rows[-1] = Row(last.key, last.value, f"{last.comment} {stripped.lstrip('#').strip()}")
            else:
                pending.append(stripped.lstrip("#").strip())
            continue
        continuation_col = None
        match = KEY.match(line)
        if not match or stripped.startswith("- "):
            continue  # an item of a block list: shown with its parent
        raw_value, comment, at = _split_comment(match.group(3) or "")
        continuation_col = match.start(3) + at if at >= 0 else None
        comment, pending = comment or " ".join(pending), []
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = [k for _, k in stack] + [match.group(2)]
        value = _lookup(out.data, dotted)
        if match.group(2) in SUMMARIZED.get(group, ()) and not stack:
            n = len(value or ())
            out.rows.append(Row(".".join(dotted), f"{n} languages", comment or "listed in docs/tasks.md"))
            skip_below = indent
        elif raw_value:
            out.rows.append(Row(".".join(dotted), raw_value, comment))
        elif isinstance(value, dict):
            if comment:
                out.rows.append(Row(".".join(dotted), "", comment))
            stack.append((indent, match.group(2)))
        else:
            out.rows.append(Row(".".join(dotted), _flow(value), comment))
    return out


def config_files(conf_dir: Path) -> list[ConfigFile]:
    """Every YAML file of the tree: primary configs first, then the groups in the root defaults'
    order, then the other groups alphabetically."""
    files = [
        parse(p, p.parent.relative_to(conf_dir).as_posix() if p.parent != conf_dir else "")
        for p in sorted(conf_dir.rglob("*.yaml"))
    ]
    for f in files:  # model/base/encoder.yaml: options merged into model.* (base/encoder@_here_), not a choice
        if f.group.endswith("/base"):
            f.group, f.name = f.group.rsplit("/", 1)[0], f"base/{f.name}"
    root_defaults = [
        next(iter(d))
        for d in (yaml.safe_load((conf_dir / "config.yaml").read_text()) or {}).get("defaults", [])
        if isinstance(d, dict)
    ]
    order = {g: i for i, g in enumerate(["", *root_defaults])}
    return sorted(files, key=lambda f: (order.get(f.group, len(order)), f.group, f.name != "config", f.name))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def configs_block(conf_dir: Path) -> str:
    files = config_files(conf_dir)
    root = next(f for f in files if f.group == "" and f.name == "config")
    defaults = {next(iter(d)): next(iter(d.values())) for d in root.data.get("defaults", []) if isinstance(d, dict)}
    groups: dict[str, list[ConfigFile]] = {}
    for f in files:
        groups.setdefault(f.group, []).append(f)
    out = ["| group | options (default in bold) |", "|---|---|"]
    for group, members in groups.items():
        if group:
            names = [
                f"**{f.name}**"
                if defaults.get(group) == f.name
                else f"{f.name} (shared options, not a choice)"
                if f.name.startswith(("_", "base/"))
                else f.name
                for f in members
            ]
            out.append(f"| `{group}` | {', '.join(names)} |")
    for group, members in groups.items():
        out += ["", f"### {'Primary configs' if not group else f'`{group}`'}"]
        for f in members:
            title = (
                f"{f.name}.yaml"
                if not group
                else f"{group}/{f.name}.yaml"
                if f.name.startswith("base/")
                else f"{group}={f.name}"
            )
            extra = f" (`# @package {f.package}`)" if f.package else ""
            out += ["", f"#### `{title}`{extra}", ""]
            if f.header:
                out += [_cell(f.header), ""]
            if f.rows:
                where = f.package or group.replace("/", ".")
                prefix = "" if not group or where == "_global_" else f"{where}."
                out += ["| key | default | comment |", "|---|---|---|"]
                out += [
                    f"| `{'' if r.key == 'defaults' else prefix}{r.key}` | {_code(r.value)} | {_cell(r.comment)} |"
                    for r in f.rows
                ]
    return "\n".join(out)


def tasks_block(conf_dir: Path) -> str:
    out = [
        "| task | type | languages | metrics (primary first) | local path (under `paths.data_dir`) | hub id | about |",
        "|---|---|--:|---|---|---|---|",
    ]
    for path in sorted((conf_dir / "task").glob("*.yaml")):
        f = parse(path, "task")
        d = f.data
        metrics = list(d.get("metrics") or ["accuracy"])
        primary = d.get("primary_metric") or metrics[0]
        metrics = [primary, *[m for m in metrics if m != primary]]
        local, hub = (d.get("local") or {}).get("path", ""), (d.get("hub") or {}).get("id", "")
        out.append(
            f"| `{f.name}` | {d.get('type', '')} | {len(d.get('languages') or ())} | "
            f"{', '.join(metrics)} | {_code(local)} | {_code(hub)} | {_cell(f.header)} |"
        )
    return "\n".join(out)


def generate(conf_dir: Path = Path(CONF_DIR)) -> dict[str, str]:
    return {"configs": configs_block(conf_dir), "tasks": tasks_block(conf_dir)}


def replace_block(text: str, name: str, body: str, where: str) -> str:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise XlexpError(f"{where}: needs exactly one pair of lines\n{begin}\n{end}\n(put them where the table goes)")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def update(docs_dir: Path, check: bool = False) -> list[str]:
    """Rewrite the generated blocks of ``docs_dir`` (with ``check``: write nothing); the stale files."""
    stale = []
    for name, body in generate().items():
        path = docs_dir / BLOCKS[name]
        if not path.is_file():
            raise XlexpError(f"{path}: no such file; run from the repository root or pass --docs DIR")
        old = path.read_text(encoding="utf-8")
        new = replace_block(old, name, body, str(path))
        if new != old:
            stale.append(str(path))
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale
