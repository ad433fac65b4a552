"""
The WebSocket of one browser (or any web client): JSON messages, one per
frame, in both directions, over autobahn's WebSocket on twisted.web.

Two objects serve one client.  L{ChatWebSocket}, the autobahn protocol, does
the handshake and the framing: it checks the C{Origin}, takes over the count
the connection limits keep of the HTTP connection it was, and gathers each
message within the size limit.  L{WebConnection}, a L{StreamConnection} on
the same transport, is the chat: it decodes messages, calls the session core
and renders its events as frames, with every limit a stream front-end has
(the login clock, the flood bucket, the send queue).  All output after the
handshake, autobahn's own frames included, goes through the connection's
output queue, so that bytes keep their order whether they are written to the
socket directly or through the transport.
"""

import json
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from ..._types import StreamTransport
from ...core.events import (
    Event,
    Goodbye,
    LineTooLong,
    LoggedIn,
    LoginRefused,
    NotInPrivate,
    PrivateLine,
    Refusal,
    RoomRefusal,
    RoomRefused,
    Superseded,
)
from ...core.history import Around, HistoryQuery, Reference
from ...core.session import HISTORY_DEFAULT, HISTORY_MAX
from ...core.text import clean, foldName, normalizeRoom
from ..connection import Connections, StreamConnection
from .render import WEB_RENDERER, Message, error, frame, loginRefused, message

# A line id as history gives it: <milliseconds>-<sequence>.
_MSGID = re.compile(r"[0-9]{1,16}-[0-9]{1,9}")

_SURROGATE = re.compile("[\ud800-\udfff]")

_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


class _WebTransport(StreamTransport, TypingProtocol):
    """
    What the WebSocket uses of its transport, which it takes over from
    twisted.web's channel.
    """

    def unregisterProducer(self) -> None: ...


def maxMessageBytes(maxLineBytes: int) -> int:
    """
    The largest frame a client may send when its texts may be
    C{maxLineBytes} long (0: no limit): room for two such texts (a password
    change), JSON escapes and the message's other fields.
    """
    return 4 * maxLineBytes + 1024 if maxLineBytes else 0


def _wellFormed(text: str) -> str:
    """
    C{text} with every lone surrogate (which JSON's C{\\uXXXX} escapes can
    make, and which no UTF-8 encoder takes) replaced by U+FFFD.
    """
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True)
class Field:
    """
    One field of a client message: its name and JSON type, whether it must
    be there, and whether it is chat text (cleaned as a line user's line is,
    rather than checked by the name rules).
    """

    name: str
    kind: type
    required: bool = True
    chat: bool = False


@dataclass(frozen=True)
class MessageSpec:
    """
    How a client message is taken: the L{WebConnection} method that carries
    it out, its fields, and whether it is the one message taken before login
    (all others are taken only after).
    """

    handler: str
    fields: tuple[Field, ...] = ()
    beforeLogin: bool = False


_ROOM = Field("room", str)
_NAME = Field("name", str)
_TEXT = Field("text", str, chat=True)

MESSAGES: dict[str, MessageSpec] = {
    "login": MessageSpec(
        "msg_login", (_NAME, Field("password", str)), beforeLogin=True
    ),
    "say": MessageSpec("msg_say", (_ROOM, _TEXT)),
    "private": MessageSpec("msg_private", (_TEXT,)),
    "command": MessageSpec("msg_command", (_TEXT,)),
    "join": MessageSpec("msg_join", (_ROOM,)),
    "leave": MessageSpec("msg_leave", (_ROOM,)),
    "rooms": MessageSpec("msg_rooms"),
    "members": MessageSpec("msg_members", (_ROOM,)),
    "history": MessageSpec(
        "msg_history",
        (_ROOM, Field("before", str, required=False), Field("limit", int, False)),
    ),
    "who": MessageSpec("msg_who"),
    "whois": MessageSpec("msg_whois", (_NAME,)),
    "request_private": MessageSpec("msg_request_private", (_NAME,)),
    "answer": MessageSpec("msg_answer", (Field("accept", bool),)),
    "leave_private": MessageSpec("msg_leave_private"),
    "search": MessageSpec("msg_search", (_TEXT,)),
    "password": MessageSpec("msg_password", (Field("old", str), Field("new", str))),
    "logout": MessageSpec("msg_logout"),
}
"""
Every message a client may send, by its C{type}.
"""


class WebConnection(StreamConnection):
    """
    The chat of one web client: its messages, decoded and handled strictly
    in order (held while an answer is awaited, within C{--max-recvq-bytes}),
    and the session core's events as JSON frames.

    @ivar websocket: the autobahn protocol on the same transport, which
        closes the WebSocket.
    """

    __slots__ = ("_busyReceiving", "_pending", "_pendingBytes", "websocket")

    renderer = WEB_RENDERER
    # The page shows a room's line when the server relays it, so a user's
    # own lines come back with their time and id.
    echoes = True

    def __init__(
        self,
        connections: Connections,
        limitKey: str | None,
        websocket: "ChatWebSocket",
    ) -> None:
        super().__init__(connections, limitKey)
        self.websocket = websocket
        # Messages not handled yet, with their sizes: their payloads, or the
        # reply to a frame refused unread.
        self._pending: deque[tuple[bytes | Message, int]] = deque()
        self._pendingBytes = 0
        self._busyReceiving = False

    # Output

    def send(self, reply: Message) -> None:
        """
        Queue C{reply} for this client, as one frame.
        """
        self.deliver(frame(reply))

    def notify(self, event: Event) -> None:
        self.send(message(event))
        if type(event) is LoggedIn:
            self.loggedIn()
        elif type(event) is LoginRefused:
            if event.reason is Refusal.TOO_MANY_FAILURES:
                self.close()
        elif type(event) is Goodbye:
            self.close()

    def supersede(self) -> None:
        super().supersede()
        self.notify(Superseded())
        self.close()

    def close(self) -> None:
        """
        Send what is queued and a close frame; autobahn drops the connection
        when the client answers it (or after its close timeout).
        """
        websocket = self.websocket
        if websocket.state == websocket.STATE_OPEN:
            websocket.sendClose(1000)
        elif websocket.state != websocket.STATE_CLOSING:
            super().close()

    # Input

    def messageReceived(self, payload: bytes) -> None:
        """
        Take one whole message from the WebSocket.
        """
        self.connections.writes.inputCame()
        self._enqueue(payload, len(payload))

    def messageRefused(self, reply: Message, size: int) -> None:
        """
        A frame of C{size} bytes was refused unread: answer it with C{reply}
        in its turn.
        """
        self._enqueue(reply, size)

    def _enqueue(self, item: bytes | Message, size: int) -> None:
        websocket = self.websocket
        if websocket.state != websocket.STATE_OPEN:
            return
        self._pending.append((item, size))
        self._pendingBytes += size
        if self.overRecvq(self._pendingBytes):
            self._pending.clear()
            self._pendingBytes = 0
            self.excessFlood()
            return
        self._handlePending()

    def inputResumed(self) -> None:
        self._handlePending()

    def _handlePending(self) -> None:
        if self._busyReceiving:
            return
        self._busyReceiving = True
        try:
            pending = self._pending
            websocket = self.websocket
            while (
                pending
                and not self.paused
                and self.connected
                and websocket.state == websocket.STATE_OPEN
            ):
                if not self.mayTakeInput():
                    break
                item, size = pending.popleft()
                self._pendingBytes -= size
                if isinstance(item, bytes):
                    self._handle(item)
                else:
                    self.send(item)
        finally:
            self._busyReceiving = False

    def _handle(self, payload: bytes) -> None:
        """
        Decode one message and carry it out, holding further input until
        the session core has answered it.
        """
        try:
            decoded = json.loads(payload)
        except (ValueError, RecursionError):
            self.send(error("bad_json"))
            return
        try:
            self._await(self._dispatch(decoded))
        except Exception:
            self.failed(Failure())

    def _dispatch(self, decoded: object) -> "Deferred[None] | None":
        if not isinstance(decoded, dict) or not isinstance(decoded.get("type"), str):
            self._badMessage('a message is a JSON object with a string "type"')
            return None
        kind = _wellFormed(decoded["type"])
        spec = MESSAGES.get(kind)
        if spec is None:
            self.send(error("unknown_type", message=kind))
            return None
        loggedIn = self.core.session is not None
        if spec.beforeLogin == loggedIn:
            self.send(error("already_logged_in" if loggedIn else "not_logged_in"))
            return None
        arguments = self._arguments(spec.fields, decoded)
        if arguments is None:
            return None
        handler: Callable[..., Deferred[None] | None] = getattr(self, spec.handler)
        return handler(**arguments)

    def _arguments(
        self, fields: Iterable[Field], decoded: dict[str, Any]
    ) -> dict[str, Any] | None:
        """
        The values of C{fields} in C{decoded}, checked; or L{None} after
        telling the client what was wrong.  Every string is at most
        C{--max-line-bytes} of UTF-8.
        """
        limit = self.config.maxLineBytes
        values: dict[str, Any] = {}
        for field in fields:
            value = decoded.get(field.name)
            if value is None:
                if field.required:
                    self._badMessage(f'"{field.name}" is missing')
                    return None
                continue
            if type(value) is not field.kind:
                self._badMessage(f'"{field.name}" must be {_KIND_NAMES[field.kind]}')
                return None
            if isinstance(value, str):
                value = _wellFormed(value)
                if limit and len(value.encode("utf-8")) > limit:
                    self.notify(LineTooLong(limit))
                    return None
                if field.chat:
                    value = clean(value)
            values[field.name] = value
        return values

    def _badMessage(self, reason: str) -> None:
        self.send(error("bad_message", reason=reason))

    # Messages

    def msg_login(self, name: str, password: str) -> "Deferred[None] | None":
        """
        Log in as C{name}, as typed (a name with invisible characters is
        refused, not silently changed); an unknown name registers.
        """
        checked = self.core.checkName(name)
        if checked is None:
            self.send(loginRefused("invalid_name"))
            return None
        return self.core.logIn(checked, password)

    def msg_say(self, room: str, text: str) -> None:
        """
        Say C{text} in C{room}.
        """
        if not text.strip():
            return
        name = normalizeRoom(room)
        if name is None:
            self.notify(RoomRefused(RoomRefusal.INVALID_NAME, room))
        else:
            self.core.sayInRoom(foldName(name), text)

    def msg_private(self, text: str) -> None:
        """
        Say C{text} to the private-chat partner; the client gets it back as
        its own private line.
        """
        if not text.strip():
            return
        name = self.core.name
        assert name is not None
        if self.core.sayToPartner(text):
            self.send(message(PrivateLine(name, text, self.renderer.kind)))
        else:
            self.notify(NotInPrivate())

    def msg_command(self, text: str) -> "Deferred[None] | None":
        """
        Act on C{text} as a line user's line: a command of the line
        protocol's language (C{@JOIN #room}), or chat.
        """
        if not text.strip():
            return None
        return self.core.perform(text)

    def msg_join(self, room: str) -> "Deferred[None] | None":
        return self.core.joinRoom(room)

    def msg_leave(self, room: str) -> "Deferred[None] | None":
        return self.core.leaveRoom(room)

    def msg_rooms(self) -> "Deferred[None]":
        return self.core.listRooms()

    def msg_members(self, room: str) -> "Deferred[None] | None":
        return self.core.roomMembers(room)

    def msg_history(
        self, room: str, before: str | None = None, limit: int = HISTORY_DEFAULT
    ) -> "Deferred[None] | None":
        """
        The last C{limit} lines of C{room}, or the C{limit} before the line
        C{before} (to load more).
        """
        if not 1 <= limit <= HISTORY_MAX:
            self._badMessage(f'"limit" must be 1 to {HISTORY_MAX}')
            return None
        if before is None:
            query = HistoryQuery(Around.LATEST, limit)
        elif _MSGID.fullmatch(before):
            query = HistoryQuery(Around.BEFORE, limit, Reference(msgid=before))
        else:
            self._badMessage('"before" must be a line id')
            return None
        return self.core.chatHistory(room, query)

    def msg_who(self) -> "Deferred[None] | None":
        return self.core.who()

    def msg_whois(self, name: str) -> "Deferred[None]":
        return self.core.whois(name)

    def msg_request_private(self, name: str) -> "Deferred[None] | None":
        return self.core.requestPrivateChat(name)

    def msg_answer(self, accept: bool) -> "Deferred[None]":
        return self.core.answer(accept)

    def msg_leave_private(self) -> "Deferred[None]":
        return self.core.leavePrivateChat()

    def msg_search(self, text: str) -> "Deferred[None] | None":
        if not text.strip():
            self._badMessage('"text" must not be empty')
            return None
        return self.core.search(text)

    def msg_password(self, old: str, new: str) -> "Deferred[None] | None":
        if not new:
            self._badMessage('"new" must not be empty')
            return None
        return self.core.changePassword(old, new)

    def msg_logout(self) -> "Deferred[None]":
        return self.core.logOut()


def wholeTextFrame(data: bytes, start: int, limit: int) -> tuple[bytes, int] | None:
    """
    The unmasked payload of the frame at C{data[start:]} and where the frame
    ends, if it is a whole, final, masked text frame of at most C{limit}
    bytes of valid UTF-8 in its shortest header, as nearly every message a
    page sends is; else L{None}, and autobahn's parser takes the frame.
    """
    available = len(data) - start
    if available < 6 or data[start] != 0x81 or not data[start + 1] & 0x80:
        return None
    size, head = data[start + 1] & 0x7F, start + 2
    if size == 126 and available >= 8:
        size, head = int.from_bytes(data[head : head + 2], "big"), head + 2
        if size < 126:
            return None
    elif size > 125:
        return None
    end = head + 4 + size
    if size > limit or end > len(data):
        return None
    mask = int.from_bytes((data[head : head + 4] * (size // 4 + 1))[:size], "little")
    masked = int.from_bytes(data[head + 4 : end], "little")
    payload = (masked ^ mask).to_bytes(size, "little")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return payload, end


class ChatWebSocket(WebSocketServerProtocol):
    """
    The WebSocket of one web client, as autobahn speaks it.

    @ivar connection: the chat of this client, from the handshake on.
    @ivar limitKey: the key the connection limits count this connection
        under, as its HTTP channel (L{ChatChannel}) was admitted.
    """

    factory: "ChatWebSocketFactory"
    # Twisted types it as an optional ITransport, without the producer calls.
    transport: _WebTransport  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.connection: WebConnection | None = None
        self.limitKey: str | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._binary = False

    # Handshake

    def connectionMade(self) -> None:
        """
        Take the HTTP connection over, and with it its count against the
        connection limits, which this protocol releases as it ends unless
        its chat began (the chat's end releases it then).
        """
        super().connectionMade()
        self.limitKey = self.factory.connections.limitKey(self.transport.getPeer())

    def onConnect(self, request: ConnectionRequest) -> None:
        """
        Refuse a page from another origin, or start the connection's chat.
        """
        factory = self.factory
        secure = ISSLTransport.providedBy(self.transport)
        if not factory.originAllowed(request.origin, request.headers, secure):
            # autobahn leaves the constructor unannotated.
            raise ConnectionDeny(  # type: ignore[no-untyped-call]
                ConnectionDeny.FORBIDDEN, "Origin not allowed"
            )
        # twisted.web's channel registered itself as the transport's
        # producer; the chat registers its own to watch the send queue.
        self.transport.unregisterProducer()
        # It also turned Nagle's algorithm off, which suits a page's answer;
        # the chat's connection sets it as for every front-end (on for one
        # node: with each write a segment of its own, the web fan-out cost
        # twice the line protocol's CPU).
        self.connection = WebConnection(factory.connections, self.limitKey, self)
        # BaseProtocol.makeConnection is unannotated in Twisted.
        self.connection.makeConnection(self.transport)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        """
        Take bytes from the connection: each whole text frame (see
        L{wholeTextFrame}) straight to the chat, and from the first other
        frame (a control frame, a fragment, one cut between reads) on,
        everything to autobahn, in order.  autobahn's own parsing costs
        about four times as much for such a frame: a masker object, four
        callbacks, and a debug line formatted for every read though debug
        logging is off.
        """
        connection, start = self.connection, 0
        if connection is not None and self.state == self.STATE_OPEN:
            # autobahn types it as always set; it is None between frames.
            current: object = self.current_frame
            between = current is None and not self.inside_message and not self.data
            limit = self.factory.maxMessageBytes
            while between and self.state == self.STATE_OPEN:
                found = wholeTextFrame(data, start, limit)
                if found is None:
                    break
                payload, start = found
                connection.messageReceived(payload)
        if start < len(data):
            self._dataReceived(data[start:] if start else data)

    def sendData(
        self, data: bytes, sync: bool = False, chopsize: int | None = None
    ) -> None:
        """
        Send autobahn's own bytes (the handshake's answer, pongs, the close
        frame) through the chat's output queue, after what it holds.
        """
        connection = self.connection
        if connection is None or not connection.connected:
            super().sendData(data, sync, chopsize)
            return
        connection.deliver(data)
        connection.flush()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if self.connection is not None:
            self.connection.connectionLost(reason)
        else:
            self.factory.connections.release(self.limitKey)

    # Messages: gathered here rather than by autobahn, so that a frame over
    # the limit is refused as it streams in, never buffered, and the
    # connection stays.

    def onMessageBegin(self, isBinary: bool) -> None:
        self._binary = isBinary
        self._parts = []
        self._size = 0

    def onMessageFrameBegin(self, length: int) -> None:
        """
        Nothing to prepare: the payload is counted as it arrives.
        """

    def onMessageFrameData(self, payload: bytes) -> None:
        self._size += len(payload)
        if self._size <= self.factory.maxMessageBytes:
            self._parts.append(payload)
        elif self._parts:
            self._parts = []

    def onMessageFrameEnd(self) -> None:
        """
        Nothing to finish: a message ends at its last frame.
        """

    def onMessageEnd(self) -> None:
        connection, size = self.connection, self._size
        parts, self._parts = self._parts, []
        if connection is None:
            return
        limit = self.factory.maxMessageBytes
        if self._binary:
            connection.messageRefused(error("binary"), size)
        elif size > limit:
            connection.messageRefused(error("too_large", limit=limit), size)
        else:
            connection.messageReceived(b"".join(parts))


class ChatWebSocketFactory(WebSocketServerFactory):
    """
    Makes a L{ChatWebSocket} per WebSocket request, for the connections of
    one node.

    @ivar origins: the page origins allowed (C{--web-origin}); if none are
        given, the page's own, as the request's C{Host} names it.
    @ivar maxMessageBytes: the largest frame taken (C{sys.maxsize}: any).
    """

    # autobahn's factory leaves Twisted's Factory[P] unparametrized.
    protocol = ChatWebSocket  # type: ignore[assignment]

    def __init__(self, connections: Connections, origins: Iterable[str] = ()) -> None:
        # No url: the Host of each request names the page, whatever the port
        # bound (tcp:0 included).  No compression is ever negotiated (the
        # default), which the frames rendered once for many clients need.
        super().__init__(server="twisted-chat")  # type: ignore[no-untyped-call]
        # No status page (with its ?redirect=) for a plain GET of /ws; the
        # Origin is checked in onConnect, and setProtocolOptions would turn
        # allowNullOrigin off unless it is passed along.
        self.setProtocolOptions(  # type: ignore[no-untyped-call]
            webStatus=False, allowNullOrigin=True
        )
        self.connections = connections
        self.origins = frozenset(origin.lower() for origin in origins)
        self.maxMessageBytes = (
            maxMessageBytes(connections.config.maxLineBytes) or sys.maxsize
        )

    def originAllowed(self, origin: str, headers: dict[str, str], secure: bool) -> bool:
        """
        Whether a page from C{origin} may open the chat's WebSocket.  A
        request without an C{Origin} does not come from a page (every
        browser sends one), so it may: an C{Origin} check protects browser
        users from other sites' pages, not the server from other clients.
        """
        if not origin:
            return True
        origin = origin.lower()
        if self.origins:
            return origin in self.origins
        scheme = "https" if secure else "http"
        return origin == f"{scheme}://{headers.get('host', '').lower()}"
