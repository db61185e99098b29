"""A target's DSN as it may be shown: the password masked in the DSN, and removed from any text
(error messages, log lines) that might quote it. Pure: no Django."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

MASK = "********"


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


def with_password_of(new_dsn: str, stored_dsn: str) -> str:
    """`new_dsn` with the stored password put back where the form showed the mask."""
    if password_of(new_dsn) != MASK:
        return new_dsn
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
