"""Login for the web apps: read freely, act as a named person.

What a CERN control room needs, and the design that follows from it:

* **The wall screen must never show a login form.** It runs unattended on a shared
  console, in kiosk mode, for weeks; a session cookie expiring at 3 a.m. must not blank
  the one screen the shifter watches. So every page is readable without logging in
  (Panel calls such visitors ``guest``), and the control room is read-only by
  construction: it has no widget that writes.
* **Writes need a person, not a role.** Setting a reference run, acknowledging a flag,
  masking a channel or changing a threshold changes what every later spill is judged
  against, so the audit trail must say *who*. Experts log in (``/login``) with their own
  name; the expert page then shows the action forms, and :mod:`dqm.store.actions` refuses any
  action whose user is anonymous or ``guest`` — visibility of a button is a convenience,
  the check on the server is the rule.
* **Two roles.** Shifters acknowledge, annotate, silence and sign off; experts also set
  references, mask channels and change thresholds. ``DQM_WEB_EXPERTS`` names the experts
  (``alice,bob``); every other login is a shifter. :func:`current_user` gives the name as a
  :class:`dqm.core.roles.Actor` carrying its role, and the store's actions check it.
* **Reading is not a secret, the network is the fence.** The server binds to
  127.0.0.1 by default; at CERN it is meant to sit on the experiment's technical network
  or behind the CERN single-sign-on proxy for remote experts. Panel's OAuth provider
  (CERN SSO is OIDC/Keycloak) can replace the password list without touching the views.
* **No secrets in code or settings dumps.** Passwords are stored only as PBKDF2-SHA256
  hashes, given in ``DQM_WEB_USERS`` (``alice:pbkdf2_sha256$…,bob:…`` or the path of a
  file with one ``user:hash`` per line; make a hash with ``dqm serve --hash-password``);
  the cookie-signing secret comes from ``DQM_COOKIE_SECRET``. With users but no secret
  the server refuses to start, except in demo mode, which invents both a secret and a
  throw-away ``demo`` login and prints it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dqm.core.roles import EXPERT, SHIFTER, Actor
from dqm.errors import ConfigError
from dqm.store.actions import ANONYMOUS

__all__ = [
    "hash_password",
    "verify_password",
    "parse_users",
    "AuthConfig",
    "auth_config_from_env",
    "make_auth_provider",
    "current_user",
    "USERS_ENV",
    "SECRET_ENV",
    "EXPERTS_ENV",
    "remember_roles",
]

USERS_ENV = "DQM_WEB_USERS"
SECRET_ENV = "DQM_COOKIE_SECRET"
EXPERTS_ENV = "DQM_WEB_EXPERTS"
_ROLES_KEY = "dqm-web-experts"  # pn.state.cache: the process's expert names (configuration)
_SCHEME = "pbkdf2_sha256"
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def hash_password(password: str, *, iterations: int = 600_000, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<digest base64>`` (OWASP 2023 iteration count)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{_SCHEME}${iterations}${salt.hex()}${base64.b64encode(digest).decode('ascii')}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, iterations, salt_hex, digest_b64 = encoded.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest_b64)
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), bytes.fromhex(salt_hex), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def parse_users(text: str) -> dict[str, str]:
    """``user:hash`` entries separated by commas or newlines (or the path of such a file)."""
    text = text.strip()
    if text and "\n" not in text and ":" not in text.split(",")[0] and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    users: dict[str, str] = {}
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, encoded = entry.partition(":")
        name = name.strip()
        if not sep or not name or not encoded.startswith(_SCHEME + "$") or name in ANONYMOUS:
            raise ConfigError(
                USERS_ENV,
                entry[:40] + ("…" if len(entry) > 40 else ""),
                f"user:{_SCHEME}$… entries (make a hash with 'dqm serve --hash-password'); "
                f"'{name or '?'}' is not usable",
            )
        users[name] = encoded.strip()
    return users


@dataclass(frozen=True)
class AuthConfig:
    """Who may log in, the cookie secret, and (demo only) the invented login to print."""

    users: Mapping[str, str] = field(default_factory=dict)
    cookie_secret: str = ""
    demo_login: tuple[str, str] | None = None
    experts: frozenset[str] = frozenset()

    def role(self, user: str) -> str:
        return EXPERT if user in self.experts else SHIFTER

    @property
    def enabled(self) -> bool:
        return bool(self.users)


def auth_config_from_env(
    environ: Mapping[str, str] | None = None, *, demo: bool = False
) -> AuthConfig:
    """Read users and secret; refuse users without a secret unless ``demo``.

    No users at all means a read-only server: nobody can log in, so nobody can act.
    """
    env = os.environ if environ is None else environ
    users = parse_users(env.get(USERS_ENV, ""))
    secret = env.get(SECRET_ENV, "")
    demo_login = None
    if demo:
        if not users:
            password = secrets.token_urlsafe(9)
            users = {"demo": hash_password(password, iterations=50_000)}
            demo_login = ("demo", password)
        secret = secret or secrets.token_urlsafe(32)
    if users and not secret:
        raise ConfigError(
            SECRET_ENV,
            "",
            "a random secret of at least 32 characters to sign login cookies "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), since "
            f"{USERS_ENV} is set",
        )
    if users and len(secret) < 32:
        raise ConfigError(SECRET_ENV, "<hidden>", "at least 32 characters")
    experts = {e.strip() for e in env.get(EXPERTS_ENV, "").split(",") if e.strip()}
    if unknown := sorted(experts - set(users)):
        raise ConfigError(EXPERTS_ENV, ",".join(unknown), f"names of users in {USERS_ENV}")
    if demo_login:
        experts.add(demo_login[0])  # the demo's throw-away login may do everything
    return AuthConfig(
        users=dict(users), cookie_secret=secret, demo_login=demo_login, experts=frozenset(experts)
    )


def make_auth_provider(auth: AuthConfig):
    """A Panel auth provider: guests may view every page; ``/login`` checks password hashes."""
    from panel.auth import BasicAuthProvider, BasicLoginHandler

    users = dict(auth.users)

    class DQMLoginHandler(BasicLoginHandler):
        def _validate(self, username: str, password: str) -> bool:
            encoded = users.get(username)
            return encoded is not None and verify_password(password, encoded)

    class DQMAuthProvider(BasicAuthProvider):
        def _allow_guest(self, uri: str) -> bool:
            return not uri.split("?")[0].startswith(self._login_endpoint)

        @property
        def login_handler(self):
            DQMLoginHandler._login_endpoint = self._login_endpoint
            DQMLoginHandler._login_template = self._login_template
            return DQMLoginHandler

    return DQMAuthProvider(
        login_template=str(_TEMPLATES / "login.html"),
        logout_template=str(_TEMPLATES / "logout.html"),
    )


def remember_roles(auth: AuthConfig) -> None:
    """Keep the expert names where every session of this process finds them (configuration,
    not per-user state: it is the same for every session)."""
    import panel as pn

    pn.state.cache[_ROLES_KEY] = frozenset(auth.experts)


def current_user() -> Actor | None:
    """The logged-in user of this browser session with their role, or None for guests and
    servers without login."""
    import panel as pn

    user = pn.state.user
    if user is None or user in ANONYMOUS:
        return None
    experts = pn.state.cache.get(_ROLES_KEY, frozenset())
    return Actor(user, EXPERT if user in experts else SHIFTER)
