"""``dqm worker`` that SIGKILLs itself at a named instant: deterministic crash tests.

    python -m tests.killpoint POINT worker --consumer NAME ...

POINT is where the process dies, with a real SIGKILL (no cleanup, no ``finally``):

* ``stored-not-acked`` — a group that completes a spill has been stored (committed), its
  messages are not acknowledged yet and the spill is not closed;
* ``acked-not-closed`` — the messages are acknowledged, the spill's close has not begun.

Everything else is the real command (``python -m dqm``), on the real services.
"""

from __future__ import annotations

import os
import signal
import sys

from dqm.pipeline import settle as settle_module
from dqm.pipeline import worker as worker_module
from dqm.store.spills import closable_spills

POINTS = ("stored-not-acked", "acked-not-closed")


def _die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    if point == "stored-not-acked":
        real_settle = worker_module.settle

        def settle(w) -> None:
            if w.owed.ack and w.owed.close:
                with w.sessions() as session:
                    if closable_spills(session, w.owed.close):
                        _die()
            real_settle(w)

        worker_module.settle = settle
    elif point == "acked-not-closed":
        real_close = settle_module.close_spill

        def close_spill(w, spill_id, *, incomplete, arrived=None):
            if not incomplete:  # settle acknowledged the group just before closing its spills
                _die()
            return real_close(w, spill_id, incomplete=incomplete, arrived=arrived)

        settle_module.close_spill = close_spill
    else:
        raise SystemExit(f"unknown kill point {point!r}; expected one of {POINTS}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from dqm.cli import main

    sys.exit(main(sys.argv[2:]))
