"""
Tests for the bundled client: its protocol over string transports, its
terminal drawing on an emulated screen, and the real program end to end,
piped and under a pseudo-terminal.
"""

import fcntl
import os
import re
import struct
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from chatclient import running
from twisted.conch.insults.insults import ServerProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from twisted_chat.client.plain import PlainUI
from twisted_chat.client.protocol import (
    LOGOUT_WAIT,
    ChatClientProtocol,
    HeartbeatSender,
    Stage,
)
from twisted_chat.client.terminal import ChatTerminal, visible
from twisted_chat.frontends.line import messages

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0
CLIENT_ARGS = ("--host", "127.0.0.1", "--port")
WELCOME = messages.WELCOME.encode() + b"\r\n"


# Fakes


class RecordingUI:
    """
    A user interface that records what the client asks of it.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.prompts: list[tuple[str, bool]] = []
        self.sentLines: list[tuple[Stage, str]] = []
        self.closings: list[tuple[int, str | None]] = []

    def showLine(self, text: str) -> None:
        self.lines.append(text)

    def setPrompt(self, prompt: str, secret: bool) -> None:
        self.prompts.append((prompt, secret))

    def sent(self, stage: Stage, text: str) -> None:
        self.sentLines.append((stage, text))

    def closed(self, status: int, message: str | None) -> None:
        self.closings.append((status, message))


class FakeDatagramTransport:
    """
    A UDP transport that keeps the datagrams written to it.
    """

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.datagrams.append((data, address))


class FakeUDPPort:
    """
    What L{FakeReactor.listenUDP} returns.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.listening = True

    def stopListening(self) -> None:
        self.listening = False
        self.protocol.doStop()


class FakeReactor(Clock):
    """
    A clock that can also listen on fake UDP ports.
    """

    def __init__(self) -> None:
        super().__init__()
        self.udp: list[tuple[FakeDatagramTransport, FakeUDPPort, str]] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakeUDPPort:
        transport = FakeDatagramTransport()
        protocol.makeConnection(transport)
        udpPort = FakeUDPPort(protocol)
        self.udp.append((transport, udpPort, interface))
        return udpPort


def connected() -> tuple[ChatClientProtocol, RecordingUI, StringTransport, FakeReactor]:
    """
    A client connected to a string transport, before the welcome line.
    """
    ui, fake = RecordingUI(), FakeReactor()
    client = ChatClientProtocol(ui, fake)
    transport = StringTransport()
    client.makeConnection(transport)
    return client, ui, transport, fake


def loggedIn(
    name: str = "alice",
) -> tuple[ChatClientProtocol, RecordingUI, StringTransport, FakeReactor]:
    """
    A client that has logged in as C{name}, with its output cleared.
    """
    client, ui, transport, fake = connected()
    client.dataReceived(WELCOME + b"Username: ")
    client.userLine(name)
    client.dataReceived(b"Password: ")
    client.userLine("pw")
    client.dataReceived(b"Login success!\r\n")
    transport.clear()
    return client, ui, transport, fake


# The protocol


def test_answersPromptsInOrder() -> None:
    """
    Lines typed early wait for their prompt: one for the name, one for the password,
    the rest after login.
    """
    client, ui, transport, _ = connected()
    for line in ("alice", "pw", "hello", "@WHO"):
        client.userLine(line)
    assert transport.value() == b""
    client.dataReceived(WELCOME + b"User")
    assert transport.value() == b""
    assert ui.lines == [messages.WELCOME]
    client.dataReceived(b"name: ")
    assert transport.value() == b"alice\r\n"
    assert ui.prompts[0] == ("Username: ", False)
    client.dataReceived(b"Password: ")
    assert ("Password: ", True) in ui.prompts
    assert transport.value() == b"alice\r\npw\r\n"
    client.dataReceived(b"Login success!\r\n")
    assert transport.value() == b"alice\r\npw\r\n@HEARTBEAT\r\nhello\r\n@WHO\r\n"
    assert client.stage is Stage.CHAT
    assert ui.prompts[-1] == ("alice > ", False)
    assert ui.sentLines == [
        (Stage.USERNAME, "alice"),
        (Stage.PASSWORD, "pw"),
        (Stage.CHAT, "hello"),
        (Stage.CHAT, "@WHO"),
    ]


def test_wrongPasswordAsksAgain() -> None:
    """After a wrong password the next line answers the new username prompt."""
    client, ui, transport, _ = connected()
    client.dataReceived(WELCOME + b"Username: ")
    client.userLine("alice")
    client.dataReceived(b"Password: ")
    client.userLine("wrong")
    client.userLine("alice")
    client.userLine("right")
    assert transport.value() == b"alice\r\nwrong\r\n"
    client.dataReceived(b"Wrong password.\r\nUsername: ")
    assert transport.value() == b"alice\r\nwrong\r\nalice\r\n"
    assert ui.lines[-1] == "Wrong password."
    client.dataReceived(b"Password: ")
    client.dataReceived(b"Login success!\r\n")
    assert transport.value().endswith(b"right\r\n@HEARTBEAT\r\n")
    assert client.name == "alice"


def test_emptyLinesAreNotSent() -> None:
    """Empty lines, which the server would ignore without a new prompt, are not sent."""
    client, _, transport, _ = connected()
    client.dataReceived(WELCOME + b"Username: ")
    client.userLine("")
    client.userLine("   ")
    assert transport.value() == b""
    client.userLine("bob")
    assert transport.value() == b"bob\r\n"


def test_decodesUtf8SplitAcrossReads() -> None:
    """
    A UTF-8 character split between two reads is decoded whole, and only CRLF is
    removed.
    """
    client, ui, _, _ = loggedIn()
    data = "bob > çay  \t ok\r\n".encode()
    client.dataReceived(data[:8])
    client.dataReceived(data[8:])
    assert ui.lines[-1] == "bob > çay  \t ok"


def test_heartbeatTokenSentByUdp() -> None:
    """
    The HEARTBEAT line is hidden and starts datagrams of the token to the server's
    host every interval.
    """
    client, ui, _, fake = loggedIn()
    shown = len(ui.lines)
    client.dataReceived(b"HEARTBEAT 4321 tok-EN_1 5 20\r\n")
    assert len(ui.lines) == shown
    [(udp, port, interface)] = fake.udp
    assert interface == ""
    assert udp.datagrams == [(b"tok-EN_1", ("192.168.1.1", 4321))]
    fake.advance(4.9)
    assert len(udp.datagrams) == 1
    fake.advance(0.1)
    assert udp.datagrams[-1] == (b"tok-EN_1", ("192.168.1.1", 4321))
    assert len(udp.datagrams) == 2
    fake.advance(5)
    assert len(udp.datagrams) == 3
    client.connectionLost(Failure(ConnectionDone()))
    fake.advance(20)
    assert len(udp.datagrams) == 3
    assert not port.listening


def test_newTokenReplacesOld() -> None:
    """
    A HEARTBEAT the user asked for is shown, and its token and interval replace the
    old ones.
    """
    client, ui, transport, fake = loggedIn()
    client.dataReceived(b"HEARTBEAT 4321 first 5 20\r\n")
    client.userLine("@heartbeat")
    assert transport.value() == b"@heartbeat\r\n"
    client.dataReceived(b"HEARTBEAT 4321 second 2.5 20\r\n")
    assert ui.lines[-1] == "HEARTBEAT 4321 second 2.5 20"
    [(udp, _, _)] = fake.udp
    fake.advance(2.5)
    assert [data for data, _ in udp.datagrams] == [b"first", b"second", b"second"]


def test_olderServerRefusalHidden() -> None:
    """
    A server without heartbeats refuses @HEARTBEAT; the client hides that and sends
    nothing by UDP.
    """
    client, ui, _, fake = loggedIn()
    shown = len(ui.lines)
    client.dataReceived(b"Unknown command @HEARTBEAT; type @HELP for the list.\r\n")
    assert len(ui.lines) == shown
    assert fake.udp == []
    client.dataReceived(b"Unknown command @HEARTBEAT; type @HELP for the list.\r\n")
    assert len(ui.lines) == shown + 1


def test_privateChatPrompts() -> None:
    """The prompt follows the server's lines about requests and private chats."""
    client, ui, _, _ = loggedIn()
    steps = [
        ("bob > I am not the server", "alice > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("Request rejected.", "alice > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("The private chat request from bob expired.", "alice > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("The private chat request from bob was cancelled.", "alice > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        (
            "You are now in a private chat with bob. Type EXIT PM to leave.",
            "alice [PM with bob] > ",
        ),
        ("bob > You left the private chat with bob.", "alice [PM with bob] > "),
        ("You left the private chat with bob.", "alice > "),
        (
            "You are now in a private chat with carol. Type EXIT PM to leave.",
            "alice [PM with carol] > ",
        ),
        ("Your partner carol left pm!", "alice > "),
    ]
    for line, prompt in steps:
        client.dataReceived(line.encode() + b"\r\n")
        assert ui.lines[-1] == line
        expected = prompt or "alice [PM with bob? y/n] > "
        assert ui.prompts[-1] == (expected, False), line


def test_logoutAtEndOfInput() -> None:
    """
    At end of input the queued lines go out, then LOGOUT; the server's close is
    expected.
    """
    client, ui, transport, _ = loggedIn()
    client.userLine("bye all")
    client.endInput()
    assert transport.value() == b"bye all\r\nLOGOUT\r\n"
    client.dataReceived(b"Goodbye, alice!\r\n")
    client.connectionLost(Failure(ConnectionDone()))
    assert ui.closings == [(0, None)]


def test_typedLogoutNotRepeated() -> None:
    """
    A typed LOGOUT is not sent again at end of input, and lines after it are
    dropped.
    """
    client, ui, transport, _ = loggedIn()
    client.userLine("logout")
    client.userLine("too late")
    client.endInput()
    assert transport.value() == b"logout\r\n"
    client.connectionLost(Failure(ConnectionDone()))
    assert ui.closings == [(0, None)]


def test_logoutGivesUpAfterWaiting() -> None:
    """
    If the server does not close after LOGOUT, the client aborts the connection
    after five seconds.
    """
    client, _, transport, fake = loggedIn()
    client.logout()
    fake.advance(LOGOUT_WAIT - 0.1)
    assert not transport.disconnecting
    fake.advance(0.1)
    assert transport.disconnecting


def test_endOfInputBeforeLogin() -> None:
    """Ending input at a prompt closes the connection without sending LOGOUT."""
    client, ui, transport, _ = connected()
    client.dataReceived(WELCOME + b"Username: ")
    client.endInput()
    assert transport.value() == b""
    assert transport.disconnecting
    client.connectionLost(Failure(ConnectionDone()))
    assert ui.closings == [(0, None)]


def test_serverGoesAway() -> None:
    """A close the user did not ask for is reported with a non-zero status."""
    client, ui, _, _ = loggedIn()
    client.connectionLost(Failure(ConnectionDone()))
    [(status, message)] = ui.closings
    assert status == 1
    assert message == "Disconnected: the server closed the connection."
    client, ui, _, _ = loggedIn()
    client.connectionLost(Failure(ConnectionLost("reset by peer")))
    [(status, message)] = ui.closings
    assert status == 1
    assert message is not None and "lost" in message


def test_heartbeatSenderAlone() -> None:
    """
    The heartbeat sender writes the token at once and then every interval until
    stopped.
    """
    clock = Clock()
    sender = HeartbeatSender(clock)
    udp = FakeDatagramTransport()
    sender.makeConnection(udp)
    sender.beatTo(b"t", ("127.0.0.1", 9), 2.0)
    clock.advance(2.0)
    clock.advance(2.0)
    assert udp.datagrams == [(b"t", ("127.0.0.1", 9))] * 3
    sender.doStop()
    clock.advance(10)
    assert len(udp.datagrams) == 3


def test_plainTranscript() -> None:
    """
    Plain mode prints the prompts, the name typed but not the password, and its own
    lines as `<name> > <text>`.
    """
    statuses: list[int] = []
    ui = PlainUI(statuses.append)
    client = ChatClientProtocol(ui, FakeReactor())
    ui.client = client
    out = StringTransport()
    ui.makeConnection(out)
    server = StringTransport()
    client.makeConnection(server)
    ui.dataReceived(b"alice\npw\nhello ")
    client.dataReceived(WELCOME + b"Username: ")
    client.dataReceived(b"Password: ")
    client.dataReceived(b"Login success!\r\nbob > hi\r\n")
    ui.dataReceived(b"there\r\n")
    ui.readConnectionLost()
    client.dataReceived(b"Goodbye, alice!\r\n")
    client.connectionLost(Failure(ConnectionDone()))
    assert out.value().decode() == (
        f"{messages.WELCOME}\nUsername: alice\nPassword: \nLogin success!\n"
        "bob > hi\nalice > hello there\nGoodbye, alice!\n"
    )
    assert b"pw" not in out.value()
    assert server.value() == b"alice\r\npw\r\n@HEARTBEAT\r\nhello there\r\nLOGOUT\r\n"
    assert statuses == [0]


# The terminal interface, on an emulated screen


_CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


class Screen:
    """
    A small VT100 screen emulator: enough of it to check what the terminal
    interface draws (printing with auto-wrap, CR, LF, cursor moves, erases).
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [[" "] * width for _ in range(height)]
        self.x = self.y = 0
        self.wrapPending = False

    def feed(self, data: bytes) -> None:
        text, i = data.decode("utf-8"), 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                match = _CSI.match(text, i)
                assert match is not None, f"unexpected escape {text[i : i + 8]!r}"
                self._csi(match.group(1), match.group(2))
                i = match.end()
                continue
            if char == "\r":
                self.x, self.wrapPending = 0, False
            elif char == "\n":
                self._lineFeed()
            else:
                assert char.isprintable(), f"control character {char!r} drawn"
                if self.wrapPending:
                    self.x = 0
                    self._lineFeed()
                self.rows[self.y][self.x] = char
                if self.x == self.width - 1:
                    self.wrapPending = True
                else:
                    self.x += 1
            i += 1

    def _lineFeed(self) -> None:
        self.wrapPending = False
        if self.y == self.height - 1:
            self.rows.pop(0)
            self.rows.append([" "] * self.width)
        else:
            self.y += 1

    def _csi(self, parameters: str, final: str) -> None:
        self.wrapPending = False
        if parameters.startswith("?") or final in "hlm":
            return
        n = int(parameters or "1")
        if final == "A":
            self.y = max(self.y - n, 0)
        elif final == "B":
            self.y = min(self.y + n, self.height - 1)
        elif final == "C":
            self.x = min(self.x + n, self.width - 1)
        elif final == "D":
            self.x = max(self.x - n, 0)
        elif final == "G":
            self.x = min(n - 1, self.width - 1)
        elif final == "J" and parameters in ("", "0"):
            self.rows[self.y][self.x :] = [" "] * (self.width - self.x)
            for row in self.rows[self.y + 1 :]:
                row[:] = [" "] * self.width
        elif final == "K" and parameters in ("", "0"):
            self.rows[self.y][self.x :] = [" "] * (self.width - self.x)
        else:
            raise AssertionError(f"unexpected sequence CSI {parameters}{final}")

    def lines(self) -> list[str]:
        """
        The screen's text, trailing blank lines and spaces removed.
        """
        lines = ["".join(row).rstrip() for row in self.rows]
        while lines and not lines[-1]:
            lines.pop()
        return lines


class FakeClient:
    """
    The part of the client protocol the terminal interface calls.
    """

    def __init__(self) -> None:
        self.ui: Any = None
        self.lines: list[str] = []
        self.loggedOut = 0
        self.loggingOut = False
        self.transport = StringTransport()

    def userLine(self, text: str) -> None:
        self.lines.append(text)

    def logout(self) -> None:
        self.loggedOut += 1
        self.loggingOut = True


class TerminalHarness:
    """
    A L{ChatTerminal} behind insults' L{ServerProtocol}, drawing on a
    L{Screen}.
    """

    def __init__(self, width: int = 40, height: int = 10) -> None:
        self.client = FakeClient()
        self.statuses: list[int] = []
        self.server = ServerProtocol(ChatTerminal, self.client, self.statuses.append)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.chat: ChatTerminal = self.server.terminalProtocol
        self.chat.terminalSize(width, height)
        self.screen = Screen(width, height)

    def keys(self, data: bytes) -> None:
        self.server.dataReceived(data)

    def lines(self) -> list[str]:
        self.screen.feed(self.transport.value())
        self.transport.clear()
        return self.screen.lines()

    def cursor(self) -> tuple[int, int]:
        self.lines()
        return self.screen.x, self.screen.y


def test_incomingLineKeepsHalfTypedLine() -> None:
    """
    A line arriving while the user types appears above the input line, which is
    redrawn intact with the cursor where it was.
    """
    t = TerminalHarness()
    t.chat.setPrompt("alice > ", False)
    t.keys(b"half typ\x1b[D\x1b[D")
    assert t.lines() == ["alice > half typ"]
    assert t.cursor() == (len("alice > half t"), 0)
    t.chat.showLine("bob > hello there")
    assert t.lines() == ["bob > hello there", "alice > half typ"]
    assert t.cursor() == (len("alice > half t"), 1)
    t.keys(b"X\r")
    assert t.client.lines == ["half tXyp"]
    assert t.lines() == ["bob > hello there", "alice > half tXyp", "alice >"]


def test_wrappedInputLine() -> None:
    """
    An input line longer than the screen is width wraps, and is cleared and redrawn
    whole when a line arrives.
    """
    t = TerminalHarness(width=20)
    t.chat.setPrompt("alice > ", False)
    t.keys(b"abcdefghijklmnopqrstuvwxyz0123")
    assert t.lines() == ["alice > abcdefghijkl", "mnopqrstuvwxyz0123"]
    t.keys(b"\x01")
    assert t.cursor() == (8, 0)
    t.keys(b"\x05" + b"\x1b[D" * 18)
    assert t.cursor() == (0, 1)
    t.chat.showLine("bob > hi")
    t.chat.showLine("carol > a line long enough to wrap too")
    assert t.lines() == [
        "bob > hi",
        "carol > a line long",
        "enough to wrap too",
        "alice > abcdefghijkl",
        "mnopqrstuvwxyz0123",
    ]
    assert t.cursor() == (0, 4)


def test_inputExactlyScreenWide() -> None:
    """
    When prompt and text end exactly at the right margin, the next redraw still
    lands on the same rows.
    """
    t = TerminalHarness(width=20)
    t.chat.setPrompt("alice > ", False)
    t.keys(b"x" * 12)
    t.chat.showLine("one")
    t.chat.showLine("two")
    assert t.lines() == ["one", "two", "alice > xxxxxxxxxxxx"]
    assert t.cursor() == (0, 3)


def test_passwordNotShown() -> None:
    """
    At a secret prompt typed characters are not drawn, nor left on screen, nor kept
    in history.
    """
    t = TerminalHarness()
    t.chat.setPrompt("Password: ", True)
    t.keys(b"s3cre\x7ft")
    assert t.lines() == ["Password:"]
    t.keys(b"\r")
    t.chat.setPrompt("", False)
    assert t.client.lines == ["s3crt"]
    assert t.lines() == ["Password:"]
    assert t.chat.historyLines == []


def test_utf8TypingAndEditing() -> None:
    """
    Multi-byte characters are typed, shown, moved over and deleted as one character
    each.
    """
    t = TerminalHarness()
    t.chat.setPrompt("ali > ", False)
    t.keys("çüğ".encode() + b"\x7f\x1b[Dx\r")
    assert t.client.lines == ["çxü"]
    assert t.lines() == ["ali > çxü", "ali >"]


def test_history() -> None:
    """Up and down arrows recall earlier lines."""
    t = TerminalHarness()
    t.chat.setPrompt("a > ", False)
    t.keys(b"first\rsecond\r\x1b[A\x1b[A")
    assert t.lines()[-1] == "a > first"
    t.keys(b"\x1b[B!\r")
    assert t.client.lines == ["first", "second", "second!"]


def test_controlCharactersShownHarmlessly() -> None:
    """
    Control characters in a server line are shown in caret notation, never written
    raw.
    """
    assert visible("a\x1b[2Jb\x07\tc\x85") == "a^[[2Jb^G       c\\x85"
    t = TerminalHarness()
    t.chat.showLine("bob > \x1b]0;pwned\x07")
    assert t.lines()[0] == "bob > ^[]0;pwned^G"


def test_ctrlCAndCtrlDLogOut() -> None:
    """
    Ctrl-C logs out; Ctrl-D logs out only on an empty line, else deletes; a second
    Ctrl-C aborts.
    """
    t = TerminalHarness()
    t.chat.setPrompt("a > ", False)
    t.keys(b"ab\x1b[D\x04")
    assert t.client.loggedOut == 0
    assert t.lines() == ["a > a"]
    t.keys(b"\x7f\x04")
    assert t.client.loggedOut == 1
    t.keys(b"\x03")
    assert t.client.transport.disconnected


def test_closedClearsPromptAndExits() -> None:
    """
    When the connection ends the input line is removed, the reason shown, and the
    exit status passed on.
    """
    t = TerminalHarness(width=60)
    t.chat.setPrompt("a > ", False)
    t.keys(b"unsent")
    t.chat.showLine("Server shutting down.")
    t.chat.closed(1, "Disconnected: the server closed the connection.")
    assert t.lines() == [
        "Server shutting down.",
        "Disconnected: the server closed the connection.",
    ]
    assert t.statuses == [1]


# The real program


class Child(ProcessProtocol):
    """
    A client process whose output a test can wait for, every wait bounded.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.output = b""
        self.errors = b""
        self.ended: Deferred[int] = Deferred()
        self._waiting: list[tuple[bytes, int, Deferred[int]]] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data
        for waiter in list(self._waiting):
            needle, start, d = waiter
            at = self.output.find(needle, start)
            if at >= 0:
                self._waiting.remove(waiter)
                d.callback(at + len(needle))

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)

    async def waitFor(self, needle: bytes, start: int = 0) -> int:
        """
        Wait until C{needle} appears in the output after C{start}; return
        the offset just past it.
        """
        at = self.output.find(needle, start)
        if at >= 0:
            return at + len(needle)
        d: Deferred[int] = Deferred()
        self._waiting.append((needle, start, d))
        d.addTimeout(TIMEOUT, reactor)
        try:
            return await d
        except Exception:
            raise AssertionError(
                f"{self.name} did not print {needle!r}; output: {self.output!r}, "
                f"errors: {self.errors!r}"
            ) from None

    async def exitCode(self) -> int:
        """
        Wait for the process to end and return its exit status.
        """
        self.ended.addTimeout(TIMEOUT, reactor)
        return await self.ended


def spawnClient(name: str, port: int, usePTY: Any = False) -> tuple[Child, Any]:
    """
    Start C{python -m twisted_chat.client} against the server on C{port}.
    """
    child = Child(name)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm",
        "PYTHONUNBUFFERED": "1",
    }
    process = reactor.spawnProcess(
        child,
        sys.executable,
        [sys.executable, "-m", "twisted_chat.client", *CLIENT_ARGS, str(port)],
        env=env,
        path=str(ROOT),
        usePTY=usePTY,
    )
    return child, process


@pytest_twisted.ensureDeferred
async def test_pipedClientsChat(tmp_path: Path) -> None:
    """
    Two scripted clients chat through the real server, heartbeats keep them online,
    and both exit 0 at end of input.
    """
    async with running(
        tmp_path, "--heartbeat-interval", "0.2", "--heartbeat-timeout", "1"
    ) as server:
        bob, bobProcess = spawnClient("bob", server.port)
        bobProcess.write(b"bob\npw\n")
        await bob.waitFor(b"Login success!\n")
        alice, aliceProcess = spawnClient("alice", server.port)
        aliceProcess.write("alice\npw\nhello bob, çay?\n".encode())
        await alice.waitFor("alice > hello bob, çay?\n".encode())
        await bob.waitFor("alice > hello bob, çay?\n".encode())
        await bob.waitFor(b"* alice joined the chat.\n")
        # Both stay online well past the 1 s heartbeat timeout.
        waited: Deferred[None] = Deferred()
        reactor.callLater(1.6, waited.callback, None)
        await waited
        aliceProcess.write(b"still here\n")
        await bob.waitFor(b"alice > still here\n")
        aliceProcess.closeStdin()
        assert await alice.exitCode() == 0
        await bob.waitFor(b"* alice left the chat.\n")
        bobProcess.closeStdin()
        assert await bob.exitCode() == 0
    assert b"pw" not in alice.output
    assert alice.output.decode().endswith("Goodbye, alice!\n")
    audit = server.auditLog.read_text("utf-8")
    assert "Could not receive any heartbeat" not in audit
    assert "alice logged out." in audit
    assert "bob logged out." in audit


@pytest_twisted.ensureDeferred
async def test_serverGoneExitsNonZero(tmp_path: Path) -> None:
    """A client whose server shuts down says so and exits with status 1."""
    async with running(tmp_path) as server:
        bob, bobProcess = spawnClient("bob", server.port)
        bobProcess.write(b"bob\npw\n")
        await bob.waitFor(b"Login success!\n")
    await bob.waitFor(b"Server shutting down.\n")
    await bob.waitFor(b"Disconnected: the server closed the connection.\n")
    assert await bob.exitCode() == 1


def _screen(output: bytes, width: int, height: int) -> Screen:
    screen = Screen(width, height)
    screen.feed(output)
    return screen


@pytest_twisted.ensureDeferred
async def test_terminalKeepsHalfTypedLine(tmp_path: Path) -> None:
    """
    Under a real pseudo-terminal, a message arriving mid-typing is shown above the
    intact input line, and the tty is restored at exit.
    """
    width, height = 80, 24
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    watch = os.dup(master)
    try:
        before = termios.tcgetattr(watch)
        async with running(tmp_path) as server:
            alice, aliceTerminal = spawnClient(
                "alice", server.port, usePTY=(master, slave, os.ttyname(slave))
            )
            await alice.waitFor(b"Username: ")
            aliceTerminal.write(b"alice\r")
            await alice.waitFor(b"Password: ")
            aliceTerminal.write(b"s3cret\r")
            mark = await alice.waitFor(b"Login success!")
            await alice.waitFor(b"alice > ", mark)
            mark = len(alice.output)
            aliceTerminal.write(b"half typ")
            await alice.waitFor(b"half typ", mark)

            bob, bobProcess = spawnClient("bob", server.port)
            bobProcess.write(b"bob\npw\nhello alice\n")
            mark = await alice.waitFor(b"bob > hello alice", mark)
            await alice.waitFor(b"alice > half typ", mark)
            screen = _screen(alice.output, width, height)
            lines = screen.lines()
            assert lines[-3:] == [
                "* bob joined the chat.",
                "bob > hello alice",
                "alice > half typ",
            ]
            assert (screen.x, screen.y) == (len("alice > half typ"), len(lines) - 1)

            aliceTerminal.write(b"ed line\r")
            await bob.waitFor(b"alice > half typed line\n")
            aliceTerminal.write(b"\x03")
            assert await alice.exitCode() == 0
            bobProcess.closeStdin()
            assert await bob.exitCode() == 0
        after = termios.tcgetattr(watch)
    finally:
        os.close(watch)
    lines = _screen(alice.output, width, height).lines()
    assert lines[-3:] == [
        "bob > hello alice",
        "alice > half typed line",
        "Goodbye, alice!",
    ]
    assert b"s3cret" not in alice.output
    assert b"\x1bc" not in alice.output
    assert after == before
    assert "Received message from alice: half typed line" in server.auditLog.read_text(
        "utf-8"
    )


@pytest.mark.parametrize("argv", [["--port", "notaport"], ["--bogus"]])
def test_badArguments(argv: list[str]) -> None:
    """Bad command-line arguments exit with status 2."""
    from twisted_chat.client.main import parseArguments

    with pytest.raises(SystemExit) as raised:
        parseArguments(argv)
    assert raised.value.code == 2
