"""Where a run executes: device, numeric precision, threads, and the peak memory it used."""

from __future__ import annotations

import resource
import sys

import torch

from xlexp.errors import XlexpError


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise XlexpError(f"trainer.device={setting} but CUDA is not available here; use trainer.device=cpu or auto")
    return device


def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AVX512-BF16 or AMX), where oneDNN runs bf16
    matmuls ~2.5x faster than fp32 (measured here: 417 vs 168 GFLOP/s on a 2048^2 matmul)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if check is not None or amx is not None:
        return bool((check and check()) or (amx and amx()))
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(setting: str, device: torch.device) -> str:
    """``auto``: bf16 autocast on CUDA GPUs and CPUs with bf16 units, fp32 elsewhere."""
    if setting != "auto":
        if setting == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise XlexpError("trainer.precision=bf16 but this GPU has no bf16 support; use fp32 or auto")
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated GPU memory on CUDA, the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)
