"""
The client side of the line protocol, independent of how it is shown: it
answers the server's prompts with the user's lines, follows the current room
and the private-chat state from the server's lines for the prompt, tells the
interface what kind each line is (another room's, a history block's) and
when one needs the user's attention, remembers the names it sees for
completion, and sends the UDP heartbeats.
"""

import re
from collections import deque
from collections.abc import Sequence
from enum import Enum
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import (
    DatagramProtocol,
    Factory,
    Protocol,
    connectionDone,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._types import StreamTransport
from ..core.commands import parseLine
from ..core.text import GENERAL, foldName, normalizeName
from ..frontends.line import messages
from .completion import Seen

LOGOUT_WAIT = 5.0

_HEARTBEAT = re.compile(r"HEARTBEAT (\d+) (\S+) (\S+) (\S+)")


# What each field of a server line may hold; any other field is a name.
_FIELDS = {
    "room": r"#\S+",
    "count": r"\d+",
    "time": r"[\d: -]+",
    "text": ".*",
    "names": ".*",
    "rooms": ".*",
}
_NAME = r"\S+"


def _template(line: str) -> "re.Pattern[str]":
    """
    Compile a server line from L{messages} into a pattern capturing each of
    its C{{field}}s: names and rooms have no spaces, counts are numbers.
    """
    return re.compile(
        re.sub(
            r"\\\{(\w+)\\\}",
            lambda field: f"(?P<{field[1]}>{_FIELDS.get(field[1], _NAME)})",
            re.escape(line),
        )
    )


def _listed(text: str) -> list[str]:
    """
    The names in a list such as C{alice, bob (PM with carol), and 3 more}
    or C{#general (12), #python (3)}.
    """
    return [
        item.split(" ", 1)[0] for item in text.split(", ") if not _MORE.fullmatch(item)
    ]


_MORE = _template(messages.LIST_MORE.removeprefix(", "))
_ROOM_LINE = _template(messages.ROOM_LINE)
_CHAT_LINES = (_template(messages.CHAT_LINE), _ROOM_LINE)
_HISTORY_START = _template(messages.HISTORY_START)
_HISTORY_LINE = _template(messages.HISTORY_LINE)
_NOW_IN_ROOM = _template(messages.NOW_IN_ROOM)
_PM_STARTED = _template(messages.PM_STARTED)
_PM_ENDED = (_template(messages.YOU_LEFT_PM), _template(messages.PARTNER_LEFT))
_REQUEST_RECEIVED = _template(messages.PM_REQUEST_RECEIVED)
_REQUEST_ENDED = (
    _template(messages.REQUEST_FROM_EXPIRED),
    _template(messages.REQUEST_FROM_CANCELLED),
    _template(messages.REQUEST_REJECTED),
)
_USER_GONE = _template(messages.LEFT)
_ROOM_GONE = _template(messages.NO_SUCH_ROOM)
# The lines that name users or rooms worth completing.
_NAMING = (
    *_CHAT_LINES,
    _template(messages.JOINED),
    _template(messages.ONLINE_USERS),
    _REQUEST_RECEIVED,
    _PM_STARTED,
    _NOW_IN_ROOM,
    _template(messages.JOINED_ROOM),
    _template(messages.LEFT_ROOM),
    _template(messages.YOU_LEFT_ROOM),
    _template(messages.ROOMS),
    _template(messages.USERS_IN_ROOM),
    _template(messages.MISSED),
    _HISTORY_START,
)


class Stage(Enum):
    """
    Where the client is in the dialogue with the server.
    """

    CONNECTING = "connecting"
    USERNAME = "username"
    PASSWORD = "password"
    WAITING = "waiting"
    CHAT = "chat"
    CLOSED = "closed"


class LineKind(Enum):
    """
    What a line from the server is, for an interface that shows kinds
    apart.
    """

    NORMAL = "normal"
    OTHER_ROOM = "other room"
    HISTORY = "history"


class ChatUI(TypingProtocol):
    """
    What the client protocol needs from a user interface.
    """

    def showLine(self, text: str, kind: LineKind) -> None:
        """
        Show one line received from the server.
        """

    def alert(self, title: str) -> None:
        """
        Something needs the user's attention; C{title} says what.
        """

    def setPrompt(self, prompt: str, secret: bool) -> None:
        """
        Input is now read after C{prompt}; C{secret} input must not be shown.
        """

    def sent(self, stage: Stage, text: str) -> None:
        """
        The user's line C{text} was sent as an answer to C{stage}.
        """

    def closed(self, status: int, message: str | None) -> None:
        """
        The connection ended (or never started): say C{message} if any, and
        exit with C{status}.
        """


class HeartbeatSender(DatagramProtocol):
    """
    Sends the heartbeat token by UDP to the server every interval.
    """

    log = Logger()

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._loop: LoopingCall | None = None
        self.token = b""
        self.address: tuple[str, int] = ("", 0)
        self.interval = 0.0

    def beatTo(self, token: bytes, address: tuple[str, int], interval: float) -> None:
        """
        Send C{token} to C{address} now and every C{interval} seconds,
        replacing any earlier token.
        """
        self.token, self.address, self.interval = token, address, interval
        self.stop()
        self._loop = LoopingCall(self.beat)
        self._loop.clock = self._clock
        self._loop.start(interval, now=True).addErrback(
            lambda f: self.log.failure("Heartbeats stopped", f)
        )

    def beat(self) -> None:
        """
        Send the token once.
        """
        if self.transport is None:
            return
        try:
            self.transport.write(self.token, self.address)
        except OSError as e:
            self.log.debug("Heartbeat not sent: {error}", error=e)

    def stop(self) -> None:
        """
        Stop sending.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def stopProtocol(self) -> None:
        self.stop()


class ChatClientProtocol(Protocol):
    """
    The client side of the line protocol, independent of how it is shown.

    Lines the user enters (L{userLine}) are queued and sent only when the
    server asks for them: one after C{Username: }, one after C{Password: },
    and all of them once logged in.  So a script's lines go to the right
    prompts, and a line typed while a password is checked waits its turn.

    @ivar name: the name the user logged in with, once logged in.
    @ivar room: the current room, once logged in: C{#general} at login
        (after a takeover too, since the server does not say which room the
        session was in) until the server says C{You are now in ...}.
    @ivar partner: the private-chat partner, if any.
    @ivar requester: who asked us for a private chat, while we may answer.
    @ivar seen: the user and room names seen, for completion.
    @ivar loginCommands: lines sent right after login, after C{@HEARTBEAT}
        and before anything typed, and not shown as sent.
    """

    log = Logger()
    transport: StreamTransport  # type: ignore[assignment]

    def __init__(
        self, ui: ChatUI, reactor: Any = None, loginCommands: Sequence[str] = ()
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.ui = ui
        self.reactor = reactor
        self.loginCommands = loginCommands
        self.stage = Stage.CONNECTING
        self.name: str | None = None
        self.room = GENERAL
        self.partner: str | None = None
        self.requester: str | None = None
        self.seen = Seen()
        self.loggingOut = False
        self.connecting: Deferred[Any] | None = None
        self.inputEnded = False
        self.heartbeat: HeartbeatSender | None = None
        self._udpPort: Any = None
        self._heartbeatsAsked = 0
        self._buffer = b""
        self._typedName: str | None = None
        self._queue: deque[str] = deque()
        self._closeTimeout: IDelayedCall | None = None
        self._logoutSent = False
        self._closedWaiters: list[Deferred[None]] = []
        self._prompt: tuple[str, bool] | None = None
        self._inHistory = False
        self._mention: re.Pattern[str] | None = None

    # From the server

    def connectionMade(self) -> None:
        self.stage = Stage.WAITING
        self.connecting = None

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self.stage is not Stage.CLOSED:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            self.lineReceived(line.decode("utf-8", "replace"))
        if self.stage in (Stage.WAITING, Stage.USERNAME, Stage.PASSWORD):
            prompt = self._buffer.decode("utf-8", "replace")
            if prompt == messages.PROMPT_USERNAME:
                self._buffer = b""
                self._ask(Stage.USERNAME, prompt)
            elif prompt == messages.PROMPT_PASSWORD:
                self._buffer = b""
                self._ask(Stage.PASSWORD, prompt)

    def lineReceived(self, text: str) -> None:
        """
        Handle one line from the server, without its line end.
        """
        if self.stage is not Stage.CHAT:
            self.ui.showLine(text, LineKind.NORMAL)
            if (
                text == messages.LOGIN_SUCCESS
                and self.stage is Stage.WAITING
                and self._typedName is not None
            ):
                self._loggedIn(self._typedName)
            return
        if self._heartbeatLine(text):
            return
        self.ui.showLine(text, self._kindOf(text))
        self._see(text)
        self._follow(text)

    def _loggedIn(self, name: str) -> None:
        self.name = self.seen.me = name
        self.stage = Stage.CHAT
        self.seen.addRooms([self.room])
        self._mention = re.compile(rf"(?<![\w-]){re.escape(foldName(name))}(?![\w-])")
        self._heartbeatsAsked += 1
        self._send("@HEARTBEAT")
        for line in self.loginCommands:
            self._send(line)
        self._updatePrompt()
        self._drain()

    def _kindOf(self, text: str) -> LineKind:
        """
        Whether C{text} belongs to a history block (from its C{--- History}
        frame to its C{--- End of history ---}, or to the first line that is
        not a history line), comes from another room, or is neither.
        """
        if _HISTORY_START.fullmatch(text) is not None:
            self._inHistory = True
            return LineKind.HISTORY
        if self._inHistory:
            if text == messages.HISTORY_END:
                self._inHistory = False
                return LineKind.HISTORY
            if _HISTORY_LINE.fullmatch(text) is not None:
                return LineKind.HISTORY
            self._inHistory = False
        if _ROOM_LINE.fullmatch(text) is not None:
            return LineKind.OTHER_ROOM
        return LineKind.NORMAL

    def _see(self, text: str) -> None:
        """
        Remember the users and rooms C{text} names, or forget the user who
        left the chat or the room that does not exist.
        """
        if (match := _USER_GONE.fullmatch(text)) is not None:
            self.seen.removeUser(match["name"])
            return
        if (match := _ROOM_GONE.fullmatch(text)) is not None:
            self.seen.removeRoom(match["room"])
            return
        for pattern in _NAMING:
            if (match := pattern.fullmatch(text)) is not None:
                fields = {"name": "", "names": "", "room": "", "rooms": ""}
                fields.update(match.groupdict())
                self.seen.addUsers([fields["name"], *_listed(fields["names"])])
                self.seen.addRooms([fields["room"], *_listed(fields["rooms"])])
                return

    def _follow(self, text: str) -> None:
        """
        Follow what C{text} changes in the prompt (the current room, the
        private chat, a request to answer), and alert the user to a request
        or a chat line that names them.
        """
        for pattern in _CHAT_LINES:
            if (match := pattern.fullmatch(text)) is not None:
                assert self._mention is not None
                if self._mention.search(foldName(match["text"])) is not None:
                    self.ui.alert(f"{match['name']} mentioned you")
                return
        if (match := _NOW_IN_ROOM.fullmatch(text)) is not None:
            self.room = match["room"]
        elif (match := _PM_STARTED.fullmatch(text)) is not None:
            self.partner, self.requester = match["name"], None
        elif any(pattern.fullmatch(text) for pattern in _PM_ENDED):
            self.partner = None
        elif (match := _REQUEST_RECEIVED.fullmatch(text)) is not None:
            self.requester = match["name"]
            self.ui.alert(f"{self.requester} asks for a private chat")
        elif any(pattern.fullmatch(text) for pattern in _REQUEST_ENDED):
            self.requester = None
        else:
            return
        self._updatePrompt()

    def _heartbeatLine(self, text: str) -> bool:
        """
        Start heartbeats if C{text} is a C{HEARTBEAT} line; hide it, or the
        refusal of an older server, if the client asked for it.
        """
        match = _HEARTBEAT.fullmatch(text)
        asked = self._heartbeatsAsked > 0
        if match is None:
            refusal = messages.UNKNOWN_COMMAND.format(command="@HEARTBEAT")
            if asked and text == refusal:
                self._heartbeatsAsked -= 1
                return True
            return False
        try:
            port, interval = int(match.group(1)), float(match.group(3))
        except ValueError:
            return False
        if not 0 < port < 65536 or not interval > 0:
            return False
        self._startHeartbeats(match.group(2).encode("utf-8"), port, interval)
        if asked:
            self._heartbeatsAsked -= 1
        return asked

    def _startHeartbeats(self, token: bytes, port: int, interval: float) -> None:
        peer = self.transport.getPeer()
        host = getattr(peer, "host", None)
        if host is None:
            return
        if self.heartbeat is None:
            self.heartbeat = HeartbeatSender(self.reactor)
            interface = "::" if isinstance(peer, IPv6Address) else ""
            self._udpPort = self.reactor.listenUDP(
                0, self.heartbeat, interface=interface
            )
        self.log.debug(
            "Heartbeats to {host}:{port} every {interval}s",
            host=host,
            port=port,
            interval=interval,
        )
        self.heartbeat.beatTo(token, (host, port), interval)

    def chatPrompt(self) -> str:
        """
        The input prompt while logged in: the private chat, the request to
        answer, or else the current room.
        """
        if self.partner is not None:
            return f"{self.name} [PM with {self.partner}] > "
        if self.requester is not None:
            return f"{self.name} [PM with {self.requester}? y/n] > "
        return f"{self.name} [{self.room}] > "

    def _updatePrompt(self) -> None:
        self._setPrompt(self.chatPrompt(), False)

    def _setPrompt(self, prompt: str, secret: bool) -> None:
        if self._prompt != (prompt, secret):
            self._prompt = (prompt, secret)
            self.ui.setPrompt(prompt, secret)

    def _ask(self, stage: Stage, prompt: str) -> None:
        self.stage = stage
        self._setPrompt(prompt, stage is Stage.PASSWORD)
        self._drain()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stage = Stage.CLOSED
        if self._closeTimeout is not None and self._closeTimeout.active():
            self._closeTimeout.cancel()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._udpPort is not None:
            self._udpPort.stopListening()
            self._udpPort = None
        waiters, self._closedWaiters = self._closedWaiters, []
        for d in waiters:
            d.callback(None)
        self.ui.closed(*closingMessage(self.loggingOut, reason))

    def whenClosed(self) -> "Deferred[None]":
        """
        Fire when the connection is closed.
        """
        d: Deferred[None] = Deferred()
        if self.stage is Stage.CLOSED:
            d.callback(None)
        else:
            self._closedWaiters.append(d)
        return d

    # From the user

    def userLine(self, text: str) -> None:
        """
        The user entered C{text}: send it when the server is ready for it
        (or never, once logging out).
        """
        if self.loggingOut:
            return
        self._queue.append(text)
        self._drain()

    def endInput(self) -> None:
        """
        No more input will come: once the queued lines are sent, log out.
        """
        self.inputEnded = True
        self._drain()

    def _drain(self) -> None:
        while self._queue and self.stage in (
            Stage.USERNAME,
            Stage.PASSWORD,
            Stage.CHAT,
        ):
            text = self._queue.popleft()
            if not text.strip():
                continue
            stage = self.stage
            self._send(text)
            if stage is Stage.USERNAME:
                self._typedName = normalizeName(text) or text.strip()
                self.stage = Stage.WAITING
                self._setPrompt("", False)
            elif stage is Stage.PASSWORD:
                self.stage = Stage.WAITING
                self._setPrompt("", False)
            else:
                parsed = parseLine(text)
                if parsed is not None and parsed.name == "LOGOUT":
                    self.loggingOut = self._logoutSent = True
                elif parsed is not None and parsed.name == "@HEARTBEAT":
                    self._heartbeatsAsked = 0
            self.ui.sent(stage, text)
            if self.loggingOut:
                self._queue.clear()
                return
        if self.inputEnded and not self._queue:
            self.logout()

    def _send(self, text: str) -> None:
        self.transport.write(text.encode("utf-8") + b"\r\n")

    def logout(self) -> None:
        """
        Leave: send C{LOGOUT} if logged in (else just close), then close the
        connection if the server has not within L{LOGOUT_WAIT} seconds.
        """
        self.loggingOut = True
        if self.stage is Stage.CONNECTING:
            if self.connecting is not None:
                self.connecting.cancel()
            return
        if self.stage is Stage.CLOSED or self._closeTimeout is not None:
            return
        if self.stage is Stage.CHAT:
            if not self._logoutSent:
                self._send("LOGOUT")
                self._logoutSent = True
        else:
            self.transport.loseConnection()
        self._closeTimeout = self.reactor.callLater(
            LOGOUT_WAIT, self.transport.abortConnection
        )


class ClientFactory(Factory):
    """
    Connects the one L{ChatClientProtocol} made before connecting, so input
    read while connecting is kept.
    """

    def __init__(self, client: ChatClientProtocol) -> None:
        self.client = client

    def buildProtocol(self, addr: object) -> ChatClientProtocol:
        return self.client


def closingMessage(expected: bool, reason: Failure) -> tuple[int, str | None]:
    """
    The exit status and what to tell the user when the connection ends.
    """
    if expected:
        return 0, None
    if reason.check(ConnectionDone):
        return 1, "Disconnected: the server closed the connection."
    why = reason.getErrorMessage().rstrip(".")
    return 1, f"Disconnected: the connection to the server was lost ({why})."
