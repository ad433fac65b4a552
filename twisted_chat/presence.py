"""
Presence over UDP: clients that asked for heartbeats stay online only while
their datagrams keep coming.

A client sends C{@HEARTBEAT} over TCP and gets a random token; from then on
each datagram holding exactly that token refreshes it.  A token is the only
thing a datagram can name, so nobody can keep somebody else online.  The
server never sends anything by UDP.
"""

import secrets
import socket
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from .core.events import HeartbeatGrant
from .core.services import IHeartbeatClient, IPresence

TOKEN_BYTES = 24


@dataclass(eq=False)
class _Tracked:
    token: bytes
    client: IHeartbeatClient
    timer: IDelayedCall


RECEIVE_BUFFER = 4 * 1024 * 1024


@implementer(IPresence)
class PresenceTracker(DatagramProtocol):
    """
    The tokens of tracked connections, each with one timer that every valid
    datagram pushes back: O(1) per datagram, and no periodic scan.
    """

    log = Logger()

    def __init__(
        self, clock: IReactorTime, interval: float = 5.0, timeout: float = 20.0
    ) -> None:
        self._clock = clock
        self.interval = interval
        self.timeout = timeout
        self._byToken: dict[bytes, _Tracked] = {}
        self._byClient: dict[IHeartbeatClient, _Tracked] = {}
        self._ignored = 0
        self._lastReport = float("-inf")

    @property
    def port(self) -> int:
        """
        The UDP port actually bound, or 0 if not listening.
        """
        return self.transport.getHost().port if self.transport else 0

    def startProtocol(self) -> None:
        handle = getattr(self.transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            # Queue the heartbeats that arrive while the reactor is busy (a
            # crowd logging in): the default buffer holds a few hundred, and
            # a dropped heartbeat can cost a user the session.  The kernel
            # caps this at net.core.rmem_max.
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        assert self.transport is not None
        address = self.transport.getHost()
        self.log.info(
            "Presence heartbeats on UDP {host}:{port}",
            host=address.host,
            port=address.port,
        )

    def track(self, client: IHeartbeatClient) -> HeartbeatGrant:
        """
        Start (or restart, with a new token) tracking C{client}.

        @return: what the client is to send, where and how often.
        """
        self.untrack(client)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        tracked = _Tracked(
            token.encode("ascii"),
            client,
            self._clock.callLater(self.timeout, self._expire, client),
        )
        self._byToken[tracked.token] = self._byClient[client] = tracked
        return HeartbeatGrant(self.port, token, self.interval, self.timeout)

    def untrack(self, client: IHeartbeatClient) -> None:
        """
        Forget C{client}: its token dies and its timer stops.
        """
        tracked = self._byClient.pop(client, None)
        if tracked is not None:
            del self._byToken[tracked.token]
            if tracked.timer.active():
                tracked.timer.cancel()

    def isTracked(self, client: IHeartbeatClient) -> bool:
        return client in self._byClient

    def _expire(self, client: IHeartbeatClient) -> None:
        self.untrack(client)
        client.heartbeatsStopped(self.timeout)

    def datagramReceived(self, data: bytes, addr: object) -> None:
        tracked = self._byToken.get(data)
        if tracked is not None:
            tracked.timer.reset(self.timeout)
            return
        self._ignored += 1
        now = self._clock.seconds()
        if now - self._lastReport >= 1.0:
            self.log.debug(
                "Ignored {count} datagram(s) that held no live token",
                count=self._ignored,
            )
            self._ignored = 0
            self._lastReport = now
