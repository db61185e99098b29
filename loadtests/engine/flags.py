"""The load flags of both command lines: `python -m loadtests.engine URL ...` and
`manage.py loadtest url URL ...`. One declaration (names, types, defaults, help), one set of
error messages, one translation into the load-test document's fields, which are the engine
config's too. Pure argparse: the engine's own CLI uses it without Django.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from loadtests.engine.config import (
    CLOSED,
    CONNECTIONS_RULE,
    DURATION_RULE,
    MAX_CONNECTIONS,
    MAX_DURATION_S,
    MAX_RATE,
    MAX_TIMEOUT_S,
    MAX_USERS,
    MIN_TIMEOUT_S,
    OPEN,
    RATE_RULE,
    TIMEOUT_RULE,
    USERS_RULE,
)

DEFAULT_TIMEOUT_S = 10.0
# Without --connections a run may open this many connections, or one per user when more:
# a closed-model user never waits for another user's connection.
MIN_DEFAULT_CONNECTIONS = 100
MISSING_RULE = "give --users N or --rate R, and --duration S"
THINK_OPEN_RULE = "think time applies to --users (closed model) only"


class FlagError(ValueError):
    """A load flag is missing or breaks a rule; the message names the flag and the rule."""


def add_load_flags(parser: argparse.ArgumentParser) -> None:
    """Declare --users | --rate, --duration, --connections, --timeout, --think, --insecure."""
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--users", type=int, help="closed model: this many virtual users")
    load.add_argument("--rate", type=float, help="open model: this many requests per second")
    parser.add_argument("--duration", type=int, help="seconds to run, a whole number")
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help=f"connection cap (default: the users, at least {MIN_DEFAULT_CONNECTIONS})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"per-request timeout, seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--think", default=None, help="closed model think time: MIN[,MAX] seconds")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the https target's certificate (self-signed test targets only)",
    )


def load_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The parsed load flags (`vars(args)`, or a management command's options) as the
    document's (and EngineConfig's) fields: load_model, users, rate_rps, duration_s,
    think_time_min_s, think_time_max_s, timeout_s, max_connections and verify_tls. Raises
    FlagError naming the flag, what was given and the rule."""
    args = argparse.Namespace(**options)
    if (args.users is None and args.rate is None) or args.duration is None:
        raise FlagError(MISSING_RULE)
    _check(args.users is None or 1 <= args.users <= MAX_USERS, "--users", args.users, USERS_RULE)
    _check(args.rate is None or 0 < args.rate <= MAX_RATE, "--rate", args.rate, RATE_RULE)
    _check(0 < args.duration <= MAX_DURATION_S, "--duration", args.duration, DURATION_RULE)
    _check(MIN_TIMEOUT_S <= args.timeout <= MAX_TIMEOUT_S, "--timeout", args.timeout, TIMEOUT_RULE)
    connections = args.connections
    if connections is None:
        connections = max(args.users or 0, MIN_DEFAULT_CONNECTIONS)
    _check(1 <= connections <= MAX_CONNECTIONS, "--connections", connections, CONNECTIONS_RULE)
    think = parse_think(args.think)
    if args.rate is not None and args.think:
        raise FlagError(f"--think {args.think!r}: {THINK_OPEN_RULE}")
    return {
        "load_model": CLOSED if args.users is not None else OPEN,
        "users": args.users or 0,
        "rate_rps": args.rate or 0.0,
        "duration_s": args.duration,
        "think_time_min_s": think[0],
        "think_time_max_s": think[1],
        "timeout_s": args.timeout,
        "max_connections": connections,
        "verify_tls": not args.insecure,
    }


def parse_think(text: str | None) -> tuple[float, float]:
    """'MIN' or 'MIN,MAX' seconds -> (min, max); nothing -> (0, 0)."""
    if not text:
        return (0.0, 0.0)
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        raise FlagError(f"--think {text!r}: give seconds as MIN or MIN,MAX, e.g. 0.5,1.5") from None
    if len(parts) not in (1, 2) or any(part < 0 for part in parts) or parts[-1] < parts[0]:
        raise FlagError(f"--think {text!r}: give MIN or MIN,MAX with 0 <= MIN <= MAX")
    return (parts[0], parts[-1])


def _check(ok: bool, flag: str, value: object, rule: str) -> None:
    if not ok:
        raise FlagError(f"{flag} {value}: {rule}")
