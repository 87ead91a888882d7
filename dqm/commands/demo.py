"""``dqm demo`` — the whole chain on one machine, with nothing to install by hand.

Starts (unless ``DQM_REDIS_URL``/``DQM_DATABASE_URL`` point at real servers) a
private Redis and a SQLite file, migrates the database, launches N worker processes
and the web apps, and runs the simulator in near real time, injecting an anomaly
every few spills. Ctrl-C (or ``--duration-s``) stops everything it started, and only
that, leaving no process behind.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dqm.pipeline.runtime import DEMO_REDIS_FILE
from dqm.pipeline.services import EmbeddedRedis
from dqm.pipeline.stream import ConditionsAnnouncer, connect, ensure_group, publish_spill
from dqm.redact import hide_password, redact
from dqm.sim.anomalies import DEMO_ANOMALY_CYCLE, parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store.migrate import upgrade_database

log = logging.getLogger("dqm.demo")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the live demo: simulator -> Redis -> workers -> database -> web"
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--period-s", type=float, default=4.0, help="seconds between spills (default 4)")
    p.add_argument("--events-per-spill", type=int, default=20_000)
    p.add_argument(
        "--anomaly-every", type=int, default=6, help="inject an anomaly every N spills (0: never)"
    )
    p.add_argument(
        "--spills", type=int, default=0, help="stop after N spills (default: run until Ctrl-C)"
    )
    p.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds")
    p.add_argument("--no-web", action="store_true", help="do not start the web apps")
    p.add_argument("--run", type=int, help="run number (default: one above the highest stored)")
    p.add_argument(
        "--reference-spills",
        type=int,
        default=5,
        help="with no reference run for the beam configuration yet, first publish this many "
        "clean spills as one and certify it (0: don't)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a simulator default, e.g. --set p_beam_gev=100 (the runs announce "
        "matching conditions)",
    )
    p.set_defaults(func=run)


#: The demo's beam wanders within its tolerances from spill to spill, as a real one does
#: (a third of the centroid window, a tenth of the width tolerance, 3 % in intensity).
DEMO_WANDER = {
    "beam_wander_x_mm": 0.3,
    "beam_wander_y_mm": 0.2,
    "beam_wander_width_rel": 0.01,
    "intensity_wander_rel": 0.03,
    "beam_wander_correlation": 0.5,
}


def demo_anomaly(spill: int, every: int) -> str | None:
    """Every ``every``-th spill gets the next anomaly of the cycle (a drift lasts 5 spills)."""
    if every <= 0 or spill % every != 0:
        return None
    text = DEMO_ANOMALY_CYCLE[(spill // every - 1) % len(DEMO_ANOMALY_CYCLE)]
    kind, _, params = text.partition(":")
    last = spill + 4 if kind in ("momentum_drift", "beam_ramp") else spill
    return f"{kind}@{spill}-{last}" + (f":{params}" if params else "")


class Demo:
    def __init__(self, args, settings) -> None:
        self.args = args
        self.settings = settings
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.redis_server: EmbeddedRedis | None = None
        self.stop_event = threading.Event()
        self.url_file: Path | None = None
        self.announcer = ConditionsAnnouncer()

    def sim_config(self, run: int, **kw) -> SimConfig:
        """The simulator's configuration of ``run``, with the ``--set`` overrides."""
        from dqm.commands.simulate import parse_sets

        cfg = SimConfig(run=run, events_per_spill=self.args.events_per_spill, **DEMO_WANDER, **kw)
        return cfg.with_overrides(parse_sets(self.args.set))

    def publish(self, r, data) -> None:
        """One spill, the run's conditions announced first when they are new."""
        publish_spill(
            r,
            self.settings.stream,
            data,
            maxlen=self.settings.stream_maxlen,
            conditions=self.announcer.due(data.conditions),
        )

    def start(self) -> None:
        s = self.settings
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        if not s.redis_url:
            self.redis_server = EmbeddedRedis().start()
            s = self.settings = s.with_(redis_url=self.redis_server.url)
            print(
                f"  redis     {s.redis_url}  (private redis-server, pid "
                f"{self.redis_server.proc.pid})"
            )
            self.url_file = Path(s.data_dir) / DEMO_REDIS_FILE
            self.url_file.write_text(s.redis_url + "\n")  # lets ./run status find it
        else:
            print(f"  redis     {redact(s.redis_url)}  (DQM_REDIS_URL)")
        db_url = s.effective_database_url
        upgrade_database(db_url)
        s = self.settings = s.with_(database_url=db_url)
        print(f"  database  {hide_password(db_url)}")
        env = dict(
            os.environ, DQM_REDIS_URL=s.redis_url, DQM_DATABASE_URL=db_url, DQM_DATA_DIR=s.data_dir
        )
        ensure_group(connect(s.redis_url), s.stream, s.group)
        for i in range(self.args.workers):
            self._spawn(f"worker-{i + 1}", ["worker", "--consumer", f"demo-worker-{i + 1}"], env)
        if not self.args.no_web and importlib.util.find_spec("dqm.commands.serve"):
            self._spawn("web", ["serve", "--demo"], env)
            print(
                f"  web       http://{s.web_host}:{s.web_port}/  (control room: /control_room, "
                "expert: /expert)"
            )
        pids = ", ".join(str(proc.pid) for name, proc in self.children if name.startswith("worker"))
        print(
            f"  workers   {self.args.workers} processes (pids {pids}) in consumer group "
            f"'{s.group}' on stream '{s.stream}'"
        )

    def _spawn(self, name: str, argv: list[str], env: dict) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dqm", "--log-level", "WARNING", *argv], env=env
        )
        self.children.append((name, proc))

    def watch_verdicts(self) -> None:
        """Print each closed spill's verdict as the workers announce it (what a shifter would
        see)."""
        r = connect(self.settings.redis_url)
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.settings.channel)
        from dqm.pipeline.runtime import open_store

        store = open_store(self.settings, writer=False)
        try:
            while not self.stop_event.is_set():
                msg = pubsub.get_message(timeout=0.5)
                if msg is None:
                    continue
                try:
                    print("  " + describe_closed(json.loads(msg["data"]), store), flush=True)
                except Exception as exc:  # a display problem must never stop the demo
                    log.warning("could not describe a closed spill: %s", exc)
        finally:
            pubsub.close()
            store.dispose()

    def next_run(self) -> int:
        if self.args.run:
            return self.args.run
        from dqm.store import open_store
        from dqm.store.runs import newest_run_number

        with open_store(self.settings, writer=False) as store, store.sessions() as session:
            highest = newest_run_number(session)
        return (highest or 0) + 1

    def make_reference(self, r) -> None:
        """No reference yet: publish a short clean run, wait for it to close, certify it.

        Without a reference the shape comparisons (χ², KS, pulls) have nothing to compare
        with; a real shift starts from a certified run, so the demo makes one.
        """
        from dqm.core.roles import EXPERT, Actor
        from dqm.store import open_store
        from dqm.store.actions import set_reference
        from dqm.store.queries import count_closed_spills
        from dqm.store.references import has_active_reference

        store = open_store(self.settings)
        try:
            run = self.next_run()
            cfg = self.sim_config(run)
            config = cfg.conditions().beam_config
            with store.sessions() as session:
                if has_active_reference(session, config):
                    return
            n = self.args.reference_spills
            print(
                f"  reference run {run}: no reference for {config} yet, publishing {n} clean "
                "spills to certify",
                flush=True,
            )
            for spill in range(1, n + 1):
                self.publish(r, simulate_spill(cfg, spill, []))
            deadline = time.monotonic() + 120
            closed = 0
            while closed < n and time.monotonic() < deadline and not self.stop_event.is_set():
                self.stop_event.wait(0.5)
                with store.sessions() as session:
                    closed = count_closed_spills(session, run)
            if closed < n:
                print(
                    f"  reference run {run}: only {closed} of {n} spills closed; continuing "
                    "without a reference",
                    flush=True,
                )
                return
            with store.sessions.begin() as session:
                set_reference(
                    session,
                    run,
                    Actor("demo", EXPERT),
                    comment="clean simulated run certified by dqm demo",
                    bad_spills_reason="simulated without injected anomalies (dqm demo)",
                )
            print(f"  reference run {run}: certified as the reference (set by 'demo')", flush=True)
        finally:
            store.dispose()

    def simulate(self) -> None:
        s = self.settings
        r = connect(s.redis_url)
        if self.args.reference_spills > 0:
            self.make_reference(r)
        run = self.next_run()
        cfg = self.sim_config(run, spill_period_s=self.args.period_s)
        print(
            f"  simulator run {run} ({cfg.conditions().describe()}): a spill every "
            f"{self.args.period_s:g} s, {cfg.events_per_spill} events each"
            + (
                f", an anomaly every {self.args.anomaly_every} spills"
                if self.args.anomaly_every
                else ""
            )
        )
        print(
            "\nWatch it:  ./run status     (in another terminal, from this folder: streams, "
            "workers, last spills)"
        )
        print("Stop it:   Ctrl-C\n", flush=True)
        t0 = time.monotonic()
        spill = 0
        while not self.stop_event.is_set():
            spill += 1
            if self.args.spills and spill > self.args.spills:
                break
            text = demo_anomaly(spill, self.args.anomaly_every)
            anomalies = [parse_anomaly(text)] if text else []
            data = simulate_spill(cfg, spill, anomalies)
            if data is not None:
                self.publish(r, data)
            print(
                f"  spill {run}/{spill}: "
                + (f"{data.n_events} events" if data else "no data (stale)")
                + (f"   <- injected {text}" if text else ""),
                flush=True,
            )
            self.stop_event.wait(max(0.0, t0 + spill * self.args.period_s - time.monotonic()))

    def stop(self) -> None:
        self.stop_event.set()
        for _, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.children:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15 s; killing it", name)
                proc.kill()
                proc.wait()
        if self.url_file is not None:
            self.url_file.unlink(missing_ok=True)
        if self.redis_server:
            self.redis_server.stop()
        print("demo stopped: every process it started has exited.")


def run(args, settings) -> int:
    print("NA64mu DQM demo")
    demo = Demo(args, settings)
    signal.signal(signal.SIGTERM, lambda *_: demo.stop_event.set())
    try:
        demo.start()
        threading.Thread(target=demo.watch_verdicts, name="verdicts", daemon=True).start()
        if args.duration_s:
            timer = threading.Timer(args.duration_s, demo.stop_event.set)
            timer.daemon = True
            timer.start()
        demo.simulate()
        if args.spills:  # let the workers close the last spills before stopping
            time.sleep(2.0)
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0


def describe_closed(note: dict, store) -> str:
    """One line per closed spill: status, overall quality, and the worst flag of each bad
    subsystem."""
    from dqm.checks import Quality
    from dqm.store.queries import worst_flag

    quality = note.get("quality")
    line = (
        f"closed {note['run']}/{note['spill']}: {note.get('status')}, "
        f"{int(note.get('n_events') or 0)} events"
    )
    if quality is None:
        return line
    line += f", {Quality(quality).name}"
    bad = sorted(s for s, q in (note.get("subsystems") or {}).items() if q >= Quality.WARNING)
    if not bad:
        return line
    with store.sessions() as session:
        for subsystem in bad:
            flag = worst_flag(session, note["run"], note["spill"], subsystem)
            if flag is not None:
                line += f"\n      {Quality(flag.quality).name:<7} {subsystem}: {flag.explanation}"
    return line
