"""A target's DSN as it may be shown: the password masked in the DSN, and removed from any text
(error messages, log lines) that might quote it; and the rules a DSN must follow before it is
stored or connected to. Pure: no Django."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

MASK = "********"
# A query target names a server, a database and a role: nothing that makes libpq read a file
# of this server (passfile, service, certificates), pick a socket or run server options.
ALLOWED_PARAMETERS = ("host", "port", "dbname", "user", "password", "sslmode")
FILE_PARAMETERS = {
    "passfile",
    "service",
    "servicefile",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
}
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_PORT = "5432"
RULE = f"a query target takes only {', '.join(ALLOWED_PARAMETERS)}"
CONNECTION_CHANGED = (
    "password: enter the password again: the connection changed (the stored password only "
    "goes to the host, port, database and user it was given for)"
)


class DsnRefused(ValueError):
    """A DSN outside the rules; the message names the field or parameter and the rule."""


def _is_url(dsn: str) -> bool:
    return dsn.startswith(("postgres://", "postgresql://"))


def password_of(dsn: str) -> str:
    """The DSN's password, or "" (also for a DSN that does not parse)."""
    try:
        return str(conninfo_to_dict(dsn).get("password") or "")
    except Exception:  # noqa: BLE001 - an unparsable DSN: fall back to the URL's own syntax
        if _is_url(dsn):
            return unquote(urlsplit(dsn).password or "")
        return ""


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by MASK (a DSN without one is returned as is)."""
    password = password_of(dsn)
    if not password:
        return dsn
    if _is_url(dsn):
        parts = urlsplit(dsn)
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        if ":" in userinfo:
            parts = parts._replace(netloc=f"{user}:{MASK}@{hostport}")
        masked = urlunsplit(parts)
        return redact(masked, dsn)  # a password=... in the query string
    return make_conninfo(dsn, password=MASK)


def connection_params(dsn: str, allowed_hosts: Iterable[str]) -> dict[str, str]:
    """The DSN's parameters when it follows the rules (one TCP host among `allowed_hosts`, a
    port, and only ALLOWED_PARAMETERS); else DsnRefused("dsn: ...") naming the parameter."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception as exc:  # noqa: BLE001 - psycopg's parser raises ProgrammingError
        detail = " ".join(str(exc).split())
        raise DsnRefused(redact(f"dsn: not a PostgreSQL DSN: {detail}", dsn)) from None
    for name in params:
        if name in FILE_PARAMETERS:
            raise DsnRefused(f"dsn: {name}= is not accepted: it reads a file here ({RULE})")
        if name not in ALLOWED_PARAMETERS:
            raise DsnRefused(f"dsn: {name}= is not accepted ({RULE})")
    host = params.get("host", "").strip()
    if not host or host.startswith(("/", "@")) or "," in host:
        raise DsnRefused(
            "dsn: host: give one database host name or IP address (unix-socket directories "
            "and host lists are not accepted)"
        )
    allowed = {name.lower() for name in allowed_hosts}
    if host.lower() not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise DsnRefused(f"dsn: host {host!r} is not in QUERYOPT_ALLOWED_HOSTS (allowed: {shown})")
    port = params.get("port", DEFAULT_PORT)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DsnRefused("dsn: port: give one port number from 1 to 65535")
    if "sslmode" in params and params["sslmode"] not in SSL_MODES:
        raise DsnRefused(f"dsn: sslmode: give one of {', '.join(SSL_MODES)}")
    return {**params, "host": host, "port": port}


def _where(dsn: str) -> dict[str, str] | None:
    """Where a DSN's connection goes: every parameter but the password (None: unparsable)."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # noqa: BLE001 - an unparsable DSN goes nowhere known
        return None
    params.pop("password", None)
    params.setdefault("port", DEFAULT_PORT)
    return params


def with_password_of(new_dsn: str, stored_dsn: str) -> str:
    """`new_dsn` with the stored password put back where the form showed the mask; DsnRefused
    (CONNECTION_CHANGED) when the new DSN goes anywhere else than the stored one: a password
    is bound to where it was typed for."""
    if password_of(new_dsn) != MASK:
        return new_dsn
    where = _where(new_dsn)
    if where is None or where != _where(stored_dsn):
        raise DsnRefused(CONNECTION_CHANGED)
    password = password_of(stored_dsn)
    if _is_url(new_dsn):
        return new_dsn.replace(f":{MASK}@", f":{quote(password, safe='')}@", 1).replace(
            f"password={MASK}", f"password={quote(password, safe='')}"
        )
    return make_conninfo(new_dsn, password=password)


def redact(text: str, dsn: str) -> str:
    """`text` with the DSN's password (raw and URL-encoded) replaced by MASK."""
    password = password_of(dsn)
    if not password:
        return text
    for form in sorted(
        {password, quote(password, safe=""), quote(password)}, key=len, reverse=True
    ):
        text = text.replace(form, MASK)
    return text
