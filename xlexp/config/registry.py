"""Named units found by scanning a package folder: the regimes (``xlexp.experiment.regimes``) and the
task types (``xlexp.tasks.types``) are each one module per unit, registered with a class decorator.
Every module of the folder is imported once, on the first lookup, so adding a unit is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Generic, TypeVar

from xlexp.errors import XlexpError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, path: Iterable[str]):
        self.kind, self._package, self._path = kind, package, list(path)
        self._units: dict[str, T] = {}
        self._scanned = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: one instance of ``cls`` under ``cls.name``."""
        self._units[cls.name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        self._units.pop(name, None)

    def _scan(self) -> None:
        if not self._scanned:
            for info in pkgutil.iter_modules(self._path):
                importlib.import_module(f"{self._package}.{info.name}")
            self._scanned = True

    def names(self) -> list[str]:
        self._scan()
        return sorted(self._units)

    def get(self, name: str, where: str = "") -> T:
        self._scan()
        if name not in self._units:
            raise XlexpError(
                f"unknown {self.kind} '{name}'{f' ({where})' if where else ''}; "
                f"available: {', '.join(sorted(self._units))}"
            )
        return self._units[name]
