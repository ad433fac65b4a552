"""
A Redis connection for the hub and the account store, on C{txredisapi}:
a command connection and a subscriber connection, both reconnecting with
backoff, and commands that fail at once while Redis is unreachable.

C{txredisapi} 1.6 needs help in six places, all handled here: number
conversion is turned off (it would turn a name such as C{007} and pub/sub
payloads into integers), subscriptions are renewed on every reconnection,
TLS verifies the server's certificate, C{redis://} URLs are parsed here,
commands are encoded in one pass, and they go straight to the one command
connection rather than through its pool's handler (an C{inlineCallbacks}
generator per command) with each script's hash computed once.  Replies are
parsed by C{hiredis}, which C{txredisapi} uses when it is installed (a
dependency): every reply a read holds, in that read, at a third of the
pure-Python parser's cost.
"""

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.hub import HubUnavailableError
from .address import RedisAddress

REPLY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# Longest wait between reconnection attempts (txredisapi's default is 10 s).
MAX_RECONNECT_DELAY = 3.0


@cache
def _digest(source: str) -> str:
    """
    The hash by which Redis knows the script C{source}.
    """
    return hashlib.sha1(source.encode()).hexdigest()


class _CommandProtocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    def runScript(self, source: str, args: Sequence[str]) -> "Deferred[Any]":
        """
        Run the Lua script C{source} with C{args}: by its hash once this
        connection sent it, else (and if Redis forgot it) by its text.
        """
        digest = _digest(source)
        if digest not in self.script_hashes:
            d: Deferred[Any] = self.execute_command("EVAL", source, 0, *args)
            return d.addCallback(self._eval_success, digest)
        d = self.execute_command("EVALSHA", digest, 0, *args)
        return d.addErrback(self._scriptForgotten, source, digest, args)

    def _scriptForgotten(
        self, failure: Failure, source: str, digest: str, args: Sequence[str]
    ) -> "Deferred[Any] | Failure":
        if not (
            failure.check(txredisapi.ResponseError)
            and str(failure.value).startswith("NOSCRIPT")
        ):
            return failure
        self.script_hashes.discard(digest)
        return self.runScript(source, args)

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        """
        The command C{args} in Redis's protocol, as C{txredisapi} builds it,
        in one join instead of several calls and copies per argument: a
        node's batch of lines is a script call with six arguments a line.
        """
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            if isinstance(arg, str):
                data = arg.encode(self.charset, self.errors)
            elif isinstance(arg, bytes):
                data = arg
            elif type(arg) is int:
                data = b"%d" % arg
            else:
                return super()._build_command(*args, **kwargs)  # type: ignore[no-any-return]
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)


class _CommandFactory(txredisapi.RedisFactory):  # type: ignore[misc]
    """
    A pool of one command connection that reports when it comes and goes.
    """

    protocol = _CommandProtocol

    maxDelay = MAX_RECONNECT_DELAY

    def __init__(self, address: RedisAddress, onChange: Callable[[bool], None]) -> None:
        super().__init__(
            f"{address.host}:{address.port}",
            address.db,
            1,
            isLazy=True,
            password=address.password,
            username=address.username,
            replyTimeout=REPLY_TIMEOUT,
            convertNumbers=False,
        )
        self._onChange = onChange

    def addConnection(self, conn: Any) -> None:
        super().addConnection(conn)
        if conn in self.pool:
            self._onChange(True)

    def delConnection(self, conn: Any) -> None:
        super().delConnection(conn)
        self._onChange(False)


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    def messageReceived(self, pattern: object, channel: str, message: str) -> None:
        self.factory.onMessage(channel, message)


class _SubscriberFactory(txredisapi.SubscriberFactory):  # type: ignore[misc]
    """
    A subscriber connection that subscribes again on every reconnection.
    """

    protocol = _Subscriber
    maxDelay = MAX_RECONNECT_DELAY

    def __init__(
        self,
        address: RedisAddress,
        channels: Sequence[str],
        onMessage: Callable[[str, str], None],
    ) -> None:
        super().__init__(isLazy=True)
        self.password = address.password
        self.username = address.username
        self.dbid = address.db
        self.convertNumbers = False
        self.channels = list(channels)
        self.onMessage = onMessage

    def buildProtocol(self, addr: object) -> _Subscriber:
        protocol: _Subscriber = super().buildProtocol(addr)
        protocol.whenConnected().addCallback(lambda p: p.subscribe(self.channels))
        return protocol

    def subscribe(self, channel: str) -> "Deferred[Any]":
        """
        Subscribe to C{channel} now, and on every reconnection; fire once
        Redis confirmed it (at once while disconnected).
        """
        self.channels.append(channel)
        return gatherResults(
            [protocol.subscribe([channel]) for protocol in self.pool],
            consumeErrors=True,
        )

    def unsubscribe(self, channel: str) -> None:
        """
        Stop listening to C{channel}.
        """
        self.channels.remove(channel)
        for protocol in self.pool:
            protocol.unsubscribe([channel])


class RedisConnection:
    """
    Commands and subscriptions to one Redis server.

    @ivar available: whether the command connection is up; while it is not,
        L{call} fails at once with L{HubUnavailableError} instead of waiting.

    C{beforeCommand} is called before each command goes out: a caller that
    holds commands back to send them together sends them then, so that Redis
    sees every command in the order it was given.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress,
        channels: Sequence[str] = (),
        onMessage: Callable[[str, str], None] = lambda channel, message: None,
        onAvailable: Callable[[], None] = lambda: None,
        beforeCommand: Callable[[], None] = lambda: None,
    ) -> None:
        self.reactor = reactor
        self._beforeCommand = beforeCommand
        self.address = address
        self.available = False
        self._onAvailable = onAvailable
        self._lostLogged = False
        self._commands = _CommandFactory(address, self._availabilityChanged)
        self._subscriber = (
            _SubscriberFactory(address, channels, onMessage) if channels else None
        )

    def _endpoint(self) -> IStreamClientEndpoint:
        address = self.address
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            self.reactor, address.host, address.port, timeout=CONNECT_TIMEOUT
        )
        if address.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(address.host), endpoint)
        return endpoint

    def start(self) -> None:
        """
        Connect, and keep reconnecting with backoff whenever Redis goes away.
        """
        self._commands.startConnecting(self._endpoint())
        if self._subscriber is not None:
            self._subscriber.startConnecting(self._endpoint())

    def stop(self) -> "Deferred[Any]":
        """
        Disconnect for good.
        """
        self.available = False
        stopping = [self._commands.disconnect()]
        if self._subscriber is not None:
            stopping.append(self._subscriber.disconnect())
        return gatherResults(stopping, consumeErrors=True)

    def _availabilityChanged(self, available: bool) -> None:
        was, self.available = self.available, available
        if available and not was:
            if self._lostLogged:
                self.log.info("Redis at {host}:{port} is back", **self._where())
            self._lostLogged = False
            self._onAvailable()
        elif not available and was and not self._lostLogged:
            self._lostLogged = True
            self.log.warn(
                "Lost Redis at {host}:{port}; reconnecting with backoff",
                **self._where(),
            )

    def _where(self) -> dict[str, object]:
        return {"host": self.address.host, "port": self.address.port}

    def subscribe(self, channel: str) -> "Deferred[None]":
        """
        Receive the messages of C{channel} too (through C{onMessage}); fire
        once Redis confirmed it, or failed to.
        """
        assert self._subscriber is not None
        d = self._subscriber.subscribe(channel)
        return d.addBoth(lambda _: None)

    def unsubscribe(self, channel: str) -> None:
        """
        No longer receive the messages of C{channel}.
        """
        assert self._subscriber is not None
        self._subscriber.unsubscribe(channel)

    def call(self, command: str, *args: Any) -> "Deferred[Any]":
        """
        Run a Redis command (a method name of C{txredisapi}'s protocol, or
        of ours: C{runScript}).

        @return: its reply, or a L{HubUnavailableError} failure if Redis is
            unreachable or does not answer in time.
        """
        protocol = self._connection()
        if protocol is None:
            return fail(HubUnavailableError("Redis is unreachable"))
        d: Deferred[Any] = getattr(protocol, command)(*args)
        return d.addErrback(_unavailable)

    def script(self, source: str, *args: Any) -> "Deferred[Any]":
        """
        Run a Lua script (cached on the server by its hash) with C{args}.
        """
        return self.call("runScript", source, [str(arg) for arg in args])

    def _connection(self) -> _CommandProtocol | None:
        """
        The command connection, after C{beforeCommand}; L{None} if Redis is
        unreachable (or the connection is closing), so that the command
        fails at once.
        """
        self._beforeCommand()
        pool = self._commands.pool
        if not self.available or not pool or not pool[0].connected:
            return None
        protocol: _CommandProtocol = pool[0]
        return protocol


def _unavailable(failure: Failure) -> Failure:
    if failure.check(txredisapi.ConnectionError, txredisapi.TimeoutError):
        return Failure(HubUnavailableError(failure.getErrorMessage()))
    return failure
