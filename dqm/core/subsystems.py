"""The subsystems a histogram, a check and a tile belong to, in the wall's order.

A module of its own (re-exported by :mod:`dqm.core.specs`) so that ``dqm flags`` can offer
them as choices without loading the specs' parser and, through it, every check.
"""

from __future__ import annotations

__all__ = ["SUBSYSTEMS"]

SUBSYSTEMS = ("calorimeter", "beam", "momentum", "pik", "daq")
