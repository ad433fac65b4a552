"""
What every session core of a node shares: the hub, the account store, the
audit log, presence, the clock, the settings and the limits kept across
connections (login backoff, registrations per address), whatever front-end
each session came in through.
"""

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from zope.interface import Interface

from ..audit import AuditLog
from ..config import ServerConfig
from .accounts import IAccountStore
from .events import HeartbeatGrant, UserStatus
from .hub import HubUnavailableError, IHub
from .limits import LoginBackoff, RateLimiter
from .metrics import ChatMetrics

ONLINE_LOG_INTERVAL = 1.0


class IHeartbeatClient(Interface):
    """
    A connection whose presence is tracked by heartbeats.
    """

    def heartbeatsStopped(timeout: float) -> None:
        """
        No heartbeat came for C{timeout} seconds: the client is gone.
        """


class IPresence(Interface):
    """
    Presence by heartbeats: who is tracked, and what to tell them.
    """

    def track(client: IHeartbeatClient) -> HeartbeatGrant:
        """
        Start (or restart, with a new token) tracking C{client}.
        """

    def untrack(client: IHeartbeatClient) -> None:
        """
        Forget C{client}.
        """


class ChatServices:
    """
    The shared parts of one node that session cores call.
    """

    def __init__(
        self,
        hub: IHub,
        accounts: IAccountStore,
        audit: AuditLog,
        presence: IPresence,
        clock: IReactorTime,
        config: ServerConfig,
    ) -> None:
        self.hub = hub
        self.accounts = accounts
        self.audit = audit
        self.presence = presence
        self.clock = clock
        self.config = config
        self.loginBackoff = LoginBackoff(
            config.loginBackoffBase, config.loginBackoffCap
        )
        self._registrations = RateLimiter(
            config.maxRegistrationsPerIp, config.registrationPeriod
        )
        self.metrics = ChatMetrics()
        self._onlineLogCall: IDelayedCall | None = None
        self._lastOnlineLog = float("-inf")

    def mayRegister(self, key: str | None) -> bool:
        """
        Whether the address C{key} (L{None}: exempt) may register one more
        account now.
        """
        return key is None or self._registrations.allow(key, self.clock.seconds())

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

        def logged(users: list[UserStatus]) -> None:
            self.audit.onlineUsers([user.name for user in users])

        def unavailable(failure: Failure) -> None:
            failure.trap(HubUnavailableError)

        self.hub.online().addCallbacks(logged, unavailable)

    def stopLogging(self) -> None:
        """
        Cancel a pending online-users line (at shutdown).
        """
        if self._onlineLogCall is not None:
            self._onlineLogCall.cancel()
            self._onlineLogCall = None
