"""runall binds the web where `make run` says it does: HOST and PORT, else 127.0.0.1:8000."""

from __future__ import annotations

import pytest

from offgridperf.management.commands.runall import Command, product_processes


def _bound(monkeypatch: pytest.MonkeyPatch, **environ: str) -> tuple[str, int]:
    for name in ("HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    options = Command().create_parser("manage.py", "runall").parse_args([])
    return options.host, options.port


def test_it_binds_the_loopback_address_and_port_8000_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _bound(monkeypatch) == ("127.0.0.1", 8000)


def test_it_binds_the_host_and_port_make_run_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = _bound(monkeypatch, HOST="192.0.2.10", PORT="8100")
    assert (host, port) == ("192.0.2.10", 8100)
    web = next(spec for spec in product_processes(host, port) if spec.name == "web")
    assert "192.0.2.10:8100" in web.argv
