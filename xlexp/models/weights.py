"""Reading a ``.pt`` state dict: weights only, never code, and one line when the file is bad.

``torch.load(..., weights_only=True)`` already refuses a pickle that would call code, but its error
ends with torch's hint to retry with ``weights_only=False``: the one thing a user must not do with a
file from elsewhere. Every state dict xlexp reads from a user's path or its own cache goes through
:func:`load_weights`, which says instead that xlexp loads weights only, and names a truncated or
foreign file as such (a cache file is then rebuilt by its caller, as the tokenized caches are).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from xlexp.errors import XlexpError


class BadWeightsFile(XlexpError):
    """A ``.pt`` file that is not a readable weights-only state dict."""


def load_weights(path: Path | str, what: str) -> dict:
    """The state dict in ``path`` (on the CPU); :class:`BadWeightsFile` (one line) when the file is
    truncated, not a torch file, or a pickle that would need code to load."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message cannot tell garbage from a pickle that names code
        raise BadWeightsFile(
            f"{what} {path} cannot be read as a weights-only torch state dict (truncated, not a .pt "
            f"file, or a pickle that names code to run); xlexp loads weights only and never runs "
            f"code from a checkpoint: save one with torch.save(model.state_dict(), path)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadWeightsFile(
            f"{what} {path} cannot be read as a torch state dict (truncated or not a .pt file: {first[:200]})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadWeightsFile(
            f"{what} {path} is not a state dict of tensors (got {type(state).__name__}); save one "
            f"with torch.save(model.state_dict(), path)"
        )
    return state
