"""
The server's settings, gathered once from the command line and validated.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """
    Everything configurable about one node, with the documented defaults.
    For every limit, 0 means no limit.
    """

    listen: tuple[str, ...] = ("tcp:1234",)
    ircListen: tuple[str, ...] = ()
    ircServerName: str = "twisted-chat.local"
    # The web front-end: its listeners (none: off), the page origins allowed
    # to open its WebSocket (none: the page's own), and /metrics.
    webListen: tuple[str, ...] = ()
    webOrigins: tuple[str, ...] = ()
    metrics: bool = True
    users: str = "users.json"
    hub: str | None = None
    hubTTL: float = 10.0
    auditLog: str = "server.log"
    auditLogRotateBytes: int = 10_000_000
    auditLogRotatedFiles: int = 5
    maxLineBytes: int = 4096
    loginTimeout: float = 30.0
    maxFailedLogins: int = 5
    loginBackoffBase: float = 1.0
    loginBackoffCap: float = 60.0
    maxRegistrationsPerIp: int = 30
    registrationPeriod: float = 600.0
    floodRate: float = 5.0
    floodBurst: int = 20
    maxRecvqBytes: int = 131072
    maxSendqBytes: int = 262144
    sendqSoftBytes: int = 16384
    maxConnections: int = 10000
    maxConnectionsPerIp: int = 32
    maxNewConnectionsPerIp: int = 60
    exemptLoopback: bool = True
    udpPort: int = 12345
    udpInterface: str = ""
    heartbeatInterval: float = 5.0
    heartbeatTimeout: float = 20.0
    shutdownGrace: float = 5.0
    history: str = "history.sqlite3"
    historyLines: int = 10000
    historyOnLogin: int = 10
    maxRoomsPerUser: int = 20
    maxRooms: int = 1000
