"""
C{twistd chat}: the command-line options and the service they build.
"""

from typing import Any

from twisted.application.internet import UDPServer
from twisted.logger import globalLogPublisher
from twisted.python import usage

from .accounts import AccountFileError, JsonAccountStore
from .audit import AuditFileObserver, AuditLog
from .config import ServerConfig
from .hub import LocalHub
from .passwords import PasswordHashing
from .presence import PresenceTracker
from .service import ChatFactory, ChatService, ListenerService

DEFAULTS = ServerConfig()


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
            "audit-log",
            None,
            DEFAULTS.auditLog,
            "The audit log (rotated at 10 MB, 5 kept).",
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
            "heartbeat-timeout",
            None,
            DEFAULTS.heartbeatTimeout,
            "Seconds of silence after which a heartbeating client is offline.",
            _positive,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        A Twisted server endpoint to listen on, e.g. tcp:1234 or
        ssl:1235:privateKey=key.pem:certKey=cert.pem (repeatable;
        default tcp:1234).
        """
        self["listen"].append(description)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = list(DEFAULTS.listen)

    def config(self) -> ServerConfig:
        """
        The validated settings these options describe.
        """
        return ServerConfig(
            listen=tuple(self["listen"]),
            users=self["users"],
            auditLog=self["audit-log"],
            udpPort=self["udp-port"],
            udpInterface=self["udp-interface"],
            heartbeatInterval=self["heartbeat-interval"],
            heartbeatTimeout=self["heartbeat-timeout"],
        )


def makeService(options: Options, reactor: Any = None) -> ChatService:
    """
    Build the server of one node: TCP listeners and the UDP presence port
    under one L{ChatService}.
    """
    if reactor is None:
        from twisted.internet import reactor
    config = options.config()
    threadpool = reactor.getThreadPool()
    hashing = PasswordHashing(reactor, threadpool)
    try:
        accounts = JsonAccountStore.open(config.users, hashing, reactor, threadpool)
    except AccountFileError as e:
        raise SystemExit(f"twistd chat: {e}") from None
    auditFile = AuditFileObserver.open(
        config.auditLog, config.auditLogRotateBytes, config.auditLogRotatedFiles
    )
    presence = PresenceTracker(
        reactor, config.heartbeatInterval, config.heartbeatTimeout
    )
    factory = ChatFactory(
        LocalHub(reactor),
        accounts,
        AuditLog(auditFile, globalLogPublisher),
        presence,
        reactor,
        config,
    )
    service = ChatService(factory, reactor, auditFile)
    for description in config.listen:
        ListenerService(description, factory, reactor).setServiceParent(service)
    udp = UDPServer(config.udpPort, presence, interface=config.udpInterface)
    udp.setServiceParent(service)
    return service
