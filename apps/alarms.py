"""The wall's alarm: open incidents in large type, the alarm tone, acknowledge and silence.

Why a browser-side component (Panel's ``JSComponent``): sound can only be played by the
page, and browsers play it only after a person interacted with the page (autoplay
rules). So the wall shows "SOUND OFF — click to arm" until someone clicks once; from then
on a WebAudio tone (no sound file to deploy) plays when a new incident opens and every
``alarm_repeat_s`` while an incident is open and not silenced. The page says in words
whether the sound is armed. A kiosk browser may be started with
``--autoplay-policy=no-user-gesture-required`` to arm it without the click.

Acknowledging and silencing are actions of a named person: the buttons appear only for a
logged-in user; guests see "log in to acknowledge". The server-side check is the rule
(:func:`dqm.store.incidents.acknowledge_incident`, :func:`dqm.store.alarms.silence_alarm`
refuse guests and say why); the browser only sends which incident and the typed text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import param
from panel.custom import JSComponent

from apps.snapshot import Snapshot
from apps.theme import ALARM_CSS
from dqm.errors import DQMError

__all__ = ["AlarmPanel", "alarm_rows", "since_text"]

log = logging.getLogger("dqm.web")

#: how many incidents the wall lists one per line; the rest are counted ("+ 4 more")
SHOWN = 3


def since_text(at: datetime, now: datetime | None = None) -> str:
    """The clock time on the wall and how long ago: "since 18:02 UTC (12 min)"."""
    now = now or datetime.now(UTC)
    minutes = max(0, int((now - at).total_seconds() // 60))
    ago = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"
    return f"since {at:%H:%M} UTC ({ago})"


def alarm_rows(snap: Snapshot, now: datetime | None = None) -> list[dict]:
    """The open incidents as the component draws them (plain, JSON-able words)."""
    rows = []
    for a in snap.alarms:
        spills = (
            f"spill {a.first_spill}"
            if a.first_spill == a.last_spill
            else f"spills {a.first_spill}–{a.last_spill} ({a.n_spills})"
        )
        link = f"./expert?run={a.run}&spill={a.last_spill}"
        if a.histogram:
            link += f"&histogram={a.histogram}"
        rows.append(
            {
                "id": a.id,
                "quality": a.quality,
                "where": a.where,
                "title": a.title,
                "explanation": a.explanation,
                "instruction": a.instruction,
                "spills": f"run {a.run}, {spills}",
                "since": since_text(a.opened_at, now),
                "link": link,
            }
        )
    return rows


def _silence_text(snap: Snapshot, now: datetime) -> str:
    s = snap.silence
    if s is None or s.until <= now:
        return ""
    return f"silenced by {s.by} until {s.until:%H:%M} UTC: {s.reason}"


class AlarmPanel(JSComponent):
    """One session's alarm panel; :meth:`show` feeds it each new snapshot."""

    alarms = param.List(default=[], doc="open incidents, worst first (alarm_rows)")
    sounding = param.List(default=[], doc="ids of the incidents whose alarm sounds")
    shown = param.Integer(default=SHOWN)
    silenced = param.String(default="", doc="who silenced the alarm, until when, why")
    user = param.String(default="", doc="the logged-in user; empty: a guest (no buttons)")
    repeat_s = param.Number(default=20.0)
    notice = param.String(default="", doc="the answer to the last action (refusals in words)")

    _stylesheets = [ALARM_CSS]

    _esm = """
const QUAL = {BAD: 'BAD', WARNING: 'WARNING', CHECK_ERROR: 'CHECK ERROR'};
let audio = null, timer = null, beeps = 0, heard = new Set();

function tone(ctx) {
  const t0 = ctx.currentTime;
  for (const [i, f] of [[0, 880], [1, 660], [2, 880]].entries()) {
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.type = 'square'; osc.frequency.value = f[1];
    gain.gain.setValueAtTime(0.0001, t0 + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.25, t0 + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.3 + 0.27);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0 + i * 0.3); osc.stop(t0 + i * 0.3 + 0.28);
  }
}

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;',
    '"': '&quot;', "'": '&#39;'}[c]));
}

export function render({ model, el }) {
  const root = document.createElement('div');
  root.className = 'dqm-alarms';
  el.appendChild(root);

  function armed() { return audio !== null && audio.state === 'running'; }

  function sound(force) {
    const ids = model.sounding || [];
    const fresh = ids.some((id) => !heard.has(id));
    ids.forEach((id) => heard.add(id));
    if (!armed() || ids.length === 0 || !(force || fresh)) return;
    tone(audio); beeps += 1; root.dataset.beeps = String(beeps);
  }

  function draw() {
    const rows = model.alarms || [], n = rows.length;
    root.dataset.open = String(n);
    root.dataset.armed = armed() ? 'true' : 'false';
    root.dataset.sounding = String((model.sounding || []).length);
    root.dataset.beeps = String(beeps);
    root.classList.toggle('has-open', n > 0);
    const bell = armed()
      ? '<span class="bell armed" data-bell="armed">SOUND ARMED</span>'
      : '<button class="bell off" data-bell="off">SOUND OFF — click to arm</button>';
    const head = n === 0
      ? '<span class="count none">NO OPEN INCIDENTS</span>'
      : `<span class="count">${n} OPEN INCIDENT${n === 1 ? '' : 'S'}</span>`;
    const silence = model.silenced
      ? `<span class="silenced" data-silenced="true">${esc(model.silenced)}</span>` : '';
    const act = model.user
      ? `<span class="silence-form"><input class="reason" placeholder="reason to silence"
           maxlength="500"><select class="minutes"><option value="15">15 min</option>
           <option value="30" selected>30 min</option><option value="60">1 h</option>
           <option value="240">4 h</option></select>
           <button class="silence" ${n === 0 ? 'disabled' : ''}>Silence</button></span>`
      : '<a class="login" href="./login">log in to acknowledge or silence</a>';
    const hidden = n > model.shown
      ? `<span class="more">+ ${n - model.shown} more open</span>` : '';
    let html = `<div class="alarm-head">${head}${hidden}${bell}${silence}${act}</div>`;
    rows.slice(0, model.shown).forEach((r, i) => {
      const ack = model.user
        ? `<button class="ack" data-id="${r.id}">Acknowledge</button>` : '';
      // the worst (first) in full; the others on one line each: which, where, since when
      const more = i === 0 ? `<span class="why">${esc(r.explanation)}</span>
        <span class="todo">▶ ${esc(r.instruction)}</span>` : '';
      const what = `<b>${esc(QUAL[r.quality] || r.quality)}</b> ${esc(r.where)}`;
      const title = `<a href="${esc(r.link)}" title="${esc(r.title)}">${esc(r.title)}</a>`;
      const when = `<span class="when">${esc(r.spills)} · ${esc(r.since)}</span>`;
      html += `<div class="incident q-${esc(r.quality)}${i ? ' brief' : ''}"
        data-incident="${r.id}">${ack}` + (i === 0
          ? `<span class="what">${what}: ${title}</span>${when}${more}</div>`
          : `<span class="what">${what}</span>${when}<span class="title">${title}</span></div>`);
    });
    if (model.notice) html += `<div class="notice">${esc(model.notice)}</div>`;
    root.innerHTML = html;
    const arm = root.querySelector('button.bell');
    if (arm) arm.addEventListener('click', async () => {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      await audio.resume();
      heard.clear(); draw(); sound(true);
    });
    root.querySelectorAll('button.ack').forEach((b) => b.addEventListener('click', () => {
      model.send_msg({action: 'acknowledge', id: Number(b.dataset.id)});
    }));
    const sil = root.querySelector('button.silence');
    if (sil) sil.addEventListener('click', () => {
      model.send_msg({action: 'silence', reason: root.querySelector('input.reason').value,
                      minutes: Number(root.querySelector('select.minutes').value)});
    });
  }

  function restart() {
    if (timer) clearInterval(timer);
    timer = setInterval(() => sound(true), Math.max(2, model.repeat_s) * 1000);
  }
  for (const name of ['alarms', 'silenced', 'user', 'notice', 'shown']) model.on(name, draw);
  model.on('sounding', () => { draw(); sound(false); });
  model.on('repeat_s', restart);
  model.on('remove', () => { if (timer) clearInterval(timer); });
  draw(); restart();
}
"""

    def __init__(
        self,
        *,
        act: Callable[[str, dict], None] | None = None,
        **params,
    ) -> None:
        super().__init__(**params)
        self._act = act

    def show(self, snap: Snapshot, now: datetime | None = None) -> None:
        """Draw the open incidents of ``snap`` (only what changed goes to the browser)."""
        now = now or datetime.now(UTC)
        rows = alarm_rows(snap, now)
        sounding = list(snap.sounding(now))
        silenced = _silence_text(snap, now)
        changes = {
            k: v
            for k, v in (("alarms", rows), ("sounding", sounding), ("silenced", silenced))
            if getattr(self, k) != v
        }
        if changes:
            self.param.update(**changes)

    def _handle_msg(self, data) -> None:
        """An acknowledgement or a silence from the browser: done as this session's user."""
        if not isinstance(data, dict) or self._act is None:
            return
        action = str(data.get("action", ""))
        try:
            self._act(action, data)
            self.notice = ""
        except DQMError as exc:  # refused: say why on the wall, never a traceback
            self.notice = f"not done: {exc}"
        except Exception:  # noqa: BLE001 — a failed action must not break the wall
            log.exception("alarm action %s failed", action)
            self.notice = "not done: the server could not store it (see its log)"
