"""
Unit tests for the audit log: the exact event texts recorded for protocol
flows, what is never recorded, the online-users line and the file format.
"""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from twisted_chat.audit import AuditFileObserver, AuditLog, formatTimestamp
from twisted_chat.testing import AuditRecorder, MemoryAccountStore, connect, makeFactory


class Audited:
    """
    A factory on a fake clock with accounts alice, bob and carol (password
    C{pw}); it logs users in and keeps the audit lines.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = MemoryAccountStore({"alice": "pw", "bob": "pw", "carol": "pw"})
        self.factory, self.recorder = makeFactory(self.clock, self.store)
        self.port = 40000

    def login(self, name: str, password: str = "pw") -> object:
        self.port += 1
        protocol, transport = connect(self.factory, "198.51.100.7", self.port)
        protocol.dataReceived(f"{name}\n{password}\n".encode())
        assert b"Login success!" in transport.value()
        return Conn(protocol, transport)

    def take(self) -> list[str]:
        lines, self.recorder.lines[:] = list(self.recorder.lines), []
        return lines


class Conn:
    def __init__(self, protocol: object, transport: object) -> None:
        self.protocol = protocol
        self.transport = transport

    def line(self, text: str) -> None:
        self.protocol.dataReceived(text.encode() + b"\n")  # type: ignore[attr-defined]


@pytest.fixture
def audited() -> Iterator[Audited]:
    audited = Audited()
    yield audited
    assert list(audited.factory.connections.services.hub.checkInvariants()) == []  # type: ignore[attr-defined]


def test_registration(audited: Audited) -> None:
    """
    When a new name registers, the server records the registration, then the login.
    """
    audited.login("newbie", "s3cret")
    assert audited.take() == [
        "User with newbie successfully registered.",
        "User newbie logged in.",
        "Accepted new connection from 198.51.100.7:40001 username:newbie",
    ]


def test_login(audited: Audited) -> None:
    """When a known user logs in, the server records the login and the address."""
    audited.login("ALICE")
    assert audited.take() == [
        "User alice logged in.",
        "Accepted new connection from 198.51.100.7:40001 username:alice",
    ]


def test_failedLoginNotRecordedAsLogin(audited: Audited) -> None:
    """When a password is wrong, the server records no login."""
    protocol, _transport = connect(audited.factory)
    protocol.dataReceived(b"alice\nwrong\n")
    assert not any("logged in" in line for line in audited.take())


def test_groupMessage(audited: Audited) -> None:
    """When a user talks to the group, the server records the message."""
    alice = audited.login("alice")
    audited.login("bob")
    audited.take()
    text = "Merhaba, nasılsınız?"  # noqa: RUF001
    alice.line(text)
    assert audited.take() == [f"Received message from alice: {text}"]


def test_privateChatEvents(audited: Audited) -> None:
    """
    When users request, start and close a private chat, the server records each step but
    never its text.
    """
    alice = audited.login("alice")
    bob = audited.login("bob")
    audited.take()
    alice.line("@PM bob")
    assert audited.take() == ["User: alice requested private chat with user: bob"]
    bob.line("y")
    assert audited.take() == ["The PM start between alice and bob"]
    alice.line("very private words")
    bob.line("y")
    bob.line("n")
    assert audited.take() == []
    bob.line("EXIT PM")
    assert audited.take() == ["PM between users bob and alice closed."]
    bob.line("now public")
    assert audited.take() == ["Received message from bob: now public"]


def test_rejectedRequestRecordsNoStart(audited: Audited) -> None:
    """When a request is rejected, the server records the request only."""
    alice = audited.login("alice")
    bob = audited.login("bob")
    audited.take()
    alice.line("@PM bob")
    bob.line("@REJECT")
    assert audited.take() == ["User: alice requested private chat with user: bob"]


def test_partnerDropClosesPrivateChat(audited: Audited) -> None:
    """
    When a partner drops, the server records the lost connection and the closed chat.
    """
    alice = audited.login("alice")
    bob = audited.login("bob")
    alice.line("@PM bob")
    bob.line("@accept")
    audited.take()
    alice.transport.loseConnection()  # type: ignore[attr-defined]
    assert audited.take() == [
        "Lost connection from alice",
        "PM between users alice and bob closed.",
    ]


def test_logout(audited: Audited) -> None:
    """When a user logs out, the server records the logout and no lost connection."""
    alice = audited.login("alice")
    audited.take()
    alice.line("LOGOUT")
    assert audited.take() == ["alice logged out."]


def test_lostConnection(audited: Audited) -> None:
    """When a logged-in connection drops, the server records the lost connection."""
    alice = audited.login("alice")
    audited.take()
    alice.transport.loseConnection()  # type: ignore[attr-defined]
    assert audited.take() == ["Lost connection from alice"]


def test_anonymousDropNotRecorded(audited: Audited) -> None:
    """When a connection drops before login, the server records nothing."""
    _protocol, transport = connect(audited.factory)
    transport.loseConnection()
    assert audited.take() == []


def test_takeoverRecordsNoLoss(audited: Audited) -> None:
    """
    When a user takes over a session, the server records a login but no lost connection.
    """
    audited.login("alice")
    audited.take()
    audited.login("alice")
    lines = audited.take()
    assert "User alice logged in." in lines
    assert not any("Lost connection" in line or "logged out" in line for line in lines)


def test_passwordsNeverRecorded(audited: Audited) -> None:
    """When passwords are sent, changed or mistyped, the server never records them."""
    alice = audited.login("newperson", "Pa55-first")
    protocol, _transport = connect(audited.factory)
    protocol.dataReceived(b"newperson\nPa55-wrong\n")
    alice.line("@PASSWORD Pa55-first Pa55-second")
    alice.line("@PASSWORD Pa55-nope Pa55-third")
    alice.line("LOGOUT")
    audited.clock.advance(2)
    text = "\n".join(audited.recorder.lines)
    assert "newperson" in text
    assert "Pa55" not in text


def test_onlineUsersCoalesced(audited: Audited) -> None:
    """
    When users come and go quickly, the server records who is online at most once a
    second.
    """
    audited.login("bob")
    audited.login("alice")
    audited.clock.advance(0)
    online = [line for line in audited.take() if line.startswith("Online")]
    assert online == ["Online users (2): alice, bob"]
    carol = audited.login("carol")
    audited.clock.advance(0.5)
    carol.line("LOGOUT")
    audited.login("dave")
    audited.clock.advance(0.499)
    assert [line for line in audited.take() if line.startswith("Online")] == []
    audited.clock.advance(0.001)
    assert [line for line in audited.take() if line.startswith("Online")] == [
        "Online users (3): alice, bob, dave"
    ]
    audited.clock.advance(10)
    assert audited.take() == []
    carol = audited.login("carol")
    audited.clock.advance(0)
    assert [line for line in audited.take() if line.startswith("Online")] == [
        "Online users (4): alice, bob, carol, dave"
    ]


def test_onlineUsersFirstFifty() -> None:
    """
    When more than 50 users are online, the server records the count and the first 50
    names.
    """
    recorder = AuditRecorder()
    names = [f"user{i:03d}" for i in range(60)]
    AuditLog(recorder).onlineUsers(names)
    assert recorder.lines == [f"Online users (60): {', '.join(names[:50])}"]


def test_heartbeatLostText() -> None:
    """When heartbeats stop, the server records the course project's exact line."""
    recorder = AuditRecorder()
    AuditLog(recorder).heartbeatLost("alice", 20.0)
    AuditLog(recorder).heartbeatLost("bob", 2.5)
    assert recorder.lines == [
        "Could not receive any heartbeat from USER: alice for 20 secs "
        "and he/she became offline!",
        "Could not receive any heartbeat from USER: bob for 2.5 secs "
        "and he/she became offline!",
    ]


@pytest.fixture
def utc() -> Iterator[None]:
    saved = time.tzname
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()
    assert time.tzname == saved


def test_timestampFormat(utc: None) -> None:
    """When an event is timestamped, the server writes local time with milliseconds."""
    assert formatTimestamp(1700000000.123456) == "2023-11-14 22:13:20,123"
    assert formatTimestamp(1700000000.0) == "2023-11-14 22:13:20,000"


def test_fileObserver(tmp_path: Path) -> None:
    """
    When audit events are logged to a file, the server writes one timestamped line each.
    """
    path = tmp_path / "server.log"
    observer = AuditFileObserver.open(str(path))
    log = AuditLog(observer)
    log.loggedIn("alice", "192.0.2.5", 5555)
    log.message("alice", "Çok güzel")
    observer({"log_time": 0.0, "log_format": "not an audit event"})
    observer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert len(lines) == 3
    assert re.fullmatch(stamp + "User alice logged in.", lines[0])
    assert re.fullmatch(
        stamp + "Accepted new connection from 192.0.2.5:5555 username:alice",
        lines[1],
    )
    assert re.fullmatch(stamp + "Received message from alice: Çok güzel", lines[2])


def test_fileRotation(tmp_path: Path) -> None:
    """
    When the audit file grows past its size, the server rotates it and keeps a bounded
    number.
    """
    path = tmp_path / "server.log"
    observer = AuditFileObserver.open(str(path), rotateLength=200, maxRotatedFiles=2)
    log = AuditLog(observer)
    for i in range(40):
        log.message("alice", f"message number {i}")
    observer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server.log", "server.log.1", "server.log.2"]
    assert "message number 39" in path.read_text()
