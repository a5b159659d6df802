"""Retrieval tasks (``type: retrieval``, e.g. Tatoeba): no training. Encode both sides of every
target's parallel test set and search by cosine. Every distinct token sequence is encoded once
(pivot sentences repeat across language pairs), in one length-sorted pass over all targets.
"""

from __future__ import annotations

import logging

import numpy as np

from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine.inference import encode, retrieval_accuracy
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit

log = logging.getLogger(__name__)


def run_unit(ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
    encoder = ctx.build_encoder()
    layer = ctx.spec.layer
    sides = {t: (ctx.cache.get(t, "test"), ctx.cache.get(t, "test", side="pivot")) for t in unit.targets}
    row_of: dict[bytes, int] = {}
    unique: list[np.ndarray] = []
    for pair in sides.values():
        for split in pair:
            for ids in split.input_ids:
                key = ids.tobytes()
                if key not in row_of:
                    row_of[key] = len(unique)
                    unique.append(ids)
    log.info(
        "retrieval: %s, mean-pooled layer %s, %d target(s), %d distinct sentences, no training",
        ctx.settings.model.name,
        layer if layer is not None else "last",
        len(unit.targets),
        len(unique),
    )
    everything = TokenizedSplit(unique, np.zeros(len(unique), dtype=np.int64))
    emb = encode(
        encoder,
        everything,
        ctx.settings.data.eval_batch_size,
        ctx.pad_id,
        ctx.device,
        ctx.precision,
        layer,
        progress=ctx.progress,
    )
    for target, (xx, pivot) in sides.items():
        rows = [[row_of[ids.tobytes()] for ids in split.input_ids] for split in (xx, pivot)]
        out.add(
            target, "test", retrieval_accuracy(emb[rows[0]], emb[rows[1]]), len(xx), ctx.settings.regime.selection, None
        )
