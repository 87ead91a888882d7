"""Colours and CSS shared by the pages: one place decides what GOOD/WARNING/BAD look like.

The control room is read from across a room, often on a dimmed wall screen, so it uses a
dark background, very large type and saturated, colour-blind-distinguishable status
colours whose meaning is also written out in words (never colour alone).
"""

from __future__ import annotations

__all__ = [
    "QUALITY_COLOURS",
    "CONTROL_ROOM_CSS",
    "ALARM_CSS",
    "WALL_MIN_FONT_PX",
    "WALL_PLOT_HEIGHT",
    "EXPERT_CSS",
    "SERIES",
]

#: background, text colour per quality word (:func:`dqm.checks.quality_name` spells them;
#: STALE is the control room's own state). CHECK_ERROR (the judging failed: call the DQM
#: expert) is a saturated blue: unlike every detector state, and told from STALE's purple by
#: its word as much as by its hue.
QUALITY_COLOURS = {
    "GOOD": ("#1b7f3b", "#ffffff"),
    "WARNING": ("#f2a900", "#000000"),
    "BAD": ("#c4161c", "#ffffff"),
    "CHECK_ERROR": ("#0a5cc2", "#ffffff"),
    "NO_DATA": ("#5a5a5a", "#ffffff"),
    "STALE": ("#6a3d9a", "#ffffff"),
}
#: line colours on dark and light backgrounds: this spill, reference
SERIES = {"dark": ("#4fc3f7", "#ffb74d"), "light": ("#1f77b4", "#e6550d")}


_TILES = "\n".join(
    f".q-{name} {{ background: {bg}; color: {fg}; }}" for name, (bg, fg) in QUALITY_COLOURS.items()
)


def _clamp(lines: int) -> str:
    """CSS that keeps a text to ``lines`` lines (an ellipsis after): the wall's rows have a
    height budget so that 1920×1080 never scrolls; the full text is on the expert page."""
    return (
        f"display: -webkit-box; -webkit-line-clamp: {lines}; line-clamp: {lines}; "
        "-webkit-box-orient: vertical; overflow: hidden;"
    )


#: The smallest type on the wall (outside the plots): read from 3 m. A 55" 1920×1080 screen
#: has 0.63 mm pixels; at 3 m a capital letter needs ≥ ~13 mm (3× the 5-arcminute limit of
#: normal sight) to be read at a glance, i.e. ≥ ~20 px cap height: a 22 px font.
WALL_MIN_FONT_PX = 22
#: height of each wall plot: every plot of a tab in one row under the text, within 1080 lines
WALL_PLOT_HEIGHT = 200

CONTROL_ROOM_CSS = f"""
:host {{ --dqm-bg: #0d0d0d; }}
.dqm-tile {{ border-radius: 10px; padding: 6px 14px; min-height: 150px; box-sizing: border-box;
  font-family: 'DejaVu Sans', Arial, sans-serif; border: 3px solid #000; }}
.dqm-tile .head {{ display: flex; justify-content: space-between; align-items: baseline;
  gap: 8px; flex-wrap: wrap; }}
.dqm-tile .name {{ font-size: 26px; font-weight: 700; letter-spacing: 1px;
  text-transform: uppercase; }}
.dqm-tile .quality {{ font-size: 40px; font-weight: 900; line-height: 1.1; }}
.dqm-tile .explanation {{ font-size: 24px; line-height: 1.2; margin-top: 2px; {_clamp(3)} }}
.dqm-tile .instruction {{ font-size: 22px; font-weight: 700; line-height: 1.2;
  margin-top: 4px; {_clamp(4)} }}
.dqm-tile .ack {{ font-size: 22px; font-style: italic; }}
.dqm-tile a {{ color: inherit; font-size: 22px; }}
.dqm-tile.stale {{ opacity: 0.55; border: 3px dashed #fff; }}
{_TILES}
.dqm-header {{ font-family: 'DejaVu Sans', Arial, sans-serif; color: #fff; display: flex;
  gap: 30px; align-items: baseline; font-size: 28px; padding: 0 4px; flex-wrap: wrap; }}
.dqm-header .title {{ font-weight: 900; }}
.dqm-header .value {{ font-weight: 900; font-size: 36px; }}
.dqm-header .state {{ padding: 0 16px; border-radius: 8px; font-weight: 900; }}
.dqm-header .reference {{ font-size: 24px; }}
.dqm-banner {{ font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 30px; font-weight: 900;
  padding: 6px 20px; border-radius: 10px; }}
.dqm-conditions {{ font-family: 'DejaVu Sans', Arial, sans-serif; color: #ddd; font-size: 22px;
  padding: 0 4px 2px 4px; }}
.dqm-strip {{ display: flex; gap: 4px; align-items: center; overflow: hidden;
  font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 22px; font-weight: 700; }}
.dqm-strip a {{ display: inline-block; min-width: 50px; padding: 2px 4px; text-align: center;
  border-radius: 4px; text-decoration: none; }}
.dqm-strip .run {{ color: #fff; padding: 0 6px; white-space: nowrap; }}
.dqm-numbers {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr));
  gap: 6px; font-family: 'DejaVu Sans', Arial, sans-serif; color: #fff; }}
.dqm-number {{ background: #1c1c1c; border-radius: 8px; padding: 2px 8px;
  border: 1px solid #444; display: grid; grid-template-columns: 1fr auto; align-items: end; }}
.dqm-number .label {{ font-size: 22px; line-height: 1.1; color: #ccc;
  grid-column: 1 / span 2; }}
.dqm-number .value {{ font-size: 28px; line-height: 1.1; font-weight: 800; white-space: nowrap; }}
.dqm-number .unit {{ font-size: 22px; color: #ccc; }}
"""

#: the open incidents and the alarm's controls (apps.alarms.AlarmPanel)
ALARM_CSS = f"""
.dqm-alarms {{ font-family: 'DejaVu Sans', Arial, sans-serif; color: #fff; font-size: 24px;
  border: 3px solid #444; border-radius: 10px; padding: 4px 12px; background: #1c1c1c; }}
.dqm-alarms.has-open {{ border-color: #c4161c; }}
.alarm-head {{ display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }}
.alarm-head .count {{ font-size: 32px; font-weight: 900; }}
.alarm-head .count.none {{ color: #9be7a8; }}
.bell {{ font-size: 24px; font-weight: 800; border-radius: 8px; padding: 2px 12px; }}
.bell.off {{ background: #f2a900; color: #000; border: 0; cursor: pointer; }}
.bell.armed {{ background: #1b7f3b; color: #fff; }}
.silenced {{ font-size: 22px; color: #f2a900; }}
.silence-form input, .silence-form select, .silence-form button, button.ack {{
  font-size: 22px; }}
.login {{ color: #4fc3f7; font-size: 22px; }}
.incident {{ display: flex; flex-wrap: wrap; column-gap: 18px; align-items: baseline;
  border-radius: 8px; padding: 2px 10px; margin: 4px 0; font-size: 24px; }}
.incident.brief {{ flex-wrap: nowrap; overflow: hidden; white-space: nowrap; }}
.incident .what {{ order: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.incident:not(.brief) .what {{ flex: 1 1 0; min-width: 0; }}
.incident .when {{ order: 1; flex: none; white-space: nowrap; }}
.incident .title {{ order: 2; overflow: hidden; text-overflow: ellipsis; min-width: 0; }}
.incident .why {{ order: 4; flex-basis: 100%; {_clamp(1)} }}
.incident .todo {{ order: 5; flex-basis: 100%; {_clamp(2)} }}
.incident .ack {{ order: 3; margin-left: auto; flex: none; }}
.incident a {{ color: inherit; }}
.incident .what {{ font-size: 26px; }}
.incident .todo {{ font-weight: 700; }}
.more, .notice {{ font-size: 24px; color: #f2a900; }}
{_TILES}
"""

EXPERT_CSS = (
    """
.dqm-expert-header { font-family: 'DejaVu Sans', Arial, sans-serif; display: flex; gap: 24px;
  align-items: baseline; font-size: 20px; }
.dqm-expert-header .title { font-weight: 800; font-size: 24px; }
.dqm-note { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 14px; color: #444; }
.dqm-badge { padding: 1px 8px; border-radius: 6px; font-weight: 700; }
"""
    + _TILES
)
