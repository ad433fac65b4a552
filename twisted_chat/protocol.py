"""
The line protocol of one TCP connection: framing, decoding, the login
dialogue and the dispatch of commands to the hub and the account store.

Lines are UTF-8 and end in LF or CRLF.  The protocol parses lines and formats
replies; every decision about other users is the hub's.
"""

import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from . import messages
from .accounts import AuthResult
from .commands import ANSWERS, COMMANDS, parseLine
from .hub import (
    Departure,
    HubUnavailableError,
    IChatClient,
    Request,
    RequestResult,
    Session,
    encodeLine,
)
from .limits import TokenBucket, addressKey
from .presence import IHeartbeatClient
from .text import clean, foldName, normalizeName

if TYPE_CHECKING:
    from .service import ChatFactory

T = TypeVar("T")

SLOW_DOWN_INTERVAL = 10.0
KERNEL_SEND_BUFFER = 65536

_REQUEST_REPLIES = {
    Request.SENT: messages.PM_REQUEST_SENT,
    Request.SELF: messages.PM_WITH_YOURSELF,
    Request.OFFLINE: messages.USER_OFFLINE,
    Request.TARGET_IN_PM: messages.USER_IN_PM,
    Request.TARGET_HAS_REQUEST: messages.USER_HAS_REQUEST,
    Request.ALREADY_IN_PM: messages.ALREADY_IN_PM,
    Request.ALREADY_ASKED: messages.YOU_HAVE_REQUEST,
    Request.BEING_ASKED: messages.PM_REQUEST_RECEIVED,
}


@implementer(IChatClient, IHeartbeatClient)
class ChatProtocol(LineReceiver):
    """
    One client connection, from the welcome line to the goodbye.

    Input is paused while an answer this connection waits for is outstanding
    (a password hash, a hub call), so pipelined lines are handled strictly
    in order.  Several reasons may hold at once; input resumes when none does.

    @ivar session: the logged-in session, or L{None} before login and after
        the user left.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    factory: "ChatFactory"
    log = Logger()

    # Slots keep a session small (ten thousand idle ones should fit in well
    # under 100 MB); Twisted's own attributes stay in the instance dict.
    __slots__ = (
        "_discarding",
        "_failedLogins",
        "_flood",
        "_flushPlanned",
        "_lastSlowDown",
        "_loginTimeLeft",
        "_loginTimer",
        "_outgoing",
        "_pauseReasons",
        "_pendingName",
        "_sendqPaused",
        "_sendqVerdict",
        "_sentWhilePaused",
        "_socket",
        "_stage",
        "_writeDirect",
        "addressKey",
        "session",
    )

    def __init__(self, addressKey: str | None = None) -> None:
        self.session: Session | None = None
        self.addressKey = addressKey
        self._pauseReasons: frozenset[str] = frozenset()
        self._discarding = False
        self._flood: TokenBucket | None = None
        self._lastSlowDown = float("-inf")
        self._loginTimer: IDelayedCall | None = None
        self._loginTimeLeft = 0.0
        self._sendqPaused = False
        self._sentWhilePaused = 0
        self._sendqVerdict: IDelayedCall | None = None
        self._outgoing: list[bytes] = []
        self._flushPlanned = False
        self._socket: socket.socket | None = None
        self._writeDirect = False
        self._stage: Callable[[str], None] = self._receiveUsername
        self._pendingName: str | None = None
        self._failedLogins = 0

    # Connection

    def connectionMade(self) -> None:
        factory, config = self.factory, self.factory.config
        factory.connectionMade(self)
        self.MAX_LENGTH = config.maxLineBytes or sys.maxsize
        if config.floodRate and config.floodBurst:
            self._flood = TokenBucket(
                config.floodRate, config.floodBurst, factory.clock.seconds()
            )
        if config.loginTimeout:
            self._loginTimeLeft = config.loginTimeout
            self._startLoginTimer()
        self._watchSendQueue(config.sendqSoftBytes)
        enableKeepAlive(self.transport)
        handle = getattr(self.transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket) and _transportIdle(self.transport):
            self._socket = handle
            self._writeDirect = True
            # Bound what the kernel buffers for a client that does not read
            # (Linux grows it to megabytes otherwise), so that the send-queue
            # limit, not the kernel, decides, and memory stays bounded.
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        self.sendText(messages.WELCOME)
        self.prompt(messages.PROMPT_USERNAME)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Twisted leaves C{connected} set; clear it so that answers arriving
        # after the connection ended (a password check) are dropped.
        self.connected = False
        self.factory.presence.untrack(self)
        self._stopLoginTimer()
        if self.session is not None:
            self._leave(self.factory.audit.lostConnection)
        # Last: when this was the last connection at shutdown, the audit log
        # closes, and the departure above must be written first.
        self.factory.connectionLost(self)

    def sendText(self, text: str) -> None:
        """
        Send one line to this client.
        """
        self.deliver(encodeLine(text))

    def prompt(self, text: str) -> None:
        """
        Send a prompt, which has no line end.
        """
        self.deliver(text.encode("utf-8"))

    def deliver(self, data: bytes) -> None:
        """
        Queue C{data} for this client.  The queue goes out in one write when
        the factory says (at the end of the reactor's pass), so a client that
        gets many lines at once costs one system call, not one per line.
        """
        self._outgoing.append(data)
        if not self._flushPlanned:
            self._flushPlanned = True
            self.factory.flushSoon(self)

    def announce(self, data: bytes) -> None:
        """
        Queue C{data}, a notice, to go out with the next write, which the
        factory makes at most a few times a second when notices crowd in.
        """
        queue = self._outgoing
        queue.append(data)
        if len(queue) == 1:
            self.factory.flushLater(self)

    def flush(self) -> None:
        """
        Write what is queued: straight to the socket while nothing waits in
        the transport before it (no buffering, no poller registration), and
        what the socket does not take through the transport, where it counts
        against the send-queue limit.
        """
        self._flushPlanned = False
        queue = self._outgoing
        if not queue:
            return
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        queue.clear()
        if self._writeDirect or self._mayWriteDirect():
            try:
                sent = self._socket.send(data)  # type: ignore[union-attr]
            except OSError:
                sent = 0  # the transport will find the error when it writes
            if sent == len(data):
                return
            data = data[sent:]
            self._writeDirect = False
        self._countUnsent(len(data))
        self.transport.write(data)

    def _mayWriteDirect(self) -> bool:
        """
        Whether writing to the socket itself keeps the order of the bytes,
        because the transport has sent all it was given; remembered until
        the next write through the transport.
        """
        self._writeDirect = self._socket is not None and _transportIdle(self.transport)
        return self._writeDirect

    def close(self) -> None:
        """
        Send what is queued, then close the connection.
        """
        self.flush()
        self._writeDirect = False
        self.transport.loseConnection()

    def _countUnsent(self, size: int) -> None:
        """
        Count C{size} more bytes left in the transport's buffer, dropping
        the client if its send queue grows past the limit (it does not read
        what it is sent).
        """
        if self._sendqPaused:
            self._sentWhilePaused += size
            limit = self.factory.config.maxSendqBytes
            if (
                limit
                and self.factory.config.sendqSoftBytes + self._sentWhilePaused > limit
                and self._sendqVerdict is None
            ):
                self._sendqVerdict = self.factory.clock.callLater(
                    0, self._sendQueueVerdict, 2
                )

    # Limits

    def _watchSendQueue(self, softLimit: int) -> None:
        """
        Have the transport tell us when more than C{softLimit} bytes wait to
        be sent, by lowering its buffer size and registering as a producer:
        above it, input stops and what is queued meanwhile is counted.
        """
        transport = self.transport
        # The class, not the instance: a TLS wrapper forwards attribute
        # lookups to the transport it wraps.
        while transport is not None and not hasattr(type(transport), "bufferSize"):
            transport = getattr(transport, "transport", None)
        if transport is not None and softLimit:
            transport.bufferSize = softLimit
        # Under TLS, register with the TCP transport itself: the TLS layer
        # pauses its producer while the handshake is pending (input would
        # stop and the handshake never finish), and does not close on
        # loseConnection while a producer is registered with it.
        (transport or self.transport).registerProducer(_SendQueueWatch(self), True)

    def sendQueuePaused(self) -> None:
        # The transport calls this again on every write while its buffer is
        # full: count from the first call only.
        if self._sendqPaused:
            return
        self._sendqPaused = True
        self._sentWhilePaused = 0
        self.pauseFor("sendq")

    def sendQueueDrained(self) -> None:
        self._sendqPaused = False
        self.resumeFrom("sendq")

    def _sendQueueVerdict(self, turns: int) -> None:
        """
        The send queue passed the limit C{turns} turns of the reactor ago:
        drop the client if it is still over.  What was written in one turn
        has not been offered to the socket yet (a client that reads promptly
        may get a burst from several senders at once), so the verdict waits
        two turns: one for the transport to write, one to look.
        """
        self._sendqVerdict = None
        limit = self.factory.config.maxSendqBytes
        soft = self.factory.config.sendqSoftBytes
        if not (self.connected and self._sendqPaused):
            return
        if soft + self._sentWhilePaused <= limit:
            return
        if turns > 1:
            self._sendqVerdict = self.factory.clock.callLater(
                0, self._sendQueueVerdict, turns - 1
            )
        else:
            self._sendQueueExceeded()

    def _sendQueueExceeded(self) -> None:
        self.log.warn(
            "SendQ exceeded: dropping {peer} ({name})",
            peer=self._peer(),
            name=self.session.name if self.session else "-",
        )
        self._sendqPaused = False
        self.transport.abortConnection()

    def _startLoginTimer(self) -> None:
        if self._loginTimeLeft and self._loginTimer is None:
            self._loginTimer = self.factory.clock.callLater(
                self._loginTimeLeft, self._loginTimedOut
            )

    def _stopLoginTimer(self) -> None:
        """
        Stop the login clock, keeping the time left (while the server itself
        works for this connection, the clock does not run).
        """
        timer, self._loginTimer = self._loginTimer, None
        if timer is not None and timer.active():
            self._loginTimeLeft = timer.getTime() - self.factory.clock.seconds()
            timer.cancel()

    def _loginTimedOut(self) -> None:
        self._loginTimer = None
        self.sendText(messages.LOGIN_TIMED_OUT)
        self.close()

    def _floodPaused(self) -> None:
        """
        The line at hand is over the flood limit: stop reading until the
        bucket has a token, and say so at most every ten seconds.
        """
        assert self._flood is not None
        now = self.factory.clock.seconds()
        self.pauseFor("flood")
        # At least a millisecond: float rounding can leave the token a hair
        # short, and a wait that rounds to no time at all would spin forever.
        wait = max(self._flood.wait(now), 0.001)
        self.factory.clock.callLater(wait, self.resumeFrom, "flood")
        if now - self._lastSlowDown >= SLOW_DOWN_INTERVAL:
            self._lastSlowDown = now
            self.sendText(messages.SLOW_DOWN)

    def supersede(self) -> None:
        self.session = None
        self.factory.presence.untrack(self)
        self.sendText(messages.LOGGED_IN_ELSEWHERE)
        self.close()

    # Framing

    def dataReceived(self, data: bytes) -> None:
        """
        Split input into lines on LF, handling each in order unless paused.

        Unlike L{LineReceiver.dataReceived}, this scans the buffer once
        however many lines a chunk holds, and a line over L{MAX_LENGTH} is
        skipped up to its LF while the lines after it are handled.
        """
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._discarding = False
        self._buffer += data
        limit = self.factory.config.maxRecvqBytes
        if self.paused and limit and len(self._buffer) > limit:
            self._excessFlood()
            return
        if self._busyReceiving:
            return
        self._busyReceiving = True
        try:
            self._handleBufferedLines()
        finally:
            self._busyReceiving = False

    def _excessFlood(self) -> None:
        self.log.warn("Excess flood: dropping {peer}", peer=self._peer())
        self._buffer = b""
        self.sendText(messages.EXCESS_FLOOD)
        self.close()

    def _handleBufferedLines(self) -> None:
        start = 0
        flood, clock = self._flood, self.factory.clock
        while not self.paused and self.connected and not self.transport.disconnecting:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            if flood is not None and not flood.take(clock.seconds()):
                self._floodPaused()
                break
            line = self._buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.MAX_LENGTH:
                self.lineLengthExceeded(line)
            else:
                self.lineReceived(line)
        rest = self._buffer = self._buffer[start:]
        if not self.paused and len(rest) > self.MAX_LENGTH + 1:
            self._buffer = b""
            self._discarding = True
            self.lineLengthExceeded(rest)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendText(messages.LINE_TOO_LONG.format(limit=self.MAX_LENGTH))

    def pauseFor(self, reason: str) -> None:
        """
        Stop handling input until L{resumeFrom} is called with C{reason}.
        """
        if not self._pauseReasons:
            self.pauseProducing()
        self._pauseReasons |= {reason}

    def resumeFrom(self, reason: str) -> None:
        """
        Drop C{reason} for pausing; resume input if no other reason holds.
        """
        self._pauseReasons -= {reason}
        if not self._pauseReasons and self.paused and self.connected:
            self.resumeProducing()

    def _await(
        self, d: "Deferred[T]", callback: Callable[[T], object], reason: str = "reply"
    ) -> None:
        """
        Pause input until C{d} has fired and C{callback} has handled its
        result, so that the reply comes before the next line is read.
        """
        self.pauseFor(reason)
        self._stopLoginTimer()
        d.addCallback(callback)
        d.addErrback(self._crashed)
        d.addBoth(lambda _: self._resumeAfterAnswer(reason))

    def _resumeAfterAnswer(self, reason: str) -> None:
        if self.session is None and self.connected:
            self._startLoginTimer()
        self.resumeFrom(reason)

    def _crashed(self, failure: Failure) -> None:
        """
        Log an unexpected error and close this connection only; but if the
        hub is out of reach, just say the service is degraded.
        """
        if failure.check(HubUnavailableError):
            if self.connected:
                self.sendText(messages.SERVICE_DEGRADED)
                if self.session is None:
                    self.prompt(messages.PROMPT_USERNAME)
            return
        self.log.failure("Error in the session of {peer}", failure, peer=self._peer())
        if self.connected:
            self.sendText(messages.SERVER_ERROR)
            self.close()

    def _peer(self) -> str:
        peer = self.transport.getPeer()
        return f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"

    def lineReceived(self, line: bytes) -> None:
        """
        Decode a line and hand it to the current stage: the login dialogue
        gets it as typed (a name with control or bidirectional characters is
        refused, not silently changed), the chat gets it cleaned.
        """
        raw = line.decode("utf-8", "replace")
        text = clean(raw)
        if not text.strip():
            return
        try:
            self._stage(text if self.session is not None else raw)
        except Exception:
            self._crashed(Failure())

    # Login

    def _receiveUsername(self, text: str) -> None:
        name = normalizeName(text)
        if name is None:
            self.sendText(messages.INVALID_USERNAME)
            self.prompt(messages.PROMPT_USERNAME)
            return
        self._pendingName = name
        self._stage = self._receivePassword
        self.prompt(messages.PROMPT_PASSWORD)

    def _receivePassword(self, password: str) -> None:
        name, self._pendingName = self._pendingName, None
        assert name is not None
        self._stage = self._receiveUsername
        factory = self.factory
        backoffKey = (foldName(name), self._host())

        def known(account: str | None) -> Deferred[Any] | None:
            if account is None and not factory.mayRegister(self.addressKey):
                self.sendText(messages.TOO_MANY_REGISTRATIONS)
                self.prompt(messages.PROMPT_USERNAME)
                return None
            delay = factory.loginBackoff.delay(backoffKey)
            if delay:
                checked = deferLater(
                    factory.clock, delay, factory.accounts.authenticate, name, password
                )
            else:
                checked = factory.accounts.authenticate(name, password)
            return checked.addCallback(self._authenticated, backoffKey)

        self._await(factory.accounts.lookup(name), known)

    def _host(self) -> str:
        peer = self.transport.getPeer()
        return addressKey(getattr(peer, "host", str(peer)))

    def _authenticated(
        self, result: tuple[AuthResult, str], backoffKey: tuple[str, str]
    ) -> "Deferred[None] | None":
        outcome, name = result
        if outcome is AuthResult.REGISTERED:
            self.factory.audit.registered(name)
        if outcome is AuthResult.REJECTED:
            self.factory.loginBackoff.failed(backoffKey)
        else:
            self.factory.loginBackoff.succeeded(backoffKey)
        if not self.connected:
            return None
        if outcome is AuthResult.REJECTED:
            self._failedLogins += 1
            if self._failedLogins >= (
                self.factory.config.maxFailedLogins or sys.maxsize
            ):
                self.sendText(messages.TOO_MANY_FAILED_LOGINS)
                self.close()
            else:
                self.sendText(messages.WRONG_PASSWORD)
                self.prompt(messages.PROMPT_USERNAME)
            return None
        session = Session(name, self)
        return self.factory.hub.attach(session).addCallback(
            lambda _: self._attached(session)
        )

    def _attached(self, session: Session) -> None:
        self.session = session
        self._stopLoginTimer()
        self._loginTimeLeft = 0.0
        self._stage = self._receiveChat
        peer = self.transport.getPeer()
        self.factory.audit.loggedIn(
            session.name, getattr(peer, "host", str(peer)), getattr(peer, "port", 0)
        )
        self.factory.onlineChanged()
        if not self.connected:
            self._leave(self.factory.audit.lostConnection)
            return
        self.sendText(messages.LOGIN_SUCCESS)

    def _leave(self, record: Callable[[str], None]) -> None:
        """
        End the session: the hub tells whoever needs to know, and the audit
        log records it through C{record} unless the session was superseded.
        """
        session, self.session = self.session, None
        assert session is not None

        def departed(departure: Departure | None) -> None:
            if departure is None:
                return
            record(session.name)
            if departure.partner is not None:
                self.factory.audit.privateChatClosed(session.name, departure.partner)
            self.factory.onlineChanged()

        self.factory.hub.detach(session).addCallback(departed).addErrback(self._crashed)

    # Chat

    def _receiveChat(self, text: str) -> None:
        parsed = parseLine(text)
        if parsed is None:
            self._say(text)
        elif parsed.name not in COMMANDS and parsed.name not in ANSWERS:
            self.sendText(messages.UNKNOWN_COMMAND.format(command=parsed.name))
        elif parsed.arguments is None:
            self.sendText(messages.USAGE.format(usage=COMMANDS[parsed.name].usage))
        elif parsed.name in ANSWERS:
            self._answer(ANSWERS[parsed.name], text)
        else:
            handler = getattr(self, "cmd_" + parsed.name.lstrip("@").replace(" ", "_"))
            handler(*parsed.arguments)

    def _say(self, text: str) -> None:
        session = self.session
        assert session is not None

        def said(toGroup: bool) -> None:
            if toGroup:
                self.factory.audit.message(session.name, text)

        self.factory.hub.say(session, text).addCallback(said).addErrback(self._crashed)

    def _answer(self, accept: bool, text: str | None) -> None:
        """
        Answer a pending request; with no request pending, C{text} (a plain
        C{y} or C{n}) is chat, and C{@ACCEPT}/C{@REJECT} (C{text=None}) get
        an explanation.
        """
        session = self.session
        assert session is not None

        def answered(requester: str | None) -> None:
            if requester is None:
                if text is None:
                    self.sendText(messages.NO_REQUEST)
                else:
                    self._say(text)
            elif accept:
                self.factory.audit.privateChatStarted(requester, session.name)
                self.sendText(messages.PM_STARTED.format(name=requester))
            else:
                self.sendText(messages.REQUEST_REJECTED)

        self._await(self.factory.hub.answerPrivateChat(session, accept), answered)

    def cmd_ACCEPT(self) -> None:
        self._answer(True, None)

    def cmd_REJECT(self) -> None:
        self._answer(False, None)

    def cmd_PM(self, target: str) -> None:
        session = self.session
        assert session is not None
        name = normalizeName(target)
        if name is None:
            self.sendText(messages.USER_DOES_NOT_EXIST.format(name=target))
            return

        def requested(result: RequestResult) -> Deferred[Any] | None:
            if result.outcome is Request.OFFLINE:
                return self.factory.accounts.lookup(name).addCallback(offline)
            if result.outcome is Request.SENT:
                self.factory.audit.privateChatRequested(session.name, result.name)
            self.sendText(_REQUEST_REPLIES[result.outcome].format(name=result.name))
            return None

        def offline(account: str | None) -> None:
            if account is None:
                self.sendText(messages.USER_DOES_NOT_EXIST.format(name=name))
            else:
                self.sendText(messages.USER_OFFLINE.format(name=account))

        self._await(self.factory.hub.requestPrivateChat(session, name), requested)

    def cmd_EXIT_PM(self) -> None:
        session = self.session
        assert session is not None

        def left(partner: str | None) -> None:
            if partner is None:
                self.sendText(messages.NOT_IN_PM)
            else:
                self.factory.audit.privateChatClosed(session.name, partner)
                self.sendText(messages.YOU_LEFT_PM.format(name=partner))

        self._await(self.factory.hub.leavePrivateChat(session), left)

    def cmd_WHO(self) -> None:
        self._await(self.factory.hub.online(), self._listOnline)

    def _listOnline(self, users: list[Any]) -> None:
        shown = [
            messages.WHO_ENTRY_IN_PM.format(name=user.name, partner=user.partner)
            if user.partner
            else user.name
            for user in users[: messages.LIST_LIMIT]
        ]
        names = ", ".join(shown)
        if len(users) > messages.LIST_LIMIT:
            names += messages.LIST_MORE.format(count=len(users) - messages.LIST_LIMIT)
        self.sendText(messages.ONLINE_USERS.format(names=names))

    def cmd_SEARCH(self, text: str) -> None:
        def found(names: list[str]) -> Deferred[Any]:
            return self.factory.hub.online().addCallback(
                lambda users: self._listFound(text, names, {u.name for u in users})
            )

        self._await(self.factory.accounts.search(text), found)

    def _listFound(self, text: str, names: list[str], online: set[str]) -> None:
        self.sendText(messages.SEARCH_FOUND.format(count=len(names), text=text))
        for name in names[: messages.LIST_LIMIT]:
            entry = (
                messages.SEARCH_ONLINE if name in online else messages.SEARCH_OFFLINE
            )
            self.sendText(entry.format(name=name))
        if len(names) > messages.LIST_LIMIT:
            more = len(names) - messages.LIST_LIMIT
            self.sendText(messages.SEARCH_MORE.format(count=more))

    def cmd_PASSWORD(self, old: str, new: str) -> None:
        session = self.session
        assert session is not None

        def changed(ok: bool) -> None:
            self.sendText(messages.PASSWORD_CHANGED if ok else messages.WRONG_PASSWORD)

        self._await(
            self.factory.accounts.changePassword(session.name, old, new), changed
        )

    def cmd_HELP(self) -> None:
        for line in messages.HELP:
            self.sendText(line)

    def cmd_HEARTBEAT(self) -> None:
        self.sendText(self.factory.presence.track(self))

    def heartbeatsStopped(self, timeout: float) -> None:
        """
        The client stopped heartbeating (a closed lid, a pulled cable): drop
        the connection without waiting for it to flush.
        """
        if self.session is not None:
            self.factory.audit.heartbeatLost(self.session.name, timeout)
        self.transport.abortConnection()

    def cmd_LOGOUT(self) -> None:
        session = self.session
        assert session is not None
        self.sendText(messages.GOODBYE.format(name=session.name))
        self._leave(self.factory.audit.loggedOut)
        self.close()


def _transportIdle(transport: Any) -> bool:
    """
    Whether a TCP transport has nothing buffered to send, so that writing
    to its socket directly keeps the order of the bytes.  This reads the
    buffer of Twisted's L{twisted.internet.abstract.FileDescriptor}; a
    transport without one (TLS, tests) is never idle, and is written to
    through its C{write} only.
    """
    try:
        return (
            not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
            and not transport.disconnecting
        )
    except AttributeError:
        return False


# Probe a silent peer after 60 s, every 10 s, 5 times: a dead peer is reaped
# in about two minutes instead of the kernel's default two hours.
KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 5))


def enableKeepAlive(transport: object) -> None:
    """
    Turn on TCP keepalive with short timings on the socket under
    C{transport} (through TLS too), where the platform has the options.
    """
    while transport is not None:
        handle = getattr(transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for name, value in KEEPALIVE_OPTIONS:
                option = getattr(socket, name, None)
                if option is not None:
                    handle.setsockopt(socket.IPPROTO_TCP, option, value)
            return
        transport = getattr(transport, "transport", None)


@implementer(IPushProducer)
class _SendQueueWatch:
    """
    Registered with a connection's transport, which pauses it when its send
    buffer fills up and resumes it when the buffer is empty again.
    """

    def __init__(self, protocol: ChatProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        self._protocol.sendQueuePaused()

    def resumeProducing(self) -> None:
        self._protocol.sendQueueDrained()

    def stopProducing(self) -> None:
        """
        The connection is closing; nothing to do.
        """
