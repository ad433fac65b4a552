"""
Counts of what the chat did since the node started, for monitoring: plain
integers the session core and the connections add to, read by whatever
exports them (the web front-end's C{/metrics}).
"""

from dataclasses import dataclass


@dataclass
class ChatMetrics:
    """
    What happened on this node since it started.
    """

    logins: int = 0
    failedLogins: int = 0
    registrations: int = 0
    linesRelayed: int = 0
    privateChats: int = 0
    sendqDrops: int = 0
