"""The container's health check: exit 0 when /healthz on this container answers 200.

usage: python deploy/healthcheck.py [PORT]   (default: $PORT, else 8000)

Host: localhost, which every configuration keeps in ALLOWED_HOSTS, whatever names the
dashboard is reached by. Standard library only: it runs every few seconds."""

from __future__ import annotations

import os
import sys
import urllib.request


def main(argv: list[str]) -> int:
    port = argv[1] if len(argv) > 1 else os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310 - fixed http URL
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthz on port {port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
