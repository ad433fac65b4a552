"""
The server's settings, gathered once from the command line and validated.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """
    Everything configurable about one node, with the documented defaults.
    """

    listen: tuple[str, ...] = ("tcp:1234",)
    users: str = "users.json"
    auditLog: str = "server.log"
    auditLogRotateBytes: int = 10_000_000
    auditLogRotatedFiles: int = 5
    maxFailedLogins: int = 5
    udpPort: int = 12345
    udpInterface: str = ""
    heartbeatInterval: float = 5.0
    heartbeatTimeout: float = 20.0
    shutdownGrace: float = 5.0
