"""Typed readers for environment variables.

Every reader raises ImproperlyConfigured with one line that names the variable and what it
accepts, so a malformed environment stops start-up with a message a person can act on.
Secrets are never echoed back in those messages.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    source = os.environ if environ is None else environ
    value = source.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def env_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret value, or None when unset; never part of an error message."""
    value = _raw(name, environ)
    return value or None


def env_token(name: str, min_length: int, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret that callers present (a bearer token), or None when unset; a short one, which
    could be guessed, stops start-up. Only its length is ever named."""
    value = env_secret(name, environ)
    if value is not None and len(value) < min_length:
        raise ImproperlyConfigured(
            f"{name} is too short; use at least {min_length} random characters"
        )
    return value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a whole number; {_range_text(minimum, maximum)}"
        ) from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(
            f"{name}={number} is out of range; {_range_text(minimum, maximum)}"
        )
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a number; {_range_text(minimum, maximum)}"
        ) from None
    if (
        number != number
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise ImproperlyConfigured(
            f"{name}={value} is out of range; {_range_text(minimum, maximum)}"
        )
    return number


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"expected a value from {minimum} to {maximum}"
    if minimum is not None:
        return f"expected a value of at least {minimum}"
    if maximum is not None:
        return f"expected a value of at most {maximum}"
    return "expected a number"


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None or value == "":
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(
            f"{name}={value!r} has an empty item; use a comma-separated list"
        )
    return items


def env_choice(
    name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    value = env_str(name, default, environ)
    normalised = value.upper() if all(c.isupper() for c in choices) else value
    if normalised not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not accepted; use one of {', '.join(choices)}"
        )
    return normalised


def env_networks(
    name: str, default: list[str], environ: Mapping[str, str] | None = None
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8, ::1)."""
    networks = []
    for item in env_list(name, default, environ):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} has {item!r}, which is not an IP address or network; use a "
                "comma-separated list such as 127.0.0.1,::1,10.0.0.0/8"
            ) from None
    return networks


_HEADER_NAME = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


def env_header_name(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """An HTTP header's name (X-Forwarded-Proto), or None when unset."""
    value = env_str(name, "", environ)
    if not value:
        return None
    if not _HEADER_NAME.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not an HTTP header name; use letters, digits and hyphens, "
            "such as X-Forwarded-Proto"
        )
    return value


def env_timezone(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = env_str(name, default, environ)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time zone; use an IANA name such as UTC or Europe/Berlin"
        ) from None
    return value


@dataclass(frozen=True)
class DatabaseURL:
    engine: str  # "sqlite" or "postgresql"
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: int | None = None
    options: dict[str, str] | None = None


DATABASE_URL_RULE = "use postgres://USER[:PASSWORD]@HOST[:PORT]/NAME or sqlite:///PATH"


def parse_database_url(name: str, value: str) -> DatabaseURL:
    """Parse DATABASE_URL; errors name the variable and never include the password."""
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ImproperlyConfigured(f"{name} has no SQLite file path; {DATABASE_URL_RULE}")
        if path.startswith("//"):
            path = path[1:]
        elif path.startswith("/") and not Path(path).is_absolute():
            path = path.lstrip("/")
        return DatabaseURL(engine="sqlite", name=path)
    if scheme in ("postgres", "postgresql", "pgsql"):
        if not value.startswith(f"{parts.scheme}://"):
            raise ImproperlyConfigured(f"{name} is malformed; {DATABASE_URL_RULE}")
        dbname = unquote(parts.path.lstrip("/"))
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} has a port that is not a number; {DATABASE_URL_RULE}"
            ) from None
        if not parts.hostname or not dbname or "/" in dbname:
            raise ImproperlyConfigured(
                f"{name} needs a host and a database name; {DATABASE_URL_RULE}"
            )
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return DatabaseURL(
            engine="postgresql",
            name=dbname,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=parts.hostname,
            port=port,
            options=options,
        )
    shown = scheme or "none"
    raise ImproperlyConfigured(f"{name} has unsupported scheme {shown!r}; {DATABASE_URL_RULE}")


def env_service_url(
    name: str, schemes: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str | None:
    """A URL whose scheme must be one of `schemes`, or None when unset."""
    value = _raw(name, environ)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes or (
        parts.scheme.lower() != "filesystem" and not parts.hostname
    ):
        accepted = " or ".join(f"{s}://HOST[:PORT]/..." for s in schemes)
        raise ImproperlyConfigured(f"{name} is not a URL this product accepts; use {accepted}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a port that is not a number") from None
    return value


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# -- .env files --------------------------------------------------------------------------------

ENV_FILE_VARIABLE = "OFFGRIDPERF_ENV_FILE"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_file_path(base_dir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The .env file to read: OFFGRIDPERF_ENV_FILE when set (empty: none), else base_dir/.env."""
    chosen = _raw(ENV_FILE_VARIABLE, environ)
    if chosen is None:
        return base_dir / ".env"
    return Path(chosen) if chosen else None


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a .env file (12-factor, as docker compose and python-dotenv read
    them): blank lines and # comments are skipped, `export ` is allowed, a value may be quoted
    with ' or ". A malformed line raises ImproperlyConfigured naming the file and the line;
    values are never echoed (they are often secrets)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _ENV_NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"{path}, line {number}: not NAME=value (a name is letters, digits and _, "
                "not starting with a digit)"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise ImproperlyConfigured(f"{path}, line {number}: {name}'s quote is not closed")
        values[name] = value
    return values


def load_env_file(path: Path | None, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the variables of `path` (when it exists) that the environment does not set already:
    the real environment always wins."""
    if path is None or not path.is_file():
        return
    target = os.environ if environ is None else environ
    for name, value in read_env_file(path).items():
        target.setdefault(name, value)
