"""
The hardening limits of issue 4 through real sockets on 127.0.0.1: the
service started in this process from the plugin's own options, and C{twistd
chat} as a subprocess where its memory is measured or it is killed.

Every wait is bounded; every server binds 127.0.0.1 only.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest_twisted
from chatclient import serverArguments
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from twisted_chat import tap
from twisted_chat.frontends.line import messages

TIMEOUT = 5.0
PROMPTS = (messages.PROMPT_USERNAME, messages.PROMPT_PASSWORD)
# The slow-reader test's bound on the server's peak resident memory.
MEMORY_BOUND_MB = 200


def sleep(seconds: float) -> "Deferred[None]":
    return deferLater(reactor, seconds, lambda: None)


class LineClient(Protocol):
    """
    A chat client that splits what it receives into lines and prompts, and
    lets a test wait, with a timeout, until a condition on them holds.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.items: list[str] = []
        self.closed = False
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            prompt = next(
                (p for p in PROMPTS if self.buffer.startswith(p.encode())), None
            )
            if prompt is not None:
                self.items.append(prompt)
                self.buffer = self.buffer[len(prompt) :]
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            self.items.append(self.buffer[:end].decode("utf-8"))
            self.buffer = self.buffer[end + 2 :]
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        self._check()

    def _check(self) -> None:
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate() or self.closed:
                self._waiters.remove(waiter)
                d.callback(None)

    async def until(
        self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT
    ) -> None:
        """
        Wait until C{predicate()} holds; fail after C{timeout} seconds or if
        the connection closes first.
        """
        if not predicate() and not self.closed:
            d: Deferred[None] = Deferred()
            waiter = (predicate, d)
            self._waiters.append(waiter)
            d.addTimeout(timeout, reactor)
            try:
                await d
            except defer.TimeoutError:
                self._waiters.remove(waiter)
                raise AssertionError(
                    f"no {what} within {timeout} s; got {self.items[-5:]!r}"
                ) from None
        if not predicate():
            raise AssertionError(f"closed before {what}; got {self.items[-5:]!r}")

    async def expect(self, line: str, timeout: float = TIMEOUT) -> None:
        await self.until(lambda: line in self.items, repr(line), timeout)

    async def expectClosed(self, timeout: float = TIMEOUT) -> None:
        await self.until(lambda: self.closed, "close", timeout)

    def send(self, *lines: str) -> None:
        self.transport.write("".join(line + "\n" for line in lines).encode())

    async def login(
        self, name: str, password: str = "secret", timeout: float = TIMEOUT
    ) -> None:
        await self.expect(messages.PROMPT_USERNAME)
        self.send(name, password)
        await self.expect(messages.LOGIN_SUCCESS, timeout)

    def abort(self) -> None:
        if not self.closed:
            self.transport.abortConnection()


async def connect(port: int) -> LineClient:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    return await connectProtocol(endpoint, LineClient())


class InProcess:
    """
    The plugin's service running in this process, and the clients a test
    connected to it (aborted at the end).
    """

    def __init__(self, service: Any) -> None:
        self.service = service
        self.clients: list[LineClient] = []

    @property
    def port(self) -> int:
        return self.service.listeners[0].port.getHost().port

    @property
    def connections(self) -> Any:
        return self.service.connections

    async def connect(self) -> LineClient:
        client = await connect(self.port)
        self.clients.append(client)
        return client

    async def user(self, name: str) -> LineClient:
        client = await self.connect()
        await client.login(name)
        return client


@asynccontextmanager
async def inProcess(directory: Path, *extra: str) -> AsyncIterator[InProcess]:
    options = tap.Options()
    options.parseOptions(serverArguments(directory, *extra))
    service = tap.makeService(options)
    service.startService()
    server = InProcess(service)
    try:
        yield server
    finally:
        for client in server.clients:
            client.abort()
        await service.stopService()


# Through the service in this process


@pytest_twisted.ensureDeferred
async def test_huge_line_over_tcp(tmp_path: Path) -> None:
    """
    When a client sends 5 MB without a newline, then a newline and a normal line, the
    server keeps it connected, buffers at most the line limit and handles the normal
    line.
    """
    async with inProcess(tmp_path) as server:
        alice, bob = await server.user("alice"), await server.user("bob")
        await alice.expect("* bob joined the chat.")
        buffered: list[int] = []

        def sample() -> None:
            for protocol in server.connections.open:
                buffered.append(len(protocol._buffer))

        sampler = LoopingCall(sample)
        sampler.start(0.005)
        try:
            alice.transport.write(b"x" * (5 * 1024 * 1024))
            alice.transport.write(b"\nhello after the flood\n")
            await bob.expect("alice > hello after the flood", timeout=15)
        finally:
            sampler.stop()
        assert alice.items.count(messages.LINE_TOO_LONG.format(limit=4096)) == 1
        assert not alice.closed
        assert buffered and max(buffered) <= 4096 + 1
        assert not any("xxx" in line for line in bob.items)


@pytest_twisted.ensureDeferred
async def test_flood_paste_over_tcp(tmp_path: Path) -> None:
    """
    When a client pastes 60 lines at once, the server relays them all, in order, no
    faster than the flood limit, and says "slow down" once.
    """
    async with inProcess(tmp_path, "--flood-rate", "20", "--flood-burst", "10") as s:
        alice, bob = await s.user("alice"), await s.user("bob")
        await alice.expect("* bob joined the chat.")
        lines = [f"paste line {i:02d}" for i in range(60)]
        start = time.monotonic()
        alice.send(*lines)
        await bob.expect(f"alice > {lines[-1]}", timeout=15)
        elapsed = time.monotonic() - start
        relayed = [line for line in bob.items if line.startswith("alice > ")]
        assert relayed == [f"alice > {line}" for line in lines]
        assert elapsed >= (60 - 10) / 20 - 0.1
        assert alice.items.count(messages.SLOW_DOWN) == 1
        assert not alice.closed


@pytest_twisted.ensureDeferred
async def test_login_timeout_over_tcp(tmp_path: Path) -> None:
    """
    When a connection does not log in within --login-timeout 0.5, the server closes it
    with "Login timed out.", and a prompt login stays.
    """
    async with inProcess(tmp_path, "--login-timeout", "0.5") as server:
        idle, halfway = await server.connect(), await server.connect()
        start = time.monotonic()
        await halfway.expect(messages.PROMPT_USERNAME)
        halfway.send("carol")
        quick = await server.user("alice")
        for client in (idle, halfway):
            await client.expectClosed(timeout=3)
            assert client.items[-1] == messages.LOGIN_TIMED_OUT
        assert time.monotonic() - start >= 0.45
        await sleep(0.6)
        quick.send("@WHO")
        await quick.expect("Online users: alice")
        assert not quick.closed


@pytest_twisted.ensureDeferred
async def test_connection_limit_over_tcp(tmp_path: Path) -> None:
    """
    When loopback is not exempt and an address holds 3 connections, the server answers a
    4th with "Too many connections." and admits one again after a close.
    """
    async with inProcess(
        tmp_path, "--no-exempt-loopback", "--max-connections-per-ip", "3"
    ) as server:
        first = [await server.connect() for _ in range(3)]
        for client in first:
            await client.expect(messages.PROMPT_USERNAME)
        fourth = await server.connect()
        await fourth.expectClosed()
        assert fourth.items == [messages.TOO_MANY_CONNECTIONS]
        first[0].abort()
        for _ in range(100):
            if len(server.connections.open) == 2:
                break
            await sleep(0.02)
        again = await server.connect()
        await again.expect(messages.PROMPT_USERNAME)
        assert not again.closed


# Through twistd in a subprocess


def twistdExecutable() -> str:
    sibling = Path(sys.executable).with_name("twistd")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("twistd")
    assert found, "twistd not found"
    return found


class Twistd:
    """
    C{twistd -n chat} running as a subprocess on 127.0.0.1.
    """

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.users = directory / "users.json"
        self.log = directory / "twistd.log"
        self.argv = [
            twistdExecutable(),
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.log),
            "chat",
            *serverArguments(directory, *extra),
        ]
        self.stderr = open(directory / "twistd.stderr", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=self.stderr,
        )

    def logText(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def port(self, timeout: float = 15.0) -> int:
        """
        The TCP port the server logged as bound.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(
                r"Listening on tcp:\S+: 127\.0\.0\.1:(\d+)", self.logText()
            )
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            await sleep(0.05)
        raise AssertionError(
            f"twistd did not start: {self.logText()[-2000:]}"
            f"{(self.directory / 'twistd.stderr').read_text(errors='replace')}"
        )

    def peakMemoryKiB(self) -> int:
        """
        The server's peak resident set size so far (VmHWM), in KiB.
        """
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
        assert match, status
        return int(match.group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.stderr.close()


class _OneProtocol(Factory):
    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


def connectSlowReader(port: int) -> LineClient:
    """
    Connect a client whose socket advertises a small window (4 KiB receive
    buffer, 536-byte segments), as a phone on a poor link would: the kernel
    then holds little for it, and the server's own send queue fills soon.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        client = LineClient()
        reactor.adoptStreamConnection(
            sock.fileno(), socket.AF_INET, _OneProtocol(client)
        )
    finally:
        sock.close()
    return client


async def gather(awaitables: list[Any], timeout: float) -> None:
    """
    Wait for all of C{awaitables}, failing with the first failure or after
    C{timeout} seconds.
    """
    d = DeferredList(
        [defer.ensureDeferred(a) for a in awaitables],
        fireOnOneErrback=True,
        consumeErrors=True,
    )
    d.addTimeout(timeout, reactor)
    try:
        await d
    except defer.FirstError as e:
        e.subFailure.raiseException()


@pytest_twisted.ensureDeferred
async def test_slow_readers_dropped_memory_bounded(tmp_path: Path) -> None:
    """
    When 100 logged-in clients never read while others chat fast, the server drops each
    past --max-sendq-bytes, its peak memory stays bounded, and the readers get every
    line.
    """
    readerCount, chatterCount, slowCount, linesEach, roundLines = 2, 3, 100, 200, 10
    server = Twistd(
        tmp_path,
        "--max-sendq-bytes",
        "65536",
        "--flood-rate",
        "0",
        "--login-timeout",
        "0",
    )
    clients: list[LineClient] = []
    try:
        port = await server.port()
        readers = [await connect(port) for _ in range(readerCount)]
        chatters = [await connect(port) for _ in range(chatterCount)]
        clients += readers + chatters
        await gather(
            [c.login(f"reader{i}") for i, c in enumerate(readers)]
            + [c.login(f"chatter{i}") for i, c in enumerate(chatters)],
            timeout=20,
        )
        slow = [connectSlowReader(port) for _ in range(slowCount)]
        clients += slow
        logins = [c.login(f"slow{i}", timeout=30) for i, c in enumerate(slow)]
        await gather(logins, timeout=30)
        for client in slow:
            client.transport.pauseProducing()  # never reads again
        baseline = server.peakMemoryKiB()

        everyLine = {
            f"chatter{j} > c{j} {i:04d} " + "x" * 990
            for j in range(chatterCount)
            for i in range(linesEach)
        }

        def chatLines(client: LineClient) -> list[str]:
            return [line for line in client.items if line in everyLine]

        # The chatters send in rounds that a reading client takes in well
        # under its send queue, so only a client that stops reading is dropped
        # however slowly this machine runs the readers; the non-readers still
        # get all 600 KB queued, far past their limit.
        start = time.monotonic()
        for first in range(0, linesEach, roundLines):
            for j, chatter in enumerate(chatters):
                chatter.send(
                    *(
                        f"c{j} {i:04d} " + "x" * 990
                        for i in range(first, first + roundLines)
                    )
                )
            got = chatterCount * (first + roundLines)
            await gather(
                [
                    r.until(
                        lambda r=r, got=got: len(chatLines(r)) >= got,
                        f"{got} lines",
                        20,
                    )
                    for r in readers
                ],
                timeout=25,
            )
        elapsed = time.monotonic() - start
        for reader in readers:
            mine = chatLines(reader)
            for j in range(chatterCount):
                fromJ = [line for line in mine if line.startswith(f"chatter{j} > ")]
                assert fromJ == sorted(fromJ) and len(fromJ) == linesEach

        deadline = time.monotonic() + 15
        while server.logText().count("SendQ exceeded") < slowCount:
            if time.monotonic() > deadline:
                break
            await sleep(0.05)
        dropped = server.logText().count("SendQ exceeded")
        peak = server.peakMemoryKiB()
        for client in slow:
            client.transport.resumeProducing()
        await sleep(3)  # every dropped client sees its reset well within this
        stillOpen = [(i, len(c.items)) for i, c in enumerate(slow) if not c.closed]
        assert (dropped, stillOpen) == (slowCount, []), server.log
        assert not any(c.closed for c in readers + chatters)
        print(
            f"\nslow-reader test: {slowCount} non-readers dropped, "
            f"{len(everyLine)} lines of 1 KB fanned out in {elapsed:.2f} s; "
            f"server VmHWM {peak / 1024:.1f} MiB "
            f"(after logins {baseline / 1024:.1f} MiB)\n"
            f"command: {' '.join(server.argv)}"
        )
        assert peak < MEMORY_BOUND_MB * 1024
        # The slow readers themselves cost little: the rest is the
        # interpreter and the Argon2 memory that the hashing threads keep.
        assert peak - baseline < 40 * 1024
        assert server.process.poll() is None
    finally:
        for client in clients:
            client.abort()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_sigkill_during_registration_storm(tmp_path: Path) -> None:
    """
    When the server is killed by SIGKILL at a random moment of a registration storm,
    users.json parses and holds every user that got "Login success!".
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    workers, perWorker = 10, 6
    target = rng.randint(5, workers * perWorker - 15)
    extraDelay = rng.uniform(0, 0.05)
    print(f"\nSIGKILL storm: seed {seed}, kill after {target} successes")
    server = Twistd(tmp_path)
    succeeded: list[str] = []
    clients: list[LineClient] = []
    reached: Deferred[None] = Deferred()
    try:
        port = await server.port()

        async def worker(w: int) -> None:
            for i in range(perWorker):
                name = f"storm{w}x{i}"
                try:
                    client = await connect(port)
                except Exception:
                    return  # the server is gone
                clients.append(client)
                try:
                    await client.login(name, f"pw-{name}")
                except AssertionError:
                    return
                succeeded.append(name)
                client.abort()
                if len(succeeded) >= target and not reached.called:
                    reached.callback(None)

        work = [defer.ensureDeferred(worker(w)) for w in range(workers)]
        reached.addTimeout(30, reactor)
        await reached
        await sleep(extraDelay)
        os.kill(server.process.pid, signal.SIGKILL)
        killedAfter = len(succeeded)
        server.process.wait(timeout=5)
        for client in clients:
            client.abort()
        await gather(work, timeout=10)
    finally:
        for client in clients:
            client.abort()
        server.stop()
    confirmed = set(succeeded[:killedAfter])
    assert len(confirmed) >= target
    document = json.loads(server.users.read_bytes())
    onDisk = {entry["name"]: entry for entry in document["users"]}
    print(
        f"{len(confirmed)} got Login success! before the kill; "
        f"{len(onDisk)} accounts on disk"
    )
    assert document["version"] == 1
    assert confirmed <= set(onDisk)
    assert all(entry["hash"].startswith("$argon2id$") for entry in onDisk.values())
    assert set(onDisk) <= {
        f"storm{w}x{i}" for w in range(workers) for i in range(perWorker)
    }
