"""Read an offline W&B run folder back: the records of its ``run-<id>.wandb`` log, parsed with the
W&B SDK's own protobuf types (the log is LevelDB-log framed: 7-byte file header, 32 KiB blocks,
records split into FULL/FIRST/MIDDLE/LAST chunks with a 7-byte chunk header)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run log")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class OfflineRun:
    folder: Path
    run: pb.RunRecord | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # captured stdout/stderr pieces (the Logs tab)
    artifacts: list = field(default_factory=list)  # pb.ArtifactRecord of every logged artifact

    @property
    def summary_max(self) -> dict:
        """Summary keys whose value is W&B's ``{"max": v}`` (``define_metric(summary="max")``)."""
        return {k: v["max"] for k, v in self.summary.items() if isinstance(v, dict) and "max" in v}

    def media(self, kind: str) -> list[Path]:
        return sorted((self.folder / "files" / "media" / kind).rglob("*"))


def read_offline_run(folder: Path) -> OfflineRun:
    (log_file,) = folder.glob("run-*.wandb")
    out = OfflineRun(folder)
    for raw in _chunks(log_file.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.run = rec.run
            out.config.update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            out.config.update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for u in rec.summary.update:
                out.summary[_key(u)] = json.loads(u.value_json)
        elif kind == "output_raw":
            out.console.append(rec.output_raw.line)
        elif kind == "output":
            out.console.append(rec.output.line)
        elif kind == "artifact":
            out.artifacts.append(rec.artifact)
    return out
