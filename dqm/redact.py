"""Hide credentials in text meant for people: log lines, error messages, status output.

Why one function: a password travels inside the URLs of the settings
(``redis://:secret@host``, ``postgresql+psycopg://user:secret@host/db``), and a URL
reaches text in many ways — an error naming the bad setting, ``dqm status``, a log
line quoting a driver's message. Passing text through :func:`redact` on its way out
(the CLI's error line and the log formatter do) keeps them all safe at once.
"""

from __future__ import annotations

import re

__all__ = ["redact", "HIDDEN"]

HIDDEN = "***"

# scheme://user:PASSWORD@host — up to the authority's last '@' (people do put a raw '@' in
# a password), never past its end ('/', '?', '#') or whitespace
# (a '[' right after '//' is an IPv6 host or a placeholder such as "redis://[user:password@]host")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@\[\]]*:)(?P<password>[^\s/?#]*)@", re.IGNORECASE)
# key=value forms: ?password=…, password=… in a libpq DSN
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)=)(?P<password>[^\s&;'\"]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every password in a URL or ``password=`` pair replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>{HIDDEN}@", text)
    return _KEY_PASSWORD.sub(rf"\g<head>{HIDDEN}", text)
