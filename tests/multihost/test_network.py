"""The test network of tests/multihost: what it leaves behind once destroyed."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from tests.multihost.hosts import Network

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ip netns needs root")

# Connects from inside a host to the hub's forwarded port and holds the connection open.
HOLD = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
sock.sendall(b"BEGIN")
time.sleep(600)
"""


def test_a_cut_off_hosts_forwarded_connection_ends_when_the_network_is_destroyed(
    tmp_path: Path,
) -> None:
    """A cut-off host never closes its connections; forwarded to the machine's PostgreSQL, one
    left open kept a transaction's locks and stalled the next test's flush for ever."""
    upstream = socket.create_server(("127.0.0.1", 0))
    upstream.settimeout(10)
    network = Network(tmp_path)
    try:
        network.create("lg")
        network.forward("hub", 15432, upstream.getsockname())
        network.run("lg", [sys.executable, "-c", HOLD, network.address("hub"), "15432"], {})
        served, _ = upstream.accept()
        served.settimeout(10)
        assert served.recv(5) == b"BEGIN"
        network.cut("lg")
    finally:
        network.destroy()
    try:
        assert served.recv(1) == b"", "the forwarded connection outlived the network"
    finally:
        served.close()
        upstream.close()
