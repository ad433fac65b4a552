"""
Real-socket helpers for the integration tests: a line client over Twisted
endpoints whose every wait is bounded, and a server started in the test
process from the plugin's own options.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel, formatEventAsClassicLogText, globalLogPublisher
from twisted.python.failure import Failure

from twisted_chat import tap
from twisted_chat.frontends.irc.protocol import IRCFactory

TIMEOUT = 5.0
PROMPTS = ("Username: ", "Password: ")


class ChatClient(Protocol):
    """
    A client that splits what the server sends into lines (CRLF-terminated)
    and prompts (no line end), and lets a test wait for them with a timeout.

    @ivar received: every line and prompt received so far, in order.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._queue: list[str] = []
        self._waiting: Deferred[None] | None = None
        self.received: list[str] = []
        self._closeWaiters: list[Deferred[None]] = []
        self.isClosed = False

    # Protocol

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            prompt = next(
                (p for p in PROMPTS if self._buffer.startswith(p.encode())), None
            )
            if prompt is not None:
                item = prompt
                self._buffer = self._buffer[len(prompt.encode()) :]
            else:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    break
                raw, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                assert b"\n" not in raw and b"\r" not in raw, raw
                item = raw.decode("utf-8")
            self._queue.append(item)
            self.received.append(item)
        self._wake()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.isClosed = True
        self._wake()
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.callback(None)

    # Sending

    def send(self, *lines: str, end: str = "\n") -> None:
        """
        Send C{lines}, each followed by C{end}, in one write.
        """
        self.transport.write("".join(line + end for line in lines).encode("utf-8"))

    # Waiting

    async def _more(self, timeout: float, what: str) -> None:
        if self.isClosed:
            raise AssertionError(f"connection closed while waiting for {what}")
        d: Deferred[None] = Deferred()
        self._waiting = d
        d.addTimeout(timeout, reactor)
        try:
            await d
        except defer.TimeoutError:
            self._waiting = None
            raise AssertionError(
                f"no {what} within {timeout} s; unread: {self._queue!r}; "
                f"partial: {self._buffer!r}"
            ) from None

    async def next(self, timeout: float = TIMEOUT) -> str:
        """
        The next line or prompt.
        """
        while not self._queue:
            await self._more(timeout, "line")
        return self._queue.pop(0)

    async def expect(self, *lines: str, timeout: float = TIMEOUT) -> None:
        """
        Assert that the next lines (or prompts) are exactly C{lines}.
        """
        for line in lines:
            got = await self.next(timeout)
            assert got == line, f"expected {line!r}, got {got!r}"

    async def waitFor(self, line: str, timeout: float = TIMEOUT) -> list[str]:
        """
        Skip lines until C{line} arrives; return the lines skipped.
        """
        skipped: list[str] = []
        deadline = reactor.seconds() + timeout
        while True:
            while self._queue:
                got = self._queue.pop(0)
                if got == line:
                    return skipped
                skipped.append(got)
            left = deadline - reactor.seconds()
            if left <= 0:
                raise AssertionError(f"{line!r} not received; got {skipped!r}")
            await self._more(left, repr(line))

    def unread(self) -> list[str]:
        """
        The lines received but not yet read.
        """
        return list(self._queue)

    async def expectClosed(self, timeout: float = TIMEOUT) -> None:
        """
        Assert that the server closes the connection within C{timeout}, with
        nothing more sent.
        """
        try:
            await self.whenClosed(timeout)
        except defer.TimeoutError:
            raise AssertionError(f"connection still open after {timeout} s") from None
        assert self._queue == [], f"unread lines at close: {self._queue!r}"

    def whenClosed(self, timeout: float = TIMEOUT) -> "Deferred[None]":
        """
        Fire once the connection is closed, or fail after C{timeout}.
        """
        if self.isClosed:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._closeWaiters.append(d)
        return d.addTimeout(timeout, reactor)

    # Sessions

    async def login(self, name: str, password: str, *, new: bool = True) -> None:
        """
        Answer the welcome dialogue and wait for C{Login success!}.
        """
        await self.expect(
            "Welcome to twisted-chat. An unknown name creates an account.",
            "Username: ",
        )
        self.send(name)
        await self.expect("Password: ")
        self.send(password)
        await self.expect("Login success!")

    def close(self) -> None:
        if not self.isClosed:
            self.transport.abortConnection()


async def askPrivate(
    requester: ChatClient,
    target: ChatClient,
    requesterName: str,
    targetName: str,
    asked: str | None = None,
) -> None:
    """
    Have C{requester} ask C{target} for a private chat (as C{@PM asked},
    by default the target's name); check the confirmation and the question.
    """
    requester.send(f"@PM {asked or targetName}")
    await requester.expect(f"Private chat request sent to {targetName}.")
    await target.expect(
        f"The user {requesterName} wants to have a private chat with you (Y/N)?"
    )


async def goPrivate(
    requester: ChatClient,
    target: ChatClient,
    requesterName: str,
    targetName: str,
    answer: str = "y",
    asked: str | None = None,
) -> None:
    """
    Have C{requester} ask C{target} for a private chat (as C{@PM asked},
    by default the target's name) and C{target} accept with C{answer};
    check every line of that exchange on both sides.
    """
    await askPrivate(requester, target, requesterName, targetName, asked)
    target.send(answer)
    await target.expect(
        f"You are now in a private chat with {requesterName}. Type EXIT PM to leave."
    )
    await requester.expect(
        f"You are now in a private chat with {targetName}. Type EXIT PM to leave."
    )


class Server:
    """
    The plugin's service running in this process on 127.0.0.1, and the
    clients a test connected to it.
    """

    def __init__(self, service: Any, directory: Path) -> None:
        self.service = service
        self.directory = directory
        self.users = directory / "users.json"
        self.auditLog = directory / "server.log"
        self.clients: list[ChatClient] = []
        self.stoppedIn: float | None = None

    @property
    def port(self) -> int:
        return self.service.listeners[0].port.getHost().port

    @property
    def ircPort(self) -> int:
        """
        The port of the first IRC listener.
        """
        irc = [
            listener
            for listener in self.service.listeners
            if isinstance(listener.factory, IRCFactory)
        ]
        return irc[0].port.getHost().port

    @property
    def udpPort(self) -> int:
        return self.service.chat.presence.port

    async def connect(
        self, endpoint: Any = None, port: int | None = None
    ) -> ChatClient:
        """
        Connect a new client, by plain TCP unless C{endpoint} is given.
        """
        if endpoint is None:
            endpoint = TCP4ClientEndpoint(
                reactor, "127.0.0.1", port or self.port, timeout=int(TIMEOUT)
            )
        d = connectProtocol(endpoint, ChatClient())
        d.addTimeout(TIMEOUT, reactor)
        client: ChatClient = await d
        self.clients.append(client)
        return client

    async def user(self, name: str, password: str = "secret") -> ChatClient:
        """
        Connect and log in (or register) C{name}.
        """
        client = await self.connect()
        await client.login(name, password)
        return client

    async def logins(self, *names: str) -> list[ChatClient]:
        """
        Log several users in, one after the other, and read the join lines
        each earlier user gets, so that every queue starts empty.
        """
        clients: list[ChatClient] = []
        for name in names:
            client = await self.user(name)
            for earlier in clients:
                await earlier.expect(f"* {name} joined the chat.")
            clients.append(client)
        return clients

    def auditLines(self) -> list[str]:
        """
        The lines of the audit log, with those the server still holds back
        (it writes at most every few tenths of a second) written first.
        """
        for output in self.service.auditOutputs:
            output.flush()
        return self.auditLog.read_text("utf-8").splitlines()


def serverArguments(directory: Path, *extra: str) -> list[str]:
    """
    The C{twistd chat} arguments of a server bound to 127.0.0.1 ephemeral
    ports (unless C{extra} has a C{--listen}) with its files in C{directory}.
    History is kept but not replayed at login unless C{extra} says otherwise,
    so that a test about something else sees each login's lines as before.
    """
    arguments = [
        "--users",
        str(directory / "users.json"),
        "--audit-log",
        str(directory / "server.log"),
        "--history",
        str(directory / "history.sqlite3"),
        "--udp-port",
        "0",
        "--udp-interface",
        "127.0.0.1",
        *extra,
    ]
    if "--listen" not in extra:
        arguments += ["--listen", "tcp:0:interface=127.0.0.1"]
    if "--history-on-login" not in extra:
        arguments += ["--history-on-login", "0"]
    return arguments


def options(directory: Path, *extra: str) -> tap.Options:
    """
    Parsed plugin options for L{serverArguments}.
    """
    opts = tap.Options()
    opts.parseOptions(serverArguments(directory, *extra))
    return opts


@asynccontextmanager
async def running(directory: Path, *extra: str) -> AsyncIterator[Server]:
    """
    Run the server built by the plugin's C{makeService}; on the way out, stop
    it (as at SIGTERM) and make sure every client connection is closed.
    """
    errors: list[dict[str, Any]] = []

    def collectErrors(event: dict[str, Any]) -> None:
        if "log_failure" in event or event.get("log_level") in (
            LogLevel.error,
            LogLevel.critical,
        ):
            errors.append(event)

    service = tap.makeService(options(directory, *extra), reactor)
    service.startService()
    globalLogPublisher.addObserver(collectErrors)
    server = Server(service, directory)
    try:
        yield server
    finally:
        began = reactor.seconds()
        stopped = service.stopService()
        stopped.addTimeout(3 * TIMEOUT, reactor)
        try:
            await stopped
            server.stoppedIn = reactor.seconds() - began
        finally:
            for client in server.clients:
                client.close()
            for client in server.clients:
                await client.whenClosed()
            globalLogPublisher.removeObserver(collectErrors)
    # Reached only when the test body and the shutdown went well.
    assert not errors, "the server logged errors:\n" + "\n".join(
        formatEventAsClassicLogText(event) or repr(event) for event in errors
    )
