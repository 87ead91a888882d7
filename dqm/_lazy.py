"""Modules imported on first use, so that a command starts without paying for them.

SciPy's ``stats`` alone costs about a CPU-second to import on the build machine, while
``dqm --help``, ``dqm status`` or a worker waiting for its first spill never evaluate a
distribution. A check module binds ``_st = lazy_module("scipy.stats")`` and writes
``_st.norm.sf(...)`` as before; the import happens at the first attribute read.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands in for a module until an attribute is read, then forwards to the real one."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            self._module = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``importlib.import_module(name)`` that imports on first attribute use."""
    return _LazyModule(name)
