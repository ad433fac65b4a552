"""
Unit tests for UDP presence (issue 3): L{PresenceTracker} with a fake clock,
driven through the chat protocol's C{@HEARTBEAT} command.
"""

import base64
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from twisted_chat.config import ServerConfig
from twisted_chat.frontends.line.protocol import LineProtocol
from twisted_chat.presence import PresenceTracker
from twisted_chat.testing import MemoryAccountStore, connect, makeFactory

HEARTBEAT = re.compile(r"HEARTBEAT (\d+) ([A-Za-z0-9_-]+) (\S+) (\S+)\r\n")
PEER = ("198.51.100.9", 50000)


class FakeUDP:
    """
    A UDP transport bound to a port, remembering anything written.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.written: list[Any] = []

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "0.0.0.0", self.port)

    def write(self, *args: Any) -> None:
        self.written.append(args)


class Client:
    def __init__(self, presence: "Presence", name: str) -> None:
        self.protocol, self.transport = connect(presence.factory)
        self.aborted = False
        abort = self.transport.abortConnection

        def spy() -> None:
            self.aborted = True
            abort()

        self.transport.abortConnection = spy  # type: ignore[method-assign]
        self.line(f"{name}\npw")
        assert b"Login success!" in self.take()

    def line(self, text: str) -> None:
        self.protocol.dataReceived(text.encode() + b"\n")

    def take(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def heartbeat(self) -> bytes:
        self.take()
        self.line("@HEARTBEAT")
        match = HEARTBEAT.fullmatch(self.take().decode())
        assert match, "no HEARTBEAT line"
        return match.group(2).encode()

    @property
    def closed(self) -> bool:
        return not self.transport.connected


class Presence:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.clock = Clock()
        self.factory, self.audit = makeFactory(
            self.clock,
            MemoryAccountStore({"alice": "pw", "bob": "pw", "carol": "pw"}),
            config,
        )
        self.udp = FakeUDP(23456)
        self.tracker: PresenceTracker = self.factory.connections.services.presence
        self.tracker.makeConnection(self.udp)  # type: ignore[arg-type]

    def login(self, name: str) -> Client:
        return Client(self, name)

    def datagram(self, data: bytes) -> None:
        self.tracker.datagramReceived(data, PEER)


@pytest.fixture
def presence() -> Iterator[Presence]:
    presence = Presence()
    yield presence
    assert presence.udp.written == []
    assert list(presence.factory.connections.services.hub.checkInvariants()) == []  # type: ignore[attr-defined]


def test_heartbeatLine(presence: Presence) -> None:
    """
    When a user sends @HEARTBEAT, the server answers with the port, a token and the
    timings.
    """
    alice = presence.login("alice")
    alice.line("@heartbeat")
    match = HEARTBEAT.fullmatch(alice.take().decode())
    assert match is not None
    port, token, interval, timeout = match.groups()
    assert (port, interval, timeout) == ("23456", "5", "20")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) * 8 >= 128
    assert presence.tracker.isTracked(alice.protocol)


def test_heartbeatLineFractionalTimings() -> None:
    """When the timings are fractional, the server writes them with %g."""
    presence = Presence(ServerConfig(heartbeatInterval=2.5, heartbeatTimeout=7.5))
    alice = presence.login("alice")
    alice.line("@HEARTBEAT")
    match = HEARTBEAT.fullmatch(alice.take().decode())
    assert match is not None
    assert match.group(3, 4) == ("2.5", "7.5")


def test_tokensDiffer(presence: Presence) -> None:
    """When several sessions ask for heartbeats, the server gives each its own token."""
    tokens = {presence.login(name).heartbeat() for name in ["alice", "bob", "carol"]}
    assert len(tokens) == 3


def test_untrackedSessionStaysOnline(presence: Presence) -> None:
    """
    When a session never asked for heartbeats, the server keeps it online however long
    it is silent.
    """
    alice = presence.login("alice")
    presence.clock.advance(3600)
    assert not alice.closed
    assert not presence.tracker.isTracked(alice.protocol)


def test_refreshKeepsSession(presence: Presence) -> None:
    """When valid heartbeats keep coming, the server keeps the session online."""
    alice = presence.login("alice")
    token = alice.heartbeat()
    for _ in range(10):
        presence.clock.advance(15)
        presence.datagram(token)
    assert not alice.closed
    presence.clock.advance(19.9)
    assert not alice.closed
    presence.clock.advance(0.1)
    assert alice.closed


def test_silenceDeclaresOffline(
    presence: Presence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    When no heartbeat comes for the timeout, the server declares the user offline at
    exactly that time.
    """
    stopped: list[tuple[LineProtocol, float]] = []
    original = LineProtocol.heartbeatsStopped

    def spy(self: LineProtocol, timeout: float) -> None:
        stopped.append((self, timeout))
        original(self, timeout)

    monkeypatch.setattr(LineProtocol, "heartbeatsStopped", spy)
    alice = presence.login("alice")
    bob = presence.login("bob")
    alice.heartbeat()
    bob.take()
    presence.clock.advance(1)
    presence.audit.lines.clear()
    presence.clock.advance(18.999)
    assert not alice.closed
    assert stopped == []
    presence.clock.advance(0.001)
    assert stopped == [(alice.protocol, 20.0)]
    assert alice.closed
    assert alice.aborted
    assert bob.take() == b"* alice left the chat.\r\n"
    assert not presence.tracker.isTracked(alice.protocol)
    presence.clock.advance(1)
    assert presence.audit.lines == [
        "Could not receive any heartbeat from USER: alice for 20 secs "
        "and he/she became offline!",
        "Lost connection from alice",
        "Online users (1): bob",
    ]


def test_partnerToldOnHeartbeatLoss(presence: Presence) -> None:
    """
    When a user in a private chat stops heartbeating, the server tells the partner.
    """
    alice = presence.login("alice")
    bob = presence.login("bob")
    alice.line("@PM bob")
    bob.line("Y")
    alice.heartbeat()
    bob.take()
    presence.clock.advance(20)
    assert alice.closed
    assert bob.take().startswith(b"Your partner alice left pm!\r\n")
    assert "PM between users alice and bob closed." in presence.audit.lines


@pytest.mark.parametrize(
    "datagram",
    [
        b"1700000000|alice",
        b"",
        b"garbage",
        b"\x00\xff" * 10,
        b"x" * 65507,
    ],
)
def test_otherDatagramsIgnored(presence: Presence, datagram: bytes) -> None:
    """
    When a datagram is not a live token (old style, garbage, oversized), the server
    ignores it.
    """
    alice = presence.login("alice")
    alice.heartbeat()
    for _ in range(3):
        presence.clock.advance(6)
        presence.datagram(datagram)
        presence.datagram(b"%d|alice" % presence.clock.seconds())
    presence.clock.advance(2)
    assert alice.closed


def test_wrongTokenDoesNotRefresh(presence: Presence) -> None:
    """
    When a datagram holds a near-miss of the token, the server does not refresh the
    session.
    """
    alice = presence.login("alice")
    bob = presence.login("bob")
    token = alice.heartbeat()
    bob.heartbeat()
    for wrong in [token + b"x", token[:-1], token.upper(), token + b"\n", b" " + token]:
        if wrong != token:
            presence.clock.advance(3)
            presence.datagram(wrong)
    presence.clock.advance(20 - 15)
    assert alice.closed
    assert bob.closed


def test_closingConnectionCancelsTimer(presence: Presence) -> None:
    """
    When the TCP connection closes, the server stops the heartbeat timer and kills the
    token.
    """
    alice = presence.login("alice")
    token = alice.heartbeat()
    alice.transport.loseConnection()
    presence.clock.advance(1)
    assert presence.clock.getDelayedCalls() == []
    assert not presence.tracker.isTracked(alice.protocol)
    lines = list(presence.audit.lines)
    presence.datagram(token)
    presence.clock.advance(60)
    assert presence.audit.lines == lines


def test_logoutCancelsTimer(presence: Presence) -> None:
    """When a tracked user logs out, the server stops the heartbeat timer."""
    alice = presence.login("alice")
    alice.heartbeat()
    alice.line("LOGOUT")
    presence.clock.advance(1)
    assert presence.clock.getDelayedCalls() == []


def test_askingAgainReplacesToken(presence: Presence) -> None:
    """
    When a session asks for heartbeats again, the server gives a new token and the old
    one dies.
    """
    alice = presence.login("alice")
    first = alice.heartbeat()
    presence.clock.advance(10)
    second = alice.heartbeat()
    assert first != second
    presence.clock.advance(15)
    presence.datagram(first)
    presence.clock.advance(5)
    assert alice.closed


def test_takeover(presence: Presence) -> None:
    """
    When a tracked user logs in elsewhere, the server kills the old token and gives the
    new connection a new one.
    """
    old = presence.login("alice")
    oldToken = old.heartbeat()
    new = presence.login("alice")
    assert old.closed
    assert not old.aborted
    assert not presence.tracker.isTracked(old.protocol)
    presence.clock.advance(100)
    assert not new.closed
    newToken = new.heartbeat()
    assert newToken != oldToken
    presence.clock.advance(15)
    presence.datagram(newToken)
    presence.clock.advance(15)
    presence.datagram(oldToken)
    assert not new.closed
    presence.clock.advance(5)
    assert new.closed
    assert presence.audit.lines.count("Lost connection from alice") == 1


def test_ignoredDatagramsReportedOncePerSecond(presence: Presence) -> None:
    """
    When garbage datagrams flood in, the server logs about them at most once a second.
    """
    events: list[LogEvent] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("twisted_chat.presence"):
            events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        for _ in range(100):
            presence.datagram(b"junk")
        presence.clock.advance(0.5)
        for _ in range(100):
            presence.datagram(b"junk")
        assert len(events) == 1
        presence.clock.advance(0.5)
        presence.datagram(b"junk")
        assert len(events) == 2
        # Everything ignored since the first report: 99 + 100 + 1.
        assert events[0]["count"] == 1
        assert events[1]["count"] == 200
    finally:
        globalLogPublisher.removeObserver(observer)


def test_receiveBufferEnlarged() -> None:
    """
    When the tracker listens, its UDP socket gets a larger receive buffer
    than a fresh socket's, so heartbeats that arrive while the reactor is
    busy wait instead of being dropped.
    """
    from twisted.internet import reactor

    tracker = PresenceTracker(Clock())
    port = reactor.listenUDP(0, tracker, interface="127.0.0.1")
    fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        size = port.getHandle().getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        default = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert size > default
    finally:
        fresh.close()
        port.stopListening()
