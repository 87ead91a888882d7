"""Colours and CSS shared by the pages: one place decides what GOOD/WARNING/BAD look like.

The control room is read from across a room, often on a dimmed wall screen, so it uses a
dark background, very large type and saturated, colour-blind-distinguishable status
colours whose meaning is also written out in words (never colour alone).
"""

from __future__ import annotations

from dqm.checks import Quality

__all__ = [
    "QUALITY_NAMES",
    "QUALITY_COLOURS",
    "quality_name",
    "CONTROL_ROOM_CSS",
    "EXPERT_CSS",
    "SERIES",
]

#: Quality integer (as stored) -> name, from :class:`dqm.checks.Quality` itself.
QUALITY_NAMES = {int(q): q.name for q in Quality}
#: background, text colour per status word (STALE is the control room's own state).
#: CHECK_ERROR (the judging failed: call the DQM expert) is a saturated blue: unlike every
#: detector state, and told from STALE's purple by its word as much as by its hue.
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


def quality_name(q: int | None) -> str:
    return "NO_DATA" if q is None else QUALITY_NAMES.get(int(q), "NO_DATA")


_TILES = "\n".join(
    f".q-{name} {{ background: {bg}; color: {fg}; }}" for name, (bg, fg) in QUALITY_COLOURS.items()
)

CONTROL_ROOM_CSS = f"""
:host {{ --dqm-bg: #0d0d0d; }}
.dqm-tile {{ border-radius: 10px; padding: 10px 16px; min-height: 190px; box-sizing: border-box;
  font-family: 'DejaVu Sans', Arial, sans-serif; border: 3px solid #000; }}
.dqm-tile .name {{ font-size: 26px; font-weight: 700; letter-spacing: 1px;
  text-transform: uppercase; }}
.dqm-tile .quality {{ font-size: 44px; font-weight: 900; line-height: 1.1; }}
.dqm-tile .explanation {{ font-size: 17px; margin-top: 4px; }}
.dqm-tile .instruction {{ font-size: 17px; font-weight: 700; margin-top: 6px; }}
.dqm-tile .ack {{ font-size: 14px; font-style: italic; }}
.dqm-tile a {{ color: inherit; font-size: 14px; }}
.dqm-tile.stale {{ opacity: 0.55; border: 3px dashed #fff; }}
{_TILES}
.dqm-header {{ font-family: 'DejaVu Sans', Arial, sans-serif; color: #fff; display: flex;
  gap: 36px; align-items: baseline; font-size: 30px; padding: 6px 4px; flex-wrap: wrap; }}
.dqm-header .title {{ font-weight: 900; }}
.dqm-header .value {{ font-weight: 900; font-size: 38px; }}
.dqm-header .state {{ padding: 2px 16px; border-radius: 8px; font-weight: 900; }}
.dqm-banner {{ font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 34px; font-weight: 900;
  padding: 12px 20px; border-radius: 10px; }}
.dqm-conditions {{ font-family: 'DejaVu Sans', Arial, sans-serif; color: #ddd; font-size: 24px;
  padding: 0 4px 6px 4px; }}
.dqm-strip {{ display: flex; gap: 3px; align-items: center; }}
.dqm-strip span {{ display: inline-block; width: 14px; height: 22px; border-radius: 2px; }}
.dqm-numbers {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr));
  gap: 8px; font-family: 'DejaVu Sans', Arial, sans-serif; color: #fff; }}
.dqm-number {{ background: #1c1c1c; border-radius: 8px; padding: 6px 10px;
  border: 1px solid #444; }}
.dqm-number .label {{ font-size: 16px; color: #ccc; }}
.dqm-number .value {{ font-size: 30px; font-weight: 800; }}
.dqm-number .unit {{ font-size: 15px; color: #ccc; }}
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
