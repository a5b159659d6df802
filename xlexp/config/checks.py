"""The pieces every settings group is made of: small checks that name the key, and :func:`build`,
which turns a plain mapping (a resolved Hydra group) into a frozen settings dataclass.

Why a module of its own: the groups (``xlexp.config.schema``, ``xlexp.config.model_settings``, and
each regime's own settings class in ``xlexp.experiment.regimes``) all refuse a bad value the same way,
in one line naming the key, and an unknown key with the list of known ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from xlexp.errors import XlexpError, unknown_key


# -- small checks that name the key ----------------------------------------------------------------
def positive_int(key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise XlexpError(f"{key} must be a positive integer, got {value!r}")


def one_of(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise XlexpError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")


def fraction(key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise XlexpError(f"{key} must be in [0, 1), got {value!r}")


# -- building a dataclass from a plain mapping ---------------------------------------------------
def build(cls: type, raw: Mapping[str, Any] | None, where: str) -> Any:
    """``cls(**raw)`` with unknown keys refused (one line listing the known ones), lists turned into
    tuples where the field is a tuple, and nested settings classes built recursively."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in raw if k not in names)
    if unknown:
        raise unknown_key(unknown[0], names, f"the {where} settings ({cls.__name__})", prefix=f"{where}.")
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return build(option, value, where)
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
    others = [o for o in options if o is not type(None) and typing.get_origin(o) is not tuple]
    if value is not None and not others and any(typing.get_origin(o) is tuple for o in options):
        # a list setting given one value (regime.k=4): one line, not a TypeError deep in a regime
        raise XlexpError(f"{where} must be a list, e.g. {where}=[{value}]; got {value!r}")
    return value
