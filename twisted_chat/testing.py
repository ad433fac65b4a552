"""
In-memory fakes for testing code built on twisted-chat without a network,
a disk or a real clock.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import ILogObserver, LogEvent
from zope.interface import implementer

from .audit import AuditLog
from .config import ServerConfig
from .core.accounts import AuthResult, IAccountStore
from .core.events import HistoryEntry
from .core.history import Around, HistoryQuery, IHistoryStore
from .core.localhub import LocalHub
from .core.services import ChatServices
from .core.text import foldName
from .frontends.connection import Connections
from .frontends.line.protocol import LineFactory, LineProtocol
from .presence import PresenceTracker


@implementer(IAccountStore)
class MemoryAccountStore:
    """
    Accounts in a dict with plaintext passwords, answering at once.
    """

    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        self.accounts: dict[str, tuple[str, str]] = {
            foldName(name): (name, password)
            for name, password in (accounts or {}).items()
        }

    def lookup(self, name: str) -> "Deferred[str | None]":
        entry = self.accounts.get(foldName(name))
        return succeed(entry[0] if entry else None)

    def authenticate(
        self, name: str, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        key = foldName(name)
        entry = self.accounts.get(key)
        if entry is None:
            self.accounts[key] = (name, password)
            return succeed((AuthResult.REGISTERED, name))
        if entry[1] == password:
            return succeed((AuthResult.ACCEPTED, entry[0]))
        return succeed((AuthResult.REJECTED, entry[0]))

    def changePassword(self, name: str, old: str, new: str) -> "Deferred[bool]":
        key = foldName(name)
        entry = self.accounts.get(key)
        if entry is None or entry[1] != old:
            return succeed(False)
        self.accounts[key] = (entry[0], new)
        return succeed(True)

    def search(self, text: str) -> "Deferred[list[str]]":
        needle = foldName(text)
        return succeed(
            [self.accounts[key][0] for key in sorted(self.accounts) if needle in key]
        )

    def drain(self) -> "Deferred[None]":
        return succeed(None)


@implementer(IHistoryStore)
class MemoryHistory:
    """
    Room history in a dict of lists, answering at once; queries other than
    the latest lines are answered from the same lists.
    """

    def __init__(self) -> None:
        self.rooms: dict[str, list[HistoryEntry]] = {}

    def add(self, room: str, entry: HistoryEntry) -> None:
        self.rooms.setdefault(room, []).append(entry)

    def latest(self, room: str, count: int) -> "Deferred[list[HistoryEntry]]":
        return succeed(self.rooms.get(room, [])[-count:])

    def query(self, room: str, query: HistoryQuery) -> "Deferred[list[HistoryEntry]]":
        entries = self.rooms.get(room, [])
        if query.around is Around.LATEST and query.first is None:
            return succeed(entries[-query.limit :])
        raise NotImplementedError("only the latest lines are kept in memory")

    def close(self) -> "Deferred[None]":
        return succeed(None)


@implementer(ILogObserver)
class AuditRecorder:
    """
    An audit-log observer that keeps the event texts in a list.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: LogEvent) -> None:
        self.lines.append(event["audit"])


def makeServices(
    clock: Clock | None = None,
    accounts: IAccountStore | None = None,
    config: ServerConfig | None = None,
    history: IHistoryStore | None = None,
) -> tuple[ChatServices, AuditRecorder]:
    """
    The shared parts of a node on a L{LocalHub} (keeping its history in
    C{history}, if given), a L{MemoryAccountStore} and a fake clock, with an
    L{AuditRecorder} collecting the audit lines.
    """
    clock = clock or Clock()
    config = config or ServerConfig()
    recorder = AuditRecorder()
    services = ChatServices(
        LocalHub(clock, history, config.maxRoomsPerUser, config.maxRooms),
        accounts or MemoryAccountStore(),
        AuditLog(recorder),
        PresenceTracker(clock, config.heartbeatInterval, config.heartbeatTimeout),
        clock,
        config,
    )
    return services, recorder


def makeFactory(
    clock: Clock | None = None,
    accounts: IAccountStore | None = None,
    config: ServerConfig | None = None,
    batchWrites: bool = False,
    history: IHistoryStore | None = None,
) -> tuple[LineFactory, AuditRecorder]:
    """
    A L{LineFactory} over L{makeServices}.  With C{batchWrites}, output
    waits for the clock as it does for the reactor.
    """
    services, recorder = makeServices(clock, accounts, config, history)
    batch = services.clock if batchWrites else None
    return LineFactory(Connections(services, batchWrites=batch)), recorder


def connect(
    factory: LineFactory, host: str = "192.0.2.1", port: int = 40000
) -> tuple[LineProtocol, StringTransportWithDisconnection]:
    """
    Connect a new L{LineProtocol} of C{factory} to a string transport.
    """
    protocol = factory.buildProtocol(None)
    assert isinstance(protocol, LineProtocol)
    transport = StringTransportWithDisconnection(
        hostAddress=None, peerAddress=IPv4Address("TCP", host, port)
    )
    transport.protocol = protocol
    # BaseProtocol.makeConnection is unannotated in Twisted.
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    return protocol, transport
