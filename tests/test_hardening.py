"""
Unit tests of the hardening limits of issue 4 at the protocol level: each
limit driven through L{LineFactory.buildProtocol}, string transports (one of
them buffering like a TCP transport) and a fake clock.
"""

import itertools
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from twisted_chat.config import ServerConfig
from twisted_chat.frontends.line import messages
from twisted_chat.frontends.line.protocol import LineProtocol
from twisted_chat.stores.accounts import AuthResult
from twisted_chat.testing import MemoryAccountStore, makeFactory

HOST = "192.0.2.1"
OTHER_HOST = "198.51.100.7"
PROMPTS = (messages.PROMPT_USERNAME, messages.PROMPT_PASSWORD)
TOO_LONG = messages.LINE_TOO_LONG.format(limit=4096)
# Bidirectional marks, embeddings, overrides and isolates.
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def split(text: str) -> list[str]:
    """
    What the server sent, as lines (CRLF-terminated) and prompts.
    """
    items = []
    while text:
        prompt = next((p for p in PROMPTS if text.startswith(p)), None)
        if prompt is not None:
            items.append(prompt)
            text = text[len(prompt) :]
            continue
        line, end, text = text.partition("\r\n")
        assert end, f"unterminated server line {line!r}"
        items.append(line)
    return items


def address(host: str, port: int) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


class TCPLikeTransport(StringTransportWithDisconnection):
    """
    A string transport that behaves like Twisted's TCP transport where the
    send queue matters: what is written stays buffered until L{drain}; while
    more than C{bufferSize} bytes are buffered, every write pauses the
    registered streaming producer again; the producer is resumed only when
    the buffer is drained; and C{abortConnection} drops the buffer and
    loses the connection on the next turn of the clock.
    """

    bufferSize = 65536
    # Twisted's TCP transport keeps what it holds in these (read by the
    # server to size its send queue); here it is all in C{buffered}.
    dataBuffer = b""
    offset = 0

    @property
    def _tempDataLen(self) -> int:
        return self.buffered

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.buffered = 0
        self.producerPaused = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        if self.aborted or not self.connected:
            return
        super().write(data)
        self.buffered += len(data)
        streaming = self.producer is not None and self.streaming
        if streaming and self.buffered > self.bufferSize:
            self.producerPaused = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """
        The peer read everything: empty the buffer, resume the producer.
        """
        data = self.value()
        self.clear()
        self.buffered = 0
        if self.producer is not None and self.producerPaused:
            self.producerPaused = False
            self.producer.resumeProducing()
        return data

    def abortConnection(self) -> None:
        if self.aborted or not self.connected:
            return
        self.aborted = True
        self.clock.callLater(0, self.loseConnection)


class Client:
    """
    One connection made through the factory (so its address counts against
    the limits), driven by the test.
    """

    def __init__(
        self,
        chat: "Chat",
        host: str,
        port: int,
        transport: StringTransportWithDisconnection | None = None,
    ) -> None:
        peer = address(host, port)
        self.protocol = chat.factory.buildProtocol(peer)
        if transport is None:
            transport = StringTransportWithDisconnection()
        transport.peerAddr = peer
        transport.hostAddr = IPv4Address("TCP", "192.0.2.100", 1234)
        transport.protocol = self.protocol
        self.transport = transport
        self.protocol.makeConnection(transport)

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.protocol.dataReceived(data)

    def line(self, *lines: str) -> None:
        self.send("".join(line + "\n" for line in lines))

    def take(self) -> list[str]:
        """
        Everything received since the last call, as lines and prompts.
        """
        value = self.transport.value().decode("utf-8")
        self.transport.clear()
        return split(value)

    @property
    def closed(self) -> bool:
        return not self.transport.connected


class RecordingStore(MemoryAccountStore):
    """
    A memory store that records when each password check starts.
    """

    def __init__(self, accounts: dict[str, str], clock: Clock) -> None:
        super().__init__(accounts)
        self.clock = clock
        self.calls: list[tuple[float, str, str]] = []

    def authenticate(self, name: str, password: str) -> Any:
        self.calls.append((self.clock.seconds(), name, password))
        return super().authenticate(name, password)


class PendingStore(MemoryAccountStore):
    """
    A memory store whose password checks wait until the test answers them.
    """

    def __init__(self, accounts: dict[str, str]) -> None:
        super().__init__(accounts)
        self.pending: list[Deferred[tuple[AuthResult, str]]] = []

    def authenticate(self, name: str, password: str) -> Any:
        d: Deferred[tuple[AuthResult, str]] = Deferred()
        self.pending.append(d)
        return d


class Chat:
    """
    A factory on a fake clock with accounts alice, bob and carol (password
    C{pw}) and the limits given as L{ServerConfig} fields.
    """

    def __init__(self, store: Any = None, **limits: Any) -> None:
        self.clock = Clock()
        self.config = ServerConfig(**limits)
        self.store = store or RecordingStore(
            {name: "pw" for name in ("alice", "bob", "carol")}, self.clock
        )
        self.factory, self.audit = makeFactory(self.clock, self.store, self.config)
        self.ports = itertools.count(40000)

    def connect(self, host: str = HOST, tcpLike: bool = False) -> Client:
        transport = TCPLikeTransport(self.clock) if tcpLike else None
        client = Client(self, host, next(self.ports), transport)
        if isinstance(client.protocol, LineProtocol):
            assert client.take() == [messages.WELCOME, messages.PROMPT_USERNAME]
        return client

    def login(
        self, name: str, password: str = "pw", host: str = HOST, tcpLike: bool = False
    ) -> Client:
        client = self.connect(host, tcpLike)
        client.line(name, password)
        assert client.take() == [messages.PROMPT_PASSWORD, messages.LOGIN_SUCCESS]
        return client

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """
        Let C{seconds} pass in small steps, as a real clock would.
        """
        for _ in range(round(seconds / step)):
            self.clock.advance(step)


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """
    Every log event emitted during the test.
    """
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


def count(events: list[LogEvent], fragment: str) -> int:
    """
    How many of C{events} have C{fragment} in their text.
    """
    return sum(fragment in (formatEvent(event) or "") for event in events)


# Line length


def test_long_line_discarded_then_next_line_handled() -> None:
    """
    When a line is longer than 4096 bytes, the server says so, discards it up to its LF
    and handles the next line normally.
    """
    chat = Chat()
    client = chat.connect()
    client.send(b"x" * 5000 + b"\nalice\n")
    assert client.take() == [TOO_LONG, messages.PROMPT_PASSWORD]
    client.line("pw")
    assert client.take() == [messages.LOGIN_SUCCESS]
    assert not client.closed


def test_long_line_across_chunks_relays_only_the_next_line() -> None:
    """
    When a long line arrives in several chunks, the server answers once, relays none of
    it (no tail as a new line) and relays the line after it.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    alice.take()
    alice.send(b"y" * 3000)
    alice.send(b"y" * 3000)
    alice.send(b"y" * 3000 + b"\r\nhello\r\n")
    assert alice.take() == [TOO_LONG]
    assert bob.take() == ["alice > hello"]
    assert not alice.closed


def test_line_limit_counts_bytes_without_line_end() -> None:
    """
    When a line is exactly 4096 bytes (2-byte characters, with CRLF, even fed byte by
    byte) the server accepts it, and at 4097 bytes refuses it.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    alice.take()
    exact = "ş" * 2048
    alice.send((exact + "\r\n").encode())
    assert bob.take() == [f"alice > {exact}"]
    chat.advance(5)  # refill the flood bucket
    for byte in (exact + "\r\n").encode():
        alice.send(bytes([byte]))
    assert bob.take() == [f"alice > {exact}"]
    alice.send((exact + "a\n").encode())
    assert alice.take() == [TOO_LONG]
    assert bob.take() == []


def test_megabytes_without_newline_keep_buffer_bounded() -> None:
    """
    When an unauthenticated client sends a megabyte without a newline, the server
    buffers at most the line limit, answers once and handles the next line.
    """
    chat = Chat()
    client = chat.connect()
    chunk = b"A" * 65536
    sizes = []
    for _ in range(16):
        client.send(chunk)
        sizes.append(len(client.protocol._buffer))
    assert max(sizes) <= 4096 + 1
    client.send(b"B" * 1000 + b"\nalice\n")
    assert client.take() == [TOO_LONG, messages.PROMPT_PASSWORD]
    assert not client.closed


def test_small_pieces_without_newline_keep_buffer_bounded() -> None:
    """
    When a line grows in small pieces past a 100-byte limit, the server never holds more
    than the limit plus one byte.
    """
    chat = Chat(maxLineBytes=100)
    alice, bob = chat.login("alice"), chat.login("bob")
    alice.take()
    sizes = []
    for _ in range(500):
        alice.send(b"1234567")
        sizes.append(len(alice.protocol._buffer))
    assert max(sizes) <= 101
    alice.send(b"tail\nshort line\n")
    assert alice.take() == [messages.LINE_TOO_LONG.format(limit=100)]
    assert bob.take() == ["alice > short line"]


def test_line_limit_zero_is_off() -> None:
    """When --max-line-bytes is 0, the server relays a 100 KB line whole."""
    chat = Chat(maxLineBytes=0)
    alice, bob = chat.login("alice"), chat.login("bob")
    text = "x" * 100_000
    alice.line(text)
    assert bob.take() == [f"alice > {text}"]


# Login timeout


def test_login_timeout_at_exactly_30_seconds() -> None:
    """
    When a connection has not logged in within 30 s, the server closes it with "Login
    timed out." and not a moment earlier.
    """
    chat = Chat()
    client = chat.connect()
    chat.clock.advance(20)
    client.line("alice")  # typing does not restart the clock
    assert client.take() == [messages.PROMPT_PASSWORD]
    chat.clock.advance(9.5)
    assert not client.closed
    assert client.take() == []
    chat.clock.advance(0.5)
    assert client.take() == [messages.LOGIN_TIMED_OUT]
    assert client.closed
    assert chat.factory.connections.open == set()


def test_login_timeout_stops_while_server_authenticates() -> None:
    """
    When the server is checking a password, the login clock stops, and it goes on with
    the time left after a wrong password.
    """
    chat = Chat(store=PendingStore({"alice": "pw"}))
    client = chat.connect()
    chat.clock.advance(10)
    client.line("alice", "wrong", "alice", "pw")
    assert client.take() == [messages.PROMPT_PASSWORD]
    assert len(chat.store.pending) == 1
    chat.clock.advance(100)
    assert not client.closed
    chat.store.pending.pop().callback((AuthResult.REJECTED, "alice"))
    # The pipelined second attempt is now being checked: the clock stops again.
    assert client.take() == [
        messages.WRONG_PASSWORD,
        messages.PROMPT_USERNAME,
        messages.PROMPT_PASSWORD,
    ]
    chat.clock.advance(100)
    assert not client.closed
    chat.store.pending.pop().callback((AuthResult.REJECTED, "alice"))
    assert client.take() == [messages.WRONG_PASSWORD, messages.PROMPT_USERNAME]
    chat.clock.advance(19.5)
    assert not client.closed
    chat.clock.advance(0.5)
    assert client.take() == [messages.LOGIN_TIMED_OUT]
    assert client.closed


def test_login_timeout_off_after_login() -> None:
    """
    When a client logs in while its password is checked for longer than the timeout, the
    server keeps it connected for good.
    """
    chat = Chat(store=PendingStore({"alice": "pw"}))
    client = chat.connect()
    client.line("alice", "pw")
    chat.clock.advance(45)
    chat.store.pending.pop().callback((AuthResult.ACCEPTED, "alice"))
    assert client.take() == [messages.PROMPT_PASSWORD, messages.LOGIN_SUCCESS]
    chat.clock.advance(10_000)
    assert not client.closed


def test_login_timeout_stops_during_login_delay() -> None:
    """
    When a login delay (backoff) is longer than the login timeout, the server waits it
    out without timing the connection out.
    """
    chat = Chat(loginBackoffBase=40.0, loginBackoffCap=40.0, maxFailedLogins=0)
    client = chat.connect()
    for attempt in range(3):
        client.line("alice", f"guess{attempt}")
    client.take()
    client.line("alice", "pw")
    chat.clock.advance(39)
    assert not client.closed
    assert len(chat.store.calls) == 3
    chat.clock.advance(1)
    assert client.take() == [messages.PROMPT_PASSWORD, messages.LOGIN_SUCCESS]


def test_login_timeout_zero_is_off() -> None:
    """When --login-timeout is 0, the server never times a connection out."""
    chat = Chat(loginTimeout=0)
    client = chat.connect()
    chat.clock.advance(10**6)
    assert not client.closed
    assert client.take() == []


# Failed logins and login delay


def test_five_failed_logins_close() -> None:
    """
    When a connection fails to log in five times, the server says so and closes it;
    invalid names do not count.
    """
    chat = Chat(loginBackoffBase=0)
    client = chat.connect()
    for _ in range(10):
        client.line("not valid!")
    assert client.take() == [messages.INVALID_USERNAME, messages.PROMPT_USERNAME] * 10
    for attempt in range(4):
        client.line("alice", f"guess{attempt}")
        assert client.take() == [
            messages.PROMPT_PASSWORD,
            messages.WRONG_PASSWORD,
            messages.PROMPT_USERNAME,
        ]
    client.line("alice", "guess4")
    assert client.take() == [messages.PROMPT_PASSWORD, messages.TOO_MANY_FAILED_LOGINS]
    assert client.closed


def test_failed_logins_zero_is_off() -> None:
    """
    When --max-failed-logins is 0, the server keeps a connection open however many
    logins fail.
    """
    chat = Chat(loginBackoffBase=0, maxFailedLogins=0)
    client = chat.connect()
    for attempt in range(30):
        client.line("alice", f"guess{attempt}")
    chat.advance(20)  # the flood limit spreads the 60 lines over 8 s
    assert client.take().count(messages.WRONG_PASSWORD) == 30
    client.line("alice", "pw")
    assert client.take() == [messages.PROMPT_PASSWORD, messages.LOGIN_SUCCESS]


def attempt(chat: Chat, client: Client, password: str) -> float:
    """
    Try C{alice}/C{password} on C{client}; return how long the server waited
    before checking the password.
    """
    calls, start = len(chat.store.calls), chat.clock.seconds()
    client.line("alice", password)
    for _ in range(1000):
        if len(chat.store.calls) > calls:
            break
        chat.clock.advance(0.25)
    else:
        raise AssertionError("the password was never checked")
    (when, name, checked) = chat.store.calls[-1]
    assert (name, checked) == ("alice", password)
    return when - start


def test_login_delay_before_the_password_check() -> None:
    """
    When an (account, address) pair has failed 3 times, the server waits 1 s before even
    checking the next password, right or wrong.
    """
    chat = Chat(maxFailedLogins=0)
    client = chat.connect()
    assert [attempt(chat, client, f"guess{i}") for i in range(3)] == [0, 0, 0]
    client.take()
    client.line("alice", "pw")
    chat.clock.advance(0.75)
    assert len(chat.store.calls) == 3  # not even asked yet
    assert client.take() == [messages.PROMPT_PASSWORD]
    chat.clock.advance(0.25)
    assert len(chat.store.calls) == 4
    assert client.take() == [messages.LOGIN_SUCCESS]


def test_login_delay_grows_over_connections_capped_and_reset() -> None:
    """
    When failures go on over many connections from one address, the server waits 1, 2, 4
    ... s up to the cap, and a success resets it.
    """
    chat = Chat(loginBackoffCap=5.0)
    delays = []
    for i in range(9):
        client = chat.connect()  # a new connection each time, same address
        delays.append(attempt(chat, client, f"guess{i}"))
        assert client.take()[-2:] == [messages.WRONG_PASSWORD, messages.PROMPT_USERNAME]
    assert delays == [0, 0, 0, 1, 2, 4, 5, 5, 5]
    assert attempt(chat, chat.connect(), "pw") == 5
    assert attempt(chat, chat.connect(), "wrong") == 0


def test_login_delay_per_address() -> None:
    """
    When alice's password is guessed from one address, the server does not delay alice
    from another address (IPv6: another /64), only from the same one.
    """
    chat = Chat(maxFailedLogins=0)
    for host in (HOST, "2001:db8::1"):
        client = chat.connect(host)
        for i in range(4):
            attempt(chat, client, f"guess{i}")
    assert attempt(chat, chat.connect(OTHER_HOST), "pw") == 0
    assert attempt(chat, chat.connect("2001:db8:0:1::1"), "pw") == 0
    assert attempt(chat, chat.connect("2001:db8::ffff"), "pw") == 2
    assert attempt(chat, chat.connect(HOST), "wrong") == 2


def test_login_delay_applies_to_loopback() -> None:
    """
    When guesses come from loopback, the server delays them too (loopback is exempt only
    from the per-address counts).
    """
    chat = Chat(maxFailedLogins=0)
    client = chat.connect("127.0.0.1")
    delays = [attempt(chat, client, f"guess{i}") for i in range(5)]
    assert delays == [0, 0, 0, 1, 2]


def test_login_delay_zero_is_off() -> None:
    """When --login-backoff-base is 0, the server checks every password at once."""
    chat = Chat(loginBackoffBase=0, maxFailedLogins=0)
    client = chat.connect()
    assert [attempt(chat, client, f"guess{i}") for i in range(10)] == [0] * 10


# Registrations


def register(chat: Chat, name: str, host: str = HOST) -> list[str]:
    client = chat.connect(host)
    client.line(name, "secret")
    received = client.take()
    client.transport.loseConnection()
    return received


def test_registrations_per_address_limited() -> None:
    """
    When an address has registered its limit of accounts, the server refuses the next
    with a clear line and creates no account.
    """
    chat = Chat(maxRegistrationsPerIp=2)
    assert register(chat, "new1")[-1] == messages.LOGIN_SUCCESS
    assert register(chat, "new2")[-1] == messages.LOGIN_SUCCESS
    client = chat.connect()
    client.line("new3", "secret")
    assert client.take() == [
        messages.PROMPT_PASSWORD,
        messages.TOO_MANY_REGISTRATIONS,
        messages.PROMPT_USERNAME,
    ]
    assert "new3" not in chat.store.accounts
    assert [call[1] for call in chat.store.calls] == ["new1", "new2"]
    assert not any("new3" in line for line in chat.audit.lines)
    # Logging in to an existing account is no registration.
    client.line("alice", "pw")
    assert client.take() == [messages.PROMPT_PASSWORD, messages.LOGIN_SUCCESS]
    # Another address may register; this one again after the period refills.
    assert register(chat, "new3", OTHER_HOST)[-1] == messages.LOGIN_SUCCESS
    assert register(chat, "new4")[-2] == messages.TOO_MANY_REGISTRATIONS
    chat.clock.advance(300)  # 2 per 600 s: one more every 300 s
    assert register(chat, "new4")[-1] == messages.LOGIN_SUCCESS
    assert register(chat, "new5")[-2] == messages.TOO_MANY_REGISTRATIONS


def test_registrations_loopback_exempt_by_default() -> None:
    """
    When accounts are registered from loopback, the server does not limit them unless
    --no-exempt-loopback.
    """
    chat = Chat(maxRegistrationsPerIp=2)
    for i in range(5):
        for prefix, host in (("v4", "127.0.0.1"), ("v6", "::1")):
            assert register(chat, f"{prefix}u{i}", host)[-1] == messages.LOGIN_SUCCESS
    strict = Chat(maxRegistrationsPerIp=2, exemptLoopback=False)
    assert register(strict, "u1", "127.0.0.1")[-1] == messages.LOGIN_SUCCESS
    assert register(strict, "u2", "127.0.0.1")[-1] == messages.LOGIN_SUCCESS
    assert register(strict, "u3", "127.0.0.1")[-2] == messages.TOO_MANY_REGISTRATIONS
    assert "u3" not in strict.store.accounts


def test_registrations_zero_is_off() -> None:
    """
    When --max-registrations-per-ip is 0, the server lets one address register any
    number of accounts.
    """
    chat = Chat(maxRegistrationsPerIp=0)
    for i in range(50):
        assert register(chat, f"user{i}")[-1] == messages.LOGIN_SUCCESS


# Flood


def test_flood_delays_lines_in_order() -> None:
    """
    When a client pastes 30 lines, the server relays 20 at once, says "slow down" once,
    and relays the rest at 5 a second, whole and in order.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(5)  # a full bucket
    alice.take(), bob.take()
    alice.line(*(f"m{i}" for i in range(30)))
    assert bob.take() == [f"alice > m{i}" for i in range(20)]
    assert alice.take() == [messages.SLOW_DOWN]
    assert "slow down" in messages.SLOW_DOWN
    assert alice.transport.producerState == "paused"
    chat.clock.advance(0.1)
    assert bob.take() == []
    start = chat.clock.seconds() - 0.1
    arrivals = []
    for _ in range(100):
        chat.clock.advance(0.1)
        arrivals += [(chat.clock.seconds(), line) for line in bob.take()]
    assert [line for _, line in arrivals] == [f"alice > m{i}" for i in range(20, 30)]
    assert arrivals[-1][0] - start >= 10 / 5 - 0.01
    assert alice.take() == []
    assert alice.transport.producerState == "producing"


def test_flood_slow_down_at_most_every_10_seconds() -> None:
    """
    When a client keeps flooding, the server sends the "slow down" line at most once per
    10 s and still relays every line in order.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(5)
    alice.take(), bob.take()
    relayed: list[str] = []
    slowDowns = 0
    for paste, wait in enumerate([3, 9, 20]):
        alice.line(*(f"p{paste}-{i}" for i in range(30)))
        chat.advance(wait)
        relayed += bob.take()
        slowDowns += alice.take().count(messages.SLOW_DOWN)
        if paste == 1:
            assert slowDowns == 1  # second paste 3 s after the first
    assert slowDowns == 2
    assert relayed == [f"alice > p{p}-{i}" for p in range(3) for i in range(30)]


def test_flood_zero_is_off() -> None:
    """
    When --flood-rate is 0, the server relays 500 lines sent at once without delay.
    """
    chat = Chat(floodRate=0)
    alice, bob = chat.login("alice"), chat.login("bob")
    alice.take()
    alice.line(*(f"m{i}" for i in range(500)))
    assert bob.take()[-500:] == [f"alice > m{i}" for i in range(500)]
    assert alice.take() == []


def test_flood_burst_zero_does_not_stall() -> None:
    """
    When --flood-burst is 0, the server does not stall the session (0 turns the limit
    off).
    """
    chat = Chat(floodBurst=0)
    alice, bob = chat.login("alice"), chat.login("bob")
    alice.line("hello")
    chat.advance(1)
    assert bob.take() == ["alice > hello"]


def test_recvq_overflow_while_paused_closes(logged: list[LogEvent]) -> None:
    """
    When a flood-paused client keeps sending past the receive queue limit, the server
    says "Excess flood.", logs it and closes the connection.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(5)
    alice.take(), bob.take()
    alice.line(*(f"m{i}" for i in range(25)))
    assert alice.take() == [messages.SLOW_DOWN]
    chunk = b"".join(b"%05d" % i + b"z" * 994 + b"\n" for i in range(64))
    alice.send(chunk)  # about 64 KiB held while paused: within 128 KiB
    assert not alice.closed
    alice.send(chunk)
    assert len(alice.protocol._buffer) <= 131072 + len(chunk)
    alice.send(chunk)
    assert alice.take() == [messages.EXCESS_FLOOD]
    assert alice.closed
    assert count(logged, "Excess flood") == 1
    chat.advance(10)
    assert bob.take() == [f"alice > m{i}" for i in range(20)] + [
        messages.LEFT.format(name="alice")
    ]


def test_recvq_within_limit_all_delivered() -> None:
    """
    When a flood-paused client sends 100 KB more (under the receive queue limit), the
    server keeps it and relays it all in order.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(5)
    alice.take(), bob.take()
    lines = [f"{i:05d}" + "q" * 995 for i in range(120)]
    alice.line(*lines[:25])
    alice.line(*lines[25:])
    chat.advance(30)
    assert not alice.closed
    assert bob.take() == [f"alice > {line}" for line in lines]


def test_recvq_overflow_while_authenticating() -> None:
    """
    When a client pipelines past the receive queue limit while its password is being
    checked, the server closes it and ignores the late answer.
    """
    chat = Chat(store=PendingStore({"alice": "pw"}))
    client = chat.connect()
    client.line("alice", "pw")
    client.send(b"x" * 100_000 + b"\n")
    assert not client.closed
    client.send(b"x" * 40_000 + b"\n")
    assert client.take() == [messages.PROMPT_PASSWORD, messages.EXCESS_FLOOD]
    assert client.closed
    chat.store.pending.pop().callback((AuthResult.ACCEPTED, "alice"))
    assert client.take() == []
    assert chat.factory.connections.services.hub.sessionCount == 0


def test_recvq_zero_is_off() -> None:
    """
    When --max-recvq-bytes is 0, the server holds any amount of input while paused.
    """
    chat = Chat(maxRecvqBytes=0)
    alice = chat.login("alice")
    alice.line(*(f"m{i}" for i in range(25)))
    for _ in range(10):
        alice.send(b"k" * 1000 + b"\n")
    assert len(alice.protocol._buffer) > 131072 // 16
    alice.send(b"k" * 200_000)
    assert not alice.closed


# Send queue


def test_sendq_lowers_transport_buffer_and_registers_producer() -> None:
    """
    When a client connects, the server lowers the transport's buffer size to the 16 KiB
    soft mark and watches it as a streaming producer.
    """
    chat = Chat()
    client = chat.connect(tcpLike=True)
    assert client.transport.bufferSize == 16384
    assert client.transport.producer is not None
    assert client.transport.streaming


def test_sendq_exceeded_aborts(logged: list[LogEvent]) -> None:
    """
    When a paused send queue grows past --max-sendq-bytes, the server aborts the
    connection and logs "SendQ exceeded".
    """
    chat = Chat(maxSendqBytes=65536)
    bob = chat.login("bob")
    bob.protocol.sendQueuePaused()
    line = b"x" * 998 + b"\r\n"
    for _ in range((65536 - 16384) // 1000):
        bob.protocol.deliver(line)
    assert not bob.closed
    for _ in range(2):
        bob.protocol.deliver(line)
    chat.clock.advance(0)  # the verdict waits for the transport's turn
    assert bob.closed
    assert count(logged, "SendQ exceeded") == 1
    assert chat.factory.connections.services.hub.sessionCount == 0


def test_sendq_drain_restarts_the_count() -> None:
    """
    When the send queue drains between bursts, the server counts each burst afresh and
    keeps the client.
    """
    chat = Chat(maxSendqBytes=65536)
    bob = chat.login("bob")
    for _ in range(5):
        bob.protocol.sendQueuePaused()
        for _ in range(40):
            bob.protocol.deliver(b"x" * 1000)
        bob.protocol.sendQueueDrained()
    assert not bob.closed


def test_sendq_zero_is_off() -> None:
    """
    When --max-sendq-bytes is 0, the server never drops a client for its send queue.
    """
    chat = Chat(maxSendqBytes=0)
    bob = chat.login("bob")
    bob.protocol.sendQueuePaused()
    for _ in range(1000):
        bob.protocol.deliver(b"x" * 1000)
    assert not bob.closed


def test_sendq_slow_reader_dropped_others_served(logged: list[LogEvent]) -> None:
    """
    When a client stops reading while another chats, the server drops it once its sendq
    passes the limit (buffer bounded), and the reading client gets every line.
    """
    chat = Chat(maxSendqBytes=65536, floodRate=0)
    alice = chat.login("alice")
    bob = chat.login("bob", tcpLike=True)  # never reads
    carol = chat.login("carol", tcpLike=True)  # reads everything
    carol.transport.drain()
    alice.take()
    peak = 0
    received: list[str] = []
    for i in range(300):
        alice.line(f"{i:04d} " + "w" * 995)
        received += split(carol.transport.drain().decode())
        peak = max(peak, bob.transport.buffered)
        chat.clock.advance(0)  # a turn of the reactor
    assert bob.transport.aborted
    assert peak <= 65536 + 2 * 1100  # the limit, plus the turn that passed it
    assert bob.closed
    received += split(carol.transport.drain().decode())
    left = messages.LEFT.format(name="bob")
    assert received.count(left) == 1
    received.remove(left)
    assert received == [f"alice > {i:04d} " + "w" * 995 for i in range(300)]
    assert alice.take() == [messages.LEFT.format(name="bob")]
    assert not alice.closed and not carol.closed
    assert count(logged, "SendQ exceeded") == 1


def test_sendq_burst_to_prompt_reader_kept(logged: list[LogEvent]) -> None:
    """
    When a burst larger than --max-sendq-bytes is written to a client in one turn and
    the client reads it, the server keeps it; one that does not read is dropped.
    """
    chat = Chat(maxSendqBytes=65536, floodRate=0)
    alice = chat.login("alice")
    bob = chat.login("bob", tcpLike=True)
    carol = chat.login("carol", tcpLike=True)
    bob.transport.drain(), carol.transport.drain()
    lines = [f"{i:03d} " + "b" * 996 for i in range(100)]
    alice.line(*lines)  # about 100 KB to each, before any flush
    assert carol.transport.buffered > 65536
    received = split(carol.transport.drain().decode())
    chat.clock.advance(0)
    assert not carol.closed
    assert bob.closed
    assert received == [f"alice > {line}" for line in lines]
    assert count(logged, "SendQ exceeded") == 1


def test_sendq_soft_mark_stops_input() -> None:
    """
    When more than 16 KiB wait to be sent to a client, the server stops handling its
    input, and resumes in order once the queue drains.
    """
    chat = Chat(floodRate=0)
    alice = chat.login("alice")
    bob = chat.login("bob", tcpLike=True)
    bob.transport.drain()
    alice.take()
    for i in range(20):
        alice.line(f"{i} " + "s" * 1000)
    assert bob.transport.producerPaused
    bob.line("first", "second")
    assert alice.take() == []
    bob.transport.drain()
    assert alice.take() == ["bob > first", "bob > second"]
    assert not bob.closed


# Connection limits


def refused(client: Client) -> bool:
    """
    Whether C{client} was told there are too many connections and closed.
    """
    value = client.transport.value()
    if value == (messages.TOO_MANY_CONNECTIONS + "\r\n").encode():
        assert client.closed
        return True
    assert value.startswith(messages.WELCOME.encode()), value
    return False


def opened(chat: Chat, host: str) -> Client:
    return Client(chat, host, next(chat.ports))


def test_connections_per_address() -> None:
    """
    When an address holds its limit of connections, the server answers the next with
    "Too many connections." and closes it, until one closes.
    """
    chat = Chat(maxConnectionsPerIp=2)
    first, second = opened(chat, HOST), opened(chat, HOST)
    assert not refused(first) and not refused(second)
    third = opened(chat, HOST)
    assert refused(third)
    assert not refused(opened(chat, OTHER_HOST))
    assert len(chat.factory.connections.open) == 3
    first.transport.loseConnection()
    assert not refused(opened(chat, HOST))
    assert refused(opened(chat, HOST))


def test_connections_per_ipv6_64() -> None:
    """
    When IPv6 connections come from one /64, the server counts them as one address.
    """
    chat = Chat(maxConnectionsPerIp=2)
    assert not refused(opened(chat, "2001:db8::1"))
    assert not refused(opened(chat, "2001:db8::2:3:4"))
    assert refused(opened(chat, "2001:db8::ffff:ffff:ffff:ffff"))
    assert not refused(opened(chat, "2001:db8:0:1::1"))
    assert not refused(opened(chat, "::ffff:192.0.2.1"))
    assert not refused(opened(chat, HOST))
    assert refused(opened(chat, HOST))  # the IPv4-mapped one counted as HOST


def test_new_connections_per_minute() -> None:
    """
    When an address opens connections faster than its limit per minute, the server
    refuses the extra ones even if the earlier ones closed.
    """
    chat = Chat(maxNewConnectionsPerIp=3)
    for _ in range(3):
        client = opened(chat, HOST)
        assert not refused(client)
        client.transport.loseConnection()
    assert refused(opened(chat, HOST))
    assert not refused(opened(chat, OTHER_HOST))
    chat.clock.advance(20)  # 3 a minute: one more every 20 s
    assert not refused(opened(chat, HOST))
    assert refused(opened(chat, HOST))


def test_connections_in_all() -> None:
    """
    When the server holds --max-connections connections, it refuses the next from any
    address, loopback included.
    """
    chat = Chat(maxConnections=3)
    clients = [opened(chat, f"192.0.2.{i}") for i in range(1, 4)]
    assert not any(refused(client) for client in clients)
    assert refused(opened(chat, "192.0.2.50"))
    assert refused(opened(chat, "127.0.0.1"))
    clients[0].transport.loseConnection()
    assert not refused(opened(chat, "127.0.0.1"))


def test_connections_loopback_exempt_by_default() -> None:
    """
    When connections come from loopback, the server exempts them from the per-address
    limits unless --no-exempt-loopback.
    """
    chat = Chat(maxConnectionsPerIp=2, maxNewConnectionsPerIp=2)
    for _ in range(10):
        assert not refused(opened(chat, "127.0.0.1"))
        assert not refused(opened(chat, "::1"))
    strict = Chat(maxConnectionsPerIp=2, exemptLoopback=False)
    assert not refused(opened(strict, "127.0.0.1"))
    assert not refused(opened(strict, "127.0.0.1"))
    assert refused(opened(strict, "127.0.0.1"))
    assert not refused(opened(strict, "::1"))
    perMinute = Chat(maxNewConnectionsPerIp=2, exemptLoopback=False)
    for _ in range(2):
        opened(perMinute, "::1").transport.loseConnection()
    assert refused(opened(perMinute, "::1"))


def test_connection_limits_zero_are_off() -> None:
    """
    When the connection limits are 0, the server admits any number of connections from
    one address.
    """
    chat = Chat(maxConnections=0, maxConnectionsPerIp=0, maxNewConnectionsPerIp=0)
    clients = [opened(chat, HOST) for _ in range(300)]
    assert not any(refused(client) for client in clients)
    assert len(chat.factory.connections.open) == 300


# Hostile text

HOSTILE = (
    b"\x1b]0;pwned\x07hi \x1b[2Jthere \xe2\x80\xaeevil\rforged "
    b"\xc2\x9b31mred\x7f\x00! \xe2\x81\xa6iso\xe2\x81\xa9 tab\there"
)


def unsafe(text: str) -> list[str]:
    """
    The characters of C{text} that could drive a terminal or reorder text.
    """
    return [
        char
        for char in text
        if char in BIDI or (unicodedata.category(char) == "Cc" and char != "\t")
    ]


def test_hostile_text_never_reaches_others_or_the_log() -> None:
    """
    When a line holds real escape sequences, bidi overrides and an embedded CR, the
    server relays and logs it without them.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(2)
    bob.take()
    alice.send(HOSTILE + b"\r\n")
    raw = bob.transport.value()
    assert raw.count(b"\r") == 1 and raw.endswith(b"\r\n")
    received = bob.take()
    assert received == ["alice > hi there evilforged red! iso tab\there"]
    assert unsafe(received[0]) == []
    assert "pwned" not in received[0] and "[2J" not in received[0]
    said = [line for line in chat.audit.lines if line.startswith("Received message")]
    assert said == [
        "Received message from alice: hi there evilforged red! iso tab\there"
    ]
    assert all(unsafe(line) == [] for line in chat.audit.lines)


def test_control_only_line_and_invalid_utf8() -> None:
    """
    When a line is only control sequences it is ignored, and when it is invalid UTF-8
    the server relays it with replacement characters.
    """
    chat = Chat()
    alice, bob = chat.login("alice"), chat.login("bob")
    chat.clock.advance(2)
    bob.take()
    alice.send(b"\x1b[2J\x1b]0;x\x07\x00\r\n")
    alice.send(b"caf\xc3 \xff\xfe ok\n")
    assert bob.take() == ["alice > caf\ufffd \ufffd\ufffd ok"]
    assert not alice.closed


@pytest.mark.parametrize(
    "name",
    [
        "ali\u200bce",  # zero-width space
        "al\u200dice",  # zero-width joiner
        "\ufeffalice",  # byte order mark
        "ali\u00adce",  # soft hyphen
        "\u2060bob",  # word joiner
        "\u202ealice",  # right-to-left override
        "alice\u2066",  # left-to-right isolate
        "bob\u200f",  # right-to-left mark
        "a\u061cb",  # Arabic letter mark
        "\x1b[31mbob",  # an escape sequence
    ],
)
def test_invisible_and_bidi_names_refused(name: str) -> None:
    """
    When a name holds an invisible or bidirectional character, the server refuses it as
    invalid and creates no account.
    """
    chat = Chat()
    client = chat.connect()
    client.line(name)
    assert client.take() == [messages.INVALID_USERNAME, messages.PROMPT_USERNAME]
    accounts = dict(chat.store.accounts)
    client.line(name, "pw")
    assert chat.store.accounts == accounts
    assert chat.store.calls == []


def test_sendq_burst_past_the_limit_at_once_is_dropped(
    logged: list[LogEvent],
) -> None:
    """
    When a single write fills a client's transport far past --max-sendq-bytes,
    the server counts what the transport holds and drops the client, though
    nothing more is written to it.
    """
    chat = Chat(maxSendqBytes=65536)
    bob = chat.login("bob", tcpLike=True)
    bob.protocol.deliver(b"x" * 200_000)
    bob.protocol.flush()
    assert bob.transport.buffered >= 200_000
    chat.clock.advance(0)
    chat.clock.advance(0)
    assert bob.closed
    assert count(logged, "SendQ exceeded") == 1


def test_sendq_burst_under_the_limit_kept() -> None:
    """
    When a single write fills a client's transport past the soft mark but
    under --max-sendq-bytes, the server keeps the client.
    """
    chat = Chat(maxSendqBytes=262144)
    bob = chat.login("bob", tcpLike=True)
    bob.protocol.deliver(b"x" * 100_000)
    bob.protocol.flush()
    chat.clock.advance(0)
    chat.clock.advance(0)
    assert not bob.closed
