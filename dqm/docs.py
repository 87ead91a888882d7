"""Documentation generated from the code, so the two cannot disagree.

Pure: builds Markdown text, writes no file. ``python -m dqm.docs`` prints the
configuration table that docs/configuration.md carries; ``tests/unit/test_docs.py``
fails when a setting is missing from them.
"""

from __future__ import annotations

from dqm.config import SETTINGS, Setting

__all__ = ["settings_table"]


def settings_table(settings: dict[str, Setting] | None = None) -> str:
    """The Markdown table of every setting: environment variable, default, meaning.

    Args:
        settings: the settings to document (default: all of :data:`dqm.config.SETTINGS`).

    Returns:
        A Markdown table, one row per setting in declaration order, ending with a newline.
    """
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in (SETTINGS if settings is None else settings).values():
        rows.append(f"| `{s.env}` | {_default(s.default)} | {_cell(s.doc)} |")
    return "\n".join(rows) + "\n"


def _default(value: object) -> str:
    if value == "" or value is None:
        return "*(empty)*"
    return f"`{value}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":  # pragma: no cover
    print(settings_table(), end="")
