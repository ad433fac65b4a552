"""
C{twistd -n chat} as a real process: it starts from the plugin, binds the
ports asked for, chats with real sockets, and shuts down cleanly on SIGTERM.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatclient import serverArguments

from twisted_chat.service import withBacklog

STARTUP_TIMEOUT = 20.0
TIMEOUT = 5.0
WELCOME = "Welcome to twisted-chat. An unknown name creates an account."
LISTENING = re.compile(
    r"Listening on tcp:0:interface=127\.0\.0\.1: 127\.0\.0\.1:(\d+) \(line protocol\)"
)


def twistdCommand() -> list[str]:
    """
    The twistd of the Python running the tests.
    """
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class LineSocket:
    """
    A blocking client socket that reads server lines (CRLF) and prompts, every
    read bounded by a timeout.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.eof = False

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode("utf-8"))

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            raise AssertionError(f"nothing more to read; have {self.buffer!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"timed out; have {self.buffer!r}") from None
        if not data:
            self.eof = True
        self.buffer += data

    def next(self, timeout: float = TIMEOUT) -> str:
        """
        The next line (without its CRLF) or prompt.
        """
        deadline = time.monotonic() + timeout
        while True:
            for prompt in (b"Username: ", b"Password: "):
                if self.buffer.startswith(prompt):
                    self.buffer = self.buffer[len(prompt) :]
                    return prompt.decode()
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                return line.decode("utf-8")
            self._fill(deadline)

    def expect(self, *lines: str) -> None:
        for line in lines:
            got = self.next()
            assert got == line, f"expected {line!r}, got {got!r}"

    def expectClosed(self, timeout: float = TIMEOUT) -> None:
        """
        Assert that the server closes the connection with nothing more sent.
        """
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._fill(deadline)
        assert self.buffer == b"", self.buffer

    def login(self, name: str, password: str) -> None:
        self.expect(WELCOME, "Username: ")
        self.send(name)
        self.expect("Password: ")
        self.send(password)
        self.expect("Login success!")

    def close(self) -> None:
        self.sock.close()


class Twistd:
    """
    A C{twistd -n chat} process and its files.
    """

    def __init__(
        self,
        directory: Path,
        *extra: str,
        wait: bool = True,
        twistdOptions: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.log = directory / "twistd.log"
        self.auditLog = directory / "server.log"
        self.users = directory / "users.json"
        self.output = open(directory / "output.txt", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *twistdCommand(),
                *twistdOptions,
                "-n",
                "--pidfile=",
                "--logfile",
                str(self.log),
                "chat",
                *serverArguments(directory, *extra),
            ],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.port = self._waitForPort() if wait else 0

    def _waitForPort(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.log.exists():
                match = LISTENING.search(self.log.read_text("utf-8", "replace"))
                if match:
                    return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"twistd did not start listening:\n{self.describe()}")

    def describe(self) -> str:
        log = self.log.read_text("utf-8", "replace") if self.log.exists() else ""
        output = (self.directory / "output.txt").read_text("utf-8", "replace")
        return f"exit status: {self.process.poll()}\nlog:\n{log}\noutput:\n{output}"

    def assertCleanExit(self) -> None:
        """
        Assert that the process ends within the timeout after a clean
        shutdown.  After stopping cleanly on a signal, twistd kills itself
        with that same signal so that its parent sees why it ended: a status
        of -SIGTERM is the designed outcome, not a crash.
        """
        status = self.process.wait(TIMEOUT)
        assert status in (0, -signal.SIGTERM), self.describe()
        log = self.log.read_text("utf-8")
        assert "Received SIGTERM, shutting down." in log
        assert "Server Shut Down." in log
        assert "Traceback" not in log, self.describe()
        assert "Unhandled" not in log, self.describe()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)
        self.output.close()


@pytest.fixture
def twistd(tmp_path: Path) -> Iterator[Twistd]:
    server = Twistd(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_twistd_chat_and_sigterm(twistd: Twistd) -> None:
    """
    When twistd -n chat runs as a process, the server chats over real sockets and on
    SIGTERM says goodbye to every user and exits cleanly.
    """
    alice = LineSocket(twistd.port)
    bob = LineSocket(twistd.port)
    try:
        alice.login("alice", "secret")
        bob.login("bob", "hunter2")
        alice.expect("* bob joined the chat.")
        alice.send("Merhaba dünya")
        bob.expect("alice > Merhaba dünya")
        bob.send("@WHO")
        bob.expect("Online users: alice, bob")

        twistd.process.send_signal(signal.SIGTERM)
        for client in (alice, bob):
            client.expect("Server shutting down.")
        for client in (alice, bob):
            deadline = time.monotonic() + TIMEOUT
            while not client.eof:
                client._fill(deadline)
            leftover = client.buffer.decode("utf-8").split("\r\n")
            assert set(leftover) <= {
                "",
                "* alice left the chat.",
                "* bob left the chat.",
            }
        twistd.assertCleanExit()
    finally:
        alice.close()
        bob.close()
    audit = twistd.auditLog.read_text("utf-8")
    assert "User with alice successfully registered." in audit
    assert "Received message from alice: Merhaba dünya" in audit
    assert "Lost connection from alice" in audit
    assert "Lost connection from bob" in audit
    assert "hunter2" not in twistd.users.read_text("utf-8")


def test_twistd_netcat_pipeline(twistd: Twistd) -> None:
    """
    When netcat pipes a name, a password, a line and LOGOUT into twistd -n chat, the
    server registers the user, relays the line and says goodbye.
    """
    nc = shutil.which("nc")
    if nc is None:
        pytest.skip("netcat (nc) is not installed")
    bob = LineSocket(twistd.port)
    try:
        bob.login("bob", "secret")
        result = subprocess.run(
            [nc, "127.0.0.1", str(twistd.port)],
            input=b"alice\nsecret\nhello\nLOGOUT\n",
            capture_output=True,
            timeout=10,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        assert result.returncode == 0, result
        assert (
            result.stdout
            == (
                f"{WELCOME}\r\nUsername: Password: Login success!\r\n"
                "Goodbye, alice!\r\n"
            ).encode()
        )
        bob.expect(
            "* alice joined the chat.", "alice > hello", "* alice left the chat."
        )
    finally:
        bob.close()
    twistd.process.send_signal(signal.SIGTERM)
    twistd.assertCleanExit()
    audit = twistd.auditLog.read_text("utf-8")
    assert "User with alice successfully registered." in audit
    assert "Received message from alice: hello" in audit
    assert "alice logged out." in audit


def test_twistd_history_survives_restart(tmp_path: Path) -> None:
    """
    When twistd -n chat is stopped and started again on the same files, the
    server shows the lines said in a room before the restart, at @JOIN and
    with @HISTORY.
    """
    first = Twistd(tmp_path, "--history-on-login", "10")
    try:
        alice = LineSocket(first.port)
        alice.login("alice", "secret")
        alice.send("@JOIN #python", "one", "two")
        alice.expect("You are now in #python (1 users).")
        alice.send("@HISTORY")
        alice.expect("--- History of #python (2 lines) ---")
        alice.close()
        first.process.send_signal(signal.SIGTERM)
        first.assertCleanExit()
    finally:
        first.stop()
    # The next server logs the port it binds afresh.
    first.log.rename(tmp_path / "twistd-first.log")
    second = Twistd(tmp_path, "--history-on-login", "10")
    try:
        bob = LineSocket(second.port)
        bob.login("bob", "secret")
        # The room was empty, so it is made anew with this spelling; its
        # history is found whatever the case.
        bob.send("@JOIN #Python")
        bob.expect("You are now in #Python (1 users).")
        replay = [bob.next() for _ in range(4)]
        assert replay[0] == "--- History of #Python (2 lines) ---"
        assert replay[1].endswith("] alice > one")
        assert replay[2].endswith("] alice > two")
        assert replay[3] == "--- End of history ---"
        bob.send("@HISTORY 1")
        bob.expect("--- History of #Python (1 lines) ---")
        assert bob.next().endswith("] alice > two")
        bob.expect("--- End of history ---")
        bob.close()
    finally:
        second.stop()


def test_twistd_refuses_corrupt_history(tmp_path: Path) -> None:
    """
    When the history file is not a database, twistd -n chat stops at start
    with a clear message and leaves the file as it was.
    """
    garbage = b"not a database\n" * 64
    (tmp_path / "history.sqlite3").write_bytes(garbage)
    server = Twistd(tmp_path, wait=False)
    try:
        status = server.process.wait(STARTUP_TIMEOUT)
        assert status != 0
        said = server.describe()
        assert "cannot use the history file" in said
        assert "left untouched" in said
    finally:
        server.stop()
    assert (tmp_path / "history.sqlite3").read_bytes() == garbage


@pytest.mark.parametrize(
    ("options", "reactor"),
    [
        ((), "twisted_chat.reactor.ChatReactor"),
        (("--reactor=poll",), "twisted.internet.pollreactor.PollReactor"),
    ],
)
def test_twistd_reactor(tmp_path: Path, options: tuple[str, ...], reactor: str) -> None:
    """
    When twistd -n chat starts, the server runs on its own epoll reactor,
    unless --reactor names another, which it then runs on.
    """
    server = Twistd(tmp_path, twistdOptions=options)
    try:
        client = LineSocket(server.port)
        client.login("alice", "secret")
        client.send("@WHO")
        client.expect("Online users: alice")
        client.close()
        server.process.send_signal(signal.SIGTERM)
        server.assertCleanExit()
    finally:
        server.stop()
    assert f"reactor class: {reactor}" in server.log.read_text("utf-8")


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:1234", "tcp:1234:backlog=1024"),
        ("tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1:backlog=1024"),
        ("ssl:1235:privateKey=k.pem", "ssl:1235:privateKey=k.pem:backlog=1024"),
        ("tcp:1234:backlog=10", "tcp:1234:backlog=10"),
        ("unix:/tmp/chat.sock", "unix:/tmp/chat.sock"),
    ],
)
def test_listenerBacklog(description: str, expected: str) -> None:
    """
    When a TCP or TLS listener names no backlog, the server asks for 1024
    (a crowd connecting at once overflows Twisted's 50); one it names, or
    another kind of endpoint, it leaves as it is.
    """
    assert withBacklog(description) == expected
