"""
The client side of the line protocol, independent of how it is shown: it
answers the server's prompts with the user's lines, follows the private-chat
state from the server's lines for the prompt, and sends the UDP heartbeats.
"""

import re
from collections import deque
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
from ..core.text import normalizeName
from ..frontends.line import messages

LOGOUT_WAIT = 5.0

_HEARTBEAT = re.compile(r"HEARTBEAT (\d+) (\S+) (\S+) (\S+)")


def _template(line: str) -> "re.Pattern[str]":
    """
    Compile a server line from L{messages} into a pattern capturing C{name}.
    """
    return re.compile(re.escape(line).replace(r"\{name\}", "(?P<name>.+)"))


_PM_STARTED = _template(messages.PM_STARTED)
_PM_ENDED = (_template(messages.YOU_LEFT_PM), _template(messages.PARTNER_LEFT))
_REQUEST_RECEIVED = _template(messages.PM_REQUEST_RECEIVED)
_REQUEST_ENDED = (
    _template(messages.REQUEST_FROM_EXPIRED),
    _template(messages.REQUEST_FROM_CANCELLED),
    _template(messages.REQUEST_REJECTED),
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


class ChatUI(TypingProtocol):
    """
    What the client protocol needs from a user interface.
    """

    def showLine(self, text: str) -> None:
        """
        Show one line received from the server.
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
    @ivar partner: the private-chat partner, if any.
    @ivar requester: who asked us for a private chat, while we may answer.
    """

    log = Logger()
    transport: StreamTransport  # type: ignore[assignment]

    def __init__(self, ui: ChatUI, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.ui = ui
        self.reactor = reactor
        self.stage = Stage.CONNECTING
        self.name: str | None = None
        self.partner: str | None = None
        self.requester: str | None = None
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
            self.ui.showLine(text)
            if text == messages.LOGIN_SUCCESS and self.stage is Stage.WAITING:
                self._loggedIn()
            return
        if self._heartbeatLine(text):
            return
        self.ui.showLine(text)
        self._trackPrivateChat(text)

    def _loggedIn(self) -> None:
        self.name = self._typedName
        self.stage = Stage.CHAT
        self._heartbeatsAsked += 1
        self._send("@HEARTBEAT")
        self._updatePrompt()
        self._drain()

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

    def _trackPrivateChat(self, text: str) -> None:
        match = _PM_STARTED.fullmatch(text)
        if match is not None:
            self.partner, self.requester = match.group("name"), None
        elif any(pattern.fullmatch(text) for pattern in _PM_ENDED):
            self.partner = None
        elif (match := _REQUEST_RECEIVED.fullmatch(text)) is not None:
            self.requester = match.group("name")
        elif any(pattern.fullmatch(text) for pattern in _REQUEST_ENDED):
            self.requester = None
        else:
            return
        self._updatePrompt()

    def chatPrompt(self) -> str:
        """
        The input prompt while logged in, showing the private-chat state.
        """
        if self.partner is not None:
            return f"{self.name} [PM with {self.partner}] > "
        if self.requester is not None:
            return f"{self.name} [PM with {self.requester}? y/n] > "
        return f"{self.name} > "

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
