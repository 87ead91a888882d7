"""Who may do what: shifters and experts.

A shifter watches the wall: acknowledges, annotates, silences and signs off spills. An
expert may also change what every later spill is judged against: the reference run, a
masked channel, a check's thresholds. The rule lives with the actions
(:mod:`dqm.store.actions`, :mod:`dqm.store.certification`) so it holds whoever calls them;
the web pages hide what a role may not do only as a convenience.

An :class:`Actor` is the person's name (a ``str``, so every place that shows or audits a
user name keeps working) that also carries the role. A plain string is a shifter: the
expert role must be given explicitly (the web login's ``DQM_WEB_EXPERTS``, or a ``dqm``
command acting as an expert with a stated user).

Layer: pure core.
"""

from __future__ import annotations

__all__ = ["SHIFTER", "EXPERT", "ROLES", "Actor", "role_of"]

SHIFTER, EXPERT = "shifter", "expert"
ROLES = (SHIFTER, EXPERT)


class Actor(str):
    """A user name with a role: ``Actor("alice", EXPERT)``; compares and prints as the name."""

    role: str

    def __new__(cls, name: str, role: str = SHIFTER) -> Actor:
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}' (known: {', '.join(ROLES)})")
        self = super().__new__(cls, name)
        self.role = role
        return self

    def __repr__(self) -> str:
        return f"Actor({str(self)!r}, {self.role!r})"


def role_of(user: object) -> str:
    """The role of ``user``: an :class:`Actor`'s, else shifter."""
    return getattr(user, "role", SHIFTER) if isinstance(user, str) else SHIFTER
