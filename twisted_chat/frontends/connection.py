"""
What every stream front-end needs beneath its wire format: admission within
the connection limits, an output queue written once per reactor pass
(straight to the socket when nothing waits before it), send-queue
accounting, input paused for any of several reasons, the login clock, the
flood bucket, TCP keepalive and Nagle's algorithm, and line framing for the
front-ends that speak lines.
"""

import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .._types import StreamTransport
from ..batch import PassBatch
from ..config import ServerConfig
from ..core.events import (
    Event,
    ExcessFlood,
    LineTooLong,
    LoginTimedOut,
    ServerError,
    ServiceDegraded,
    ShuttingDown,
    SlowDown,
)
from ..core.hub import HubUnavailableError, IChatClient
from ..core.limits import ConnectionCounter, RateLimiter, TokenBucket, addressKey
from ..core.limits import isLoopback as _isLoopback
from ..core.services import ChatServices, IHeartbeatClient
from ..core.session import Peer, SessionCore

SLOW_DOWN_INTERVAL = 10.0
KERNEL_SEND_BUFFER = 65536

# Seconds between writes of join and leave notices to a client while they
# crowd in (a lone notice goes at once): a thousand people logging in one
# after another would otherwise cost every client a write per arrival.
NOTICE_INTERVAL = 1.0

# Polls of the reactor a client's output may wait for after the pass that
# queued it, while each poll brings more input (the first is always waited
# for; it returns at once when nothing is there to read).
EXTRA_POLLS = 4

# On a hub, seconds the output of a pass waits before those polls begin:
# the nodes send their batches of lines as the same step starts (see
# twisted_chat.redis.hub), and they reach a node some hundreds of
# microseconds apart, then to share one write per user.
HUB_FIRST_WAIT = 0.001

# Probe a silent peer after 60 s, every 10 s, 5 times: a dead peer is reaped
# in about two minutes instead of the kernel's default two hours.
KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 5))

_NO_REASONS: frozenset[str] = frozenset()


class Coalescer:
    """
    The connections with output queued, written together after the pass of
    the reactor that queued the first of them and one more poll, and after
    up to L{EXTRA_POLLS} polls while each one brought input: lines that
    arrive close together (several senders' bursts) then share one write
    per client instead of costing one each.  A lone line waits for one poll
    with nothing to read, which returns at once.  Each client's queue keeps
    its order; only when it is written changes.  With a C{firstWait}, the
    first poll waited for is the first after that many seconds.

    @ivar inputs: how many reads of input the connections have had; the
        connections add to it, and an unchanged count says a poll brought
        nothing.
    """

    def __init__(
        self,
        clock: IReactorTime | None,
        handle: Callable[[list["StreamConnection"]], None],
        extraPolls: int = EXTRA_POLLS,
        firstWait: float = 0.0,
    ) -> None:
        self._clock = clock
        self._handle = handle
        self._extraPolls = extraPolls
        self._firstWait = firstWait
        self._items: list[StreamConnection] = []
        self._seen = 0
        self.inputs = 0

    def inputCame(self) -> None:
        """
        A read of input happened (from a client, or from another node).
        """
        self.inputs += 1

    def add(self, item: "StreamConnection") -> None:
        """
        Write C{item}'s queue with the others, soon.
        """
        clock = self._clock
        if clock is None:
            self._handle([item])
            return
        if not self._items:
            self._seen = self.inputs
            clock.callLater(self._firstWait, self._poll, self._extraPolls)
        self._items.append(item)

    def _poll(self, left: int) -> None:
        """
        A poll has passed since the last look: wait for one more if it
        brought input (or if it is the first), else write.
        """
        if left and (left == self._extraPolls or self.inputs != self._seen):
            self._seen = self.inputs
            assert self._clock is not None
            self._clock.callLater(0, self._poll, left - 1)
            return
        items, self._items = self._items, []
        self._handle(items)


class Refused(Protocol):
    """
    The answer to a connection over the limits: C{data} (what the front-end
    says to it, in its own wire format), then hang up.
    """

    transport: StreamTransport  # type: ignore[assignment]

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connectionMade(self) -> None:
        self.transport.write(self.data)
        self.transport.loseConnection()


class Connections:
    """
    The open connections of every front-end of one node, and what they
    share: the connection limits, the write batches, and a way to wait until
    all are closed.

    @ivar open: every open connection, logged in or not.
    """

    log = Logger()

    def __init__(
        self,
        services: ChatServices,
        batchWrites: IReactorTime | None = None,
    ) -> None:
        self.services = services
        self.config = services.config
        self.clock = services.clock
        self.open: set[StreamConnection] = set()
        config = services.config
        self._counter = ConnectionCounter(
            config.maxConnections, config.maxConnectionsPerIp
        )
        self._newConnections = RateLimiter(config.maxNewConnectionsPerIp, 60.0)
        self._allClosed: list[Deferred[None]] = []
        # Have a connection write its queued output a few polls of the
        # reactor (given as batchWrites; without it, at once) after it was
        # queued, so that a client gets the lines of several passes in one
        # write; on a hub, those of every node's batch of a step too.
        self.writes = Coalescer(
            batchWrites,
            self._flushAll,
            firstWait=HUB_FIRST_WAIT if config.hub is not None else 0.0,
        )
        self.flushSoon: Callable[[StreamConnection], None] = self.writes.add
        # The same for a connection that has only notices queued, at most
        # every NOTICE_INTERVAL seconds.
        self.flushLater: Callable[[StreamConnection], None] = PassBatch(
            batchWrites, self._flushAll, NOTICE_INTERVAL
        ).add

    def admit(self, addr: IAddress | None) -> tuple[bool, str | None]:
        """
        Count a new connection from C{addr} if the limits allow it.

        @return: whether they do, and the key its address is counted under
            (L{None}: exempt, as loopback is unless configured otherwise).
        """
        key = self.limitKey(addr)
        withinRate = key is None or self._newConnections.allow(
            key, self.clock.seconds()
        )
        if not (withinRate and self._counter.admit(key)):
            host = getattr(addr, "host", None)
            self.log.info("Refused a connection from {host}: too many", host=host)
            return False, key
        return True, key

    def limitKey(self, addr: IAddress | None) -> str | None:
        """
        The key the per-address limits count a connection from C{addr} under
        (L{None}: exempt, as loopback is unless configured otherwise).
        """
        host = getattr(addr, "host", None)
        if host is None or (self.config.exemptLoopback and _isLoopback(host)):
            return None
        return addressKey(host)

    def release(self, key: str | None) -> None:
        """
        Forget a connection admitted under C{key}, as it ends.
        """
        self._counter.release(key)

    def _flushAll(self, connections: list["StreamConnection"]) -> None:
        for connection in connections:
            try:
                connection.flush()
            except Exception:
                self.log.failure("Error writing to a client")
                connection.transport.abortConnection()

    def added(self, connection: "StreamConnection") -> None:
        self.open.add(connection)

    def removed(self, connection: "StreamConnection") -> None:
        if connection in self.open:
            self.open.discard(connection)
            self.release(connection.limitKey)
        if not self.open:
            waiting, self._allClosed = self._allClosed, []
            for d in waiting:
                d.callback(None)

    def whenAllClosed(self) -> "Deferred[None]":
        """
        Fire once no connection is open.
        """
        if not self.open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._allClosed.append(d)
        return d


@implementer(IChatClient, IHeartbeatClient)
class StreamConnection(Protocol):
    """
    One connection of a stream front-end, whatever its wire format.

    Subclasses render events (L{notify}), frame input and hand it to the
    session core; this class sends what they queue and enforces the limits
    that belong to a byte stream.  Input is paused while an answer the
    connection waits for is outstanding (a password hash, a hub call), so
    pipelined input is handled strictly in order; several reasons may hold
    at once, and input resumes when none does.

    @ivar core: the session core of this connection's user.
    @ivar limitKey: the key the per-address limits count this connection
        under (L{None}: exempt).
    """

    log = Logger()

    # Slots keep a session small (ten thousand idle ones should fit in well
    # under 100 MB); Twisted's own attributes stay in the instance dict.
    __slots__ = (
        "_flood",
        "_flushPlanned",
        "_lastSlowDown",
        "_loginTimeLeft",
        "_loginTimer",
        "_outgoing",
        "_pauseReasons",
        "_sendqPaused",
        "_sendqTransport",
        "_sendqVerdict",
        "_sentWhilePaused",
        "_socket",
        "_writeDirect",
        "connections",
        "core",
        "limitKey",
        "paused",
    )

    connections: Connections
    core: SessionCore
    transport: StreamTransport  # type: ignore[assignment]
    # Whether the client gets its own room lines back.
    echoes = False
    # Set to what the session core tells, by subclasses (per class, or per
    # connection where capabilities choose it, as on IRC).
    renderer: Any

    def __init__(self, connections: Connections, limitKey: str | None) -> None:
        self.connections = connections
        self.limitKey = limitKey
        self.paused = False
        self._pauseReasons = _NO_REASONS
        self._flood: TokenBucket | None = None
        self._lastSlowDown = float("-inf")
        self._loginTimer: IDelayedCall | None = None
        self._loginTimeLeft = 0.0
        self._sendqPaused = False
        self._sentWhilePaused = 0
        self._sendqTransport: Any = None
        self._sendqVerdict: IDelayedCall | None = None
        self._outgoing: list[bytes] = []
        self._flushPlanned = False
        self._socket: socket.socket | None = None
        self._writeDirect = False

    @property
    def config(self) -> ServerConfig:
        return self.connections.config

    @property
    def clock(self) -> IReactorTime:
        return self.connections.clock

    # Connection

    def connectionMade(self) -> None:
        connections, config = self.connections, self.connections.config
        connections.added(self)
        peer = self.transport.getPeer()
        self.core = SessionCore(
            connections.services,
            self,
            Peer(
                str(getattr(peer, "host", peer)),
                int(getattr(peer, "port", 0)),
                self.limitKey,
            ),
        )
        if config.floodRate and config.floodBurst:
            self._flood = TokenBucket(
                config.floodRate, config.floodBurst, self.clock.seconds()
            )
        if config.loginTimeout:
            self._loginTimeLeft = config.loginTimeout
            self._startLoginTimer()
        self._watchSendQueue(config.sendqSoftBytes)
        # Nagle's algorithm stays on while lines are written as they come
        # (one node): it merges a client's writes of nearby passes, and with
        # TCP_NODELAY the fan-out costs 25 to 30% more CPU.  On a hub lines
        # come in batches, each already one write per client, and Nagle
        # would only hold a batch until the client acknowledged the one
        # before, which a client's kernel delays by up to 40 ms.
        tuneSocket(self.transport, noDelay=config.hub is not None)
        handle = getattr(self.transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket) and _transportIdle(self.transport):
            self._socket = handle
            self._writeDirect = True
            # Bound what the kernel buffers for a client that does not read
            # (Linux grows it to megabytes otherwise), so that the send-queue
            # limit, not the kernel, decides, and memory stays bounded.
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Twisted leaves C{connected} set; clear it so that answers arriving
        # after the connection ended (a password check) are dropped.
        self.connected = False
        self.connections.services.presence.untrack(self)
        self._stopLoginTimer()
        leaving = self.core.connectionLost()
        if leaving is not None:
            leaving.addErrback(self.failed)
        # Last: when this was the last connection at shutdown, the audit log
        # closes, and the departure above must be written first.
        self.connections.removed(self)

    def notify(self, event: Event) -> None:
        """
        Render C{event} for this client and queue it.
        """
        raise NotImplementedError()

    def deliver(self, data: bytes) -> None:
        """
        Queue C{data} for this client.  The queue goes out in one write when
        the connections say (at the end of the reactor's pass), so a client
        that gets many lines at once costs one system call, not one per line.
        """
        self._outgoing.append(data)
        if not self._flushPlanned:
            self._flushPlanned = True
            self.connections.flushSoon(self)

    def announce(self, data: bytes) -> None:
        """
        Queue C{data}, a notice, to go out with the next write, which the
        connections make at most a few times a second when notices crowd in.
        """
        queue = self._outgoing
        queue.append(data)
        if len(queue) == 1:
            self.connections.flushLater(self)

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

    def shutdown(self) -> None:
        """
        The server is stopping: stop reading, and say so.
        """
        self.pauseFor("shutdown")
        self.notify(ShuttingDown())

    def supersede(self) -> None:
        """
        The user logged in elsewhere: this connection no longer has a
        session; the subclass says so and closes.
        """
        self.core.superseded()
        self.connections.services.presence.untrack(self)

    def heartbeatsStopped(self, timeout: float) -> None:
        """
        The client stopped heartbeating (a closed lid, a pulled cable): drop
        the connection without waiting for it to flush.
        """
        self.core.heartbeatsStopped(timeout)
        self.transport.abortConnection()

    def failed(self, failure: Failure) -> None:
        """
        Log an unexpected error and close this connection only; but if the
        hub is out of reach, just say the service is degraded.
        """
        if failure.check(HubUnavailableError):
            if self.connected:
                self.notify(ServiceDegraded())
            return
        self.log.failure("Error in the session of {peer}", failure, peer=self.peer())
        if self.connected:
            self.notify(ServerError())
            self.close()

    def peer(self) -> str:
        """
        The peer's address, for the log.
        """
        peer = self.transport.getPeer()
        return f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"

    # Send queue

    def _countUnsent(self, size: int) -> None:
        """
        Count C{size} more bytes left in the transport's buffer, dropping
        the client if its send queue grows past the limit (it does not read
        what it is sent).
        """
        if self._sendqPaused:
            self._sentWhilePaused += size
            self._checkSendQueue()

    def _checkSendQueue(self) -> None:
        """
        Look at the send queue in a moment if it is past the limit.
        """
        limit = self.config.maxSendqBytes
        if (
            limit
            and self.config.sendqSoftBytes + self._sentWhilePaused > limit
            and self._sendqVerdict is None
        ):
            self._sendqVerdict = self.clock.callLater(0, self._sendQueueVerdict, 2)

    def _watchSendQueue(self, softLimit: int) -> None:
        """
        Have the transport tell us when more than C{softLimit} bytes wait to
        be sent, by lowering its buffer size and registering as a producer:
        above it, input stops and what is queued meanwhile is counted.
        """
        transport: Any = self.transport
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
        self._sendqTransport = transport or self.transport
        self._sendqTransport.registerProducer(_SendQueueWatch(self), True)

    def sendQueuePaused(self) -> None:
        # The transport calls this again on every write while its buffer is
        # full: count from the first call only.
        if self._sendqPaused:
            return
        self._sendqPaused = True
        # Count from what the transport holds: the write that filled it may
        # have been a burst far past the soft limit.
        held = _buffered(self._sendqTransport) or 0
        self._sentWhilePaused = max(0, held - self.config.sendqSoftBytes)
        self.pauseFor("sendq")
        self._checkSendQueue()

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
        limit = self.config.maxSendqBytes
        soft = self.config.sendqSoftBytes
        if not (self.connected and self._sendqPaused):
            return
        if soft + self._sentWhilePaused <= limit:
            return
        if turns > 1:
            self._sendqVerdict = self.clock.callLater(
                0, self._sendQueueVerdict, turns - 1
            )
        else:
            self._sendQueueExceeded()

    def _sendQueueExceeded(self) -> None:
        self.log.warn(
            "SendQ exceeded: dropping {peer} ({name})",
            peer=self.peer(),
            name=self.core.name or "-",
        )
        self._sendqPaused = False
        self.connections.services.metrics.sendqDrops += 1
        self.transport.abortConnection()

    # Input

    def pauseFor(self, reason: str) -> None:
        """
        Stop handling input until L{resumeFrom} is called with C{reason}.
        """
        if not self._pauseReasons:
            self.paused = True
            self.transport.pauseProducing()
        self._pauseReasons |= {reason}

    def resumeFrom(self, reason: str) -> None:
        """
        Drop C{reason} for pausing; resume input if no other reason holds.
        """
        self._pauseReasons -= {reason}
        if not self._pauseReasons and self.paused and self.connected:
            self.paused = False
            self.transport.resumeProducing()
            self.inputResumed()

    def inputResumed(self) -> None:
        """
        Input may be handled again: handle what arrived meanwhile.
        """

    def _await(self, d: "Deferred[None] | None", reason: str = "reply") -> None:
        """
        Pause input until C{d} (an action of the session core) has fired, so
        that its reply comes before the next input is handled.
        """
        if d is None:
            return
        self.pauseFor(reason)
        self._stopLoginTimer()
        d.addErrback(self.failed)
        d.addBoth(lambda _: self._resumeAfterAnswer(reason))

    def _resumeAfterAnswer(self, reason: str) -> None:
        if self.loginPending() and self.connected:
            self._startLoginTimer()
        self.resumeFrom(reason)

    def loginPending(self) -> bool:
        """
        Whether the login clock still runs for this connection: until its
        user is logged in (a front-end may end its login later, as IRC's
        registration does after a SASL login).
        """
        return self.core.session is None

    def overRecvq(self, held: int) -> bool:
        """
        Whether C{held} bytes of input, waiting while input is paused, are
        past C{--max-recvq-bytes}.
        """
        limit = self.config.maxRecvqBytes
        return self.paused and bool(limit) and held > limit

    def excessFlood(self) -> None:
        """
        Too much input waited: say so and close (the caller drops what it
        held).
        """
        self.log.warn("Excess flood: dropping {peer}", peer=self.peer())
        self.notify(ExcessFlood())
        self.close()

    def mayTakeInput(self) -> bool:
        """
        Spend a token of the flood bucket on one more line or message; if
        there is none, stop reading until there is, say so at most every
        ten seconds, and return C{False}.
        """
        flood = self._flood
        if flood is None:
            return True
        now = self.clock.seconds()
        if flood.take(now):
            return True
        self.pauseFor("flood")
        # At least a millisecond: float rounding can leave the token a hair
        # short, and a wait that rounds to no time at all would spin forever.
        wait = max(flood.wait(now), 0.001)
        self.clock.callLater(wait, self.resumeFrom, "flood")
        if now - self._lastSlowDown >= SLOW_DOWN_INTERVAL:
            self._lastSlowDown = now
            self.notify(SlowDown())
        return False

    # Login clock

    def _startLoginTimer(self) -> None:
        if self._loginTimeLeft and self._loginTimer is None:
            self._loginTimer = self.clock.callLater(
                self._loginTimeLeft, self._loginTimedOut
            )

    def _stopLoginTimer(self) -> None:
        """
        Stop the login clock, keeping the time left (while the server itself
        works for this connection, the clock does not run).
        """
        timer, self._loginTimer = self._loginTimer, None
        if timer is not None and timer.active():
            self._loginTimeLeft = timer.getTime() - self.clock.seconds()
            timer.cancel()

    def loggedIn(self) -> None:
        """
        The user logged in: the login clock stops for good.
        """
        self._stopLoginTimer()
        self._loginTimeLeft = 0.0

    def _loginTimedOut(self) -> None:
        self._loginTimer = None
        self.notify(LoginTimedOut())
        self.close()


class LineConnection(StreamConnection):
    """
    A stream connection that speaks lines ending in LF (a CR before it is
    dropped): the buffer is scanned once however many lines a chunk holds,
    a line over L{maxLength} bytes is skipped up to its LF while the lines
    after it are handled, and while input is paused at most
    C{--max-recvq-bytes} of it are held.
    """

    __slots__ = ("_buffer", "_busyReceiving", "_discarding", "maxLength")

    maxLength: int

    def __init__(self, connections: Connections, limitKey: str | None) -> None:
        super().__init__(connections, limitKey)
        self._buffer = b""
        self._busyReceiving = False
        self._discarding = False
        self.maxLength = connections.config.maxLineBytes or sys.maxsize

    def lineReceived(self, line: bytes) -> None:
        """
        Handle one line, without its line end.
        """
        raise NotImplementedError()

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line longer than L{maxLength} was dropped.
        """
        self.notify(LineTooLong(self.maxLength))

    def dataReceived(self, data: bytes) -> None:
        self.connections.writes.inputs += 1
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._discarding = False
        self._buffer += data
        if self.overRecvq(len(self._buffer)):
            self._buffer = b""
            self.excessFlood()
            return
        self._handleBuffered()

    def inputResumed(self) -> None:
        self._handleBuffered()

    def _handleBuffered(self) -> None:
        if self._busyReceiving:
            return
        self._busyReceiving = True
        try:
            self._handleBufferedLines()
        finally:
            self._busyReceiving = False

    def _handleBufferedLines(self) -> None:
        start = 0
        buffer = self._buffer
        maxLength = self.maxLength
        while not self.paused and self.connected and not self.transport.disconnecting:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if not self.mayTakeInput():
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > maxLength:
                self.lineLengthExceeded(line)
            else:
                self.lineReceived(line)
            # A line may have changed the buffer (a test feeding more input
            # from a handler); read it again.
            buffer = self._buffer
        rest = self._buffer = self._buffer[start:]
        if not self.paused and len(rest) > maxLength + 1:
            self._buffer = b""
            self._discarding = True
            self.lineLengthExceeded(rest)


def _buffered(transport: Any) -> int | None:
    """
    How many bytes a TCP transport holds that the socket has not taken,
    read from the buffer of Twisted's
    L{twisted.internet.abstract.FileDescriptor}; L{None} for a transport
    without one (TLS, tests).
    """
    try:
        held: int = len(transport.dataBuffer) - transport.offset
        unwritten: int = transport._tempDataLen
    except AttributeError:
        return None
    return held + unwritten


def _transportIdle(transport: Any) -> bool:
    """
    Whether a TCP transport has nothing buffered to send, so that writing
    to its socket directly keeps the order of the bytes; a transport whose
    buffer cannot be read is never idle, and is written to through its
    C{write} only.
    """
    return _buffered(transport) == 0 and not transport.disconnecting


def tuneSocket(transport: object, noDelay: bool) -> None:
    """
    Turn on TCP keepalive with short timings on the socket under
    C{transport} (through TLS too), where the platform has the options, and
    set C{TCP_NODELAY} to C{noDelay}.
    """
    while transport is not None:
        handle = getattr(transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for name, value in KEEPALIVE_OPTIONS:
                option = getattr(socket, name, None)
                if option is not None:
                    handle.setsockopt(socket.IPPROTO_TCP, option, value)
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(noDelay))
            return
        transport = getattr(transport, "transport", None)


@implementer(IPushProducer)
class _SendQueueWatch:
    """
    Registered with a connection's transport, which pauses it when its send
    buffer fills up and resumes it when the buffer is empty again.
    """

    def __init__(self, connection: StreamConnection) -> None:
        self._connection = connection

    def pauseProducing(self) -> None:
        self._connection.sendQueuePaused()

    def resumeProducing(self) -> None:
        self._connection.sendQueueDrained()

    def stopProducing(self) -> None:
        """
        The connection is closing; nothing to do.
        """
