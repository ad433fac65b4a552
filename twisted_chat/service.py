"""
The server of one node: the factory that makes a protocol per connection and
holds what they share, and the services that listen and shut down cleanly.
"""

from collections.abc import Callable, Sequence

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from . import messages
from .accounts import IAccountStore
from .audit import AuditLog, AuditOutput
from .batch import PassBatch
from .config import ServerConfig
from .hub import HubUnavailableError, IHub, encodeLine
from .limits import (
    ConnectionCounter,
    LoginBackoff,
    RateLimiter,
    addressKey,
    isLoopback,
)
from .presence import PresenceTracker
from .protocol import ChatProtocol

ONLINE_LOG_INTERVAL = 1.0

# Seconds between writes of join and leave notices to a client while they
# crowd in (a lone notice goes at once): ten thousand people logging in one
# after another would otherwise cost every client a write per arrival.
NOTICE_INTERVAL = 0.2


class ChatFactory(ServerFactory):
    """
    Makes a L{ChatProtocol} per connection and gives them what they share:
    the hub (the one owner of sessions, the group and private chats), the
    account store, the presence tracker and the audit log.

    @ivar connections: every open connection, logged in or not.
    """

    protocol = ChatProtocol
    log = Logger()

    def __init__(
        self,
        hub: IHub,
        accounts: IAccountStore,
        audit: AuditLog,
        presence: PresenceTracker,
        clock: IReactorTime,
        config: ServerConfig,
        batchWrites: IReactorTime | None = None,
    ) -> None:
        self.hub = hub
        self.accounts = accounts
        self.audit = audit
        self.presence = presence
        self.clock = clock
        self.config = config
        self.connections: set[ChatProtocol] = set()
        self.loginBackoff = LoginBackoff(
            config.loginBackoffBase, config.loginBackoffCap
        )
        self._connectionCounter = ConnectionCounter(
            config.maxConnections, config.maxConnectionsPerIp
        )
        self._newConnections = RateLimiter(config.maxNewConnectionsPerIp, 60.0)
        self._registrations = RateLimiter(
            config.maxRegistrationsPerIp, config.registrationPeriod
        )
        self._allClosed: list[Deferred[None]] = []
        # Have a protocol write its queued output at the end of this pass of
        # the reactor (given as batchWrites; without it, at once), so that a
        # client gets everything sent to it in one pass in one write.
        self.flushSoon: Callable[[ChatProtocol], None] = PassBatch(
            batchWrites, self._flushAll
        ).add
        # The same for a protocol that has only notices queued, at most
        # every NOTICE_INTERVAL seconds.
        self.flushLater: Callable[[ChatProtocol], None] = PassBatch(
            batchWrites, self._flushAll, NOTICE_INTERVAL
        ).add
        self._onlineLogCall: IDelayedCall | None = None
        self._lastOnlineLog = float("-inf")

    def buildProtocol(self, addr: IAddress) -> Protocol:
        """
        Admit a connection within the connection limits, or answer it with
        L{messages.TOO_MANY_CONNECTIONS} and close it.
        """
        host = getattr(addr, "host", None)
        key = None
        if host is not None and not (self.config.exemptLoopback and isLoopback(host)):
            key = addressKey(host)
        withinRate = key is None or self._newConnections.allow(
            key, self.clock.seconds()
        )
        if not (withinRate and self._connectionCounter.admit(key)):
            self.log.info("Refused a connection from {host}: too many", host=host)
            return _RefusedProtocol()
        protocol = ChatProtocol(key)
        protocol.factory = self
        return protocol

    def _flushAll(self, protocols: list[ChatProtocol]) -> None:
        for protocol in protocols:
            try:
                protocol.flush()
            except Exception:
                self.log.failure("Error writing to a client")
                protocol.transport.abortConnection()

    def mayRegister(self, key: str | None) -> bool:
        """
        Whether the address C{key} (L{None}: exempt) may register one more
        account now.
        """
        return key is None or self._registrations.allow(key, self.clock.seconds())

    def connectionMade(self, protocol: ChatProtocol) -> None:
        self.connections.add(protocol)

    def connectionLost(self, protocol: ChatProtocol) -> None:
        if protocol in self.connections:
            self.connections.discard(protocol)
            self._connectionCounter.release(protocol.addressKey)
        if not self.connections:
            waiting, self._allClosed = self._allClosed, []
            for d in waiting:
                d.callback(None)

    def whenAllClosed(self) -> "Deferred[None]":
        """
        Fire once no connection is open.
        """
        if not self.connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._allClosed.append(d)
        return d

    def onlineChanged(self) -> None:
        """
        Someone came or went: log who is online, at most once a second.
        """
        if self._onlineLogCall is not None:
            return
        delay = max(
            0.0, self._lastOnlineLog + ONLINE_LOG_INTERVAL - self.clock.seconds()
        )
        self._onlineLogCall = self.clock.callLater(delay, self._logOnline)

    def _logOnline(self) -> None:
        self._onlineLogCall = None
        self._lastOnlineLog = self.clock.seconds()
        d = self.hub.online()
        d.addCallback(lambda users: self.audit.onlineUsers([u.name for u in users]))
        d.addErrback(lambda failure: failure.trap(HubUnavailableError))

    def stopLogging(self) -> None:
        """
        Cancel a pending online-users line (at shutdown).
        """
        if self._onlineLogCall is not None:
            self._onlineLogCall.cancel()
            self._onlineLogCall = None


class _RefusedProtocol(Protocol):
    """
    Says there are too many connections, and hangs up.
    """

    def connectionMade(self) -> None:
        self.transport.write(encodeLine(messages.TOO_MANY_CONNECTIONS))
        self.transport.loseConnection()


class ListenerService(Service):
    """
    Listen on one endpoint description and log the address actually bound,
    so that C{tcp:0} is usable.
    """

    log = Logger()

    def __init__(
        self, description: str, factory: ServerFactory, reactor: object
    ) -> None:
        self.description = description
        self.factory = factory
        self.reactor = reactor
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        failures: list[object] = []
        endpoint = serverFromString(self.reactor, self.description)
        endpoint.listen(self.factory).addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()  # type: ignore[attr-defined]

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        self.log.info(
            "Listening on {description}: {host}:{port}",
            description=self.description,
            host=getattr(address, "host", address),
            port=getattr(address, "port", ""),
        )

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        port, self.port = self.port, None
        return succeed(None) if port is None else port.stopListening()


class ChatService(MultiService):
    """
    The whole server of one node: its listeners as children, and the
    shutdown that says goodbye to every user.
    """

    log = Logger()

    def __init__(
        self,
        factory: ChatFactory,
        reactor: IReactorTime,
        auditOutputs: Sequence[AuditOutput] = (),
        threadpool: ThreadPool | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.reactor = reactor
        self.auditOutputs = auditOutputs
        self.threadpool = threadpool

    def startService(self) -> None:
        if self.threadpool is not None:
            self.threadpool.start()
        self.factory.hub.start()
        super().startService()

    @property
    def listeners(self) -> list[ListenerService]:
        return [child for child in self if isinstance(child, ListenerService)]

    def stopService(self) -> "Deferred[None]":
        """
        Stop listening, tell every connected user, let hashes and writes in
        flight finish, then close every connection.
        """
        factory = self.factory
        for protocol in list(factory.connections):
            protocol.pauseFor("shutdown")
            protocol.sendText(messages.SHUTTING_DOWN)
        stopped = super().stopService()
        d = DeferredList([stopped, factory.accounts.drain()], consumeErrors=True)
        d.addCallback(lambda _: self._disconnectAll())
        d.addCallback(lambda _: factory.hub.stop())
        d.addCallback(lambda _: self._closeLogs())
        return d

    def _closeLogs(self) -> None:
        self.factory.stopLogging()
        for output in self.auditOutputs:
            output.close()
        if self.threadpool is not None:
            self.threadpool.stop()

    def _disconnectAll(self) -> "Deferred[None]":
        """
        Close every connection; fire when all are closed, aborting those
        still open after the grace period.
        """
        factory = self.factory
        for protocol in list(factory.connections):
            protocol.close()
            # Input was paused for the shutdown, but a TLS connection closes
            # only once it reads the peer's close_notify (lines that arrive
            # are not handled: the protocol itself stays paused).
            protocol.transport.resumeProducing()

        def tooSlow(failure: Failure) -> "Deferred[None]":
            failure.trap(defer.TimeoutError)
            for protocol in list(factory.connections):
                protocol.transport.abortConnection()
            # Aborted connections end in a later reactor turn; wait for them
            # so that their departures reach the audit log before it closes.
            return factory.whenAllClosed()

        closed = factory.whenAllClosed()
        closed.addTimeout(factory.config.shutdownGrace, self.reactor)
        return closed.addErrback(tooSlow)
