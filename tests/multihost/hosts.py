"""Hosts for tests: Linux network namespaces joined by veth pairs to a bridge, each with an
address that exists only inside them (nothing is added to the machine's own namespace).

`ip netns` needs root. Names carry the test process's pid, so that parallel test processes
never share a namespace; each process's hosts are a network of their own."""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """This thread in `namespace`: sockets made meanwhile belong to it for good, whichever
    namespace the thread is in when it uses them later."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    other = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(other)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(other)
        os.close(own)


class Network:
    """A hub namespace holding a bridge at .1 of a /24, and hosts joined to it at .2, .3, ..."""

    def __init__(self, logs: Path) -> None:
        pid = os.getpid()
        self.prefix = f"ogp{pid}"
        # From the pid, as the names are; each process's hosts only see each other anyway.
        self.subnet = f"10.{(pid >> 8) % 256}.{pid % 256}"
        self.logs = logs
        self.hosts: dict[str, str] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        # Sockets made in the namespaces: each keeps its namespace alive until it is closed.
        self.sockets: list[socket.socket] = []
        # Both ends of every forwarded connection: a host cut off never sends its FIN, so its
        # forwarded connections would outlive the test (a PostgreSQL session left idle in a
        # transaction holds its locks, and the next test's flush waits on them for ever).
        self.forwarded: list[socket.socket] = []
        self.hub = self.namespace("hub")

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return self.hosts[host]

    def create(self, *hosts: str) -> None:
        ip("netns", "add", self.hub)
        self.hosts["hub"] = f"{self.subnet}.1"
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{self.hosts['hub']}/24", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for number, host in enumerate(hosts, start=2):
            namespace = self.namespace(host)
            ip("netns", "add", namespace)
            self.hosts[host] = f"{self.subnet}.{number}"
            ip("-n", namespace, "link", "set", "lo", "up")
            # Named after the host in the hub, eth0 in the host: one cable to the switch.
            ip("-n", self.hub, "link", "add", host, "type", "veth", "peer", "name", "eth0",
               "netns", namespace)  # fmt: skip
            ip("-n", self.hub, "link", "set", host, "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{self.hosts[host]}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")

    def cut(self, host: str) -> None:
        """Unplug the host's cable: its packets are dropped, its connections hang."""
        ip("-n", self.hub, "link", "set", host, "down")

    def restore(self, host: str) -> None:
        ip("-n", self.hub, "link", "set", host, "up")

    def run(self, host: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{host}.log").open("ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(host), *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def output(self, host: str) -> str:
        path = self.logs / f"{host}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def listen(self, host: str, port: int) -> socket.socket:
        """A listening TCP socket on the host's address, made from this process."""
        with inside(self.namespace(host)):
            server = socket.create_server((self.address(host), port))
        self.sockets.append(server)
        return server

    def forward(self, host: str, port: int, to: tuple[str, int]) -> None:
        """Serve `to` (reached from this process's namespace) on the host's address: how the
        hub offers the machine's PostgreSQL and Redis, which listen on loopback only."""
        server = self.listen(host, port)
        threading.Thread(target=_accept, args=(server, to, self.forwarded), daemon=True).start()

    def destroy(self) -> None:
        """Every process first (a namespace outlives its name while a process is in it)."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for sock in self.forwarded:  # its pump sees the end and closes both sides
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for host in self.hosts:
            subprocess.run(
                ["ip", "netns", "delete", self.namespace(host)], capture_output=True, check=False
            )


def _accept(server: socket.socket, to: tuple[str, int], forwarded: list[socket.socket]) -> None:
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(to, timeout=5)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        forwarded += [client, upstream]
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()


def _pump(one: socket.socket, other: socket.socket) -> None:
    """Copy both ways until either side closes."""
    selector = selectors.DefaultSelector()
    selector.register(one, selectors.EVENT_READ, other)
    selector.register(other, selectors.EVENT_READ, one)
    try:
        while True:
            for key, _ in selector.select():
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        selector.close()
        one.close()
        other.close()
