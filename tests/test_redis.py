"""
Several nodes as one chat over a real Redis: nodes started in the test
process (and one as a C{twistd} subprocess, to be killed), real sockets.
"""

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from chatclient import (
    ChatClient,
    Server,
    askPrivate,
    goPrivate,
    running,
    serverArguments,
)
from redisserver import RedisServer
from twisted.internet import reactor
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock, deferLater

from twisted_chat.core.events import ChatLine
from twisted_chat.core.hub import HubUnavailableError, Session
from twisted_chat.core.rooms import LocalRooms
from twisted_chat.frontends.line.render import LINE_RENDERER
from twisted_chat.redis.address import RedisAddress
from twisted_chat.redis.hub import _HEARTBEAT, _RESYNC, LINE_BATCH_INTERVAL, RedisHub

GENERAL_CHANNEL = "tc:room:#general"

TTL = "2"
WAIT = 10.0


def sleep(seconds: float) -> Any:
    return deferLater(reactor, seconds, lambda: None)


async def hubReady(server: Server, timeout: float = WAIT) -> None:
    """
    Wait until the node's hub is connected to Redis.
    """
    redis = server.service.chat.hub.redis
    deadline = reactor.seconds() + timeout
    while not redis.available:
        assert reactor.seconds() < deadline, "the node never reached Redis"
        await sleep(0.05)


@asynccontextmanager
async def nodes(
    tmp_path: Path, redis: RedisServer, count: int, *extra: str
) -> AsyncIterator[list[Server]]:
    """
    Run C{count} nodes on one hub, each with its own port and files (and
    the options C{extra}).
    """
    async with AsyncExitStack() as stack:
        servers = []
        for index in range(count):
            directory = tmp_path / f"node{index}"
            directory.mkdir()
            server = await stack.enter_async_context(
                running(directory, "--hub", redis.url, "--hub-ttl", TTL, *extra)
            )
            await hubReady(server)
            servers.append(server)
        # Let every node's subscriber connection come up too.
        await sleep(0.3)
        yield servers


NAMES = ("alice", "bob", "carol")


async def enterTogether(
    first: ChatClient,
    second: ChatClient,
    secondName: str,
    room: str,
    spelling: str | None = None,
) -> None:
    """
    Have C{first}, then C{second} (as C{@JOIN spelling}, by default the
    room's name), enter the new room C{room}; check that C{first} is told.
    """
    first.send(f"@JOIN {room}")
    await first.expect(f"You are now in {room} (1 users).")
    second.send(f"@JOIN {spelling or room}")
    await second.expect(f"You are now in {room} (2 users).")
    await first.expect(f"* {secondName} joined {room}.")


async def oneOnEach(
    a: Server, b: Server, c: Server, names: tuple[str, str, str] = NAMES
) -> list[ChatClient]:
    """
    Log the first of C{names} (alice) in on C{a}, the second (bob) on C{b}
    and the third (carol) on C{c}, each after the others have seen the one
    before arrive.
    """
    first, second, third = names
    one = await a.user(first)
    two = await b.user(second)
    await one.expect(f"* {second} joined the chat.")
    three = await c.user(third)
    await one.expect(f"* {third} joined the chat.")
    await two.expect(f"* {third} joined the chat.")
    return [one, two, three]


async def who(client: ChatClient) -> str:
    client.send("@WHO")
    line = await client.next()
    assert line.startswith("Online users: "), line
    return line


@pytest_twisted.ensureDeferred
async def test_group_lines_cross_nodes(tmp_path: Path, redis: RedisServer) -> None:
    """
    When users on three nodes talk in the group, each line reaches every
    other user on every node once, never its sender.
    """
    async with nodes(tmp_path, redis, 3) as (a, b, c):
        alice, bob, carol = await oneOnEach(a, b, c)
        alice.send("hello from A")
        await bob.expect("alice > hello from A")
        await carol.expect("alice > hello from A")
        carol.send("hi from C")
        await alice.expect("carol > hi from C")
        await bob.expect("carol > hi from C")
        assert await who(bob) == "Online users: alice, bob, carol"
        assert alice.unread() == [] and bob.unread() == [] and carol.unread() == []


@pytest_twisted.ensureDeferred
async def test_burst_crosses_nodes_in_order(tmp_path: Path, redis: RedisServer) -> None:
    """
    A burst of lines from users on two nodes, which travel through Redis in
    batches, reaches a third node's user whole and in each sender's order,
    with no line lost, doubled or added.
    """
    async with nodes(tmp_path, redis, 3) as (a, b, c):
        alice, bob, carol = await oneOnEach(a, b, c)
        # Twenty each: within the flood limit's burst, so all at once.
        for i in range(20):
            alice.send(f"a{i}")
            bob.send(f"b{i}")
        got = [await carol.next() for _ in range(40)]
        await sleep(0.2)
        got += carol.unread()
        for name in ("alice", "bob"):
            said = [line for line in got if line.startswith(f"{name} > ")]
            assert said == [f"{name} > {name[0]}{i}" for i in range(20)], got
        assert len(got) == 40, got
        assert await who(carol) == "Online users: alice, bob, carol"


@pytest_twisted.ensureDeferred
async def test_hub_nodes_turn_nagle_off(tmp_path: Path, redis: RedisServer) -> None:
    """
    On a hub, where lines reach a node in batches, a client's socket has
    Nagle's algorithm off (a single node keeps it on; see test_web_net).
    """
    async with nodes(tmp_path, redis, 1) as (a,):
        await a.user("alice")
        (connection,) = a.service.connections.open
        handle = connection.transport.getHandle()
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.parametrize("comeback", ["heartbeat", "reconnect"])
@pytest_twisted.ensureDeferred
async def test_node_taken_for_dead_comes_back(
    tmp_path: Path, redis: RedisServer, comeback: str
) -> None:
    """
    When a node stalls past its liveness (or loses Redis for longer) and
    another node takes its users offline, its own users are not told they
    left, and its next heartbeat (or its reconnection) puts them back: the
    other nodes' users are told they are back in each of their rooms, their
    lines cross nodes again and @WHO lists them.
    """
    async with nodes(tmp_path, redis, 2) as (a, b):
        alice, bob, carol = await oneOnEach(a, b, b)
        await enterTogether(alice, bob, "bob", "#side")
        hubA, hubB = a.service.chat.hub, b.service.chat.hub
        # Node B stalls: no heartbeat, its liveness gone, and A reaps it.
        hubB._liveness.stop()
        await hubA.redis.call("delete", f"tc:alive:{hubB.node}")
        await hubA.redis.script(_HEARTBEAT, hubA.node, 1000, "1")
        gone = sorted([await alice.next(), await alice.next()])
        assert gone == ["* bob left the chat.", "* carol left the chat."]
        assert await who(alice) == "Online users: alice"
        if comeback == "heartbeat":
            hubB._beat()
        else:
            hubB._resync()  # as when B's connection to Redis comes back
        hubB._liveness.start(hubB.ttl / 3, now=False)
        back = sorted([await alice.next() for _ in range(3)])
        assert back == [
            "* bob joined #side.",
            "* bob joined the chat.",
            "* carol joined the chat.",
        ]
        bob.send("still here")
        await alice.expect("bob > still here")
        assert await who(alice) == "Online users: alice, bob, carol"
        await sleep(0.2)
        assert bob.unread() == [] and carol.unread() == []
        assert alice.unread() == []


@pytest_twisted.ensureDeferred
async def test_private_chat_across_nodes(tmp_path: Path, redis: RedisServer) -> None:
    """
    When users on different nodes go private, their lines reach only each
    other, group lines skip them, and EXIT PM brings both back.
    """
    async with nodes(tmp_path, redis, 3) as (a, b, c):
        alice, bob, carol = await oneOnEach(a, b, c)

        await askPrivate(alice, bob, "alice", "bob")
        carol.send("@PM bob")
        await carol.expect("User bob already has a request pending.")
        bob.send("y")
        await bob.expect(
            "You are now in a private chat with alice. Type EXIT PM to leave."
        )
        await alice.expect(
            "You are now in a private chat with bob. Type EXIT PM to leave."
        )
        assert await who(carol) == (
            "Online users: alice (PM with bob), bob (PM with alice), carol"
        )
        carol.send("@PM alice")
        await carol.expect("User alice is already in a private chat.")

        alice.send("just for bob")
        await bob.expect("alice > just for bob")
        bob.send("just for alice")
        await alice.expect("bob > just for alice")
        carol.send("for the group")
        carol.send("@WHO")
        await carol.next()
        await sleep(0.2)
        assert alice.unread() == [] and bob.unread() == []
        assert carol.unread() == []

        bob.send("EXIT PM")
        missed = "You missed 1 lines in #general; type @HISTORY to see them."
        await bob.expect("You left the private chat with alice.", missed)
        await alice.expect("Your partner bob left pm!", missed)
        carol.send("back together")
        await alice.expect("carol > back together")
        await bob.expect("carol > back together")

        await askPrivate(carol, alice, "carol", "alice")
        alice.send("n")
        await alice.expect("Request rejected.")
        await carol.expect("alice rejected your private chat request.")


@pytest_twisted.ensureDeferred
async def test_search_and_request_checks_across_nodes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """
    When users search and ask for private chats across nodes, offline and
    unknown users are told apart through the shared account store.
    """
    async with nodes(tmp_path, redis, 2) as (a, b):
        dave = await a.user("dave")
        dave.send("LOGOUT")
        await dave.expect("Goodbye, dave!")
        alice = await a.user("alice")
        bob = await b.user("bob")
        await alice.expect("* bob joined the chat.")
        bob.send("@SEARCH a")
        await bob.expect(
            'Found 2 users matching "a":', "alice (online)", "dave (offline)"
        )
        bob.send("@PM dave", "@PM nobody", "@PM BOB")
        await bob.expect(
            "User dave is offline.",
            "User nobody does not exist.",
            "You cannot have a private chat with yourself.",
        )


@pytest_twisted.ensureDeferred
async def test_takeover_across_nodes(tmp_path: Path, redis: RedisServer) -> None:
    """
    When a user logs in on another node with the right password, the old
    connection is told and closed, and the private chat goes on over the new
    one (which is told) without the partner being told.
    """
    async with nodes(tmp_path, redis, 3) as (a, b, c):
        alice = await a.user("alice", "pw")
        bob = await b.user("bob")
        await alice.expect("* bob joined the chat.")
        await goPrivate(alice, bob, "alice", "bob", "@ACCEPT")

        again = await c.user("alice", "pw")
        await again.expect(
            "You are now in a private chat with bob. Type EXIT PM to leave."
        )
        await alice.expect("You logged in from another connection.")
        await alice.expectClosed()
        bob.send("are you there?")
        await again.expect("bob > are you there?")
        again.send("yes, moved")
        await bob.expect("alice > yes, moved")
        assert bob.unread() == []


@pytest_twisted.ensureDeferred
async def test_concurrent_registration_on_two_nodes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """
    When two nodes register the same new name at once with different
    passwords, exactly one account exists and exactly one login succeeds.
    """
    async with nodes(tmp_path, redis, 2) as (a, b):
        first, second = await a.connect(), await b.connect()
        for client in (first, second):
            await client.expect(
                "Welcome to twisted-chat. An unknown name creates an account.",
                "Username: ",
            )
        first.send("zoe", "one")
        second.send("Zoe", "two")
        answers = [
            (await first.next(), await first.next()),
            (await second.next(), await second.next()),
        ]
        verdicts = sorted(answer[1] for answer in answers)
        assert verdicts == ["Login success!", "Wrong password."], answers
        accounts = await a.service.chat.accounts.search("zoe")
        assert len(accounts) == 1


def startNode(directory: Path, url: str) -> tuple[subprocess.Popen[bytes], int]:
    """
    Start a node as a C{twistd} subprocess; return it and its TCP port.
    """
    directory.mkdir()
    log = directory / "twistd.log"
    process = subprocess.Popen(
        [
            sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=",
            "--logfile", str(log), "chat",
            *serverArguments(directory, "--hub", url, "--hub-ttl", TTL),
        ],
        cwd=directory,
    )  # fmt: skip
    deadline = time.monotonic() + WAIT
    pattern = re.compile(r"Listening on tcp:0:interface=127.0.0.1: 127.0.0.1:(\d+)")
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text() if log.exists() else "")
        if found:
            return process, int(found.group(1))
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the node did not start")


@pytest_twisted.ensureDeferred
async def test_killed_node_users_leave(tmp_path: Path, redis: RedisServer) -> None:
    """
    When a node is killed with SIGKILL, within its TTL the other nodes treat
    its users as gone: partners are told, @WHO drops them, and they can log
    in again elsewhere at once.
    """
    process, port = startNode(tmp_path / "doomed", redis.url)
    try:
        async with nodes(tmp_path, redis, 1) as (a,):
            alice = await a.user("alice")
            bob = await a.connect(port=port)
            await bob.login("bob", "pw")
            await alice.expect("* bob joined the chat.")
            await goPrivate(alice, bob, "alice", "bob")
            killedAt = reactor.seconds()
            os.kill(process.pid, signal.SIGKILL)
            process.wait(WAIT)
            await alice.expect("Your partner bob left pm!", timeout=3 * float(TTL))
            assert reactor.seconds() - killedAt <= float(TTL) + 1
            await alice.expect("* bob left the chat.")
            assert await who(alice) == "Online users: alice"
            back = await a.connect()
            await back.login("bob", "pw")
            await alice.expect("* bob joined the chat.")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)


@pytest_twisted.ensureDeferred
async def test_redis_restart(tmp_path: Path, redis: RedisServer) -> None:
    """
    When Redis goes away, each node keeps serving its own users and answers
    logins with the degraded line; when Redis is back, cross-node lines flow
    again and accounts are kept.
    """
    async with nodes(tmp_path, redis, 2) as (a, b):
        alice, ann, bob = await oneOnEach(a, a, b, ("alice", "ann", "bob"))

        redis.stop()
        await sleep(0.3)
        alice.send("local only")
        await ann.expect("alice > local only")
        late = await b.connect()
        await late.expect(
            "Welcome to twisted-chat. An unknown name creates an account.",
            "Username: ",
        )
        late.send("bob", "secret")
        await late.expect("Password: ")
        await late.expect(
            "The service is degraded (its shared store is out of reach); "
            "try again later.",
            "Username: ",
        )

        redis.start()
        await hubReady(a, timeout=WAIT)
        await hubReady(b, timeout=WAIT)
        await sleep(0.5)
        bob.send("hello again")
        await alice.expect("bob > hello again")
        await ann.expect("bob > hello again")
        assert await who(bob) == "Online users: alice, ann, bob"
        assert bob.unread() == []
        late.send("carol", "pw")
        await late.expect("Password: ", "Login success!")


@pytest_twisted.ensureDeferred
async def test_import_users(tmp_path: Path, redis: RedisServer) -> None:
    """
    When an old users.json is imported, its users log in on any node with
    their old passwords, and invalid entries are reported, not imported.
    """
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps(
            {
                "client": [
                    {"name": "Hakan", "password": "eski"},
                    {"name": "hakan", "password": "other"},
                    {"name": "bad name", "password": "x"},
                ]
            }
        )
    )
    result = await deferLater(
        reactor,
        0,
        subprocess.run,
        [sys.executable, "-m", "twisted_chat.admin", "import-users",
         "--hub", redis.url, str(old)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Imported 1 accounts" in result.stdout
    assert "bad name" in result.stdout
    async with nodes(tmp_path, redis, 1) as (a,):
        client = await a.connect()
        await client.expect(
            "Welcome to twisted-chat. An unknown name creates an account.",
            "Username: ",
        )
        client.send("HAKAN", "eski")
        await client.expect("Password: ", "Login success!")


class FakeRedis:
    """
    Records the commands and scripts a L{RedisHub} runs.
    """

    available = True

    def __init__(
        self, *args: object, beforeCommand: Any = lambda: None, **kwargs: object
    ) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.beforeCommand = beforeCommand
        self.failure: Exception | None = None

    def call(self, command: str, *args: Any) -> Any:
        self.beforeCommand()
        self.calls.append((command, *args))
        return succeed(1)

    def script(self, source: str, *args: Any) -> Any:
        self.beforeCommand()
        self.calls.append(("script", *args))
        if self.failure is not None:
            return fail(self.failure)
        return succeed([0, "", "", "", ["#general", "#general"], "#general"])

    def subscribe(self, channel: str) -> Any:
        self.calls.append(("subscribe", channel))
        return succeed(None)


class Recipient:
    renderer = LINE_RENDERER
    echoes = False

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def deliver(self, data: bytes) -> None:
        self.data.append(data)

    announce = deliver

    def supersede(self) -> None:
        pass

    def failed(self, failure: Any) -> None:
        raise AssertionError(failure)


def _hubOf(count: int) -> tuple[RedisHub, list[Recipient], list[Session], Clock]:
    """
    A hub on L{FakeRedis} and a clock, with C{count} users attached.
    """
    clock = Clock()
    hub = RedisHub(clock, RedisAddress(), connection=FakeRedis)
    recipients = [Recipient() for _ in range(count)]
    sessions = [Session(f"user{i}", r) for i, r in enumerate(recipients)]
    for session in sessions:
        hub.attach(session)
    hub.redis.calls.clear()
    return hub, recipients, sessions, clock


def _lines(*said: tuple[str, str]) -> tuple[str, ...]:
    """
    The arguments of the line script for lines C{(user, text)} in #general.
    """
    arguments: tuple[str, ...] = ("script", "10000")
    for user, text in said:
        arguments += ("#general", user, user, text, "line", "s")
    return arguments


def test_one_publish_per_room_line() -> None:
    """
    The lines users say to a room during one pass of the reactor go to Redis
    as one script call as the pass ends (which publishes them as one
    message), and that message reaches each local member in one delivery,
    with every line but its own, in order.
    """
    hub, recipients, sessions, clock = _hubOf(50)
    assert hub.sayInRoom(sessions[0], "#general", "hello") == "#general"
    assert hub.sayInRoom(sessions[1], "#general", "hi") == "#general"
    assert hub.redis.calls == []
    clock.advance(0)
    assert hub.redis.calls == [_lines(("user0", "hello"), ("user1", "hi"))]
    message = (
        "s\nuser0\nline\nuser0\n1764578400000-0\nhello\n"
        "s\nuser1\nline\nuser1\n1764578400000-1\nhi"
    )
    hub._messageReceived(GENERAL_CHANNEL, message)
    assert recipients[0].data == [b"user1 > hi\r\n"]
    assert recipients[1].data == [b"user0 > hello\r\n"]
    assert all(r.data == [b"user0 > hello\r\nuser1 > hi\r\n"] for r in recipients[2:])


def test_lines_batched_under_load() -> None:
    """
    A lone line goes at the end of its pass; lines said in the same step of
    LINE_BATCH_INTERVAL as a batch that went wait for the next step to
    start, and then go together.
    """
    hub, _, sessions, clock = _hubOf(2)
    hub.sayInRoom(sessions[0], "#general", "one")
    clock.advance(0)
    assert hub.redis.calls == [_lines(("user0", "one"))]
    clock.advance(LINE_BATCH_INTERVAL / 5)
    hub.sayInRoom(sessions[1], "#general", "two")
    clock.advance(0)
    hub.sayInRoom(sessions[0], "#general", "three")
    clock.advance(LINE_BATCH_INTERVAL / 2)
    assert len(hub.redis.calls) == 1
    clock.advance(LINE_BATCH_INTERVAL / 2)
    assert hub.redis.calls[1:] == [_lines(("user1", "two"), ("user0", "three"))]


def test_line_batches_of_all_nodes_fall_on_one_grid() -> None:
    """
    Under load, each node's batches go as the steps of a grid of
    LINE_BATCH_INTERVAL on the clock start, at most one per step, so two
    nodes whose users talk at different moments of each step send at the
    same instants (and each node gets the other's lines with its own).
    """
    clock = Clock()
    clock.advance(1_764_578_400.0037)  # a clock on the epoch, as a reactor's
    step, tick = LINE_BATCH_INTERVAL, LINE_BATCH_INTERVAL / 10
    nodes = []
    for _ in range(2):
        hub = RedisHub(clock, RedisAddress(), connection=FakeRedis)
        session = Session("user", Recipient())
        hub.attach(session)
        hub.redis.calls.clear()
        nodes.append((hub, session))
    sentAt: list[list[float]] = [[], []]
    for i in range(300):  # 30 steps: each node's user speaks twice a step
        if i % 5 in (0, 2):
            hub, session = nodes[i % 5 // 2]
            hub.sayInRoom(session, "#general", f"line {i}")
        clock.advance(tick)
        for sent, (hub, _) in zip(sentAt, nodes, strict=True):
            sent += [clock.seconds()] * (len(hub.redis.calls) - len(sent))
    steps = []
    for sent in sentAt:
        # A lone line goes at once, and so may the first line of a step
        # that began with nothing held: the first two hand-overs here.
        later = sent[2:]
        assert len(later) >= 28
        starts = [math.floor(at / step) * step for at in later]
        # Each went in the tick in which its step started, one per step.
        assert all(
            0 <= at - start < tick + 1e-6
            for at, start in zip(later, starts, strict=True)
        )
        assert len(set(starts)) == len(starts)
        steps.append(starts)
    assert steps[0] == steps[1]


def test_lines_wait_no_longer_than_a_step_if_the_clock_goes_back() -> None:
    """
    A clock set back (by NTP, or by hand) does not hold the lines said after
    a batch for longer than one step.
    """
    hub, _, sessions, clock = _hubOf(2)
    clock.advance(1_764_578_400.0037)
    hub.sayInRoom(sessions[0], "#general", "one")
    clock.advance(0)
    clock.rightNow -= 3600
    hub.sayInRoom(sessions[1], "#general", "two")
    clock.advance(LINE_BATCH_INTERVAL)
    assert hub.redis.calls == [_lines(("user0", "one")), _lines(("user1", "two"))]


def test_held_lines_go_before_other_commands() -> None:
    """
    A command the hub sends while lines are held (a user leaves right after
    speaking) goes after them, so that Redis sees the line before the
    departure.
    """
    hub, _, sessions, clock = _hubOf(2)
    hub.sayInRoom(sessions[0], "#general", "bye")
    hub.detach(sessions[0])
    lines, departure = hub.redis.calls
    assert lines == _lines(("user0", "bye"))
    assert departure[:2] == ("script", "user0")
    clock.advance(LINE_BATCH_INTERVAL)
    assert len(hub.redis.calls) == 2


def test_lines_call_failure_reaches_each_sender_once() -> None:
    """
    If the script call with held lines fails, each user who said one of
    them hears of it once, however many lines they said.
    """
    hub, recipients, sessions, clock = _hubOf(3)
    hub.redis.failure = HubUnavailableError("gone")
    failures: list[object] = []
    for recipient in recipients:
        recipient.failed = failures.append  # type: ignore[method-assign]
    hub.sayInRoom(sessions[0], "#general", "one")
    hub.sayInRoom(sessions[1], "#general", "two")
    hub.sayInRoom(sessions[0], "#general", "three")
    clock.advance(0)
    assert len(failures) == 2


def test_held_lines_stay_here_when_redis_went_away() -> None:
    """
    Lines held when Redis goes away reach this node's users, as lines said
    while Redis is away do.
    """
    hub, recipients, sessions, clock = _hubOf(3)
    hub.sayInRoom(sessions[0], "#general", "still here")
    hub.redis.available = False
    clock.advance(0)
    assert hub.redis.calls == []
    assert recipients[0].data == []
    assert recipients[1].data == recipients[2].data == [b"user0 > still here\r\n"]


def test_sendAllOneDeliveryPerClient() -> None:
    """
    Lines delivered together reach each member in one delivery, in order,
    without the lines beside which it stands as the one to leave out; a
    member all of whose lines they are gets nothing.
    """
    rooms = LocalRooms()
    alice, bob, carol = (Recipient() for _ in range(3))
    for name, recorder in (("alice", alice), ("bob", bob), ("carol", carol)):
        rooms.enter(Session(name, recorder), "#general", hidden=False)
    audience = rooms.general.audience
    audience.sendAll(
        [
            (ChatLine("#general", "alice", "one"), alice),
            (ChatLine("#general", "bob", "two"), bob),
            (ChatLine("#general", "alice", "three"), alice),
        ]
    )
    assert alice.data == [b"bob > two\r\n"]
    assert bob.data == [b"alice > one\r\nalice > three\r\n"]
    assert carol.data == [b"alice > one\r\nbob > two\r\nalice > three\r\n"]
    audience.sendAll([(ChatLine("#general", "carol", "alone"), carol)])
    assert carol.data[1:] == []
    assert alice.data[1:] == bob.data[1:] == [b"carol > alone\r\n"]


def test_reaped_node_puts_its_sessions_back() -> None:
    """
    When its heartbeat says another node took this one for dead, the node
    puts its sessions back as after Redis came back; a plain heartbeat
    does nothing more.
    """
    hub, _, _, _ = _hubOf(2)
    ran: list[tuple[str, tuple[Any, ...]]] = []
    replies = {_RESYNC: [[], []], _HEARTBEAT: 0}

    def script(source: str, *args: Any) -> Any:
        ran.append((source, args))
        return succeed(replies[source])

    hub.redis.script = script  # type: ignore[method-assign]
    hub._beaten(0)
    assert ran == []
    hub._beaten(1)
    assert [source for source, _ in ran] == [_RESYNC, _HEARTBEAT]
    (_, (node, sessions)), (_, (beating, *_)) = ran
    assert node == beating == hub.node
    assert sorted(json.loads(sessions)) == ["user0", "user1"]


def test_node_waking_from_a_stall_reaps_no_one_yet() -> None:
    """
    A node whose own heartbeat comes later than a liveness lasts (it
    stalled, and the other nodes on its machine may have too) reaps no one
    until the others have had a liveness of time to beat again; on time, it
    reaps as usual.
    """
    hub, _, _, clock = _hubOf(1)
    reaps: list[str] = []

    def script(source: str, *args: Any) -> Any:
        reaps.append(args[2])
        return succeed(0)

    hub.redis.script = script  # type: ignore[method-assign]
    lasts = hub.ttl * 2 / 3
    clock.advance(100)
    hub._lastBeat = clock.seconds()
    clock.advance(hub.ttl / 3)
    hub._beat()
    clock.advance(lasts + 1)
    hub._beat()
    clock.advance(hub.ttl / 3)
    hub._beat()
    clock.advance(lasts - hub.ttl / 3 + 0.01)
    hub._beat()
    assert reaps == ["1", "0", "0", "1"]


def test_quit_of_a_session_still_here_is_not_told() -> None:
    """
    A departure published for a session this node still holds (another
    node took this one for dead) is not told to this node's users; one for
    a user of another node is.
    """
    hub, recipients, _, _ = _hubOf(2)
    hub._messageReceived("tc:quit", "user0\nline\nuser0\n#general\n")
    assert recipients[0].data == recipients[1].data == []
    hub._messageReceived("tc:quit", "dave\nline\ndave\n#general\n")
    assert recipients[0].data == recipients[1].data == [b"* dave left the chat.\r\n"]


def test_unreachable_hub_fails_fast() -> None:
    """
    When Redis is unreachable, hub calls fail at once with
    HubUnavailableError instead of waiting.
    """
    from twisted_chat.redis.connection import RedisConnection

    connection = RedisConnection(reactor, RedisAddress(port=1))
    failures: list[Any] = []
    connection.call("get", "x").addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(HubUnavailableError)


def _calls(info: str, command: str) -> int:
    """
    How many times Redis ran C{command}, from C{INFO commandstats}.
    """
    found = re.search(rf"cmdstat_{command}:calls=(\d+)", info)
    return int(found.group(1)) if found else 0


@pytest_twisted.ensureDeferred
async def test_scripts_run_by_hash_and_again_once_redis_forgot_them(
    redis: RedisServer,
) -> None:
    """
    A script goes by its text once per connection and by its hash after;
    when Redis forgot it (a C{SCRIPT FLUSH} from elsewhere), the next call
    still runs it, by its text.
    """
    from twisted.internet.defer import Deferred

    from twisted_chat.redis.connection import RedisConnection

    up: Deferred[None] = Deferred()
    address = RedisAddress.fromURL(redis.url)
    connection = RedisConnection(
        reactor, address, onAvailable=lambda: up.callback(None)
    )
    connection.start()
    try:
        up.addTimeout(WAIT, reactor)
        await up
        source = "return ARGV[1] .. ARGV[2]"
        assert await connection.script(source, "a", 1) == "a1"
        assert await connection.script(source, "b", 2) == "b2"
        info = await connection.call("execute_command", "INFO", "commandstats")
        assert (_calls(info, "eval"), _calls(info, "evalsha")) == (1, 1)
        await connection.call("execute_command", "SCRIPT", "FLUSH")
        assert await connection.script(source, "c", 3) == "c3"
        info = await connection.call("execute_command", "INFO", "commandstats")
        assert _calls(info, "eval") == 2
        assert await connection.script(source, "d", 4) == "d4"
    finally:
        await connection.stop()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", RedisAddress()),
        ("redis://h:7000/3", RedisAddress("h", 7000, 3)),
        ("redis://:s%40cret@h/1", RedisAddress("h", 6379, 1, password="s@cret")),
        ("rediss://u:p@h:6380", RedisAddress("h", 6380, 0, "p", "u", tls=True)),
    ],
)
def test_redis_urls(url: str, expected: RedisAddress) -> None:
    """
    When a Redis URL is given, host, port, database, credentials and TLS
    are read from it.
    """
    assert RedisAddress.fromURL(url) == expected


@pytest.mark.parametrize("url", ["http://h", "redis://h/x", "h:6379"])
def test_bad_redis_urls(url: str) -> None:
    """
    When the hub URL is not a redis:// URL, it is refused with a reason.
    """
    with pytest.raises(ValueError):
        RedisAddress.fromURL(url)


def test_subscriber_parses_a_whole_read_at_once() -> None:
    """
    When one read from Redis holds several published lines, the node handles
    them all in that read (hiredis parses them; txredisapi's own parser
    would take one per reactor pass), and a line cut between two reads when
    the second comes.
    """
    from twisted.internet.testing import StringTransport

    from twisted_chat.redis.connection import _Subscriber

    received: list[tuple[str, str]] = []

    class Factory:
        def onMessage(self, channel: str, message: str) -> None:
            received.append((channel, message))

    protocol = _Subscriber(convertNumbers=False)
    protocol.factory = Factory()
    protocol.makeConnection(StringTransport())
    messages = [f"k\nuser > line {i}" for i in range(300)]
    data = b"".join(
        b"*3\r\n$7\r\nmessage\r\n$8\r\ntc:group\r\n$%d\r\n%s\r\n"
        % (len(m.encode()), m.encode())
        for m in messages
    )
    cut = len(data) - 5  # the last message ends in the next read
    protocol.dataReceived(data[:cut])
    assert received == [("tc:group", m) for m in messages[:-1]]
    protocol.dataReceived(data[cut:])
    assert received == [("tc:group", m) for m in messages]


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 0, "10000", "#général", b"raw", -3),
        ("SET", "x", 1.5),
        ("PING",),
    ],
)
def test_commands_encoded_as_txredisapi_does(args: tuple[Any, ...]) -> None:
    """
    A command's bytes are those C{txredisapi} itself would send, for texts,
    bytes and integers (and for anything else, which it encodes).
    """
    import txredisapi

    from twisted_chat.redis.connection import _CommandProtocol

    ours = _CommandProtocol(charset="utf-8")._build_command(*args)
    assert ours == txredisapi.BaseRedisProtocol(charset="utf-8")._build_command(*args)


@pytest_twisted.ensureDeferred
async def test_rooms_and_history_across_nodes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """
    When a user joins a room on one node and another talks in it from
    another node, the line crosses, and both nodes show the same history
    (kept in Redis) at @JOIN and with @HISTORY.
    """
    async with nodes(tmp_path, redis, 2, "--history-on-login", "10") as (a, b):
        alice = await a.user("alice")
        bob = await b.user("bob")
        await alice.expect("* bob joined the chat.")
        await enterTogether(alice, bob, "bob", "#python", "#Python")
        bob.send("from B", "@JOIN #general")
        await alice.expect("bob > from B")
        await bob.expect("You are now in #general (2 users).")
        alice.send("from A")
        await bob.expect("[#python] alice > from A")
        carol = await a.user("carol")
        await alice.expect("* carol joined the chat.")
        await bob.expect("* carol joined the chat.")
        carol.send("@JOIN #python")
        await carol.expect("You are now in #python (3 users).")
        await alice.expect("* carol joined #python.")
        await bob.expect("* carol joined #python.")
        replay = [await carol.next() for _ in range(4)]
        assert replay[0] == "--- History of #python (2 lines) ---"
        assert replay[1].endswith("] bob > from B")
        assert replay[2].endswith("] alice > from A")
        assert replay[3] == "--- End of history ---"
        bob.send("@JOIN #python", "@HISTORY 1")
        await bob.expect("You are now in #python (3 users).")
        await bob.expect("--- History of #python (1 lines) ---")
        assert (await bob.next()).endswith("] alice > from A")
        await bob.expect("--- End of history ---")
        bob.send("@ROOMS")
        await bob.expect("Rooms: #general (3), #python (3)")
        alice.send("@WHO #python")
        await alice.expect("Users in #python: alice, bob, carol")


@pytest_twisted.ensureDeferred
async def test_node_gets_only_its_rooms(tmp_path: Path, redis: RedisServer) -> None:
    """
    When a room's users are all on one node, another node is not subscribed
    to it and gets none of its lines; it subscribes when one of its users
    joins, and unsubscribes when the last one leaves.
    """
    async with nodes(tmp_path, redis, 2) as (a, b):
        alice = await a.user("alice")
        carol = await a.user("carol")
        bob = await b.user("bob")
        await alice.expect("* carol joined the chat.", "* bob joined the chat.")
        await carol.expect("* bob joined the chat.")
        hubA, hubB = a.service.chat.hub, b.service.chat.hub
        seen: list[str] = []
        received = hubB._messageReceived

        def spy(channel: str, message: str) -> None:
            seen.append(channel)
            received(channel, message)

        hubB.redis._subscriber.onMessage = spy
        alice.send("@JOIN #quiet")
        await alice.expect("You are now in #quiet (1 users).")
        carol.send("@JOIN #quiet")
        await carol.expect("You are now in #quiet (2 users).")
        await alice.expect("* carol joined #quiet.")
        for n in range(5):
            alice.send(f"quiet {n}")
        for n in range(5):
            await carol.expect(f"alice > quiet {n}")
        assert "#quiet" in hubA._subscribed
        assert "#quiet" not in hubB._subscribed
        assert "tc:room:#quiet" not in seen
        bob.send("@JOIN #quiet")
        await bob.expect("You are now in #quiet (3 users).")
        await sleep(0.2)
        alice.send("now louder")
        await bob.expect("alice > now louder")
        assert "tc:room:#quiet" in seen
        bob.send("@LEAVE")
        await bob.expect("You left #quiet.", "You are now in #general (3 users).")
        assert "#quiet" not in hubB._subscribed
