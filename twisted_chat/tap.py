"""
C{twistd chat}: the command-line options and the service they build.
"""

import os
import re
import resource
import socket
from typing import Any
from urllib.parse import urlsplit

from twisted.application.internet import UDPServer
from twisted.application.service import MultiService
from twisted.logger import Logger, globalLogPublisher
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from .audit import AuditFileObserver, AuditLog, BatchedForwarder
from .config import ServerConfig
from .core.accounts import IAccountStore
from .core.hub import IHub
from .core.localhub import LocalHub
from .core.services import ChatServices
from .frontends.connection import Connections
from .frontends.irc.protocol import IRCFactory
from .frontends.irc.render import KIND as IRC_KIND
from .frontends.line.protocol import LineFactory
from .frontends.line.render import LINE_RENDERER
from .frontends.web.render import WEB_RENDERER
from .frontends.web.site import makeSite
from .presence import PresenceTracker
from .reactor import installIfFree
from .redis.address import RedisAddress
from .service import ChatService, ListenerService
from .stores.accounts import AccountFileError, JsonAccountStore
from .stores.history import HistoryFileError, SQLiteHistory
from .stores.passwords import PasswordHashing, shareOneArena

DEFAULTS = ServerConfig()
NO_HISTORY = "none"
_SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
log = Logger()


def _notNegative(kind: type) -> Any:
    def parse(value: str) -> Any:
        number = kind(value)
        if number < 0:
            raise ValueError(f"{value} is negative")
        return number

    return parse


_count, _seconds = _notNegative(int), _notNegative(float)

# The abuse limits: (option, ServerConfig field, help, parser). 0 turns each off.
LIMITS = [
    ("max-line-bytes", "maxLineBytes", "Longest line accepted, in bytes.", _count),
    ("login-timeout", "loginTimeout", "Seconds allowed to log in.", _seconds),
    (
        "max-failed-logins",
        "maxFailedLogins",
        "Failed logins before a connection is closed.",
        _count,
    ),
    (
        "login-backoff-base",
        "loginBackoffBase",
        "First delay (s) after 3 failures for one account and address.",
        _seconds,
    ),
    ("login-backoff-cap", "loginBackoffCap", "Longest login delay (s).", _seconds),
    (
        "max-registrations-per-ip",
        "maxRegistrationsPerIp",
        "New accounts per address per 10 minutes.",
        _count,
    ),
    ("flood-rate", "floodRate", "Lines per second a session may send.", _seconds),
    ("flood-burst", "floodBurst", "Lines a session may send at once.", _count),
    (
        "max-recvq-bytes",
        "maxRecvqBytes",
        "Input held while a session is paused, in bytes.",
        _count,
    ),
    (
        "max-sendq-bytes",
        "maxSendqBytes",
        "Output queued for a client that does not read, in bytes.",
        _count,
    ),
    ("max-connections", "maxConnections", "Open connections in all.", _count),
    (
        "max-connections-per-ip",
        "maxConnectionsPerIp",
        "Open connections per address (IPv6: per /64).",
        _count,
    ),
    (
        "max-new-connections-per-ip",
        "maxNewConnectionsPerIp",
        "New connections per address per minute.",
        _count,
    ),
    ("max-rooms-per-user", "maxRoomsPerUser", "Rooms one user may be in.", _count),
    ("max-rooms", "maxRooms", "Rooms that may exist (have members) at once.", _count),
    (
        "history-lines",
        "historyLines",
        "Lines of history kept per room (older ones are pruned).",
        _count,
    ),
    (
        "history-on-login",
        "historyOnLogin",
        "Lines of a room's history shown at login and on joining it.",
        _count,
    ),
]


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"{value} is not a positive number")
    return number


class Options(usage.Options):
    """
    The options of C{twistd chat}.
    """

    synopsis = "[options]"
    longdesc = (
        "A chat server: group chat, consent-based private chat, UDP presence. "
        "Connect with telnet, netcat or python -m twisted_chat.client."
    )
    optParameters = [
        ["users", None, DEFAULTS.users, "The account store, a JSON file."],
        [
            "hub",
            None,
            None,
            "redis://[:password@]host:port/db (or rediss:// for TLS): run as "
            "one node of a chat shared through Redis; accounts live there too.",
        ],
        [
            "hub-ttl",
            None,
            DEFAULTS.hubTTL,
            "Seconds after which the other nodes treat a silent node as dead.",
            _positive,
        ],
        [
            "audit-log",
            None,
            DEFAULTS.auditLog,
            "The audit log (rotated at 10 MB, 5 kept).",
        ],
        [
            "history",
            None,
            DEFAULTS.history,
            "The rooms' history, an SQLite file ('none': keep no history; with"
            " --hub it lives in Redis and only 'none' matters).",
        ],
        [
            "udp-port",
            None,
            DEFAULTS.udpPort,
            "UDP port for heartbeats (0: any free).",
            int,
        ],
        [
            "udp-interface",
            None,
            DEFAULTS.udpInterface,
            "Address for the UDP port (default: all).",
        ],
        [
            "heartbeat-interval",
            None,
            DEFAULTS.heartbeatInterval,
            "Seconds between a client's heartbeats.",
            _positive,
        ],
        [
            "irc-server-name",
            None,
            None,
            "The IRC server name (with a dot; default: this host's name if it"
            f" has one, else {DEFAULTS.ircServerName}).",
        ],
        [
            "heartbeat-timeout",
            None,
            DEFAULTS.heartbeatTimeout,
            "Seconds of silence after which a heartbeating client is offline.",
            _positive,
        ],
    ] + [
        [option, None, getattr(DEFAULTS, field), help, kind]
        for option, field, help, kind in LIMITS
    ]

    optFlags = [
        [
            "no-exempt-loopback",
            None,
            "Apply the per-address limits to loopback connections too.",
        ],
        ["no-metrics", None, "Serve no /metrics on the web listeners."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["irc-listen"] = []
        self["web-listen"] = []
        self["web-origin"] = []

    def opt_listen(self, description: str) -> None:
        """
        A Twisted server endpoint to listen on, such as tcp:1234 or ssl:1235:privateKey=key.pem:certKey=cert.pem (repeatable; default tcp:1234).
        """  # noqa: E501
        self["listen"].append(description)

    def opt_web_listen(self, description: str) -> None:
        """
        A Twisted server endpoint for the web page, its WebSocket and /metrics, such as tcp:8080 (repeatable; default: none).
        """  # noqa: E501
        self["web-listen"].append(description)

    def opt_web_origin(self, origin: str) -> None:
        """
        A page origin allowed to open the WebSocket, such as https://chat.example.org behind a proxy (repeatable; default: the page's own host).
        """  # noqa: E501
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise usage.UsageError(
                f"--web-origin: {origin!r} is not an origin like https://host:port"
            )
        self["web-origin"].append(f"{parts.scheme}://{parts.netloc.lower()}")

    def opt_irc_listen(self, description: str) -> None:
        """
        A Twisted server endpoint for IRC clients, such as tcp:6667 or ssl:6697:privateKey=key.pem:certKey=cert.pem (repeatable; default none).
        """  # noqa: E501
        self["irc-listen"].append(description)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = list(DEFAULTS.listen)
        if self["irc-server-name"] is None:
            self["irc-server-name"] = defaultServerName()
        elif not validServerName(self["irc-server-name"]):
            raise usage.UsageError(
                "--irc-server-name: a host name with a dot, such as irc.example.org"
            )
        if self["hub"] is not None:
            try:
                RedisAddress.fromURL(self["hub"])
            except ValueError as e:
                raise usage.UsageError(f"--hub: {e}") from None
        # twistd installs a reactor before this only when --reactor asks for
        # one; else the chat runs on its own.
        installIfFree()

    def config(self) -> ServerConfig:
        """
        The validated settings these options describe.
        """
        return ServerConfig(
            listen=tuple(self["listen"]),
            ircListen=tuple(self["irc-listen"]),
            ircServerName=self["irc-server-name"],
            users=self["users"],
            hub=self["hub"],
            hubTTL=self["hub-ttl"],
            auditLog=self["audit-log"],
            history=self["history"],
            udpPort=self["udp-port"],
            udpInterface=self["udp-interface"],
            heartbeatInterval=self["heartbeat-interval"],
            heartbeatTimeout=self["heartbeat-timeout"],
            exemptLoopback=not self["no-exempt-loopback"],
            webListen=tuple(self["web-listen"]),
            webOrigins=tuple(self["web-origin"]),
            metrics=not self["no-metrics"],
            **{field: self[option] for option, field, _, _ in LIMITS},
        )


def validServerName(name: str) -> bool:
    """
    Whether C{name} may be the IRC server name: a host name with a dot
    (clients tell servers from nicks by it).
    """
    return "." in name and _SERVER_NAME.fullmatch(name) is not None


def defaultServerName() -> str:
    """
    This host's fully qualified name if it has a dot, else the default.
    """
    name = socket.getfqdn()
    return name if validServerName(name) else DEFAULTS.ircServerName


def raiseOpenFilesLimit(connections: int) -> None:
    """
    Raise the soft limit on open files toward what C{connections} need,
    and warn if the hard limit keeps it below.
    """
    if not connections:
        return
    wanted = connections + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warn(
            "Open files limited to {target}: fewer than --max-connections {wanted}",
            target=target,
            wanted=connections,
        )


def makeService(options: Options, reactor: Any = None) -> ChatService:
    """
    Build the server of one node: TCP listeners and the UDP presence port
    under one L{ChatService}.
    """
    if reactor is None:
        from twisted.internet import reactor
    config = options.config()
    raiseOpenFilesLimit(config.maxConnections)
    # A pool of our own: hashing takes at most one thread per core (each
    # Argon2 hash holds 19 MiB while it runs), and one more thread keeps
    # account writes, which mostly wait for fsync, from queueing behind
    # hashes (and the hashes behind them).
    hashes = len(os.sched_getaffinity(0))
    threadpool = ThreadPool(minthreads=0, maxthreads=hashes + 1, name="twisted-chat")
    shareOneArena()
    hashing = PasswordHashing(reactor, threadpool, hashes, clock=reactor)
    hub: IHub
    accounts: IAccountStore
    historyOn = config.history != NO_HISTORY
    redisHub: Any = None
    if config.hub is None:
        history = None
        try:
            accounts = JsonAccountStore.open(config.users, hashing, reactor, threadpool)
            if historyOn:
                history = SQLiteHistory.open(
                    config.history, reactor, config.historyLines
                )
        except (AccountFileError, HistoryFileError) as e:
            raise SystemExit(f"twistd chat: {e}") from None
        hub = LocalHub(reactor, history, config.maxRoomsPerUser, config.maxRooms)
        if history is not None:
            history.start()
    else:
        # Imported here: the Redis client installs a reactor when imported,
        # and by now twistd chat has chosen its own (reactor.installIfFree).
        from .redis.accounts import RedisAccountStore
        from .redis.hub import RedisHub

        redisHub = RedisHub(
            reactor,
            RedisAddress.fromURL(config.hub),
            config.hubTTL,
            history=historyOn,
            historyLines=config.historyLines,
            maxRoomsPerUser=config.maxRoomsPerUser,
            maxRooms=config.maxRooms,
        )
        hub, accounts = redisHub, RedisAccountStore(redisHub.redis, hashing)
    auditFile = AuditFileObserver.open(
        config.auditLog,
        config.auditLogRotateBytes,
        config.auditLogRotatedFiles,
        clock=reactor,
    )
    forwarder = BatchedForwarder(globalLogPublisher, reactor)
    presence = PresenceTracker(
        reactor, config.heartbeatInterval, config.heartbeatTimeout
    )
    services = ChatServices(
        hub, accounts, AuditLog(auditFile, forwarder), presence, reactor, config
    )
    connections = Connections(services, batchWrites=reactor)
    if redisHub is not None:
        redisHub.onInput = connections.writes.inputCame
    service = ChatService(connections, reactor, (auditFile, forwarder), threadpool)
    lineFactory = LineFactory(connections)
    for description in config.listen:
        MultiService.addService(
            service, ListenerService(description, lineFactory, reactor, "line protocol")
        )
    ircFactory = IRCFactory(connections, config.ircServerName)
    for description in config.ircListen:
        MultiService.addService(
            service, ListenerService(description, ircFactory, reactor, "IRC")
        )
    if config.webListen:
        frontends = (LINE_RENDERER.kind, IRC_KIND, WEB_RENDERER.kind)
        kinds = frontends if config.metrics else None
        site = makeSite(connections, config.webOrigins, kinds)
        for description in config.webListen:
            # ListenerService is typed for ServerFactory[_ProtoWithFactory],
            # an invariant parameter the Site (of HTTP channels) does not
            # match, though any server factory works.
            listener = ListenerService(description, site, reactor, "web")
            MultiService.addService(service, listener)
    udp = UDPServer(config.udpPort, presence, interface=config.udpInterface)
    MultiService.addService(service, udp)
    return service
