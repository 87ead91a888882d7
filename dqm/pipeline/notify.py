"""Notifications: new incidents, their acknowledgement, and STALE, posted to people's phones.

Targets (:class:`dqm.config.Settings`, ``DQM_NOTIFY_*``): JSON webhooks in the
Mattermost/Slack "incoming webhook" form (``{"text": …}``) and e-mail over SMTP.

Why it is built this way:

* **It never blocks a worker or the web server.** What to post is read from the database
  (:mod:`dqm.store.alarms`: the incidents table is the outbox) by the notifier's own
  thread; each target has its own delivery thread. A slow or dead mail server delays
  only its own posts; the worker that opened the incident committed long before.
* **Nothing is posted twice, nothing is lost in a crash.** Each incident's opening and
  acknowledgement is taken from the outbox by a conditional UPDATE, so two web servers
  never both post it; an incident opened while no notifier ran is posted when one starts
  (if it opened within ``BACKLOG_S``: last month's are not news).
* **Rate-limited without dropping.** A target gets at most one post every
  ``notify_min_interval_s``; what arrives in between goes into the next post together
  (17 queued spills after a beam pause make one message, not 17).
* **Retried, and every outcome logged.** A post is tried ``notify_retries`` times with a
  doubling back-off; each delivery is logged at INFO and each failure at WARNING (the
  last at ERROR), naming the target without its secret (a webhook URL's path is its key).

Layer: I/O shell (pipeline); the SQL is in :mod:`dqm.store.alarms`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from dqm.checks import quality_name
from dqm.config import Settings
from dqm.store.alarms import claim_acknowledged_incidents, claim_new_incidents, newest_close
from dqm.store.models import StoredIncident

__all__ = [
    "Message",
    "WebhookTarget",
    "EmailTarget",
    "Delivery",
    "Notifier",
    "targets_from_settings",
    "incident_message",
    "acknowledgement_message",
    "BACKLOG_S",
]

log = logging.getLogger("dqm.notify")

#: an incident opened longer ago than this before the notifier started is not posted
BACKLOG_S = 3600.0
#: most messages one post carries; the rest are counted in its last line
MAX_PER_POST = 20


@dataclass(frozen=True)
class Message:
    """One thing to tell people: a subject line (the e-mail's) and the text."""

    kind: str  # incident | acknowledged | stale | flowing
    subject: str
    text: str


def _since(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "?"


def _spills(row: StoredIncident) -> str:
    if row.first_spill == row.last_spill:
        return f"spill {row.first_spill}"
    return f"spills {row.first_spill}–{row.last_spill} ({row.n_spills} spills)"


def incident_message(row: StoredIncident, link_base: str = "") -> Message:
    """What a new incident posts: quality, subsystem, what, since when, what to do."""
    q = quality_name(row.quality).replace("_", " ")
    link = (
        f"\n{link_base.rstrip('/')}/expert?run={row.run}&spill={row.first_spill}"
        + (f"&histogram={row.histogram}" if row.histogram else "")
        if link_base
        else ""
    )
    return Message(
        "incident",
        f"[NA64μ DQM] {q} {row.subsystem}: {row.title} (run {row.run}, {_spills(row)})",
        f"{q} — {row.subsystem}: {row.title}\n"
        f"run {row.run}, {_spills(row)}, since {_since(row.opened_at)}\n"
        f"{row.explanation}\n▶ {row.instruction}{link}",
    )


def acknowledgement_message(row: StoredIncident) -> Message:
    note = f": {row.annotation}" if row.annotation else ""
    return Message(
        "acknowledged",
        f"[NA64μ DQM] acknowledged: {row.title} (run {row.run})",
        f"acknowledged by {row.acknowledged_by} at {_since(row.acknowledged_at)} — "
        f"{row.subsystem}: {row.title}, run {row.run}, {_spills(row)}{note}",
    )


def _combined(messages: Sequence[Message]) -> Message:
    """Several messages as one post (the rate limit's way of not dropping any)."""
    if len(messages) == 1:
        return messages[0]
    shown = list(messages[:MAX_PER_POST])
    more = len(messages) - len(shown)
    text = "\n\n".join(m.text for m in shown) + (f"\n\n… and {more} more" if more else "")
    return Message("combined", f"[NA64μ DQM] {len(messages)} notifications", text)


class WebhookTarget:
    """POST ``{"text": …}`` as JSON (Mattermost and Slack incoming webhooks take it)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        parts = urlsplit(url)
        self.name = f"webhook {parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":")

    def send(self, message: Message) -> None:
        body = json.dumps({"text": message.text}).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")


class EmailTarget:
    """One plain-text e-mail per post, over SMTP (no login: the site's mail relay)."""

    def __init__(self, host: str, sender: str, recipients: Sequence[str], timeout_s: float) -> None:
        name, _, port = host.partition(":")
        self.host, self.port = name, int(port or 25)
        self.sender, self.recipients = sender, list(recipients)
        self.timeout_s = timeout_s
        self.name = f"e-mail via {self.host}:{self.port} to {len(self.recipients)} recipient(s)"

    def send(self, message: Message) -> None:
        mail = EmailMessage()
        mail["From"], mail["To"] = self.sender, ", ".join(self.recipients)
        mail["Subject"] = message.subject
        mail.set_content(message.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(mail)


def targets_from_settings(settings: Settings) -> list:
    """The configured targets: each webhook URL, and e-mail when a host and recipients are set."""
    targets: list = [
        WebhookTarget(u.strip(), settings.notify_timeout_s)
        for u in settings.notify_webhook_urls.split(",")
        if u.strip()
    ]
    recipients = [r.strip() for r in settings.notify_email_to.split(",") if r.strip()]
    if settings.notify_smtp_host and recipients:
        targets.append(
            EmailTarget(
                settings.notify_smtp_host,
                settings.notify_email_from,
                recipients,
                settings.notify_timeout_s,
            )
        )
    return targets


class Delivery:
    """One target's queue and thread: coalesce, rate-limit, retry, log."""

    def __init__(
        self, target, *, min_interval_s: float, retries: int, first_backoff_s: float = 2.0
    ) -> None:
        self.target = target
        self.min_interval_s = min_interval_s
        self.retries = max(int(retries), 1)
        self.first_backoff_s = first_backoff_s
        self.delivered = 0
        self.failed = 0
        self._pending: list[Message] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"dqm-notify {target.name}", daemon=True
        )

    def start(self) -> Delivery:
        self._thread.start()
        return self

    def put(self, message: Message) -> None:
        """Queue a message; returns at once."""
        with self._lock:
            self._pending.append(message)
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._deliver(_combined(batch), len(batch))
                self._stop.wait(self.min_interval_s)  # the rate limit: what comes now waits

    def _deliver(self, message: Message, count: int) -> None:
        wait = self.first_backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                self.target.send(message)
            except Exception as exc:  # noqa: BLE001 — logged; a target never stops the DQM
                last = attempt == self.retries or self._stop.is_set()
                log.log(
                    logging.ERROR if last else logging.WARNING,
                    "notification to %s failed (attempt %d of %d): %s: %s%s",
                    self.target.name,
                    attempt,
                    self.retries,
                    type(exc).__name__,
                    exc,
                    f"; given up: {message.subject}" if last else f"; again in {wait:g} s",
                )
                if last:
                    self.failed += 1
                    return
                self._stop.wait(wait)
                wait *= 2
                continue
            self.delivered += 1
            log.info(
                "notification delivered to %s: %s (%d message%s)",
                self.target.name,
                message.subject,
                count,
                "" if count == 1 else "s",
            )
            return


class Notifier:
    """Reads the outbox and the newest spill every ``poll_s``; hands messages to the targets.

    ``sessions`` is a SQLAlchemy sessionmaker of the process (the web server's).
    """

    def __init__(
        self,
        settings: Settings,
        sessions: Callable,
        *,
        targets: list | None = None,
        poll_s: float = 2.0,
        link_base: str | None = None,
        first_backoff_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.poll_s = poll_s
        self.link_base = settings.notify_link_base if link_base is None else link_base
        found = targets_from_settings(settings) if targets is None else targets
        self.deliveries = [
            Delivery(
                t,
                min_interval_s=settings.notify_min_interval_s,
                retries=settings.notify_retries,
                first_backoff_s=first_backoff_s,
            )
            for t in found
        ]
        self.started_at = datetime.now(UTC)
        self._stale: bool | None = None  # unknown until the first look
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.deliveries)

    def start(self) -> Notifier:
        if self.enabled and self._thread is None:
            for d in self.deliveries:
                d.start()
            self._thread = threading.Thread(target=self._run, name="dqm-notifier", daemon=True)
            self._thread.start()
            log.info("notifications to %s", ", ".join(d.target.name for d in self.deliveries))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for d in self.deliveries:
            d.stop()

    def post(self, message: Message) -> None:
        for d in self.deliveries:
            d.put(message)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 — database away: try again next time
                log.warning("notifier could not read the database: %s", exc)
            self._stop.wait(self.poll_s)

    def poll_once(self, now: datetime | None = None) -> list[Message]:
        """One look: new incidents, new acknowledgements, STALE changes; posts and returns them."""
        now = now or datetime.now(UTC)
        out: list[Message] = []
        with self.sessions.begin() as session:
            since = self.started_at - timedelta(seconds=BACKLOG_S)
            out += [
                incident_message(r, self.link_base) for r in claim_new_incidents(session, since)
            ]
            out += [acknowledgement_message(r) for r in claim_acknowledged_incidents(session)]
            last = newest_close(session)
        stale_message = self._stale_change(last, now)
        if stale_message is not None:
            out.append(stale_message)
        for m in out:
            self.post(m)
        return out

    def _stale_change(self, last, now: datetime) -> Message | None:
        """A message when the data stop (STALE) or flow again; nothing on the first look."""
        if last is None:  # no spill ever closed: nothing has stopped yet
            return None
        limit = self.settings.stale_after_s
        stale = (now - last[2]).total_seconds() > limit
        before, self._stale = self._stale, stale
        if before is None or before == stale:
            return None
        run, spill, at = last
        if stale:
            return Message(
                "stale",
                f"[NA64μ DQM] STALE: no spill closed for more than {limit:g} s",
                f"STALE — no spill closed for more than {limit:g} s (last: run {run} spill "
                f"{spill} at {_since(at)}). Check the DAQ and the DQM workers.",
            )
        return Message(
            "flowing",
            "[NA64μ DQM] data flowing again",
            f"data flowing again: run {run} spill {spill} closed at {_since(at)}",
        )


def wait_delivered(notifier: Notifier, count: int, timeout_s: float) -> bool:
    """Test and CLI helper: whether the targets delivered ``count`` posts within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(d.delivered for d in notifier.deliveries) >= count:
            return True
        time.sleep(0.05)
    return False
