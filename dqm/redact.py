"""Hide credentials in text meant for people: log lines, error messages, status output.

Why one function: a password travels inside the URLs of the settings
(``redis://:secret@host``, ``postgresql+psycopg://user:secret@host/db``), and a URL
reaches text in many ways — an error naming the bad setting, ``dqm status``, a log
line quoting a driver's message. Passing text through :func:`redact` on its way out
(the CLI's error line and the log formatter do) keeps them all safe at once.
"""

from __future__ import annotations

import re

__all__ = ["redact", "hide_password", "HIDDEN"]

HIDDEN = "***"

# scheme://user:PASSWORD@host — up to the authority's last '@' (people do put a raw '@' in
# a password), never past its end ('/', '?', '#') or whitespace
# (a '[' right after '//' is an IPv6 host or a placeholder such as "redis://[user:password@]host")
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@\[\]]*:)(?P<password>[^\s/?#]*)@", re.IGNORECASE
)
# key=value forms: ?password=…, password=… in a libpq DSN
_KEY_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd)=)(?P<password>[^\s&;'\"]+)", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with every password in a URL or ``password=`` pair replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>{HIDDEN}@", text)
    return _KEY_PASSWORD.sub(rf"\g<head>{HIDDEN}", text)


def hide_password(url: str) -> str:
    """One URL made fit for a message: ``scheme://user:***@host…``.

    Unlike :func:`redact` (for free text, where a URL ends at '/' or whitespace) it
    takes everything up to the URL's last '@' as the password, so a generated password
    with '/' or '@' in it is hidden whole.
    """
    return re.sub(r"(://[^:/@]*:).*@", rf"\1{HIDDEN}@", url, count=1)
