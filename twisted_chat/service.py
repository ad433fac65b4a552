"""
The server of one node as services: one per listener, which logs the
address it bound, under one that starts the shared parts and shuts down
cleanly, saying goodbye to every connection of every front-end.
"""

from collections.abc import Sequence

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .audit import AuditOutput
from .frontends.connection import Connections

# Connections the kernel may hold for a TCP listener before it accepts them:
# Twisted's 50 overflow when a crowd connects at once (a storm of logins),
# and the kernel's retries then cost seconds.
BACKLOG = 1024


def withBacklog(description: str) -> str:
    """
    The endpoint C{description} with a L{BACKLOG}, if it is a TCP or TLS
    endpoint that names none.
    """
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return description + f":backlog={BACKLOG}"
    return description


class ListenerService(Service):
    """
    Listen on one endpoint description and log the address actually bound,
    so that C{tcp:0} is usable, with the front-end it serves (C{frontend}),
    so that one reading the log knows which port is which.
    """

    log = Logger()

    def __init__(
        self,
        description: str,
        factory: IProtocolFactory,
        reactor: object,
        frontend: str,
    ) -> None:
        self.description = description
        self.factory = factory
        self.frontend = frontend
        self.reactor = reactor
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        Service.startService(self)
        failures: list[object] = []
        endpoint = serverFromString(self.reactor, withBacklog(self.description))
        endpoint.listen(self.factory).addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()  # type: ignore[attr-defined]

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        self.log.info(
            "Listening on {description}: {host}:{port} ({frontend})",
            description=self.description,
            host=getattr(address, "host", address),
            port=getattr(address, "port", ""),
            frontend=self.frontend,
        )

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        port, self.port = self.port, None
        stopped = port.stopListening() if port is not None else None
        return succeed(None) if stopped is None else stopped


class ChatService(MultiService):
    """
    The whole server of one node: its listeners as children, and the
    shutdown that says goodbye to every user.
    """

    log = Logger()

    def __init__(
        self,
        connections: Connections,
        reactor: IReactorTime,
        auditOutputs: Sequence[AuditOutput] = (),
        threadpool: ThreadPool | None = None,
    ) -> None:
        MultiService.__init__(self)
        self.connections = connections
        self.chat = connections.services
        self.reactor = reactor
        self.auditOutputs = auditOutputs
        self.threadpool = threadpool

    def startService(self) -> None:
        if self.threadpool is not None:
            self.threadpool.start()
        self.chat.hub.start()
        MultiService.startService(self)

    @property
    def listeners(self) -> list[ListenerService]:
        return [child for child in self if isinstance(child, ListenerService)]

    def stopService(self) -> "Deferred[None]":
        """
        Stop listening, tell every connected user, let hashes and writes in
        flight finish, then close every connection.
        """
        chat = self.chat
        for connection in list(self.connections.open):
            connection.shutdown()
        stopped: Deferred[None] = MultiService.stopService(self)
        finished = DeferredList([stopped, chat.accounts.drain()], consumeErrors=True)
        closed = finished.addCallback(lambda _: self._disconnectAll())
        left = closed.addCallback(lambda _: chat.hub.stop())
        return left.addCallback(lambda _: self._closeLogs())

    def _closeLogs(self) -> None:
        self.chat.stopLogging()
        for output in self.auditOutputs:
            output.close()
        if self.threadpool is not None:
            self.threadpool.stop()

    def _disconnectAll(self) -> "Deferred[None]":
        """
        Close every connection; fire when all are closed, aborting those
        still open after the grace period.
        """
        connections = self.connections
        for connection in list(connections.open):
            connection.close()
            # Input was paused for the shutdown, but a TLS connection closes
            # only once it reads the peer's close_notify (lines that arrive
            # are not handled: the protocol itself stays paused).
            connection.transport.resumeProducing()

        def tooSlow(failure: Failure) -> "Deferred[None]":
            failure.trap(defer.TimeoutError)
            for connection in list(connections.open):
                connection.transport.abortConnection()
            # Aborted connections end in a later reactor turn; wait for them
            # so that their departures reach the audit log before it closes.
            return connections.whenAllClosed()

        closed = connections.whenAllClosed()
        closed.addTimeout(connections.config.shutdownGrace, self.reactor)
        return closed.addErrback(tooSlow)
