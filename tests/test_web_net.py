"""
The web front-end over real sockets, with the server built by the plugin in
this process: the handshake and frames through twisted.web's takeover of
the connection, every connection counted against the connection limits, a
browser that stops reading dropped by the send-queue limit, and the
WebSocket over TLS.
"""

import json
import socket
from pathlib import Path
from typing import Any

import pytest_twisted
from chatclient import TIMEOUT, running
from test_integration import makeCertificate
from test_web import clientFrame, handshake, parseFrames
from twisted.internet import defer, reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

LOOPBACK = "tcp:0:interface=127.0.0.1"


class WebSocketClient(Protocol):
    """
    A WebSocket client over a real connection: it sends a browser's request,
    then JSON messages, and lets a test wait for the server's.
    """

    def __init__(self, origin: str, host: str) -> None:
        self.request = handshake(origin, host)
        self.status = b""
        self.messages: list[dict[str, Any]] = []
        self._buffer = b""
        self._waiting: Deferred[None] | None = None
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if not self.status:
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.status, self._buffer = head.split(b"\r\n")[0], rest
        frames, self._buffer = parseFrames(self._buffer)
        self.messages += [
            json.loads(payload) for opcode, payload in frames if opcode == 1
        ]
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(None)

    def send(self, **fields: Any) -> None:
        self.transport.write(clientFrame(json.dumps(fields).encode()))

    async def handshake(self) -> bytes:
        """
        The status line of the server's answer to the request.
        """
        while not self.status and not self.closed.called:
            await self._more()
        return self.status

    async def expect(self, kind: str) -> dict[str, Any]:
        """
        Skip messages until one of type C{kind}; return it.
        """
        while True:
            while self.messages:
                got = self.messages.pop(0)
                if got["type"] == kind:
                    return got
            await self._more()

    async def _more(self) -> None:
        d: Deferred[None] = Deferred()
        self._waiting = d
        try:
            await d.addTimeout(TIMEOUT, reactor)
        except defer.TimeoutError:
            raise AssertionError(f"nothing more within {TIMEOUT} s") from None


async def openWebSocket(
    port: int, origin: str, endpoint: Any = None
) -> WebSocketClient:
    client = WebSocketClient(origin, f"127.0.0.1:{port}")
    endpoint = endpoint or TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    await connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
    return client


@pytest_twisted.ensureDeferred
async def test_slowReaderDropped(tmp_path: Path) -> None:
    """
    When a browser stops reading while lines keep coming, the server drops it once
    its send queue passes the limit, counts the drop, and the chat goes on.
    """
    async with running(
        tmp_path, "--web-listen", LOOPBACK, "--flood-rate", "0"
    ) as server:
        port = server.service.listeners[1].port.getHost().port
        web = await openWebSocket(port, f"http://127.0.0.1:{port}")
        assert (await web.handshake()).startswith(b"HTTP/1.1 101 ")
        web.send(type="login", name="alice", password="secret")
        await web.expect("logged_in")
        web.transport.pauseProducing()
        bob, carol = await server.logins("bob", "carol")
        # Four megabytes: more than the kernel's buffers on both sides take.
        for n in range(1000):
            bob.send(f"{n} " + "x" * 4000)
        metrics = server.service.chat.metrics
        deadline = reactor.seconds() + 3 * TIMEOUT
        while not metrics.sendqDrops and reactor.seconds() < deadline:
            await deferLater(reactor, 0.05)
        assert metrics.sendqDrops == 1
        # Reading again, the browser finds the connection gone.
        web.transport.resumeProducing()
        await web.closed.addTimeout(TIMEOUT, reactor)
        await carol.waitFor(f"bob > 999 {'x' * 4000}", timeout=3 * TIMEOUT)


class Silent(Protocol):
    """
    A connection that says nothing, as a page's idle keep-alive one or a
    slow client's.
    """

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(None)


@pytest_twisted.ensureDeferred
async def test_everyConnectionCounted(tmp_path: Path) -> None:
    """
    When an address holds as many connections to the web listener as the
    per-address limit allows, even ones that never send a request, its next
    connection is answered 503 before any WebSocket; once one of them ends,
    a WebSocket opens.
    """
    async with running(
        tmp_path,
        "--web-listen",
        LOOPBACK,
        "--max-connections-per-ip",
        "2",
        "--no-exempt-loopback",
    ) as server:
        port = server.service.listeners[1].port.getHost().port
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
        silent = [await connectProtocol(endpoint, Silent()) for _ in range(2)]
        web = await openWebSocket(port, f"http://127.0.0.1:{port}")
        assert (await web.handshake()).startswith(b"HTTP/1.1 503 ")
        await web.closed.addTimeout(TIMEOUT, reactor)
        silent[0].transport.loseConnection()
        await silent[0].closed.addTimeout(TIMEOUT, reactor)
        status = b""
        for _ in range(20):  # until the server has seen the close
            web = await openWebSocket(port, f"http://127.0.0.1:{port}")
            status = await web.handshake()
            if not status.startswith(b"HTTP/1.1 503 "):
                break
            await deferLater(reactor, 0.05)
        assert status.startswith(b"HTTP/1.1 101 "), status
        web.send(type="login", name="alice", password="secret")
        await web.expect("logged_in")
        silent[1].transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_nagleKeptOn(tmp_path: Path) -> None:
    """
    The WebSocket's socket keeps Nagle's algorithm on, as the line and IRC
    front-ends' do, though twisted.web turns it off for its pages.
    """
    async with running(tmp_path, "--web-listen", LOOPBACK) as server:
        port = server.service.listeners[1].port.getHost().port
        web = await openWebSocket(port, f"http://127.0.0.1:{port}")
        assert (await web.handshake()).startswith(b"HTTP/1.1 101 ")
        web.send(type="login", name="alice", password="secret")
        await web.expect("logged_in")
        (connection,) = server.service.connections.open
        handle = connection.transport.getHandle()
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest_twisted.ensureDeferred
async def test_tls(tmp_path: Path) -> None:
    """
    When the web listener is a TLS endpoint, a page served over https opens the
    chat's WebSocket and chats with line users, and an http page may not.
    """
    keyPath, certPath = makeCertificate(tmp_path)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}"
    async with running(tmp_path, "--web-listen", tls) as server:
        port = server.service.listeners[1].port.getHost().port

        def endpoint() -> SSL4ClientEndpoint:
            options = ssl.CertificateOptions()
            return SSL4ClientEndpoint(reactor, "127.0.0.1", port, options, timeout=5)

        web = await openWebSocket(port, f"https://127.0.0.1:{port}", endpoint())
        assert (await web.handshake()).startswith(b"HTTP/1.1 101 ")
        web.send(type="login", name="alice", password="secret")
        await web.expect("logged_in")
        bob = await server.user("bob")
        await web.expect("online")
        bob.send("hello over tls")
        line = await web.expect("line")
        assert (line["from"], line["text"]) == ("bob", "hello over tls")
        web.send(type="say", room="#general", text="and back")
        await bob.expect("alice > and back")

        plain = await openWebSocket(port, f"http://127.0.0.1:{port}", endpoint())
        assert (await plain.handshake()).startswith(b"HTTP/1.1 403 ")
