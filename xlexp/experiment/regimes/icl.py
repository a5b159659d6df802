"""In-context cross-lingual transfer (``regime=icl``): no training. K demonstrations drawn from the
SOURCE language's train split, the query in the TARGET language; each label is scored by the
log-likelihood of its verbaliser after the prompt (rank classification), optionally calibrated
(Zhao et al., ICML 2021: the label probabilities of a content-free query divide the query's).

Why a regime: the cells are the same source x target cells as fine-tuning, so the records carry the
same fields (plus ``finetune='icl'``, the model ``family`` and ``k``) and every view, including
``xlexp compare``, puts a fine-tuned matrix and an in-context one side by side. K = 0 is the
zero-shot prompt (its records have k = 0, so they form the "no shots" slice that compare uses by
default; pass ``--k-b 4`` for the K = 4 slice). With no checkpoint to choose, each test cell is recorded
once, under the selection rule ``none`` (``NO_SELECTION``): a record never names a rule that did not
choose anything, and a summary over shot sets counts each cell once (n = shot sets x seeds).

Shot sets are drawn as in few-shot (``xlexp.data.fewshot``: deterministic from task, language, K,
set index and sampling seed; saved under ``results/shots``; a published file via ``regime.shots_file``).
The demonstrations appear in a fixed order shuffled by the set's hash (label-sorted ids would put
all of one class last, the recency bias ICL is known for). Config: ``xlexp/conf/regime/icl.yaml``;
prompts: ``xlexp.tasks.prompts``. Generation tasks (``type: generation``) get K source-language pairs
as demonstrations and greedy decoding instead (:func:`run_icl_generation`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from xlexp.config.schema import NO_SELECTION, RegimeSettings, positive_int
from xlexp.data.fewshot import ShotSet, load_shot_file, sample_shots, save_shot_set
from xlexp.data.vocab import count_parameters
from xlexp.engine import distributed
from xlexp.engine.inference import compute_metrics
from xlexp.engine.lm_scoring import continuation_logprobs
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.models.encoders import load_language_model
from xlexp.tasks.prompts import Prompt, prompt_for
from xlexp.tasks.readers import Example
from xlexp.tasks.spec import load_split

log = logging.getLogger(__name__)

CONTENT_FREE = "N/A"


@dataclass(frozen=True)
class IclSettings(RegimeSettings):
    dev_targets: object = "none"
    k: tuple[int, ...] = (0, 4)  # demonstrations in the prompt; 0 = the bare prompt
    k_per: str = "total"  # total: K demonstrations in all (ICL's usual K) | class: K of every label
    shot_sets: int = 1  # different draws per K > 0
    sampling_seed: int = 0
    shots_file: str | None = None  # JSON {"<source lang>": {"<K>": [[train row ids], ...]}}
    calibrate: bool = False  # contextual calibration with a content-free query ("N/A")
    batch_size: int | None = None  # scored sequences per forward pass; None = data.eval_batch_size

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k_per not in ("class", "total"):
            raise XlexpError(f"regime.k_per must be class or total; got {self.k_per!r}")
        if not self.k or any(not isinstance(k, int) or isinstance(k, bool) or k < 0 for k in self.k):
            raise XlexpError(f"regime.k must be a non-empty list of integers >= 0, got {list(self.k)}")
        positive_int("regime.shot_sets", self.shot_sets)
        positive_int("regime.batch_size", self.batch_size, allow_none=True)


@register
class InContext(Regime):
    name = "icl"
    task_types = (
        "sentence_classification",
        "pair_classification",
        "generation",
    )  # label verbalisers, or generation with demonstrations
    families = ("decoder",)
    settings_class = IclSettings
    classical = False
    trains = False  # nothing is trained: generation tasks are scored here too, not by their training executor
    own_executor = True  # generation tasks are prompted and decoded here, not fine-tuned by their executor

    def units(self, settings: IclSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        # train_languages = the source: its train split holds the demonstrations; no dev split is read
        return [TrainingUnit(s, (s,), (), targets, (), seed) for seed in seeds for s in sources]

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        s = ctx.settings  # task type and model family: checked with the settings (regimes.check_compatible)
        if ctx.trim is not None:
            raise XlexpError(
                "regime=icl with model.trim_vocab=true: the prompt and verbaliser tokens are not in the "
                "trimmed vocabulary; set model.trim_vocab=false"
            )
        generation = ctx.kind.generates  # text to decode (demonstrations + greedy decoding), not labels to rank
        model = load_language_model(s.model, ctx.model_path).to(ctx.device)
        total, _ = count_parameters(model)
        ctx.model_info = {"params": total, "trainable_params": 0}
        start = len(out.records)
        (run_icl_generation if generation else run_icl_cells)(ctx, unit, model, out)
        out.records[start:] = [replace(r, finetune="icl") for r in out.records[start:]]
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_icl_cells(ctx: RunContext, unit: TrainingUnit, model, out: UnitOutput) -> None:
    s, spec = ctx.settings, ctx.spec
    fs: IclSettings = s.regime
    pair = ctx.kind.pair
    pool = load_split(spec, unit.source, "train", s.paths.data_dir, s.data.source)
    pool_labels = np.array([e.label for e in pool], dtype=np.int64)
    src_prompt = prompt_for(spec.options, unit.source, spec.labels, spec.name, pair)
    tokenizer = ctx.cache.tokenizer
    batch = fs.batch_size or s.data.eval_batch_size
    max_length = int(s.model.max_length or 2048)
    for k in sorted(set(int(k) for k in fs.k)):
        for shots in _shot_sets(ctx, unit.source, k, pool_labels):
            if shots is not None and distributed.is_main():
                save_shot_set(shots, s.paths.results_dir)
            demos = _demonstrations(src_prompt, pool, shots)
            for target in unit.targets:
                prompt = prompt_for(spec.options, target, spec.labels, spec.name, pair)
                test = ctx.split(target, "test", unit.seed)
                examples = load_split(spec, target, "test", s.paths.data_dir, s.data.source)
                queries = [examples[int(i)] for i in test.example_ids]
                head = prompt.instruction + (prompt.separator if prompt.instruction else "")
                demo_block = prompt.separator.join(demos) + (prompt.separator if demos else "")
                contexts = [head + demo_block + prompt.context(q.text, q.text_pair) for q in queries]
                conts = prompt.continuations()
                scores, cut = continuation_logprobs(
                    model, tokenizer, contexts, [conts] * len(contexts), batch, ctx.device, ctx.precision, max_length
                )
                if cut:
                    log.info(
                        "icl %s -> %s K=%d: %d of %d prompts cut from the left to fit %d tokens",
                        unit.source,
                        target,
                        k,
                        cut,
                        len(contexts),
                        max_length,
                    )
                logp = _normalise(scores)
                if fs.calibrate:
                    free = head + demo_block + prompt.context(CONTENT_FREE, CONTENT_FREE if pair else None)
                    cf, _ = continuation_logprobs(
                        model, tokenizer, [free], [conts], batch, ctx.device, ctx.precision, max_length
                    )
                    logp = logp - _normalise(cf)
                preds = logp.argmax(1).astype(np.int64)
                metrics = compute_metrics(preds, test, spec.metrics, spec.labels)
                index = shots.index if shots is not None else None
                out.add_test(target, test, preds, metrics, NO_SELECTION, None, k=k, shot_set=index)
                log.info(
                    "icl %s -> %s K=%d%s: %s",
                    unit.source,
                    target,
                    k,
                    f" set {index}" if index is not None else "",
                    ", ".join(f"{m} {v:.4f}" for m, v in metrics.items()),
                )


def _normalise(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities renormalised over the labels (rows sum to 1 in probability)."""
    m = scores.max(1, keepdims=True)
    return scores - (m + np.log(np.exp(scores - m).sum(1, keepdims=True)))


def _shot_sets(ctx: RunContext, source: str, k: int, labels: np.ndarray) -> list[ShotSet | None]:
    fs: IclSettings = ctx.settings.regime
    if k == 0:
        return [None]
    if fs.shots_file:
        return load_shot_file(fs.shots_file, ctx.spec.name, source, k, len(labels))
    return [
        sample_shots(labels, ctx.spec.labels, ctx.spec.name, source, k, fs.k_per, i, int(fs.sampling_seed))
        for i in range(int(fs.shot_sets))
    ]


def _demonstrations(prompt: Prompt, pool: list[Example], shots: ShotSet | None) -> list[str]:
    if shots is None:
        return []
    return [prompt.demonstration(pool[i].text, pool[i].text_pair, pool[i].label) for i in _order(shots)]


def run_icl_generation(ctx: RunContext, unit: TrainingUnit, model, out: UnitOutput) -> None:
    """Generation tasks: K source-language pairs as demonstrations (``prefix + source + separator +
    target``, one per line), then the target language's source text; greedy decoding (or
    ``model.num_beams``) cut at the first newline, scored with chrF++/BLEU per direction. Records:
    ``source_dev`` and ``last``, like a fine-tuned generation unit."""
    from xlexp.engine.lm_scoring import generate
    from xlexp.engine.mt_metrics import generation_scores
    from xlexp.experiment.generation import Codec, add_scores, pairs_of
    from xlexp.tasks.types.generation import check_directions

    s, spec = ctx.settings, ctx.spec
    fs: IclSettings = s.regime
    check_directions(spec)
    if fs.k_per != "total":
        raise XlexpError("regime.k_per=class needs labels; a generation task has none: use regime.k_per=total")
    codec = Codec(ctx)
    if codec.codes:
        raise XlexpError(
            f"regime=icl on a generation task uses text prompts; model '{s.model.name}' has lang_codes "
            f"(a seq2seq convention): set model.lang_codes={{}}"
        )
    for k in sorted(set(int(k) for k in fs.k)):
        for direction in spec.options["directions"]:
            pool = pairs_of(ctx, unit.source, "train", direction, None, unit.seed)
            for shots in _shot_sets(ctx, unit.source, k, np.zeros(len(pool), dtype=np.int64)):
                if shots is not None and distributed.is_main():
                    save_shot_set(shots, s.paths.results_dir)
                demos = (
                    ""
                    if shots is None
                    else "".join(codec.source_text(pool[i]) + pool[i].target + "\n" for i in _order(shots))
                )
                for target in unit.targets:
                    pairs = pairs_of(ctx, target, "test", direction, s.data.max_eval_examples, unit.seed)
                    prompts = [demos + codec.source_text(p) for p in pairs]
                    hyps = generate(
                        model,
                        ctx.cache.tokenizer,
                        prompts,
                        fs.batch_size or s.data.eval_batch_size,
                        ctx.device,
                        ctx.precision,
                        int(s.model.max_length or 2048),
                        int(s.model.max_new_tokens),
                        int(s.model.num_beams),
                        stop="\n",
                    )
                    scores, sigs = generation_scores(hyps, [p.target for p in pairs])
                    wanted = {f"{m}_{direction}": v for m, v in scores.items() if f"{m}_{direction}" in spec.metrics}
                    index = shots.index if shots is not None else None
                    add_scores(out, target, "test", wanted, len(pairs), NO_SELECTION, None, sigs, k=k, shot_set=index)


def _order(shots: ShotSet) -> list[int]:
    ids = list(shots.ids)
    seed = int(hashlib.sha1(f"{shots.hash}|order".encode()).hexdigest()[:8], 16)
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
