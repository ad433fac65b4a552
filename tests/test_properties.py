"""
Property tests (hypothesis): arbitrary input never breaks the server, never
reaches other users with control characters, and random sequences of user
actions keep the hub's state consistent.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from twisted_chat.config import ServerConfig
from twisted_chat.core.localhub import LocalHub
from twisted_chat.frontends.line import messages
from twisted_chat.testing import MemoryAccountStore, connect, makeFactory

# C0 controls except tab, DEL, C1 controls (ESC is C0), bidi embeddings,
# overrides and isolates.
FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

FRAGMENTS = [
    b"\n",
    b"\r\n",
    b"\r",
    b"alice\n",
    b"pw\n",
    b"carol\n",
    b"@PM alice\n",
    b"@PM bob\n",
    b"@pm carol\n",
    b"y\n",
    b"N\n",
    b"@ACCEPT\n",
    b"EXIT PM\n",
    b"@WHO\n",
    b"@SEARCH a\n",
    b"@HEARTBEAT\n",
    b"@PASSWORD pw pw\n",
    b"@HELP\n",
    b"@nope\n",
    b"LOGOUT\n",
    b"\x1b[2J",
    b"\x1b]0;title\x07",
    b"\x1b",
    b"\x9b31m",
    b"\x00",
    b"\x07",
    b"\x7f",
    b"\xc2\x85",
    b"\xc2\x9b",
    "\u202e".encode(),
    "\u2066".encode(),
    "ş".encode(),
    "ş".encode()[:1],
    b"\xff",
    b"x" * 5000,
]

chunk = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map(b"".join),
)


class FailureCatcher:
    """
    Collect logged failures (a crashed handler logs one).
    """

    def __init__(self) -> None:
        self.failures: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(event)


@pytest.fixture
def failures() -> Iterator[FailureCatcher]:
    catcher = FailureCatcher()
    globalLogPublisher.addObserver(catcher)
    yield catcher
    globalLogPublisher.removeObserver(catcher)


def assertClean(output: bytes) -> None:
    text = output.decode("utf-8")
    for piece in text.split("\r\n"):
        assert not FORBIDDEN.search(piece), repr(piece)


def hubOf(factory: Any) -> LocalHub:
    hub = factory.connections.services.hub
    assert isinstance(hub, LocalHub)
    return hub


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prefixes=st.lists(
        st.sampled_from([b"", b"carol\npw\n", b"dave\nx\n"]), min_size=3, max_size=3
    ),
    steps=st.lists(
        st.one_of(
            st.tuples(st.integers(0, 2), chunk),
            st.floats(0, 40).map(lambda seconds: (None, seconds)),
        ),
        max_size=25,
    ),
)
def test_arbitraryInput(
    failures: FailureCatcher,
    prefixes: list[bytes],
    steps: list[tuple[int | None, Any]],
) -> None:
    """
    When clients send arbitrary bytes in arbitrary chunks, the server never fails, never
    relays a control character and keeps its state consistent.
    """
    failures.failures.clear()
    clock = Clock()
    factory, _audit = makeFactory(
        clock, MemoryAccountStore({"alice": "pw", "bob": "pw", "carol": "pw"})
    )
    hub = hubOf(factory)
    observers = []
    for number, name in enumerate(["alice", "bob"]):
        protocol, transport = connect(factory, port=41000 + number)
        protocol.dataReceived(f"{name}\npw\n".encode())
        assert b"Login success!" in transport.value()
        observers.append(transport)
    fuzzers = []
    for number, prefix in enumerate(prefixes):
        protocol, transport = connect(factory, port=42000 + number)
        protocol.dataReceived(prefix)
        fuzzers.append((protocol, transport))
    for index, value in steps:
        if index is None:
            clock.advance(value)
        else:
            protocol, transport = fuzzers[index]
            if transport.connected:
                protocol.dataReceived(value)
        assert list(hub.checkInvariants()) == []
    for transport in observers + [transport for _, transport in fuzzers]:
        output = transport.value()
        assert messages.SERVER_ERROR.encode() not in output
        assertClean(output)
    assert failures.failures == []


USERS = ["alice", "bob", "carol", "dave"]
COMMANDS = [
    "@PM {other}",
    "y",
    "n",
    "Y",
    "N",
    "@ACCEPT",
    "@REJECT",
    "EXIT PM",
    "hello",
    "@WHO",
    "LOGOUT",
]

action = st.one_of(
    st.tuples(
        st.just("say"),
        st.integers(0, 3),
        st.sampled_from(COMMANDS),
        st.integers(0, 3),
    ),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(st.just("login"), st.integers(0, 3)),
    st.tuples(st.just("slowLogin"), st.integers(0, 3)),
    st.tuples(st.just("dropDuringLogin"), st.integers(0, 3)),
    st.tuples(st.just("fire")),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1, 30, 59.5, 60, 61])),
)


class GatedStore(MemoryAccountStore):
    """
    An account store whose answers wait until the test fires them, as while
    a password hash is computed.
    """

    def __init__(self, accounts: dict[str, str]) -> None:
        super().__init__(accounts)
        self.pending: list[tuple[Deferred[Any], str, str]] = []

    def authenticate(self, name: str, password: str) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.pending.append((d, name, password))
        return d

    def fire(self) -> None:
        pending, self.pending = self.pending, []
        for d, name, password in pending:
            super().authenticate(name, password).chainDeferred(d)


def checkState(factory: Any, connections: list[Any]) -> None:
    hub = hubOf(factory)
    assert list(hub.checkInvariants()) == []
    partners = hub._partners
    assert len(set(partners.values())) == len(partners)
    requests = hub._requests
    for request in set(requests.values()):
        assert requests[request.requester.key] is request
        assert requests[request.target.key] is request
        assert request.requester is not request.target
    assert not set(requests) & set(partners)
    timers = [
        call
        for call in factory.connections.clock.getDelayedCalls()
        if call.active() and call.func == hub._expire
    ]
    assert len(timers) == len(set(map(id, requests.values())))
    # Every online session belongs to a live connection, and back.
    for key, session in hub._sessions.items():
        protocol = session.client
        assert protocol.transport.connected, f"ghost session {key}"
        assert protocol.core.session is session
    for protocol, transport in connections:
        if transport.connected and protocol.core.session is not None:
            assert hub._sessions[protocol.core.session.key] is protocol.core.session


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(action, max_size=40))
def test_randomSessions(failures: FailureCatcher, actions: list[tuple]) -> None:
    """
    When users request, answer, leave, drop and log in again (also while their
    password is being checked) in any order, the server keeps pairings and requests
    consistent and leaves no session without a connection.
    """
    failures.failures.clear()
    clock = Clock()
    store = GatedStore(dict.fromkeys(USERS, "pw"))
    factory, _audit = makeFactory(clock, store, ServerConfig(floodRate=0))
    clients: dict[str, Any] = {}
    connections: list[Any] = []
    ports = iter(range(43000, 44000))

    def login(name: str, slow: bool = False) -> None:
        protocol, transport = connect(factory, port=next(ports))
        protocol.dataReceived(f"{name}\npw\n".encode())
        connections.append((protocol, transport))
        clients[name] = (protocol, transport)
        if not slow:
            store.fire()
            assert transport.value().endswith(b"Login success!\r\n")

    for name in USERS:
        login(name)
    for step in actions:
        kind = step[0]
        if kind == "say":
            _, i, command, j = step
            client = clients.get(USERS[i])
            if client is not None and client[1].connected:
                line = command.format(other=USERS[j])
                client[0].dataReceived(line.encode() + b"\r\n")
        elif kind == "drop":
            client = clients.get(USERS[step[1]])
            if client is not None:
                client[1].loseConnection()
        elif kind == "login":
            login(USERS[step[1]])
        elif kind == "slowLogin":
            login(USERS[step[1]], slow=True)
        elif kind == "dropDuringLogin":
            login(USERS[step[1]], slow=True)
            connections[-1][1].loseConnection()
        elif kind == "fire":
            store.fire()
        else:
            clock.advance(step[1])
        checkState(factory, connections)
    store.fire()
    for _protocol, transport in connections:
        transport.loseConnection()
    checkState(factory, connections)
    assert hubOf(factory).sessionCount == 0
    assert failures.failures == []
    for _protocol, transport in connections:
        assert messages.SERVER_ERROR.encode() not in transport.value()
