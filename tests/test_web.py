"""
Unit tests for the web front-end, L{twisted_chat.frontends.web}, with no
browser and no network: the JSON rendering of every event, and the site's
WebSocket driven over string transports (handshake, frames, every message
kind and every limit) beside line-protocol users on the same connections.
"""

import base64
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python import usage
from twisted.web.server import Site

from twisted_chat import tap
from twisted_chat.config import ServerConfig
from twisted_chat.core.accounts import AuthResult
from twisted_chat.core.events import (
    BadArguments,
    ChatLine,
    Event,
    ExcessFlood,
    Goodbye,
    HeartbeatGrant,
    Help,
    History,
    HistoryEntry,
    HistoryOff,
    InRoom,
    LeftPrivate,
    LeftRoom,
    LineTooLong,
    LoggedIn,
    LoginRefused,
    LoginTimedOut,
    MissedLines,
    NoRequest,
    NoSuchUser,
    NotInPrivate,
    OnlineUsers,
    PartnerLeft,
    PasswordChanged,
    PrivateLine,
    PrivateRejected,
    PrivateRequest,
    PrivateStarted,
    Refusal,
    Request,
    RequestFromCancelled,
    RequestFromExpired,
    RequestRejected,
    RequestResult,
    RequestToCancelled,
    RequestToExpired,
    RoomInfo,
    RoomJoined,
    RoomLeft,
    RoomList,
    RoomMembers,
    RoomRefusal,
    RoomRefused,
    SearchResults,
    ServerError,
    ServiceDegraded,
    ShuttingDown,
    SlowDown,
    Superseded,
    TooManyConnections,
    UnknownCommand,
    UserInfo,
    UserJoined,
    UserLeft,
    UserStatus,
)
from twisted_chat.core.history import Around, HistoryQuery
from twisted_chat.frontends.connection import Connections
from twisted_chat.frontends.irc.protocol import IRCFactory, IRCProtocol
from twisted_chat.frontends.line.protocol import LineFactory, LineProtocol
from twisted_chat.frontends.times import isoTime
from twisted_chat.frontends.web import messages
from twisted_chat.frontends.web.protocol import ChatWebSocket, WebConnection
from twisted_chat.frontends.web.render import (
    WEB_RENDERER,
    encode,
    frame,
    message,
    textFrame,
)
from twisted_chat.frontends.web.site import makeSite
from twisted_chat.testing import (
    MemoryAccountStore,
    MemoryHistory,
    connect,
    makeServices,
)

HOST = "chat.example"
ORIGIN = "http://chat.example"
KEY = base64.b64encode(b"0123456789abcdef").decode()

# One example of every event the session core and the hub produce.
SAMPLES: list[Event] = [
    ChatLine("#general", "bob", "hi <b>", 1764581400.5, "1764581400500-0", "irc"),
    PrivateLine("bob", "psst"),
    UserJoined("bob", "web"),
    UserLeft("bob"),
    RoomJoined("bob", "#python"),
    RoomLeft("bob", "#python"),
    MissedLines("#general", 3),
    PrivateRequest("bob"),
    PrivateStarted("bob"),
    PrivateRejected("bob"),
    RequestToExpired("bob"),
    RequestFromExpired("bob"),
    RequestToCancelled("bob"),
    RequestFromCancelled("bob"),
    PartnerLeft("bob"),
    LoggedIn("alice", False),
    LoginRefused(Refusal.WRONG_PASSWORD),
    RequestResult(Request.SENT, "bob"),
    RequestRejected(),
    NoRequest(),
    LeftPrivate("bob"),
    NotInPrivate(),
    OnlineUsers((UserStatus("alice", None), UserStatus("bob", "carol"))),
    UserInfo("bob", None, ("#general",)),
    NoSuchUser("zed"),
    SearchResults("b", ("bob", "bobby"), frozenset({"bob"})),
    PasswordChanged(True),
    HeartbeatGrant(12345, "token", 5.0, 20.0),
    InRoom("#python", 2),
    LeftRoom("#python"),
    RoomRefused(RoomRefusal.TOO_MANY_JOINED, "#x", 20),
    RoomList((RoomInfo("#general", 3),)),
    RoomMembers("#general", ("alice", "bob")),
    History("#general", (HistoryEntry(0.0, "bob", "old", "0-0"),)),
    HistoryOff(),
    Help(),
    Goodbye("alice"),
    UnknownCommand("@FOO"),
    BadArguments("@PM <user>"),
    Superseded(),
    ServiceDegraded(),
    ServerError(),
    ShuttingDown(),
    TooManyConnections(),
    LoginTimedOut(),
    LineTooLong(4096),
    SlowDown(),
    ExcessFlood(),
]


class TestRender:
    def test_everyEventKind(self) -> None:
        """
        When any kind of event the core produces is rendered, the web front-end makes
        one JSON object with a type, and errors and notices carry a filled-in text;
        a connection over the limits is answered before any WebSocket, over HTTP.
        """
        assert {type(event) for event in SAMPLES} == set(get_args(Event))
        for event in SAMPLES:
            if type(event) is TooManyConnections:
                with pytest.raises(TypeError):
                    message(event)
                continue
            rendered = message(event)
            assert isinstance(rendered["type"], str), event
            json.loads(encode(rendered))
            if rendered["type"] in ("error", "notice", "login_refused"):
                assert rendered["code"] and rendered["text"], event
                assert "{" not in rendered["text"], event

    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            (
                SAMPLES[0],
                {
                    "type": "line",
                    "room": "#general",
                    "from": "bob",
                    "text": "hi <b>",
                    "time": "2025-12-01T09:30:00.500Z",
                    "id": "1764581400500-0",
                    "origin": "irc",
                },
            ),
            (
                PrivateLine("bob", "psst"),
                {"type": "private", "from": "bob", "text": "psst"},
            ),
            (UserLeft("bob"), {"type": "offline", "name": "bob", "origin": "line"}),
            (
                MissedLines("#general", 3),
                {"type": "missed", "room": "#general", "count": 3},
            ),
            (PrivateRequest("bob"), {"type": "private_request", "from": "bob"}),
            (RequestToExpired("bob"), {"type": "request_expired", "to": "bob"}),
            (
                PartnerLeft("bob"),
                {"type": "private_ended", "with": "bob", "by": "partner"},
            ),
            (LeftPrivate("bob"), {"type": "private_ended", "with": "bob", "by": "you"}),
            (RequestResult(Request.SENT, "bob"), {"type": "request_sent", "to": "bob"}),
            (
                RequestResult(Request.OFFLINE, "bob"),
                {
                    "type": "error",
                    "code": "offline",
                    "text": "User bob is offline.",
                    "name": "bob",
                },
            ),
            (
                LoginRefused(Refusal.TOO_MANY_FAILURES),
                {
                    "type": "login_refused",
                    "code": "too_many_failures",
                    "text": "Too many failed logins.",
                },
            ),
            (
                RoomRefused(RoomRefusal.TOO_MANY_JOINED, "#x", 20),
                {
                    "type": "error",
                    "code": "too_many_joined",
                    "text": "You are in too many rooms (max 20).",
                    "room": "#x",
                    "limit": 20,
                },
            ),
            (
                History("#general", (HistoryEntry(0.0, "bob", "old", "0-0"),)),
                {
                    "type": "history",
                    "room": "#general",
                    "lines": [
                        {
                            "id": "0-0",
                            "time": "1970-01-01T00:00:00.000Z",
                            "from": "bob",
                            "text": "old",
                        }
                    ],
                },
            ),
            (
                ChatLine(
                    "#general",
                    "bob",
                    "\x01ACTION waves \x02hi\x02\x01",
                    0.0,
                    "0-1",
                    "irc",
                ),
                {
                    "type": "line",
                    "room": "#general",
                    "from": "bob",
                    "text": "waves hi",
                    "action": True,
                    "time": "1970-01-01T00:00:00.000Z",
                    "id": "0-1",
                    "origin": "irc",
                },
            ),
            (
                ChatLine(
                    "#general", "bob", "\x0304,01red\x03 alert", 0.0, "0-2", "irc", True
                ),
                {
                    "type": "line",
                    "room": "#general",
                    "from": "bob",
                    "text": "red alert",
                    "time": "1970-01-01T00:00:00.000Z",
                    "id": "0-2",
                    "origin": "irc",
                    "notice": True,
                },
            ),
            (
                PrivateLine("bob", "\x01ACTION \x1dwaves\x1d\x01", "irc"),
                {"type": "private", "from": "bob", "text": "waves", "action": True},
            ),
            (
                UserLeft("bob", "irc", "off to bed"),
                {
                    "type": "offline",
                    "name": "bob",
                    "origin": "irc",
                    "reason": "off to bed",
                },
            ),
            (
                RoomLeft("bob", "#python", "irc", "bye"),
                {
                    "type": "left",
                    "room": "#python",
                    "name": "bob",
                    "origin": "irc",
                    "reason": "bye",
                },
            ),
            (
                RoomLeft("bob", "#python"),
                {"type": "left", "room": "#python", "name": "bob", "origin": "line"},
            ),
            (
                History(
                    "#general",
                    (HistoryEntry(0.0, "bob", "\x01ACTION waves\x01", "0-0", "irc"),),
                ),
                {
                    "type": "history",
                    "room": "#general",
                    "lines": [
                        {
                            "id": "0-0",
                            "time": "1970-01-01T00:00:00.000Z",
                            "from": "bob",
                            "text": "waves",
                            "action": True,
                        }
                    ],
                },
            ),
            (
                SearchResults("b", ("bob", "bobby"), frozenset({"bob"})),
                {
                    "type": "search_results",
                    "text": "b",
                    "users": [
                        {"name": "bob", "online": True},
                        {"name": "bobby", "online": False},
                    ],
                },
            ),
            (
                SlowDown(),
                {
                    "type": "notice",
                    "code": "slow_down",
                    "text": messages.NOTICES["slow_down"],
                },
            ),
        ],
    )
    def test_message(self, event: Event, expected: dict[str, Any]) -> None:
        """
        When an event is rendered, the web front-end makes exactly the message the
        README's schema gives for it.
        """
        assert message(event) == expected

    def test_helpListsCommands(self) -> None:
        """
        When help is asked for, the web front-end lists the usage of every command of
        the line protocol's language.
        """
        commands = message(Help())["commands"]
        assert "@JOIN #room" in commands
        assert "@PM <user>" in commands

    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_textFrame(self, size: int) -> None:
        """
        When a payload is framed, the web front-end makes the same bytes as autobahn's
        own prepared message, at every length encoding.
        """
        payload = b"x" * size
        prepared = WebSocketServerFactory().prepareMessage(payload)  # type: ignore[no-untyped-call]
        assert textFrame(payload) == prepared.payloadHybi

    def test_renderer(self) -> None:
        """
        When a room line is rendered for web clients, the web front-end makes one whole
        frame of its JSON, whether or not the room is the client's current one.
        """
        line = SAMPLES[0]
        assert isinstance(line, ChatLine)
        assert WEB_RENDERER.render(line, True) == frame(message(line))
        assert WEB_RENDERER.render(line, False) == WEB_RENDERER.render(line, True)
        assert WEB_RENDERER.kind == "web"
        assert WEB_RENDERER.privateHidesRooms
        assert not WEB_RENDERER.currentMatters

    @pytest.mark.parametrize(
        "line",
        [
            ChatLine("#general", "bob", "plain"),
            ChatLine(
                "#Général", "zoë", 'a " and a \\ and </script>', 1.5, "1-0", "web"
            ),
            ChatLine(
                "#r", "bob", "\x01ACTION waves\x01", 1764581400.9999, "2-3", "irc"
            ),
            ChatLine("#r", "bob", "\x02bold\x02 \x0304red", 0.0, "0-0", "line", True),
            ChatLine("#r", "bob", "emoji 🎉, tab\t, NUL\x00, LS\u2028", 2e9, "4-0"),
            ChatLine("#r", "bob", "y" * 70000, 1.0, "5-0"),
        ],
    )
    def test_rendererWritesTheMessage(self, line: ChatLine) -> None:
        """
        When any room line is rendered for web clients, its frame holds exactly the
        bytes of its message as the encoder writes them: actions, notices, quotes,
        control characters, non-ASCII text and long lines included.
        """
        assert WEB_RENDERER.render(line, True) == frame(message(line))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1764581400.5, "2025-12-01T09:30:00.500Z"),
        (1764581400.9999, "2025-12-01T09:30:00.999Z"),
        (1764581401.001, "2025-12-01T09:30:01.001Z"),
        (1764581400.9999996, "2025-12-01T09:30:01.000Z"),
    ],
)
def test_isoTime(seconds: float, expected: str) -> None:
    """
    When a time is written for clients (the web's C{time}, IRC's server-time),
    it is ISO 8601 in UTC to the millisecond, as C{datetime} writes it: a time
    given in milliseconds shows them, and the next second is written anew.
    """
    assert isoTime(seconds) == expected


# A client of the site over a string transport.


def clientFrame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """
    C{payload} as one frame a client sends: masked.
    """
    mask = os.urandom(4)
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 0x10000:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def parseFrames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """
    The whole server frames in C{data} (opcode, payload), and what is left.
    """
    frames = []
    while len(data) >= 2:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if size == 126:
            (size,) = struct.unpack("!H", data[2:4])
            start = 4
        elif size == 127:
            (size,) = struct.unpack("!Q", data[2:10])
            start = 10
        if len(data) < start + size:
            break
        frames.append((opcode, data[start : start + size]))
        data = data[start + size :]
    return frames, data


def handshake(origin: str | None = ORIGIN, host: str = HOST) -> bytes:
    """
    A browser's WebSocket request for C{/ws}.
    """
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WebClient:
    """
    One connection to the site, driven by the test: an HTTP request, then (once
    upgraded) WebSocket frames both ways.
    """

    def __init__(self, site: Site, host: str = "192.0.2.7", port: int = 40000) -> None:
        address = IPv4Address("TCP", host, port)
        channel = site.buildProtocol(address)
        assert channel is not None
        self.transport = StringTransportWithDisconnection(peerAddress=address)
        self.transport.protocol = channel
        channel.makeConnection(self.transport)
        self._rest = b""

    def request(self, data: bytes) -> bytes:
        """
        Send an HTTP request; return the response's head (through its blank line).
        """
        self.transport.protocol.dataReceived(data)
        value = self.transport.value()
        head, _, self._rest = value.partition(b"\r\n\r\n")
        self.transport.clear()
        return head

    @property
    def websocket(self) -> ChatWebSocket:
        protocol = self.transport.protocol
        assert isinstance(protocol, ChatWebSocket)
        return protocol

    @property
    def connection(self) -> WebConnection:
        connection = self.websocket.connection
        assert connection is not None
        return connection

    def sendRaw(self, data: bytes) -> None:
        self.transport.protocol.dataReceived(data)

    def send(self, **fields: Any) -> None:
        self.sendRaw(clientFrame(json.dumps(fields).encode()))

    def frames(self) -> list[tuple[int, bytes]]:
        frames, self._rest = parseFrames(self._rest + self.transport.value())
        self.transport.clear()
        return frames

    def take(self) -> list[dict[str, Any]]:
        """
        The messages received since the last call.
        """
        messages = []
        for opcode, payload in self.frames():
            assert opcode == 1, (opcode, payload)
            messages.append(json.loads(payload))
        return messages

    def takeOne(self) -> dict[str, Any]:
        (only,) = self.take()
        return only

    @property
    def closing(self) -> bool:
        """
        Whether the server sent a close frame (and nothing after it).
        """
        frames = self.frames()
        return bool(frames) and frames[-1][0] == 8

    @property
    def closed(self) -> bool:
        return not self.transport.connected


@dataclass
class Line:
    """
    A line-protocol user on the same connections.
    """

    protocol: LineProtocol
    transport: StringTransportWithDisconnection

    def send(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\n" for line in lines).encode())

    def take(self) -> list[str]:
        value = self.transport.value().decode()
        self.transport.clear()
        return [line for line in value.split("\r\n") if line]


class WebChat:
    """
    A node on a fake clock with accounts alice, bob, carol and dave (password
    C{pw}), its site, and helpers to connect web and line users.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        origins: tuple[str, ...] = (),
        metrics: bool = True,
        accounts: Any = None,
        history: Any = None,
    ) -> None:
        self.clock = Clock()
        self.store = accounts or MemoryAccountStore(
            {name: "pw" for name in ["alice", "bob", "carol", "dave"]}
        )
        self.services, self.audit = makeServices(
            self.clock, self.store, config or ServerConfig(), history
        )
        self.connections = Connections(self.services)
        kinds = ("line", "web") if metrics else None
        self.site = makeSite(self.connections, origins, kinds)
        self.lineFactory = LineFactory(self.connections)
        self.ports = iter(range(40000, 50000))

    def connect(
        self, origin: str | None = ORIGIN, host: str = "192.0.2.7"
    ) -> WebClient:
        client = WebClient(self.site, host, next(self.ports))
        head = client.request(handshake(origin))
        assert head.startswith(b"HTTP/1.1 101 "), head
        return client

    def login(self, name: str, password: str = "pw") -> WebClient:
        client = self.connect()
        client.send(type="login", name=name, password=password)
        reply = client.take()
        assert reply[0] == {"type": "logged_in", "name": name, "takeover": False}
        return client

    def line(self, name: str) -> Line:
        protocol, transport = connect(self.lineFactory, port=next(self.ports))
        line = Line(protocol, transport)
        line.send(name, "pw")
        assert line.take()[-1].endswith("Login success!")
        return line

    def get(self, path: str) -> tuple[bytes, bytes]:
        """
        The head and body of an HTTP GET of C{path}.
        """
        client = WebClient(self.site, port=next(self.ports))
        head = client.request(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        return head, client._rest


@pytest.fixture
def chat() -> Iterator[WebChat]:
    chat = WebChat()
    yield chat
    hub = chat.services.hub
    assert list(hub.checkInvariants()) == []  # type: ignore[attr-defined]


class TestHandshake:
    def test_sameOrigin(self, chat: WebChat) -> None:
        """
        When a page from the server's own host opens the WebSocket, the server
        accepts it and counts an open connection.
        """
        chat.connect()
        assert len(chat.connections.open) == 1

    def test_wrongOrigin(self, chat: WebChat) -> None:
        """
        When a page from another origin opens the WebSocket, the server answers 403
        and closes, with no chat started.
        """
        client = WebClient(chat.site)
        head = client.request(handshake("http://evil.example"))
        assert head.startswith(b"HTTP/1.1 403 Origin not allowed")
        assert client.closed
        assert chat.connections.open == set()

    def test_otherScheme(self, chat: WebChat) -> None:
        """
        When an https page opens the WebSocket of a plain-HTTP listener, the server
        refuses it: it is another origin.
        """
        client = WebClient(chat.site)
        head = client.request(handshake("https://chat.example"))
        assert head.startswith(b"HTTP/1.1 403 ")

    def test_noOrigin(self, chat: WebChat) -> None:
        """
        When a client that is not a browser opens the WebSocket without an Origin,
        the server accepts it.
        """
        client = chat.connect(origin=None)
        client.send(type="login", name="alice", password="pw")
        assert client.take()[0]["type"] == "logged_in"

    def test_configuredOrigins(self) -> None:
        """
        When --web-origin lists origins, the server accepts pages from those only,
        not even from its own host.
        """
        chat = WebChat(origins=("https://proxy.example",))
        chat.connect(origin="https://PROXY.example")
        head = WebClient(chat.site).request(handshake(ORIGIN))
        assert head.startswith(b"HTTP/1.1 403 ")

    def test_notAnUpgrade(self, chat: WebChat) -> None:
        """
        When /ws is fetched as a plain page, the server refuses it, with no status
        page and no redirect.
        """
        client = WebClient(chat.site)
        request = (
            f"GET /ws?redirect=http://evil.example HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        )
        head = client.request(request.encode())
        assert head.startswith(b"HTTP/1.1 4"), head
        assert b"evil" not in head
        assert chat.connections.open == set()

    def test_tooManyConnections(self) -> None:
        """
        When a connection is over the per-address limit, the server answers 503
        before any WebSocket and closes it; the open ones go on.
        """
        chat = WebChat(ServerConfig(maxConnectionsPerIp=1))
        first = chat.connect()
        second = WebClient(chat.site, port=next(chat.ports))
        assert second.transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")
        assert b"Retry-After: 60" in second.transport.value()
        assert not second.transport.connected
        assert len(chat.connections.open) == 1
        first.send(type="login", name="alice", password="pw")
        assert first.take()[0]["type"] == "logged_in"

    def test_pageLoadsCounted(self) -> None:
        """
        When page loads hold connections open, they count against the
        per-address limit like WebSockets, and each frees its place as it ends,
        upgraded or not.
        """
        chat = WebChat(ServerConfig(maxConnectionsPerIp=2))
        page = WebClient(chat.site, port=next(chat.ports))
        head = page.request(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert head.startswith(b"HTTP/1.1 200 "), head
        chat.connect()
        refused = WebClient(chat.site, port=next(chat.ports))
        assert refused.transport.value().startswith(b"HTTP/1.1 503 ")
        page.transport.loseConnection()
        socket = chat.connect()
        assert WebClient(chat.site).transport.value().startswith(b"HTTP/1.1 503 ")
        socket.transport.loseConnection()
        assert chat.connect().websocket.connection is not None

    def test_refusedHandshakeFreesItsPlace(self) -> None:
        """
        When a WebSocket from a page of another origin is refused, its
        connection frees its place against the per-address limit as it ends.
        """
        chat = WebChat(ServerConfig(maxConnectionsPerIp=1))
        client = WebClient(chat.site, port=next(chat.ports))
        head = client.request(handshake("https://evil.example"))
        assert head.startswith(b"HTTP/1.1 403 ")
        client.transport.loseConnection()
        assert chat.connect().websocket.connection is not None


class TestLogin:
    def test_login(self, chat: WebChat) -> None:
        """
        When a web user logs in, the server says so and line users see the arrival.
        """
        bob = chat.line("bob")
        chat.login("alice")
        assert bob.take() == ["* alice joined the chat."]

    def test_register(self, chat: WebChat) -> None:
        """
        When the name is unknown, the server registers it with that password.
        """
        chat.login("zoe", "new")
        assert chat.store.accounts["zoe"] == ("zoe", "new")

    def test_invalidName(self, chat: WebChat) -> None:
        """
        When the name breaks the rules, the server refuses it with the rule and the
        connection stays.
        """
        client = chat.connect()
        client.send(type="login", name="a b", password="pw")
        assert client.take() == [
            {
                "type": "login_refused",
                "code": "invalid_name",
                "text": messages.LOGIN_REFUSALS["invalid_name"],
            }
        ]
        client.send(type="login", name="alice", password="pw")
        assert client.take()[0]["type"] == "logged_in"

    def test_wrongPassword(self, chat: WebChat) -> None:
        """
        When the password is wrong, the server refuses the login and the client may
        try again on the same connection; after too many, it closes.
        """
        client = chat.connect()
        for _ in range(4):
            client.send(type="login", name="alice", password="bad")
            chat.clock.advance(5)
            assert client.takeOne()["code"] == "wrong_password"
        client.send(type="login", name="alice", password="bad")
        chat.clock.advance(5)
        assert client.frames()[0][1] == encode(
            message(LoginRefused(Refusal.TOO_MANY_FAILURES))
        )

    def test_beforeLogin(self, chat: WebChat) -> None:
        """
        When a message other than login comes before login, the server says to log
        in first.
        """
        client = chat.connect()
        client.send(type="say", room="#general", text="hi")
        assert client.takeOne()["code"] == "not_logged_in"

    def test_twice(self, chat: WebChat) -> None:
        """
        When a logged-in user sends login again, the server says it is logged in.
        """
        alice = chat.login("alice")
        alice.send(type="login", name="alice", password="pw")
        assert alice.takeOne()["code"] == "already_logged_in"

    def test_historyOnLogin(self) -> None:
        """
        When a web user logs in, the server shows the last lines of #general.
        """
        chat = WebChat(history=MemoryHistory())
        bob = chat.line("bob")
        bob.send("one", "two")
        client = chat.connect()
        client.send(type="login", name="alice", password="pw")
        logged, history = client.take()
        assert logged["type"] == "logged_in"
        assert history["type"] == "history"
        assert [line["text"] for line in history["lines"]] == ["one", "two"]

    def test_pipelined(self) -> None:
        """
        When messages arrive while the password is being checked, the server handles
        them after the login, in order.
        """
        store = SlowAccounts({"alice": "pw"})
        chat = WebChat(accounts=store)
        client = chat.connect()
        client.send(type="login", name="alice", password="pw")
        client.send(type="command", text="@WHO")
        client.send(type="rooms")
        assert client.take() == []
        store.finish()
        assert [m["type"] for m in client.take()] == [
            "logged_in",
            "online_users",
            "rooms",
        ]

    def test_timeout(self, chat: WebChat) -> None:
        """
        When a connection does not log in in time, the server says so and closes the
        WebSocket.
        """
        client = chat.connect()
        chat.clock.advance(ServerConfig().loginTimeout)
        frames = client.frames()
        assert json.loads(frames[0][1])["code"] == "login_timeout"
        assert frames[-1][0] == 8

    def test_superseded(self, chat: WebChat) -> None:
        """
        When the user logs in from another connection, the old one is told and
        closed and the new one is a takeover.
        """
        old = chat.login("alice")
        new = chat.connect()
        new.send(type="login", name="alice", password="pw")
        assert new.take()[0] == {"type": "logged_in", "name": "alice", "takeover": True}
        frames = old.frames()
        assert json.loads(frames[0][1])["code"] == "superseded"
        assert frames[-1][0] == 8

    def test_logout(self, chat: WebChat) -> None:
        """
        When a web user logs out, the server says goodbye and closes the WebSocket;
        the close handshake ends the connection.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.send(type="logout")
        frames = alice.frames()
        assert json.loads(frames[0][1]) == {"type": "goodbye", "name": "alice"}
        assert frames[-1][0] == 8
        assert bob.take() == ["* alice left the chat."]
        alice.sendRaw(clientFrame(struct.pack("!H", 1000), opcode=8))
        assert alice.closed
        assert chat.connections.open == {bob.protocol}


class SlowAccounts(MemoryAccountStore):
    """
    Accounts whose password checks wait until L{finish}.
    """

    def __init__(self, accounts: dict[str, str]) -> None:
        super().__init__(accounts)
        self.waiting: list[tuple[Deferred[tuple[AuthResult, str]], Any]] = []

    def authenticate(
        self, name: str, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        d: Deferred[tuple[AuthResult, str]] = Deferred()
        self.waiting.append((d, super().authenticate(name, password)))
        return d

    def finish(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d, answer in waiting:
            answer.addCallback(d.callback)


class TestChat:
    def test_roomLines(self, chat: WebChat) -> None:
        """
        When a web user says a line, a line user gets it as 'alice > text' and the web
        user gets it back with its time and id; a line user's line reaches the page.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.send(type="say", room="#general", text="hi <script>x</script>")
        assert bob.take() == ["alice > hi <script>x</script>"]
        echo = alice.takeOne()
        assert echo["type"] == "line"
        assert (echo["from"], echo["text"], echo["origin"]) == (
            "alice",
            "hi <script>x</script>",
            "web",
        )
        bob.send("hello <img src=x onerror=alert(1)>")
        line = alice.takeOne()
        assert (line["room"], line["from"], line["text"]) == (
            "#general",
            "bob",
            "hello <img src=x onerror=alert(1)>",
        )
        assert line["origin"] == "line"

    def test_cleaned(self, chat: WebChat) -> None:
        """
        When a line holds control characters or a lone surrogate, the server relays
        it cleaned, as it does a line user's.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.sendRaw(
            clientFrame(
                b'{"type":"say","room":"#general","text":"a\\u001b[2Jb\\ud800c"}'
            )
        )
        assert bob.take() == ["alice > ab\ufffdc"]

    def test_emptyIgnored(self, chat: WebChat) -> None:
        """
        When a line is empty or blank, the server ignores it.
        """
        alice = chat.login("alice")
        alice.send(type="say", room="#general", text="  ")
        alice.send(type="command", text="")
        assert alice.take() == []

    def test_notMember(self, chat: WebChat) -> None:
        """
        When a web user says a line in a room it is not in, or in a bad room name,
        the server refuses it.
        """
        alice = chat.login("alice")
        alice.send(type="say", room="#python", text="hi")
        assert alice.takeOne()["code"] == "not_in_room"
        alice.send(type="say", room="python", text="hi")
        assert alice.takeOne()["code"] == "invalid_room"

    def test_command(self, chat: WebChat) -> None:
        """
        When a web user sends a line of the line protocol's language, the server
        carries out the command or says the line.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.send(type="command", text="@WHO")
        assert alice.takeOne() == {
            "type": "online_users",
            "users": [
                {"name": "alice", "partner": None},
                {"name": "bob", "partner": None},
            ],
        }
        alice.send(type="command", text="@FOO")
        assert alice.takeOne()["code"] == "unknown_command"
        alice.send(type="command", text="@PM")
        assert alice.takeOne() == {
            "type": "error",
            "code": "usage",
            "text": "Usage: @PM <user>",
            "usage": "@PM <user>",
        }
        alice.send(type="command", text="plain words")
        assert bob.take() == ["alice > plain words"]

    def test_whoAndSearch(self, chat: WebChat) -> None:
        """
        When a web user asks who is online, about one user, or for names, the server
        answers with the lists.
        """
        chat.line("bob")
        alice = chat.login("alice")
        alice.send(type="who")
        assert alice.takeOne()["type"] == "online_users"
        alice.send(type="whois", name="bob")
        assert alice.takeOne() == {
            "type": "user_info",
            "name": "bob",
            "partner": None,
            "rooms": ["#general"],
        }
        alice.send(type="whois", name="zed")
        assert alice.takeOne()["code"] == "not_online"
        alice.send(type="search", text="ar")
        assert alice.takeOne() == {
            "type": "search_results",
            "text": "ar",
            "users": [{"name": "carol", "online": False}],
        }
        alice.send(type="search", text=" ")
        assert alice.takeOne()["code"] == "bad_message"

    def test_password(self, chat: WebChat) -> None:
        """
        When a web user changes the password, the server checks the old one.
        """
        alice = chat.login("alice")
        alice.send(type="password", old="bad", new="x")
        assert alice.takeOne()["code"] == "wrong_password"
        alice.send(type="password", old="pw", new="new pw")
        assert alice.takeOne() == {"type": "password_changed"}
        assert chat.store.accounts["alice"] == ("alice", "new pw")


class IRC:
    """
    An IRC user on the same connections, logged in.
    """

    def __init__(self, chat: WebChat, name: str) -> None:
        protocol = IRCFactory(chat.connections, "irc.test").buildProtocol(None)
        assert isinstance(protocol, IRCProtocol)
        self.protocol = protocol
        self.transport = StringTransportWithDisconnection(
            hostAddress=None, peerAddress=IPv4Address("TCP", "192.0.2.8", 40000)
        )
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]
        self.send("PASS pw", f"NICK {name}", f"USER {name} 0 * :{name}")
        assert f" 001 {name} " in self.take()[0]

    def send(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def take(self) -> list[str]:
        value = self.transport.value().decode()
        self.transport.clear()
        return [line for line in value.split("\r\n") if line]


class TestBesideIRC:
    def test_richText(self, chat: WebChat) -> None:
        """
        When an IRC user sends /me, formatting and a NOTICE, the web user gets
        the plain text, with C{action} and C{notice} set; the web user's line
        reaches IRC from its own hostmask.
        """
        alice = chat.login("alice")
        bob = IRC(chat, "bob")
        alice.take()
        bob.send("PRIVMSG #general :\x01ACTION waves \x02hi\x02\x01")
        bob.send("PRIVMSG #general :\x0304red\x03 and \x1fplain\x1f")
        bob.send("NOTICE #general :build passed")
        lines = alice.take()
        assert [
            {key: line[key] for key in ("text", "action", "notice") if key in line}
            for line in lines
        ] == [
            {"text": "waves hi", "action": True},
            {"text": "red and plain"},
            {"text": "build passed", "notice": True},
        ]
        assert {line["origin"] for line in lines} == {"irc"}
        alice.send(type="say", room="#general", text="hello bob")
        assert bob.take() == [":alice!alice@web.irc.test PRIVMSG #general :hello bob"]

    def test_privateAction(self, chat: WebChat) -> None:
        """
        When an IRC partner sends /me in a private chat, the web user gets its
        plain text with C{action} set.
        """
        alice = chat.login("alice")
        bob = IRC(chat, "bob")
        bob.send("PRIVMSG alice :may I?")
        alice.take()
        alice.send(type="answer", accept=True)
        alice.take()
        bob.send("PRIVMSG alice :\x01ACTION \x02waves\x02\x01")
        assert alice.takeOne() == {
            "type": "private",
            "from": "bob",
            "text": "waves",
            "action": True,
        }

    def test_reasons(self, chat: WebChat) -> None:
        """
        When an IRC user parts a room and quits with reasons, the web user gets
        them in C{left} and C{offline}; without one there is no C{reason}.
        """
        alice = chat.login("alice")
        bob = IRC(chat, "bob")
        carol = IRC(chat, "carol")
        alice.send(type="join", room="#python")
        bob.send("JOIN #python")
        alice.take()
        bob.send("PART #python :too quiet", "QUIT :off to bed")
        carol.send("QUIT")
        assert alice.take() == [
            {
                "type": "left",
                "room": "#python",
                "name": "bob",
                "origin": "irc",
                "reason": "too quiet",
            },
            {"type": "offline", "name": "bob", "origin": "irc", "reason": "off to bed"},
            {"type": "offline", "name": "carol", "origin": "irc"},
        ]


class TestPrivate:
    def test_webAsks(self, chat: WebChat) -> None:
        """
        When a web user asks a line user for a private chat and is accepted, their
        lines go to each other only, a third user gets none, and leaving tells both.
        """
        bob = chat.line("bob")
        carol = chat.line("carol")
        alice = chat.login("alice")
        bob.take(), carol.take()
        alice.send(type="request_private", name="bob")
        assert alice.takeOne() == {"type": "request_sent", "to": "bob"}
        assert bob.take() == [
            "The user alice wants to have a private chat with you (Y/N)?"
        ]
        bob.send("Y")
        assert alice.takeOne() == {"type": "private_started", "with": "bob"}
        bob.take()
        alice.send(type="private", text="secret")
        assert bob.take() == ["alice > secret"]
        assert alice.takeOne() == {"type": "private", "from": "alice", "text": "secret"}
        bob.send("back")
        assert alice.takeOne() == {"type": "private", "from": "bob", "text": "back"}
        assert carol.take() == []
        alice.send(type="leave_private")
        assert alice.takeOne() == {"type": "private_ended", "with": "bob", "by": "you"}
        assert bob.take() == ["Your partner alice left pm!"]

    def test_webAnswers(self, chat: WebChat) -> None:
        """
        When a line user asks a web user, the page is asked, and its answer (accept
        or reject) reaches the line user.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        bob.send("@PM alice")
        assert alice.takeOne() == {"type": "private_request", "from": "bob"}
        alice.send(type="answer", accept=False)
        assert alice.takeOne() == {"type": "request_declined"}
        assert bob.take()[-1] == "alice rejected your private chat request."
        bob.send("@PM alice")
        alice.take()
        alice.send(type="answer", accept=True)
        assert alice.takeOne() == {"type": "private_started", "with": "bob"}
        alice.send(type="answer", accept=True)
        assert alice.takeOne()["code"] == "no_request"

    def test_missedLines(self, chat: WebChat) -> None:
        """
        When a web user comes back from a private chat, the server says how many
        lines its room had meanwhile, which it did not hear.
        """
        bob = chat.line("bob")
        carol = chat.line("carol")
        alice = chat.login("alice")
        alice.send(type="request_private", name="bob")
        bob.send("Y")
        alice.take()
        carol.send("one", "two")
        assert alice.take() == []
        bob.send("EXIT PM")
        assert alice.take() == [
            {"type": "private_ended", "with": "bob", "by": "partner"},
            {"type": "missed", "room": "#general", "count": 2},
        ]

    def test_notInPrivate(self, chat: WebChat) -> None:
        """
        When a web user sends a private line or leaves with no private chat, the
        server says there is none.
        """
        alice = chat.login("alice")
        alice.send(type="private", text="hello?")
        assert alice.takeOne()["code"] == "not_in_private"
        alice.send(type="leave_private")
        assert alice.takeOne()["code"] == "not_in_private"


class BeforeHistory(MemoryHistory):
    """
    Memory history that also answers the lines before a given one.
    """

    def query(self, room: str, query: HistoryQuery) -> "Deferred[list[HistoryEntry]]":
        if query.around is Around.BEFORE and query.first is not None:
            first = lineOrder(query.first.msgid or "")
            entries = self.rooms.get(room, [])
            before = [e for e in entries if lineOrder(e.msgid) < first]
            return succeed(before[-query.limit :])
        return super().query(room, query)


def lineOrder(msgid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in msgid.split("-"))


class TestRooms:
    def test_joinAndLeave(self, chat: WebChat) -> None:
        """
        When a web user joins a room, others arrive and it leaves, the server tells
        it each step, and lists the rooms and members.
        """
        alice = chat.login("alice")
        bob = chat.line("bob")
        alice.take()
        alice.send(type="join", room="#Python")
        assert alice.takeOne() == {"type": "in_room", "room": "#Python", "count": 1}
        bob.send("@JOIN #python")
        assert alice.takeOne() == {
            "type": "joined",
            "room": "#Python",
            "name": "bob",
            "origin": "line",
        }
        bob.take()
        alice.send(type="say", room="#python", text="in python")
        assert bob.take() == ["alice > in python"]
        alice.take()
        alice.send(type="members", room="#python")
        assert alice.takeOne() == {
            "type": "members",
            "room": "#Python",
            "names": ["alice", "bob"],
        }
        alice.send(type="rooms")
        assert alice.takeOne() == {
            "type": "rooms",
            "rooms": [
                {"name": "#general", "count": 2},
                {"name": "#Python", "count": 2},
            ],
        }
        alice.send(type="join", room="#general")
        assert alice.takeOne() == {"type": "in_room", "room": "#general", "count": 2}
        alice.send(type="leave", room="#python")
        assert alice.takeOne() == {"type": "left_room", "room": "#Python"}
        assert bob.take() == ["* alice left #Python."]
        alice.send(type="leave", room="#general")
        assert alice.takeOne()["code"] == "cannot_leave_general"

    def test_history(self) -> None:
        """
        When a web user joins a room with history and loads more, the server shows the
        last lines, then those before the oldest shown.
        """
        chat = WebChat(ServerConfig(historyOnLogin=2), history=BeforeHistory())
        bob = chat.line("bob")
        bob.send("@JOIN #python", "one", "two", "three")
        alice = chat.login("alice")
        alice.send(type="join", room="#python")
        joined, history = alice.take()
        assert joined["type"] == "in_room"
        assert [line["text"] for line in history["lines"]] == ["two", "three"]
        oldest = history["lines"][0]["id"]
        alice.send(type="history", room="#python", before=oldest, limit=50)
        earlier = alice.takeOne()
        assert earlier["room"] == "#python"
        assert [line["text"] for line in earlier["lines"]] == ["one"]
        alice.send(type="history", room="#python", limit=1)
        assert [line["text"] for line in alice.takeOne()["lines"]] == ["three"]

    def test_historyBadFields(self, chat: WebChat) -> None:
        """
        When a history request has a bad limit or line id, or names a room the user
        is not in, the server refuses it.
        """
        alice = chat.login("alice")
        alice.send(type="history", room="#general", limit=0)
        assert alice.takeOne()["code"] == "bad_message"
        alice.send(type="history", room="#general", before="yesterday")
        assert alice.takeOne()["code"] == "bad_message"
        alice.send(type="history", room="#python")
        assert alice.takeOne()["code"] == "not_in_room"
        alice.send(type="history", room="#general")
        assert alice.takeOne()["code"] == "history_off"


class TestBadInput:
    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            (b"{not json", "bad_json"),
            (b"[" * 100000, "bad_json"),
            (b'"hello"', "bad_message"),
            (b'{"text": "no type"}', "bad_message"),
            (b'{"type": "dance"}', "unknown_type"),
            (b'{"type": "\\ud800"}', "unknown_type"),
            (b'{"type": "say", "room": "#general"}', "bad_message"),
            (b'{"type": "say", "room": 7, "text": "x"}', "bad_message"),
            (b'{"type": "answer", "accept": 1}', "bad_message"),
        ],
    )
    def test_refused(self, payload: bytes, code: str) -> None:
        """
        When a message is not valid JSON or not a known message with the right
        fields, the server says what is wrong and the connection stays.
        """
        chat = WebChat(ServerConfig(maxLineBytes=0))
        alice = chat.login("alice")
        alice.sendRaw(clientFrame(payload))
        reply = alice.takeOne()
        assert (reply["type"], reply["code"]) == ("error", code)
        alice.send(type="who")
        assert alice.takeOne()["type"] == "online_users"

    def test_oversizedFrame(self) -> None:
        """
        When a frame is larger than the frame limit, the server refuses it unread
        with the limit, and the connection stays.
        """
        chat = WebChat(ServerConfig(maxLineBytes=100))
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.send(type="say", room="#general", text="x" * 5000)
        assert alice.takeOne() == {
            "type": "error",
            "code": "too_large",
            "text": "Message too large (max 1424 bytes).",
            "limit": 1424,
        }
        assert bob.take() == []
        alice.send(type="say", room="#general", text="still here")
        assert bob.take() == ["alice > still here"]

    def test_oversizedFragments(self) -> None:
        """
        When a message comes in fragments that add up to more than the frame limit,
        the server refuses the message as a whole.
        """
        chat = WebChat(ServerConfig(maxLineBytes=100))
        alice = chat.login("alice")
        alice.sendRaw(clientFrame(b'{"type":"who",' + b" " * 1000, fin=False))
        alice.sendRaw(clientFrame(b" " * 1000 + b"}", opcode=0))
        assert alice.takeOne()["code"] == "too_large"

    def test_textTooLong(self) -> None:
        """
        When a text is longer than --max-line-bytes (in UTF-8), the server refuses
        it as a line user's long line, and the connection stays.
        """
        chat = WebChat(ServerConfig(maxLineBytes=100))
        alice = chat.login("alice")
        alice.send(type="say", room="#general", text="ç" * 51)
        assert alice.takeOne() == message(LineTooLong(100))
        alice.send(type="say", room="#general", text="ç" * 50)
        assert alice.takeOne()["text"] == "ç" * 50

    def test_binary(self, chat: WebChat) -> None:
        """
        When a binary frame comes, the server refuses it and the connection stays.
        """
        alice = chat.login("alice")
        alice.sendRaw(clientFrame(b'{"type":"who"}', opcode=2))
        assert alice.takeOne()["code"] == "binary"
        alice.send(type="who")
        assert alice.takeOne()["type"] == "online_users"

    def test_idlePastWebTimeout(self, chat: WebChat) -> None:
        """
        When a logged-in WebSocket stays idle past twisted.web's idle timeout for
        HTTP connections, the chat goes on.
        """
        alice = chat.login("alice")
        chat.clock.advance(10 * chat.site.timeOut)
        assert not alice.closed
        alice.send(type="who")
        assert alice.takeOne()["type"] == "online_users"

    def test_pingAnswered(self, chat: WebChat) -> None:
        """
        When the client pings, the server answers with a pong through the same
        output queue.
        """
        alice = chat.login("alice")
        alice.sendRaw(clientFrame(b"beat", opcode=9))
        assert alice.frames() == [(10, b"beat")]


class TestFraming:
    """
    Whole text frames take a short way to the chat and every other frame goes
    through autobahn's parser; what a client sends arrives in order either way.
    """

    # The message around the text is 47 bytes: frames of 125 and 126 bytes
    # are the two sides of the first length boundary, 65,535 and 65,536 of
    # the second.
    @pytest.mark.parametrize("size", [1, 125 - 47, 126 - 47, 65535 - 47, 65536 - 47])
    def test_everyLengthHeader(self, size: int) -> None:
        """
        When a text comes in a frame with any length header (in the first byte,
        in two more, in eight more), it arrives whole.
        """
        chat = WebChat(ServerConfig(maxLineBytes=0))
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.send(type="say", room="#general", text="z" * size)
        assert bob.take() == ["alice > " + "z" * size]

    def test_splitAcrossReads(self) -> None:
        """
        When frames arrive cut at every byte, in one read with others, or with a
        ping between them, every message arrives once, in order, and the ping
        is answered.
        """
        chat = WebChat(ServerConfig(floodRate=0))
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()

        def say(text: str) -> bytes:
            return clientFrame(
                json.dumps({"type": "say", "room": "#general", "text": text}).encode()
            )

        stream = say("one") + say("two") + clientFrame(b"beat", opcode=9) + say("three")
        for cut in range(len(stream)):
            alice.sendRaw(stream[:cut])
            alice.sendRaw(stream[cut:])
            assert bob.take() == ["alice > one", "alice > two", "alice > three"], cut
            assert [f for f in alice.frames() if f[0] != 1] == [(10, b"beat")], cut
        for byte in stream:
            alice.sendRaw(bytes([byte]))
        assert bob.take() == ["alice > one", "alice > two", "alice > three"]

    def test_invalidUTF8(self, chat: WebChat) -> None:
        """
        When a text frame is not valid UTF-8, the server fails the WebSocket, as
        RFC 6455 says (autobahn drops the connection), and the chat goes on for
        others.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        bob.take()
        alice.sendRaw(clientFrame(b'{"type":"say","room":"#general","text":"\xff"}'))
        assert alice.closed
        assert bob.take() == ["* alice left the chat."]

    def test_unmasked(self, chat: WebChat) -> None:
        """
        When a client sends an unmasked frame, the server fails the WebSocket.
        """
        alice = chat.login("alice")
        alice.sendRaw(b"\x81\x0e" + b'{"type":"who"}')
        assert alice.closed


class TestLimits:
    def test_flood(self) -> None:
        """
        When messages come faster than the flood limit, the server says to slow down
        and handles the rest in turn as the bucket refills.
        """
        chat = WebChat(ServerConfig(floodRate=1, floodBurst=3))
        bob = chat.line("bob")
        alice = chat.connect()
        alice.send(type="login", name="alice", password="pw")
        alice.take()
        bob.take()
        for n in range(4):
            alice.send(type="say", room="#general", text=f"line {n}")
        assert bob.take() == ["alice > line 0", "alice > line 1"]
        assert alice.take()[-1]["code"] == "slow_down"
        chat.clock.advance(1)
        assert bob.take() == ["alice > line 2"]
        chat.clock.advance(1)
        assert bob.take() == ["alice > line 3"]

    def test_excessFlood(self) -> None:
        """
        When more input waits than --max-recvq-bytes while the server is busy for the
        client, the server says so and closes the WebSocket.
        """
        store = SlowAccounts({"alice": "pw"})
        chat = WebChat(ServerConfig(maxRecvqBytes=1000), accounts=store)
        alice = chat.connect()
        alice.send(type="login", name="alice", password="pw")
        for _ in range(20):
            alice.send(type="say", room="#general", text="x" * 60)
        frames = alice.frames()
        assert json.loads(frames[0][1])["code"] == "excess_flood"
        assert frames[-1][0] == 8

    def test_sendQueue(self) -> None:
        """
        When a web client stops reading and its send queue passes --max-sendq-bytes,
        the server drops it and counts the drop.
        """
        chat = WebChat(ServerConfig(maxSendqBytes=20000, floodRate=0))
        bob = chat.line("bob")
        alice = chat.login("alice")
        # The transport says its buffer is full, as TCP would.
        alice.connection.sendQueuePaused()
        for n in range(40):
            bob.send(f"line {n} " + "x" * 1000)
        chat.clock.advance(0)
        chat.clock.advance(0)
        assert alice.closed
        assert chat.services.metrics.sendqDrops == 1
        assert bob.protocol in chat.connections.open

    def test_shutdown(self, chat: WebChat) -> None:
        """
        When the server shuts down, a web user is told, then the WebSocket closes.
        """
        alice = chat.login("alice")
        alice.connection.shutdown()
        assert alice.takeOne()["code"] == "shutting_down"
        alice.connection.close()
        assert alice.closing


class TestSite:
    def test_page(self, chat: WebChat) -> None:
        """
        When a browser asks for /, the server sends the page, its script and style,
        with a policy that lets only the page's own script run.
        """
        head, body = chat.get("/")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-type: text/html; charset=utf-8" in head.lower()
        assert b"script-src 'self'" in head
        assert b'<script src="chat.js"' in body
        head, _ = chat.get("/chat.js")
        assert b"text/javascript" in head
        head, _ = chat.get("/chat.css")
        assert b"text/css" in head
        head, _ = chat.get("/nothing")
        assert head.startswith(b"HTTP/1.1 404 ")

    def test_scriptWritesNoMarkup(self, chat: WebChat) -> None:
        """
        When the page's script shows what the server sends, it never parses it as
        markup: it uses none of the APIs that would.
        """
        _, script = chat.get("/chat.js")
        markup = (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write")
        for api in (*markup, b"eval(", b"new Function"):
            assert api not in script, api
        assert b"textContent" in script

    def test_metrics(self, chat: WebChat) -> None:
        """
        When Prometheus scrapes /metrics, the server lists the sessions online by
        front-end and the chat's counters.
        """
        bob = chat.line("bob")
        alice = chat.login("alice")
        chat.connect()
        alice.send(type="say", room="#general", text="hi")
        bob.send("bob > nope", "@PM alice")
        alice.send(type="answer", accept=True)
        head, body = chat.get("/metrics")
        assert b"text/plain; version=0.0.4" in head
        text = body.decode()
        for line in (
            'chat_sessions_online{frontend="line"} 1.0',
            'chat_sessions_online{frontend="web"} 1.0',
            "chat_logins_total 2.0",
            "chat_lines_relayed_total 2.0",
            "chat_private_chats_total 1.0",
            "chat_sendq_drops_total 0.0",
            "chat_failed_logins_total 0.0",
            "chat_registrations_total 0.0",
        ):
            assert line in text.splitlines(), (line, text)

    def test_noMetrics(self) -> None:
        """
        When the server runs with --no-metrics, /metrics does not exist.
        """
        chat = WebChat(metrics=False)
        head, _ = chat.get("/metrics")
        assert head.startswith(b"HTTP/1.1 404 ")


class TestOptions:
    def test_webOptions(self, tmp_path: Any) -> None:
        """
        When twistd chat gets --web-listen and --web-origin (each repeatable) and
        --no-metrics, the settings say so; without them the web front-end is off.
        """
        options = tap.Options()
        options.parseOptions(
            [
                "--web-listen", "tcp:8080",
                "--web-listen", "ssl:8443:privateKey=k.pem:certKey=c.pem",
                "--web-origin", "https://Chat.Example.org/",
                "--web-origin", "http://localhost:8080",
                "--no-metrics",
            ]
        )  # fmt: skip
        config = options.config()
        assert config.webListen == (
            "tcp:8080",
            "ssl:8443:privateKey=k.pem:certKey=c.pem",
        )
        assert config.webOrigins == (
            "https://chat.example.org",
            "http://localhost:8080",
        )
        assert not config.metrics
        plain = tap.Options()
        plain.parseOptions([])
        assert plain.config().webListen == ()
        assert plain.config().metrics

    @pytest.mark.parametrize(
        "origin", ["chat.example.org", "ftp://chat.example.org", "https://x.org/page"]
    )
    def test_badOrigin(self, origin: str) -> None:
        """
        When --web-origin is not an http or https origin, twistd chat refuses it.
        """
        with pytest.raises(usage.UsageError, match="--web-origin"):
            tap.Options().parseOptions(["--web-origin", origin])
