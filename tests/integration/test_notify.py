"""Notifications (issue 12, item 3) against a real HTTP server and a real SMTP server on loopback.

Given incidents stored in a real PostgreSQL as the worker stores them, the notifier posts
their opening, their acknowledgement and STALE to a webhook (``{"text": …}``) and by e-mail
(aiosmtpd); it coalesces what comes within its rate limit, retries, logs every delivery and
failure, and never waits for a target.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dqm.checks import Quality
from dqm.config import Settings
from dqm.pipeline.notify import EmailTarget, Message, Notifier, WebhookTarget, wait_delivered
from dqm.pipeline.services import free_port
from dqm.store.incidents import acknowledge_incident
from dqm.store.models import Spill, utcnow
from tests.helpers import wait_until
from tests.incident_helpers import RUN, close, incident_store, verdict

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(pg_url):
    yield from incident_store(pg_url)


class Hook:
    """A webhook receiver on loopback: records JSON bodies; can fail or hold requests."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.fail_next = 0
        self.release = threading.Event()
        self.release.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 — http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.release.wait(30)
                if hook.fail_next > 0:
                    hook.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3cr3tkey"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.mails: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's name
            self.mails.append(
                (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
            )
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, f"127.0.0.1:{controller.port}"
    controller.stop()


def make_settings(**kw) -> Settings:
    base = {"notify_min_interval_s": 0.2, "notify_retries": 3, "notify_timeout_s": 5.0}
    return Settings(**{**base, **kw})


def test_new_incident_acknowledgement_and_stale_reach_webhook_and_mail(
    sessions, hook, smtp, caplog
):
    caplog.set_level(logging.INFO, logger="dqm.notify")
    inbox, host = smtp
    settings = make_settings(
        notify_webhook_urls=hook.url,
        notify_smtp_host=host,
        notify_email_to="shift@example.org, dqm-expert@example.org",
        notify_link_base="https://dqm.example.org",
        stale_after_s=60,
    )
    notifier = Notifier(settings, sessions, first_backoff_s=0.05).start()
    try:
        # Given a BAD spill that opened an incident
        (opened,) = close(sessions, 1, verdict(Quality.BAD))
        # When the notifier looks, then the webhook gets {"text": …} and the shift an e-mail
        wait_until(lambda: hook.bodies and inbox.mails, 20, what="incident posted")
        text = hook.bodies[0]["text"]
        assert "BAD" in text and "Beam moved" in text and f"run {RUN}, spill 1" in text
        assert "call the beam expert" in text
        assert f"https://dqm.example.org/expert?run={RUN}&spill=1&histogram=beam_x" in text
        rcpt, mail = inbox.mails[0]
        assert sorted(rcpt) == ["dqm-expert@example.org", "shift@example.org"]
        assert mail["Subject"].startswith("[NA64μ DQM] BAD beam: Beam moved")
        # When a shifter acknowledges it, then that is posted too, with who
        with sessions.begin() as s:
            acknowledge_incident(s, opened, "carol", annotation="CCC retuned")
        wait_until(lambda: len(hook.bodies) >= 2 and len(inbox.mails) >= 2, 20, what="ack posted")
        assert "acknowledged by carol" in hook.bodies[1]["text"]
        assert "CCC retuned" in hook.bodies[1]["text"]
    finally:
        notifier.stop()
    # And every delivery was logged, naming the target without the webhook's secret path
    delivered = [r.getMessage() for r in caplog.records if "delivered" in r.getMessage()]
    assert len(delivered) >= 4
    assert all("s3cr3tkey" not in r.getMessage() for r in caplog.records)
    # STALE: nothing on the first look; posted once when the spills stop, and when they resume
    quiet = Notifier(settings, sessions, targets=[])
    with sessions() as s:
        closed_at = s.query(Spill).one().closed_at
    assert quiet.poll_once(now=closed_at + timedelta(seconds=10)) == []
    (stale,) = quiet.poll_once(now=closed_at + timedelta(seconds=61))
    assert stale.kind == "stale" and "no spill closed for more than 60 s" in stale.text
    assert quiet.poll_once(now=closed_at + timedelta(seconds=120)) == []
    close(sessions, 2, verdict(None))
    (flowing,) = quiet.poll_once(now=utcnow())
    assert flowing.kind == "flowing" and "spill 2" in flowing.text


def test_rate_limit_coalesces_and_a_failing_target_is_retried_then_given_up(hook, caplog):
    caplog.set_level(logging.INFO, logger="dqm.notify")
    settings = make_settings(notify_min_interval_s=1.0, notify_retries=3)
    notifier = Notifier(
        settings, None, targets=[WebhookTarget(hook.url, 5.0)], first_backoff_s=0.05
    )
    delivery = notifier.deliveries[0].start()
    try:
        # Given a target that holds its first request (a slow server)
        hook.release.clear()
        # When 12 messages are posted at once (a burst of spills after a beam pause)
        for i in range(12):
            notifier.post(Message("incident", f"subject {i}", f"incident {i}"))
        # Then posting returned while the target still holds the first request: nobody waits
        assert hook.bodies == []
        hook.release.set()

        # And at most two posts carry all twelve (the rate limit combines, drops nothing)
        def texts() -> str:
            return "\n".join(b["text"] for b in hook.bodies)

        wait_until(lambda: all(f"incident {i}\n" in texts() + "\n" for i in range(12)), 20)
        posts = len(hook.bodies)
        assert 1 <= posts <= 2 and posts == sum(d.delivered for d in notifier.deliveries)
        # When the server answers 500 twice, then the third attempt delivers
        hook.fail_next = 2
        notifier.post(Message("incident", "retry me", "retry me"))
        assert wait_delivered(notifier, posts + 1, 20)
        assert "retry me" in hook.bodies[-1]["text"]
        fails = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
        assert [r.levelno for r in fails] == [logging.WARNING, logging.WARNING]
    finally:
        delivery.stop()
    # When a target is down for good, then it is given up after its retries, logged as ERROR
    dead = Notifier(
        settings,
        None,
        targets=[EmailTarget(f"127.0.0.1:{free_port()}", "dqm@x", ["a@x"], 2.0)],
        first_backoff_s=0.05,
    )
    d = dead.deliveries[0].start()
    try:
        dead.post(Message("stale", "STALE", "STALE"))
        wait_until(lambda: d.failed == 1, 20, what="given up")
    finally:
        d.stop()
    given_up = [r for r in caplog.records if "given up: STALE" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelno == logging.ERROR
