"""The one data refresher per server process, and the expert pages' read/act services.

Why: twenty wall screens and a few expert browsers must not mean twenty database
queries per second. One :class:`DataStore` per process listens to the workers'
"spill closed" pub/sub channel (and polls a cheap change token as a fallback when a
message is missed or Redis is down), builds one :class:`~apps.snapshot.Snapshot`
and bumps an integer ``version``. Each session subscribes a wake-up (:meth:`subscribe`)
that schedules its redraw on its own document when a snapshot is published — no
per-session polling (a 150 ms timer in 20 sessions cost 26 % of a core for nothing) —
and redraws only what moved.

The expert pages' reads go through :meth:`DataStore.read` (one short session per
user action, small caches for decoded histograms) and writes through
:meth:`DataStore.act`, which runs a :mod:`dqm.store.actions` function in one transaction
and then refreshes the snapshot so every screen shows the change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import boost_histogram as bh
import redis

from apps.snapshot import EMPTY, PlotCache, Snapshot, build_plots, build_snapshot
from dqm.config import Settings
from dqm.core.histio import decode_histograms
from dqm.core.specs import SpecSet
from dqm.store import Session, SQLAlchemyError, Store
from dqm.store.frames import spill_blobs
from dqm.store.queries import ChangeWatch, change_token
from dqm.store.references import ReferenceCache
from dqm.store.spills import spill_histograms

__all__ = ["DataStore"]

log = logging.getLogger("dqm.web")
T = TypeVar("T")


class _LRU:
    """A tiny thread-safe LRU for immutable decoded objects (keyed by spill id etc.)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def has(self, key: Any) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class DataStore:
    """Owns the database engine of the web process, the live snapshot and its refresher."""

    def __init__(
        self, settings: Settings, specs: SpecSet, store: Store, *, poll_s: float = 2.0
    ) -> None:
        self.settings = settings
        self.specs = specs
        self.store = store
        self.poll_s = poll_s
        self._snapshot: Snapshot = EMPTY
        self._token: tuple | None = None
        self._refs = ReferenceCache()
        self._plots = PlotCache()
        self._watch = ChangeWatch(store.engine)
        self._build_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.spill_cache = _LRU(512)  # decoded spills, ~0.23 MB each: at most ~120 MB
        self.blob_cache = _LRU(4096)  # stored spill blobs, ~10 KB each: at most ~40 MB
        self.hist_cache = _LRU(8192)  # (spill id, histogram) decoded alone
        self.view_cache = _LRU(256)  # what a page reads, per store version (see cached())
        self.refreshes = 0
        self._listeners: dict[int, Callable[[], None]] = {}
        self._listeners_lock = threading.Lock()
        self._next_listener = 0

    # ------------------------------------------------------------------ session wake-ups
    def subscribe(self, wake: Callable[[], None]) -> int:
        """Call ``wake()`` (from the refresher's thread) whenever a snapshot is published.

        ``wake`` must only schedule work on its session (e.g. ``doc.add_next_tick_callback``);
        returns a token for :meth:`unsubscribe`.
        """
        with self._listeners_lock:
            self._next_listener += 1
            self._listeners[self._next_listener] = wake
            return self._next_listener

    def unsubscribe(self, token: int) -> None:
        with self._listeners_lock:
            self._listeners.pop(token, None)

    def _publish(self, snap: Snapshot) -> None:
        self._snapshot = snap
        with self._listeners_lock:
            listeners = list(self._listeners.values())
        for wake in listeners:
            try:
                wake()
            except Exception:  # a closing session must not stop the others' updates
                log.debug("a session's wake-up failed", exc_info=True)

    # ------------------------------------------------------------------ live snapshot
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def version(self) -> int:
        """Bumped on every rebuild; sessions redraw when it differs from what they drew."""
        return self._snapshot.version

    def refresh(self) -> Snapshot:
        """Rebuild the snapshot now (one set of queries, whoever asks and however many watch).

        Published in two steps: verdict and numbers first (a few small queries), then the
        plots (histogram decoding) — the tiles never wait for the histograms.
        """
        with self._build_lock:
            t0 = time.perf_counter()
            with self.store.sessions() as session:
                token = change_token(session)
                snap = build_snapshot(
                    session,
                    self.specs,
                    version=self._snapshot.version + 1,
                    plots=self._snapshot.plots,
                    settle_s=self.settings.spill_timeout_s,
                )
                self._publish(snap)
                t1 = time.perf_counter()
                plots = build_plots(session, self.specs, self._refs, snap, self._plots)
            self._token = token
            snap = replace(snap, plots=plots)  # same version: sessions see the new plots object
            self._publish(snap)
            self.refreshes += 1
            log.debug(
                "snapshot of run %s spill %s: verdict in %.0f ms, plots in %.0f ms",
                snap.run,
                snap.spill,
                (t1 - t0) * 1000,
                (time.perf_counter() - t1) * 1000,
            )
            return snap

    def poll(self) -> bool:
        """Fallback path: rebuild only if the change token moved. Returns whether it did."""
        token = self._watch.token()
        if token == self._token:
            return False
        self.refresh()
        return True

    def start(self) -> DataStore:
        """Build the first snapshot and start the refresher thread (idempotent)."""
        if self._thread is None:
            self._safe(self.refresh)
            self._thread = threading.Thread(target=self._run, name="dqm-web-refresher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._watch.close()

    def _safe(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except SQLAlchemyError as exc:
            log.warning("refresh failed (database): %s", exc)

    def _run(self) -> None:
        pubsub = None
        while not self._stop.is_set():
            if pubsub is None and self.settings.redis_url:
                pubsub = self._subscribe()
            message = None
            if pubsub is not None:
                try:
                    message = pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.poll_s
                    )
                except (redis.RedisError, OSError) as exc:
                    log.warning("lost the spill-closed channel (%s); polling the database", exc)
                    pubsub = None
            else:
                self._stop.wait(self.poll_s)
            if self._stop.is_set():
                break
            if message is not None:
                self._safe(self.refresh)
            else:
                self._safe(self.poll)
        if pubsub is not None:
            pubsub.close()

    def _subscribe(self):
        try:
            client = redis.Redis.from_url(
                self.settings.redis_url, socket_connect_timeout=2, health_check_interval=30
            )
            pubsub = client.pubsub()
            pubsub.subscribe(self.settings.channel)
            return pubsub
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "cannot subscribe to %s (%s); polling the database every %g s",
                self.settings.channel,
                exc,
                self.poll_s,
            )
            time.sleep(min(self.poll_s, 1.0))
            return None

    # ------------------------------------------------------------------ expert reads and actions
    def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read-only query function in a short session of the web process."""
        with self.store.sessions() as session:
            return fn(session)

    def cached(self, key: Any, fn: Callable[[Session], T]) -> T:
        """``read(fn)``, shared by every session until the store changes (the version moves).

        Why: experts open the same views (a flag's link, the newest spills of the run), and
        each open read the run list, the run's spills and the view's sums again. What comes
        back is shared between sessions: never modify it.
        """
        return self.view_cache.get((key, self.version), lambda: self.read(fn))

    def act(self, fn: Callable[[Session], T]) -> T:
        """Run a :mod:`dqm.store.actions` call in one transaction, then refresh every screen."""
        with self.store.sessions.begin() as session:
            result = fn(session)
            session.flush()
            session.expunge_all()
        self._safe(self.refresh)
        return result

    def spill_hists(self, session: Session, spill_id: int) -> dict[str, bh.Histogram]:
        """A closed spill's decoded histograms (cached: closed spills never change)."""
        return self.spill_cache.get(spill_id, lambda: spill_histograms(session, spill_id))

    def spill_histogram(
        self, session: Session, spill_ids: list[int], name: str
    ) -> list[bh.Histogram]:
        """Histogram ``name`` of each closed spill (those that have it), decoded alone.

        Why not :meth:`spill_hists`: decoding all ~50 histograms of a spill costs ~120 ms,
        one of them ~8 ms, so a 300-spill range draws in seconds, not half a minute. The
        blobs are fetched in one query and cached (closed spills never change).
        """
        missing = [i for i in spill_ids if not self.blob_cache.has(i)]
        fetched = spill_blobs(session, missing) if missing else {}
        out = []
        for i in spill_ids:
            blob = self.blob_cache.get(i, lambda i=i: fetched.get(i, b""))
            if not blob:
                continue
            h = self.hist_cache.get(
                (i, name), lambda b=blob: decode_histograms(b, [name])[0].get(name)
            )
            if h is not None:
                out.append(h)
        return out

    def reference_hists(self, session: Session, ref) -> dict[str, bh.Histogram]:
        return self._refs.get(session, ref)
