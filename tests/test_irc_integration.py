"""
The IRC listener over real sockets: an IRC user and a line user in one
room in this process, C{twistd -n chat --irc-listen} as a process, and a
real IRC client (weechat-headless from Debian) driven through its FIFO.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from chatclient import ChatClient, Server, running
from redisserver import RedisServer
from test_twistd import TIMEOUT, LineSocket, Twistd

IRC = ("--irc-listen", "tcp:0:interface=127.0.0.1", "--irc-server-name", "irc.test")
LISTENING = re.compile(
    r"Listening on tcp:0:interface=127\.0\.0\.1: 127\.0\.0\.1:(\d+) \(IRC\)"
)


async def ircLogin(server: Server, name: str, *capabilities: str) -> ChatClient:
    """
    Connect an IRC client, register C{name} (password C{pw}) and read up to
    the end of #general's names.
    """
    client = await server.connect(port=server.ircPort)
    if capabilities:
        client.send(
            "CAP LS 302", "CAP REQ :" + " ".join(capabilities), "CAP END", end="\r\n"
        )
    client.send("PASS pw", f"NICK {name}", f"USER {name} 0 * :{name}", end="\r\n")
    end = f":irc.test 366 {name} #general :End of /NAMES list"
    while not (await client.next()).endswith(end):
        pass
    return client


@pytest_twisted.ensureDeferred
async def test_line_and_irc_users_share_a_room(tmp_path: Path) -> None:
    """
    When an IRC user and a line user are in #general over real sockets, the
    server shows each the other's arrival and lines, and keeps the private
    chat consent-first between them.
    """
    async with running(tmp_path, *IRC) as server:
        alice = await ircLogin(server, "alice")
        bob = await server.user("bob", "pw")
        await alice.expect(":bob!bob@line.irc.test JOIN #general")
        bob.send("hello alice, çay?")
        await alice.expect(":bob!bob@line.irc.test PRIVMSG #general :hello alice, çay?")
        alice.send("PRIVMSG #general :hi bob", end="\r\n")
        await bob.expect("alice > hi bob")
        alice.send("PRIVMSG bob :just us?", end="\r\n")
        await alice.expect(
            ":ChatServ!chat@irc.test NOTICE alice :Private chat request sent to bob."
        )
        await bob.expect("The user alice wants to have a private chat with you (Y/N)?")
        bob.send("y")
        await bob.expect(
            "You are now in a private chat with alice. Type EXIT PM to leave."
        )
        await alice.expect(
            ":ChatServ!chat@irc.test NOTICE alice :You are now in a private chat with"
            " bob. Type EXIT PM to leave."
        )
        bob.send("yes, us")
        await alice.expect(":bob!bob@line.irc.test PRIVMSG alice :yes, us")
        alice.send("QUIT :bye", end="\r\n")
        await alice.expect("ERROR :Closing link (Quit: bye)")
        await bob.expect("Your partner alice left pm!")
        audit = server.auditLines()
        assert any(
            line.endswith(" Received message from alice: hi bob") for line in audit
        )


@pytest_twisted.ensureDeferred
async def test_chathistory_from_the_store(tmp_path: Path) -> None:
    """
    When an IRC client asks CHATHISTORY of a room with stored lines, the
    server answers them in a chathistory batch with their ids and times.
    """
    async with running(tmp_path, *IRC) as server:
        bob = await server.user("bob", "pw")
        for text in ("one", "two", "three"):
            bob.send(text)
        alice = await ircLogin(server, "alice", "batch", "server-time", "message-tags")
        alice.send("CHATHISTORY LATEST #general * 2", end="\r\n")
        start = await alice.next()
        assert start.endswith(" BATCH +h1 chathistory #general"), start
        lines = [await alice.next() for _ in range(3)]
        tags = [line.split(" ", 1)[0] for line in lines[:2]]
        assert all("batch=h1" in tag and "time=" in tag for tag in tags), tags
        assert [line.rsplit(" :", 1)[1] for line in lines[:2]] == ["two", "three"]
        assert "msgid=" in lines[0]
        assert lines[2].endswith(" BATCH -h1")


@pytest_twisted.ensureDeferred
async def test_takeover_across_front_ends(tmp_path: Path) -> None:
    """
    When an IRC login takes over a line session (and a line login an IRC
    one), the old connection is told and closed, and the new one has the
    session's rooms.
    """
    async with running(tmp_path, *IRC) as server:
        old = await server.user("alice", "pw")
        old.send("@JOIN #den")
        await old.expect("You are now in #den (1 users).")
        irc = await server.connect(port=server.ircPort)
        irc.send("PASS pw", "NICK alice", "USER a 0 * :A", end="\r\n")
        await old.expect("You logged in from another connection.")
        await irc.waitFor(":alice!~alice@irc.irc.test JOIN #den")
        await irc.waitFor(":alice!~alice@irc.irc.test JOIN #general")
        line = await server.connect()
        await line.login("alice", "pw")
        await irc.waitFor("ERROR :You logged in from another connection.")


class IRCSocket(LineSocket):
    """
    A blocking IRC client socket, every read bounded.
    """

    def sendIRC(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def waitFor(self, pattern: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.next(deadline - time.monotonic())
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}")


def ircPort(server: Twistd) -> int:
    """
    The IRC listener's port from twistd's log.
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        match = LISTENING.search(server.log.read_text("utf-8", "replace"))
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no IRC listener:\n{server.describe()}")


@pytest.fixture
def twistd(tmp_path: Path) -> Iterator[Twistd]:
    server = Twistd(tmp_path, *IRC)
    try:
        yield server
    finally:
        server.stop()


def test_twistd_irc_listener(twistd: Twistd) -> None:
    """
    When twistd -n chat runs with --irc-listen, it logs the IRC listener's
    address, an IRC client chats with a line user, and SIGTERM says goodbye
    to the IRC client with ERROR before a clean exit.
    """
    irc = IRCSocket(ircPort(twistd))
    line = LineSocket(twistd.port)
    try:
        irc.sendIRC("NICK alice", "USER a 0 * :Alice", "PASS pw")
        irc.waitFor(r"^:irc\.test 001 alice ")
        irc.waitFor(r" 366 alice #general ")
        line.login("bob", "pw")
        irc.waitFor(r"^:bob!bob@line\.irc\.test JOIN #general$")
        line.send("hi from nc")
        irc.waitFor(r"PRIVMSG #general :hi from nc$")
        irc.sendIRC("PRIVMSG #general :hi from irc")
        line.expect("alice > hi from irc")
        twistd.process.send_signal(signal.SIGTERM)
        irc.waitFor(r"^ERROR :Server shutting down\.$")
        line.expect("Server shutting down.")
        twistd.assertCleanExit()
    finally:
        irc.close()
        line.close()


# A real IRC client: weechat-headless, driven through its FIFO plugin and
# observed through its logger files (recipe in notes/irc-tools.md).


def clientRequired() -> None:
    """
    Skip the calling test if weechat-headless is missing, unless
    C{TWISTED_CHAT_REQUIRE_IRC_CLIENT} is set (as in CI), where it fails.
    """
    if shutil.which("weechat-headless") is None:
        if os.environ.get("TWISTED_CHAT_REQUIRE_IRC_CLIENT"):
            pytest.fail(
                "weechat-headless is required (TWISTED_CHAT_REQUIRE_IRC_CLIENT)"
            )
        pytest.skip(
            "weechat-headless is not installed (apt-get install weechat-headless)"
        )


class Weechat:
    """
    One weechat-headless process with its own home directory, connected to
    one server as C{t1}.
    """

    def __init__(self, home: Path, port: int, nick: str, password: str) -> None:
        self.home = home
        settings = [
            "/set logger.file.flush_delay 0",
            "/set logger.file.auto_log on",
            "/set logger.level.irc 9",
            "/set weechat.look.save_config_on_exit off",
            "/set irc.server_default.autoreconnect off",
            "/set irc.server_default.sasl_fail disconnect",
            "/set irc.server_default.anti_flood_prio_high 0",
            "/set irc.server_default.anti_flood_prio_low 0",
            "/set irc.server_default.away_check 0",
            "/set irc.network.lag_check 0",
            f"/server add t1 127.0.0.1/{port}",
            "/set irc.server.t1.ssl off",
            f"/set irc.server.t1.nicks {nick}",
            f"/set irc.server.t1.username {nick}",
            "/set irc.server.t1.sasl_mechanism plain",
            f"/set irc.server.t1.sasl_username {nick}",
        ]
        home.mkdir(parents=True, exist_ok=True)
        self.output = open(home / "stdout.txt", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "weechat-headless",
                "--dir",
                str(home),
                "-a",
                "-s",
                "-P",
                "irc,logger,fifo",
                "-r",
                ";".join(settings),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.fifo = home / f"weechat_fifo_{self.process.pid}"
        self.wait(self.fifo.exists, "its FIFO")
        # The secret goes through the FIFO, where it is neither split nor
        # evaluated.
        self.command(f"/secure set t1_sasl {password}")
        self.command('/set irc.server.t1.sasl_password "${sec.data.t1_sasl}"')
        self.command("/connect t1")

    def command(self, text: str, buffer: str | None = None) -> None:
        line = f"{buffer} *{text}\n" if buffer else f"*{text}\n"
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def log(self, buffer: str) -> str:
        path = self.home / "logs" / f"{buffer.lower()}.weechatlog"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def waitLog(self, buffer: str, pattern: str) -> None:
        regex = re.compile(pattern, re.MULTILINE)
        self.wait(lambda: regex.search(self.log(buffer)) is not None, repr(pattern))

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 2 * TIMEOUT
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"weechat exited while waiting for {what}")
            time.sleep(0.05)
        raise AssertionError(f"weechat: no {what} within {2 * TIMEOUT} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("/quit")
                self.process.wait(TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(TIMEOUT)
        self.output.close()


def test_weechat_joins_and_chats(twistd: Twistd, tmp_path: Path) -> None:
    """
    When weechat connects with SASL PLAIN, the server logs it in, joins it
    to #general, shows it a line user's text, and relays its answer and its
    /me (which the line user reads as C{* wuser waves}).
    """
    clientRequired()
    weechat = Weechat(tmp_path / "weechat", ircPort(twistd), "wuser", "w;p$ss")
    line = LineSocket(twistd.port)
    try:
        weechat.waitLog("irc.server.t1", "SASL authentication successful")
        weechat.waitLog("irc.t1.#general", r"wuser")
        line.login("bob", "pw")
        weechat.waitLog("irc.t1.#general", r"bob")
        line.send("hello weechat")
        weechat.waitLog("irc.t1.#general", r"^\S+ \S+\tbob\thello weechat$")
        weechat.command("hello bob", buffer="irc.t1.#general")
        line.expect("wuser > hello bob")
        weechat.command("/me waves", buffer="irc.t1.#general")
        line.expect("* wuser waves")
    finally:
        weechat.stop()
        line.close()


@pytest_twisted.ensureDeferred
async def test_irc_and_line_users_on_two_nodes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """
    When an IRC user on one node and a line user on another share #general
    through the Redis hub, the server relays their lines and their private
    chat both ways.
    """
    from test_redis import nodes

    async with nodes(tmp_path, redis, 2, *IRC) as (a, b):
        alice = await ircLogin(a, "alice")
        bob = await b.user("bob", "pw")
        await alice.expect(":bob!bob@line.irc.test JOIN #general")
        bob.send("across nodes")
        await alice.expect(":bob!bob@line.irc.test PRIVMSG #general :across nodes")
        alice.send("PRIVMSG #general :back at you", end="\r\n")
        await bob.expect("alice > back at you")
        alice.send("PRIVMSG bob :private?", end="\r\n")
        await bob.expect("The user alice wants to have a private chat with you (Y/N)?")
        bob.send("y")
        await bob.expect(
            "You are now in a private chat with alice. Type EXIT PM to leave."
        )
        await alice.waitFor(
            ":ChatServ!chat@irc.test NOTICE alice :You are now in a private chat with"
            " bob. Type EXIT PM to leave."
        )
        bob.send("only you")
        await alice.expect(":bob!bob@line.irc.test PRIVMSG alice :only you")
        alice.send("PRIVMSG bob :only you too", end="\r\n")
        await bob.expect("alice > only you too")


@pytest_twisted.ensureDeferred
async def test_irc_users_on_two_nodes(tmp_path: Path, redis: RedisServer) -> None:
    """
    When IRC users on two nodes share #general through the Redis hub, each
    is shown to the other with its IRC hostmask (in NAMES too), and the
    other gets its actions and formatting as sent, its NOTICEs as NOTICEs
    and its PART and QUIT reasons.
    """
    from test_redis import nodes

    async with nodes(tmp_path, redis, 2, *IRC) as (a, b):
        alice = await ircLogin(a, "alice", "userhost-in-names")
        bob = await ircLogin(b, "bob")
        mask = ":bob!~bob@irc.irc.test"
        await alice.expect(f"{mask} JOIN #general")
        alice.send("NAMES #general", end="\r\n")
        await alice.expect(
            ":irc.test 353 alice = #general"
            " :alice!~alice@irc.irc.test bob!~bob@irc.irc.test",
            ":irc.test 366 alice #general :End of /NAMES list",
        )
        bob.send(
            "PRIVMSG #general :\x01ACTION waves \x02hi\x02\x01",
            "NOTICE #general :heads up",
            "PART #general :brb",
            "JOIN #general",
            "QUIT :off to bed",
            end="\r\n",
        )
        await alice.expect(
            f"{mask} PRIVMSG #general :\x01ACTION waves \x02hi\x02\x01",
            f"{mask} NOTICE #general :heads up",
            f"{mask} PART #general :brb",
            f"{mask} JOIN #general",
            f"{mask} QUIT :Quit: off to bed",
        )
