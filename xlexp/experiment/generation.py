"""The unit executor of generation tasks (``type: generation``): fine-tune a seq2seq or decoder model
on the unit's source-language pairs, select the checkpoint on the source dev chrF++, and translate
every target's held-out pairs in every direction (chrF++ and BLEU through sacrebleu, its signature
in each record).

Why its own executor (like retrieval and classical models): a generation model trains on token-level
targets (teacher forcing: a seq2seq model's decoder, or a decoder's continuation after the source)
and is evaluated by decoding, not by an argmax over labels; the regimes' units (zero_shot, full,
multi_source) give it its sources and targets unchanged. Recorded rules: ``source_dev`` and ``last``
(``target_dev`` would decode every target's dev split at every evaluation; not recorded).

Sequences: a seq2seq model reads ``prefix + source`` and is trained on the target (the tokenizer's
``text_target``); a decoder reads ``<s> prefix + source + separator`` and is trained on ``target </s>``
(loss on the target tokens only). Models with ``model.lang_codes`` (NLLB, M2M100, mBART-50) take the
tokenizer's source/target language and a forced first output token instead of the prefix.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from xlexp.config.schema import Seq2SeqSettings
from xlexp.data.vocab import count_parameters
from xlexp.engine import distributed
from xlexp.engine.inference import autocast
from xlexp.engine.lm_scoring import generate
from xlexp.engine.loop import build_optimizer, linear_schedule, to_device
from xlexp.engine.mt_metrics import generation_scores
from xlexp.engine.selection import CheckpointKeeper
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.models import finetune
from xlexp.models.encoders import load_language_model
from xlexp.tasks.spec import load_split
from xlexp.tasks.types.generation import check_directions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    src_lang: str
    tgt_lang: str


class _Holder(nn.Module):
    """``finetune.prepare`` works on ``.encoder``: the whole LM stands in for it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model


def pairs_of(ctx: RunContext, lang: str, split: str, direction: str, limit: int | None, seed: int) -> list[Pair]:
    s = ctx.settings
    pivot = ctx.spec.options.get("pivot") or "eng"
    examples = load_split(ctx.spec, lang, split, s.paths.data_dir, s.data.source)
    if limit is not None and limit < len(examples):
        keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit])
        examples = [examples[i] for i in keep]
    if direction == "xx2en":
        return [Pair(e.text, e.text_pair or "", lang, pivot) for e in examples]
    return [Pair(e.text_pair or "", e.text, pivot, lang) for e in examples]


class Codec:
    """Pairs -> token ids for training, and source strings / forced tokens for decoding."""

    def __init__(self, ctx: RunContext):
        self.tokenizer = ctx.cache.tokenizer
        self.model_cfg = ctx.settings.model
        self.seq2seq = self.model_cfg.family == "seq2seq"
        self.codes = dict(self.model_cfg.lang_codes) if isinstance(self.model_cfg, Seq2SeqSettings) else {}
        self.prefix = str(ctx.spec.options.get("prefix") or "")
        self.separator = str(ctx.spec.options.get("separator") or " ")
        self.max_length = int(ctx.settings.data.max_length)

    def code(self, lang: str) -> str:
        if lang not in self.codes:
            raise XlexpError(
                f"model '{self.model_cfg.name}': model.lang_codes has no entry for language '{lang}'; "
                f"add it, e.g. model.lang_codes.{lang}=<the model's code>"
            )
        return self.codes[lang]

    def source_text(self, p: Pair) -> str:
        if self.codes:
            self.tokenizer.src_lang = self.code(p.src_lang)
            self.tokenizer.tgt_lang = self.code(p.tgt_lang)
            text = p.source
        else:
            text = self.prefix.format(src=p.src_lang, tgt=p.tgt_lang) + p.source
        return text if self.seq2seq else text + self.separator

    def forced_bos(self, p: Pair) -> int | None:
        return self.tokenizer.convert_tokens_to_ids(self.code(p.tgt_lang)) if self.codes and self.seq2seq else None

    def encode(self, p: Pair) -> tuple[list[int], list[int]]:
        """(input ids, labels): seq2seq = (source, target); decoder = (source + target, -100 on the source)."""
        tok = self.tokenizer
        src = self.source_text(p)
        if self.seq2seq:
            enc = tok(src, text_target=p.target, truncation=True, max_length=self.max_length)
            return list(enc["input_ids"]), list(enc["labels"])
        head = tok(src, add_special_tokens=True)["input_ids"]
        tail = tok(p.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        head = head[: max(1, self.max_length - len(tail))]
        ids = (head + tail)[: self.max_length]
        return ids, ([-100] * len(head) + tail)[: self.max_length]


def run_unit(ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
    s, spec = ctx.settings, ctx.spec
    # the model family (seq2seq or decoder) is checked with the settings (TaskKind.families)
    if ctx.trim is not None:
        raise XlexpError(
            "model.trim_vocab=true with a generation task: the output vocabulary would shrink to the "
            "data's tokens; set model.trim_vocab=false"
        )
    check_directions(spec)
    holder = finetune.prepare(_Holder(load_language_model(s.model, ctx.model_path)), s.model)
    model = holder.encoder.to(ctx.device)
    total, trainable = count_parameters(model)
    ctx.model_info = {"params": total, "trainable_params": trainable}
    codec = Codec(ctx)
    d = s.data
    train_pairs = [
        p
        for lang in unit.train_languages
        for direction in spec.options["train_directions"]
        for p in pairs_of(ctx, lang, "train", direction, d.max_train_examples, unit.seed)
    ]
    dev_pairs = {
        (lang, direction): pairs_of(ctx, lang, "dev", direction, d.max_eval_examples, unit.seed)
        for lang in unit.select_languages
        for direction in spec.options["train_directions"]
    }
    keeper = CheckpointKeeper(ctx.cache_dir / "checkpoints" / f"{ctx.run_id}-{index:04d}{distributed.rank_suffix()}")
    try:

        def on_eval(step: int) -> None:
            chrfs = []
            for (lang, direction), pairs in dev_pairs.items():
                scores, sigs = _score(ctx, model, codec, pairs)
                chrfs.append(scores["chrf"])
                add_scores(
                    out, lang, "dev", {f"{k}_{direction}": v for k, v in scores.items()}, len(pairs), "eval", step, sigs
                )
            keeper.observe(step, {"source_dev": float(np.mean(chrfs))}, model)
            log.info("step %d: source dev chrF++ %.2f", step, float(np.mean(chrfs)))

        steps = _train(ctx, model, codec, train_pairs, unit.seed, on_eval)
        rules = [("last", steps)]
        best = keeper.step_for("source_dev")
        if best is not None:
            rules.append(("source_dev", best))
        for rule, step in rules:
            if step != steps:
                keeper.load(step, model)
            for target in unit.targets:
                for direction in spec.options["directions"]:
                    pairs = pairs_of(ctx, target, "test", direction, d.max_eval_examples, unit.seed)
                    scores, sigs = _score(ctx, model, codec, pairs)
                    wanted = {f"{k}_{direction}": v for k, v in scores.items() if f"{k}_{direction}" in spec.metrics}
                    add_scores(out, target, "test", wanted, len(pairs), rule, step, sigs)
            log.info(
                "%s -> %d target(s), rule %s (step %d): %s",
                unit.source,
                len(unit.targets),
                rule,
                step,
                ", ".join(f"{r.target} {r.metric} {r.value:.1f}" for r in out.records[-4:]),
            )
    finally:
        keeper.cleanup()


def add_scores(
    out: UnitOutput,
    lang: str,
    split: str,
    metrics: dict[str, float],
    n: int,
    selection: str,
    step: int | None,
    signatures: dict[str, str],
    k: int | None = None,
    shot_set: int | None = None,
) -> None:
    """Records of generation metrics, each with its sacrebleu signature."""
    start = len(out.records)
    out.add(lang, split, metrics, n, selection, step, k=k, shot_set=shot_set)
    out.records[start:] = [
        replace(r, metric_signature=signatures.get(r.metric.split("_", 1)[0])) for r in out.records[start:]
    ]


def _score(ctx: RunContext, model, codec: Codec, pairs: list[Pair]) -> tuple[dict[str, float], dict[str, str]]:
    """Decode ``pairs`` (grouped by direction: a forced first token or tokenizer language applies to a batch)."""
    s = ctx.settings
    hyps: list[str] = [""] * len(pairs)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault((p.src_lang, p.tgt_lang), []).append(i)
    for idx in groups.values():
        first = pairs[idx[0]]
        sources = [codec.source_text(pairs[i]) for i in idx]
        outs = generate(
            model,
            codec.tokenizer,
            sources,
            s.data.eval_batch_size,
            ctx.device,
            ctx.precision,
            int(s.data.max_length),
            int(s.model.max_new_tokens),
            int(s.model.num_beams),
            stop=None,
            forced_bos_token_id=codec.forced_bos(first),
        )
        for i, h in zip(idx, outs):
            hyps[i] = h
    return generation_scores(hyps, [p.target for p in pairs])


def _train(ctx: RunContext, model, codec: Codec, pairs: list[Pair], seed: int, on_eval) -> int:
    """Teacher-forced training for ``trainer.epochs``; ``on_eval(step)`` each epoch (or every
    ``trainer.eval_every`` steps) and at the last step. Returns the number of optimizer steps."""
    s = ctx.settings
    encoded = [codec.encode(p) for p in pairs]
    bs = s.data.batch_size
    per_epoch = math.ceil(len(encoded) / bs)
    total = per_epoch * s.trainer.epochs
    eval_every = s.trainer.eval_every or per_epoch
    optimizer = build_optimizer(model, s.optimizer)
    scheduler = linear_schedule(optimizer, int(float(s.optimizer.warmup_ratio) * total), total)
    rng = np.random.default_rng(seed)
    pad = codec.tokenizer.pad_token_id if codec.tokenizer.pad_token_id is not None else 0
    bar = ctx.progress.add_task("train generation", total=total, info="")
    step = 0
    model.train()
    for _ in range(s.trainer.epochs):
        order = rng.permutation(len(encoded))
        for start in range(0, len(order), bs):
            batch = [encoded[i] for i in order[start : start + bs]]
            loss = _loss(model, batch, pad, ctx.device, ctx.precision)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite training loss at step {step + 1}")
            loss.backward()
            if s.optimizer.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), float(s.optimizer.grad_clip))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            ctx.progress.update(bar, advance=1, info=f"loss {loss.item():.3f}")
            ctx.tracker.log_metrics({"train/loss": loss.item()}, step)
            if step % eval_every == 0 or step == total:
                model.eval()
                on_eval(step)
                model.train()
    ctx.progress.remove_task(bar)
    model.eval()
    return step


def _loss(model, batch: list[tuple[list[int], list[int]]], pad: int, device, precision: str):
    def padded(rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    ids = padded([b[0] for b in batch], pad)
    mask = padded([[1] * len(b[0]) for b in batch], 0)
    labels = padded([b[1] for b in batch], -100)
    # seq2seq: labels are the target (the model shifts them into decoder inputs); decoder: labels are
    # aligned with input_ids, -100 on the source (the model shifts them for next-token prediction)
    with autocast(device, precision):
        res = model(
            input_ids=to_device(ids, device), attention_mask=to_device(mask, device), labels=to_device(labels, device)
        )
    return res.loss.float()
