"""
Tests for the bundled client: its protocol over string transports, its
terminal drawing on an emulated screen, and the real program end to end,
piped and under a pseudo-terminal.
"""

import fcntl
import os
import re
import shlex
import shutil
import struct
import sys
import termios
from collections.abc import Callable, Sequence
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
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutput
from twisted.python.failure import Failure

from twisted_chat.client.completion import Seen
from twisted_chat.client.main import loginCommands, parseArguments
from twisted_chat.client.plain import PlainUI
from twisted_chat.client.protocol import (
    LOGOUT_WAIT,
    ChatClientProtocol,
    HeartbeatSender,
    LineKind,
    Stage,
)
from twisted_chat.client.terminal import (
    BELL_INTERVAL,
    ChatTerminal,
    Features,
    terminalFeatures,
    visible,
)
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
        self.kinds: list[LineKind] = []
        self.alerts: list[str] = []
        self.prompts: list[tuple[str, bool]] = []
        self.sentLines: list[tuple[Stage, str]] = []
        self.closings: list[tuple[int, str | None]] = []

    def showLine(self, text: str, kind: LineKind) -> None:
        self.lines.append(text)
        self.kinds.append(kind)

    def alert(self, title: str) -> None:
        self.alerts.append(title)

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


def connected(
    loginCommands: Sequence[str] = (),
) -> tuple[ChatClientProtocol, RecordingUI, StringTransport, FakeReactor]:
    """
    A client connected to a string transport, before the welcome line.
    """
    ui, fake = RecordingUI(), FakeReactor()
    client = ChatClientProtocol(ui, fake, loginCommands)
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
    assert ui.prompts[-1] == ("alice [#general] > ", False)
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
        ("bob > I am not the server", "alice [#general] > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("Request rejected.", "alice [#general] > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("The private chat request from bob expired.", "alice [#general] > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        ("The private chat request from bob was cancelled.", "alice [#general] > "),
        ("The user bob wants to have a private chat with you (Y/N)?", None),
        (
            "You are now in a private chat with bob. Type EXIT PM to leave.",
            "alice [PM with bob] > ",
        ),
        ("bob > You left the private chat with bob.", "alice [PM with bob] > "),
        ("You left the private chat with bob.", "alice [#general] > "),
        (
            "You are now in a private chat with carol. Type EXIT PM to leave.",
            "alice [PM with carol] > ",
        ),
        ("Your partner carol left pm!", "alice [#general] > "),
    ]
    for line, prompt in steps:
        client.dataReceived(line.encode() + b"\r\n")
        assert ui.lines[-1] == line
        expected = prompt or "alice [PM with bob? y/n] > "
        assert ui.prompts[-1] == (expected, False), line


def serverLines(client: ChatClientProtocol, *lines: str) -> None:
    """
    Feed C{lines} to C{client} as the server sends them, in one read.
    """
    client.dataReceived("".join(line + "\r\n" for line in lines).encode())


def test_roomPrompts() -> None:
    """
    When logged in (a takeover's login too) the client shows #general, and it moves
    the prompt's room only on the server's own `You are now in` lines, never on
    lines that merely quote one.
    """
    client, ui, _, _ = loggedIn()
    assert ui.prompts[-1] == ("alice [#general] > ", False)
    steps = [
        ("You are now in #python (3 users).", "#python"),
        ("* bob joined #python.", "#python"),
        ("You left #rust.", "#python"),
        ("bob > You are now in #evil (1 users).", "#python"),
        ("[#rust] bob > You are now in #evil (1 users).", "#python"),
        ("--- History of #python (1 lines) ---", "#python"),
        ("[2026-11-30 09:15] bob > You are now in #evil (1 users).", "#python"),
        ("--- End of history ---", "#python"),
        ("You cannot leave #general.", "#python"),
        ("You left #python.", "#python"),
        ("You are now in #general (12 users).", "#general"),
        ("You are now in #Çay-Evi (2 users).", "#Çay-Evi"),
    ]
    for line, room in steps:
        serverLines(client, line)
        assert ui.lines[-1] == line
        assert ui.prompts[-1] == (f"alice [{room}] > ", False), line


def test_privateChatOverRoom() -> None:
    """
    When a private chat ends, the client's prompt shows the room the user was in
    again, and the `You missed` line that follows changes nothing.
    """
    client, ui, _, _ = loggedIn()
    serverLines(
        client,
        "You are now in #python (3 users).",
        "You are now in a private chat with bob. Type EXIT PM to leave.",
    )
    assert ui.prompts[-1] == ("alice [PM with bob] > ", False)
    serverLines(client, "You left the private chat with bob.")
    assert ui.prompts[-1] == ("alice [#python] > ", False)
    serverLines(client, "You missed 4 lines in #python; type @HISTORY to see them.")
    assert ui.prompts[-1] == ("alice [#python] > ", False)


def test_lineKinds() -> None:
    """
    When lines arrive, the client marks history blocks (after login, a join or
    @HISTORY, frames and timestamps included) and other rooms' lines for the
    interface, and a block cut short ends at its first line that is not history.
    """
    client, ui, _, _ = connected()
    client.dataReceived(WELCOME + b"Username: ")
    client.userLine("alice")
    client.dataReceived(b"Password: ")
    client.userLine("pw")
    H, R, N = LineKind.HISTORY, LineKind.OTHER_ROOM, LineKind.NORMAL
    steps = [
        ("Login success!", N),
        ("--- History of #general (2 lines) ---", H),
        ("[2026-11-30 09:15] bob > morning", H),
        ("[2026-11-30 09:16] carol > [#rust] dave > not live", H),
        ("--- End of history ---", H),
        ("bob > now", N),
        ("[#rust] carol > elsewhere", R),
        ("[2026-11-30 09:17] bob > quoted, not in a block", N),
        ("--- History of #python (1 lines) ---", H),
        ("[#rust] carol > live, in the middle", R),
        ("bob > after the cut", N),
        ("--- End of history ---", N),
    ]
    serverLines(client, *(line for line, _ in steps))
    assert list(zip(ui.lines[1:], ui.kinds[1:], strict=True)) == steps


def test_alerts() -> None:
    """
    When a private chat is asked for, or a live line names the user as a whole word
    in any case, the client alerts the interface; not for history, lists or longer
    names.
    """
    client, ui, _, _ = loggedIn("Ålice")
    serverLines(
        client,
        "bob > hi ålice!",
        "[#rust] carol > ÅLICE: ping",
        "bob > Ålice_2 and xÅlice are others",
        "Online users: bob, carol, Ålice",
        "--- History of #general (1 lines) ---",
        "[2026-11-30 09:15] bob > Ålice?",
        "--- End of history ---",
        "The user bob wants to have a private chat with you (Y/N)?",
    )
    assert ui.alerts == [
        "bob mentioned you",
        "carol mentioned you",
        "bob asks for a private chat",
    ]


def test_namesSeen() -> None:
    """
    When lines name users and rooms (joins, @WHO, @ROOMS, room notices, chat), the
    client remembers them for completion, forgets users who leave and rooms that do
    not exist, and never offers the user's own name.
    """
    client, _, _, _ = loggedIn()
    serverLines(
        client,
        "* bob joined the chat.",
        "Online users: alice, bob (PM with carol), carol (PM with bob), and 3 more",
        "* dave joined #rust.",
        "[#go] erin > hi",
        "Users in #python: frank, gus",
        "Rooms: #general (5), #python (2), and 2 more",
        "* gus left the chat.",
        "Room #go does not exist.",
        "Çağla > merhaba",
    )
    assert client.seen.users() == ["bob", "carol", "dave", "erin", "frank", "Çağla"]
    assert client.seen.rooms() == ["#general", "#python", "#rust"]


def test_loginCommands() -> None:
    """
    When started with --room and --history, the client joins the room and then asks
    for its history right after login, before the lines typed ahead, without showing
    them as sent.
    """
    args = parseArguments(["--room", "Python", "--history", "5"])
    assert args.room == "#Python"
    client, ui, transport, _ = connected(loginCommands(args))
    for line in ("alice", "pw", "hello"):
        client.userLine(line)
    client.dataReceived(WELCOME + b"Username: ")
    client.dataReceived(b"Password: ")
    client.dataReceived(b"Login success!\r\n")
    assert transport.value() == (
        b"alice\r\npw\r\n@HEARTBEAT\r\n@JOIN #Python\r\n@HISTORY 5\r\nhello\r\n"
    )
    assert [text for _, text in ui.sentLines] == ["alice", "pw", "hello"]


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
    Plain mode prints the prompts, the name typed but not the password, its own
    lines as `<name> > <text>`, and the server's lines unchanged, history, other
    rooms and mentions with no colour or bell.
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
    received = (
        "Login success!\n--- History of #general (1 lines) ---\n"
        "[2026-11-30 09:15] bob > morning alice\n--- End of history ---\n"
        "bob > hi alice\n[#rust] carol > elsewhere\n"
    )
    client.dataReceived(received.replace("\n", "\r\n").encode())
    ui.dataReceived(b"there\r\n")
    ui.readConnectionLost()
    client.dataReceived(b"Goodbye, alice!\r\n")
    client.connectionLost(Failure(ConnectionDone()))
    assert out.value().decode() == (
        f"{messages.WELCOME}\nUsername: alice\nPassword: \n{received}"
        "alice > hello there\nGoodbye, alice!\n"
    )
    assert b"pw" not in out.value()
    assert server.value() == b"alice\r\npw\r\n@HEARTBEAT\r\nhello there\r\nLOGOUT\r\n"
    assert statuses == [0]


# The terminal interface, on an emulated screen


_CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")
_OSC = re.compile(r"\x1b\]2;([^\x07\x1b]*)\x07")
Cell = tuple[str, bool]
BLANK: Cell = (" ", False)


class Screen:
    """
    A small VT100 screen emulator: enough of it to check what the terminal
    interface draws (printing with auto-wrap, CR, LF, cursor moves, erases,
    faint text, the bell, the window title and its saving and restoring).
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [[BLANK] * width for _ in range(height)]
        self.x = self.y = 0
        self.wrapPending = False
        self.faint = False
        self.bells = 0
        self.title = ""
        self.savedTitles: list[str] = []

    def feed(self, data: bytes) -> None:
        text, i = data.decode("utf-8"), 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                if (match := _OSC.match(text, i)) is not None:
                    self.title = match.group(1)
                else:
                    match = _CSI.match(text, i)
                    assert match is not None, f"unexpected escape {text[i : i + 8]!r}"
                    self._csi(match.group(1), match.group(2))
                i = match.end()
                continue
            if char == "\r":
                self.x, self.wrapPending = 0, False
            elif char == "\n":
                self._lineFeed()
            elif char == "\a":
                self.bells += 1
            else:
                assert char.isprintable(), f"control character {char!r} drawn"
                if self.wrapPending:
                    self.x = 0
                    self._lineFeed()
                self.rows[self.y][self.x] = (char, self.faint)
                if self.x == self.width - 1:
                    self.wrapPending = True
                else:
                    self.x += 1
            i += 1

    def _lineFeed(self) -> None:
        self.wrapPending = False
        if self.y == self.height - 1:
            self.rows.pop(0)
            self.rows.append([BLANK] * self.width)
        else:
            self.y += 1

    def _csi(self, parameters: str, final: str) -> None:
        if final == "m":
            for parameter in parameters.split(";"):
                if parameter in ("", "0", "2", "22"):
                    self.faint = parameter == "2"
            return
        if final == "t" and parameters in ("22;2", "23;2"):
            if parameters == "22;2":
                self.savedTitles.append(self.title)
            elif self.savedTitles:
                self.title = self.savedTitles.pop()
            return
        self.wrapPending = False
        if parameters.startswith("?") or final in "hl":
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
            self.rows[self.y][self.x :] = [BLANK] * (self.width - self.x)
            for row in self.rows[self.y + 1 :]:
                row[:] = [BLANK] * self.width
        elif final == "K" and parameters in ("", "0"):
            self.rows[self.y][self.x :] = [BLANK] * (self.width - self.x)
        else:
            raise AssertionError(f"unexpected sequence CSI {parameters}{final}")

    def lines(self, marked: bool = False) -> list[str]:
        """
        The screen's text, trailing blank lines and spaces removed; if
        C{marked}, with each run of faint text between C{«} and C{»}.
        """
        lines = []
        for row in self.rows:
            line, faint = "", False
            for char, cellFaint in row:
                if marked and cellFaint != faint and char != " ":
                    line = line + "«" if cellFaint else line.rstrip() + "»"
                    faint = cellFaint
                line += char
            lines.append(line.rstrip() + ("»" if faint else ""))
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
        self.stage = Stage.CHAT
        self.seen = Seen()
        self.seen.me = "alice"
        self.reactor = Clock()

    def userLine(self, text: str) -> None:
        self.lines.append(text)

    def logout(self) -> None:
        self.loggedOut += 1
        self.loggingOut = True


class TerminalHarness:
    """
    A L{ChatTerminal} for C{client} (by default a L{FakeClient}) behind
    insults' L{ServerProtocol}, drawing on a L{Screen}.
    """

    def __init__(
        self,
        width: int = 40,
        height: int = 10,
        features: Features = Features(),  # noqa: B008
        client: Any = None,
    ) -> None:
        self.client = FakeClient() if client is None else client
        self.statuses: list[int] = []
        self.server = ServerProtocol(
            ChatTerminal, self.client, self.statuses.append, features
        )
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.chat: ChatTerminal = self.server.terminalProtocol
        self.chat.terminalSize(width, height)
        self.screen = Screen(width, height)

    def keys(self, data: bytes) -> None:
        self.server.dataReceived(data)

    def lines(self, marked: bool = False) -> list[str]:
        self.screen.feed(self.transport.value())
        self.transport.clear()
        return self.screen.lines(marked)

    def cursor(self) -> tuple[int, int]:
        self.lines()
        return self.screen.x, self.screen.y

    def typed(self) -> str:
        """
        The input line as it stands.
        """
        return b"".join(self.chat.lineBuffer).decode()


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
    t.chat.showLine("bob > hello there", LineKind.NORMAL)
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
    t.chat.showLine("bob > hi", LineKind.NORMAL)
    t.chat.showLine("carol > a line long enough to wrap too", LineKind.NORMAL)
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
    t.chat.showLine("one", LineKind.NORMAL)
    t.chat.showLine("two", LineKind.NORMAL)
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
    t.chat.showLine("bob > \x1b]0;pwned\x07", LineKind.NORMAL)
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
    t.chat.showLine("Server shutting down.", LineKind.NORMAL)
    t.chat.closed(1, "Disconnected: the server closed the connection.")
    assert t.lines() == [
        "Server shutting down.",
        "Disconnected: the server closed the connection.",
    ]
    assert t.statuses == [1]


def test_otherRoomsAndHistoryDimmed() -> None:
    """
    With colour, the client dims other rooms' lines and whole history blocks with
    their timestamps, cleaning control characters before it colours, and draws the
    current room's lines and the input line normally.
    """
    t = TerminalHarness(width=60, features=Features(colour=True))
    t.chat.setPrompt("alice [#python] > ", False)
    t.keys(b"typing")
    t.chat.showLine("--- History of #python (1 lines) ---", LineKind.HISTORY)
    t.chat.showLine("[2026-11-30 09:15] bob > earlier", LineKind.HISTORY)
    t.chat.showLine("--- End of history ---", LineKind.HISTORY)
    t.chat.showLine("bob > now", LineKind.NORMAL)
    t.chat.showLine("[#rust] carol > \x1b[0mstill dim", LineKind.OTHER_ROOM)
    assert t.lines(marked=True) == [
        "«--- History of #python (1 lines) ---»",
        "«[2026-11-30 09:15] bob > earlier»",
        "«--- End of history ---»",
        "bob > now",
        "«[#rust] carol > ^[[0mstill dim»",
        "alice [#python] > typing",
    ]


def test_noColourWithoutTheFeature() -> None:
    """
    Without colour (NO_COLOR, a dumb terminal), the client writes other rooms' and
    history lines with no rendition sequence at all.
    """
    t = TerminalHarness()
    t.chat.showLine("[#rust] carol > hi", LineKind.OTHER_ROOM)
    t.chat.showLine("--- End of history ---", LineKind.HISTORY)
    assert re.search(rb"\x1b\[[0-9;]*m", t.transport.value()) is None
    assert t.lines(marked=True) == ["[#rust] carol > hi", "--- End of history ---"]


@pytest.mark.parametrize(
    ("environ", "quiet", "expected"),
    [
        ({"TERM": "xterm-256color"}, False, Features(True, True, True)),
        ({"TERM": "xterm", "NO_COLOR": "1"}, False, Features(False, True, True)),
        ({"TERM": "xterm", "NO_COLOR": ""}, False, Features(True, True, True)),
        ({"TERM": "linux"}, False, Features(True, True, False)),
        ({"TERM": "dumb"}, False, Features(False, True, False)),
        ({}, False, Features(False, True, False)),
        ({"TERM": "tmux-256color"}, True, Features(True, False, False)),
    ],
)
def test_terminalFeatures(
    environ: dict[str, str], quiet: bool, expected: Features
) -> None:
    """
    When started, the client colours only where TERM allows and NO_COLOR is unset or
    empty, rings the bell unless --quiet, and sets titles only on terminals known to
    take them.
    """
    assert terminalFeatures(environ, quiet) == expected


def test_alertRingsAndRetitles() -> None:
    """
    When the user is wanted, the client rings the bell and retitles the window, at
    the next key puts the old title back, and with --quiet does neither.
    """
    t = TerminalHarness(width=60, features=Features(bell=True, title=True))
    t.screen.title = "shell"
    t.chat.setPrompt("alice [#general] > ", False)
    t.chat.alert("bob mentioned you")
    t.chat.alert("carol asks for a private chat")
    assert t.lines() == ["alice [#general] >"]
    assert t.screen.bells == 1
    assert t.screen.title == "twisted-chat: carol asks for a private chat"
    t.keys(b"y")
    assert t.lines() == ["alice [#general] > y"]
    assert (t.screen.title, t.screen.savedTitles) == ("shell", [])
    quiet = TerminalHarness(features=terminalFeatures({"TERM": "xterm"}, True))
    quiet.lines()
    quiet.chat.alert("bob mentioned you")
    assert quiet.transport.value() == b""


def test_bellAtMostEveryInterval() -> None:
    """
    When many lines name the user at once, the bell rings once, and again only
    once BELL_INTERVAL seconds have passed; the title follows every alert.
    """
    t = TerminalHarness(features=Features(bell=True, title=True))
    clock = t.client.reactor
    for n in range(20):
        t.chat.alert(f"user{n} mentioned you")
    clock.advance(BELL_INTERVAL - 0.1)
    t.chat.alert("bob mentioned you")
    t.lines()
    assert (t.screen.bells, t.screen.title) == (1, "twisted-chat: bob mentioned you")
    clock.advance(0.1)
    t.chat.alert("carol mentioned you")
    t.lines()
    assert t.screen.bells == 2


def test_alertTitleCleaned() -> None:
    """
    When a name in an alert holds control characters, the client writes them into
    the window title in caret notation, never raw.
    """
    t = TerminalHarness(features=Features(title=True))
    t.chat.alert("bob\x1b]2;x\x07 mentioned you")
    t.lines()
    assert t.screen.title == "twisted-chat: bob^[]2;x^G mentioned you"


def test_tabCompletesCommands() -> None:
    """
    When Tab follows part of a command name in any case, the client completes it
    (`@jo` gives `@JOIN `), and each further Tab cycles through the commands that
    match.
    """
    t = TerminalHarness()
    t.keys(b"@jo\t")
    assert t.typed() == "@JOIN "
    t.keys(b"\x15@P\t")
    assert t.typed() == "@PASSWORD "
    t.keys(b"\t")
    assert t.typed() == "@PM "
    t.keys(b"\t")
    assert t.typed() == "@PASSWORD "


def test_tabCompletesUserNames() -> None:
    """
    When Tab follows part of a name at the start of a line or after `@PM `, the
    client completes it in any case and with non-ASCII letters, cycles through the
    matches, and never offers the user's own name or completes mid-sentence.
    """
    t = TerminalHarness()
    t.client.seen.addUsers(["bob", "Boris", "çağla", "alice", "Ölçek"])
    t.keys(b"bo\t")
    assert t.typed() == "bob: "
    t.keys(b"\t")
    assert t.typed() == "Boris: "
    t.keys(b"\t")
    assert t.typed() == "bob: "
    for keys, typed in [
        ("BOR\t", "Boris: "),
        ("@pm ÇA\t", "@pm çağla "),
        ("öl\t", "Ölçek: "),
        ("al\t", "al"),
        ("hi bo\t", "hi bo"),
        ("@PM \t\t", "@PM Boris "),
    ]:
        t.keys(b"\x15" + keys.encode())
        assert t.typed() == typed, keys


def test_tabCompletesRoomNames() -> None:
    """
    When Tab follows part of a room after `@JOIN `, `@LEAVE ` or `@WHO `, the client
    completes it with or without its `#`, in any case, cycling through the matches.
    """
    t = TerminalHarness()
    t.client.seen.addRooms(["#general", "#python", "#Pyramids", "#rüya"])
    t.keys(b"@JOIN #py\t")
    assert t.typed() == "@JOIN #Pyramids "
    t.keys(b"\t")
    assert t.typed() == "@JOIN #python "
    for keys, typed in [
        ("@leave GEN\t", "@leave #general "),
        ("@who #RÜ\t", "@who #rüya "),
        ("@JOIN #nope\t", "@JOIN #nope"),
    ]:
        t.keys(b"\x15" + keys.encode())
        assert t.typed() == typed, keys


def test_tabInsideLine() -> None:
    """
    When the cursor is inside the line, Tab completes the word before it, keeps the
    rest and leaves the cursor after the completion; another key ends the cycle.
    """
    t = TerminalHarness()
    t.client.seen.addRooms(["#python", "#Pyramids"])
    t.chat.setPrompt("a > ", False)
    t.keys(b"@join py!\x1b[D\t")
    assert t.typed() == "@join #Pyramids !"
    assert t.cursor() == (len("a > @join #Pyramids "), 0)
    t.keys(b"\tx\t")
    assert t.typed() == "@join #python x!"
    assert t.lines() == ["a > @join #python x!"]


def test_tabBeforeLogin() -> None:
    """
    When Tab is pressed at the name prompt, the client completes nothing and inserts
    nothing.
    """
    t = TerminalHarness()
    t.client.stage = Stage.USERNAME
    t.client.seen.addUsers(["bob"])
    t.chat.setPrompt("Username: ", False)
    t.keys(b"bo\t")
    assert t.typed() == "bo"


def test_completionFromServerLines() -> None:
    """
    When the server's lines have named users and rooms (joins, @WHO, @ROOMS), Tab in
    the terminal offers exactly those.
    """
    client, _, _, _ = loggedIn()
    t = TerminalHarness(client=client)
    serverLines(
        client,
        "* erin joined the chat.",
        "Online users: alice, bob, carol (PM with dave), dave (PM with carol), erin",
        "Rooms: #general (4), #python (1)",
    )
    t.keys(b"@PM d\t")
    assert t.typed() == "@PM dave "
    t.keys(b"\x15\t\t\t\t\t")
    assert t.typed() == "bob: "
    t.keys(b"\x15@JOIN #p\t")
    assert t.typed() == "@JOIN #python "


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


def clientEnvironment() -> dict[str, str]:
    """
    The environment the client runs in: this one, with this checkout on the path,
    unbuffered, and without C{NO_COLOR}.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("NO_COLOR", None)
    return env


def clientCommand(port: int, *extra: str) -> list[str]:
    """
    The command line of C{python -m twisted_chat.client} against the server on
    C{port}, with C{extra} options.
    """
    return [
        sys.executable,
        "-m",
        "twisted_chat.client",
        *CLIENT_ARGS,
        str(port),
        *extra,
    ]


def spawnClient(
    name: str, port: int, usePTY: Any = False, extra: Sequence[str] = ()
) -> tuple[Child, Any]:
    """
    Start C{python -m twisted_chat.client} against the server on C{port}.
    """
    child = Child(name)
    command = clientCommand(port, *extra)
    process = reactor.spawnProcess(
        child,
        command[0],
        command,
        env={**clientEnvironment(), "TERM": "xterm"},
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
    intact input line, one naming the user rings the bell and retitles the window
    until the next key, and the tty is restored at exit.
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
            await alice.waitFor(b"alice [#general] > ", mark)
            mark = len(alice.output)
            aliceTerminal.write(b"half typ")
            await alice.waitFor(b"half typ", mark)

            bob, bobProcess = spawnClient("bob", server.port)
            bobProcess.write(b"bob\npw\nhello alice\n")
            mark = await alice.waitFor(b"bob > hello alice", mark)
            await alice.waitFor(b"alice [#general] > half typ", mark)
            await alice.waitFor(b"twisted-chat: bob mentioned you\x07", mark)
            screen = _screen(alice.output, width, height)
            lines = screen.lines()
            assert lines[-3:] == [
                "* bob joined the chat.",
                "bob > hello alice",
                "alice [#general] > half typ",
            ]
            assert (screen.x, screen.y) == (
                len("alice [#general] > half typ"),
                len(lines) - 1,
            )
            assert screen.bells == 1

            aliceTerminal.write(b"ed line\r")
            await bob.waitFor(b"alice > half typed line\n")
            aliceTerminal.write(b"\x03")
            assert await alice.exitCode() == 0
            bobProcess.closeStdin()
            assert await bob.exitCode() == 0
        after = termios.tcgetattr(watch)
    finally:
        os.close(watch)
    screen = _screen(alice.output, width, height)
    assert screen.lines()[-3:] == [
        "bob > hello alice",
        "alice [#general] > half typed line",
        "Goodbye, alice!",
    ]
    assert (screen.title, screen.savedTitles) == ("", [])
    assert b"s3cret" not in alice.output
    assert b"\x1bc" not in alice.output
    assert after == before
    assert "Received message from alice: half typed line" in server.auditLog.read_text(
        "utf-8"
    )


@pytest_twisted.ensureDeferred
async def test_pipedRoomAndHistoryOptions(tmp_path: Path) -> None:
    """
    When started with --room and --history, a scripted client joins the room and asks
    for that many lines of its history before its first line, which goes to that
    room, and prints the server's lines unchanged.
    """
    history = str(tmp_path / "history.sqlite3")
    async with running(tmp_path, "--history", history) as server:
        bob = await server.user("bob")
        bob.send("@JOIN #python", "first", "second")
        await bob.waitFor("You are now in #python (1 users).")
        alice, aliceProcess = spawnClient(
            "alice", server.port, extra=("--room", "python", "--history", "1")
        )
        aliceProcess.write(b"alice\npw\nhello python\n")
        await bob.waitFor("* alice joined #python.")
        await bob.waitFor("alice > hello python")
        block = (
            "--- History of #python (1 lines) ---\n"
            "[TIME] bob > second\n"
            "--- End of history ---\n"
        )
        await alice.waitFor(block.split("[TIME]")[0].encode())
        await alice.waitFor(b"--- End of history ---\n")
        aliceProcess.closeStdin()
        assert await alice.exitCode() == 0
    output = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "TIME", alice.output.decode())
    assert output.index("You are now in #python (2 users).\n") < output.index(block)
    assert output.endswith(f"{block}Goodbye, alice!\n")
    assert "alice > hello python\n" in output
    assert "\x1b" not in output


TMUX = shutil.which("tmux")
_EXITED = re.compile(r"\[exit (\d+)\]")


class Tmux:
    """
    A tmux server of the test's own (its socket in a temporary directory) running
    one command in a window of a fixed size, driven and read without blocking the
    reactor, every wait bounded.
    """

    def __init__(self, directory: Path, width: int, height: int) -> None:
        if TMUX is None:
            missing = "tmux is not installed (apt-get install tmux)"
            if os.environ.get("TWISTED_CHAT_REQUIRE_TMUX"):
                pytest.fail(f"{missing} (TWISTED_CHAT_REQUIRE_TMUX)")
            pytest.skip(missing)
        self.executable = TMUX
        self.socket = str(directory / "tmux.sock")
        self.width, self.height = width, height

    async def run(self, *arguments: str) -> str:
        """
        Run one tmux command (or several, split by C{;}) and return its output.
        """
        env = clientEnvironment()
        env.pop("TMUX", None)
        output = getProcessOutput(
            self.executable,
            ["-S", self.socket, "-f", "/dev/null", *arguments],
            env=env,
            path=str(ROOT),
            errortoo=True,
        )
        output.addTimeout(TIMEOUT, reactor)
        return (await output).decode()

    async def start(self, command: Sequence[str]) -> None:
        """
        Run C{command} in a new window, kept on screen after it exits.
        """
        size = ("-x", str(self.width), "-y", str(self.height))
        shell = f'{shlex.join(command)}; echo "[exit $?]"'
        await self.run(
            *("new-session", "-d", "-s", "chat", *size, shell),
            *(";", "set-option", "-t", "chat", "remain-on-exit", "on"),
        )

    async def type(self, text: str) -> None:
        """
        Type C{text} as it is.
        """
        await self.run("send-keys", "-t", "chat", "-l", text)

    async def press(self, *keys: str) -> None:
        """
        Press the keys named C{keys} (C{Tab}, C{Enter}, C{C-c}).
        """
        await self.run("send-keys", "-t", "chat", *keys)

    async def show(self, formats: str) -> str:
        """
        The window's C{formats} (C{#{cursor_x}} ...) filled in.
        """
        return (await self.run("list-panes", "-t", "chat", "-F", formats)).strip()

    async def screen(self) -> list[str]:
        """
        The window's rows, faint runs between C{«} and C{»}, as L{Screen}
        reads tmux's own rendering of them.
        """
        captured = await self.run("capture-pane", "-p", "-e", "-t", "chat")
        screen = Screen(self.width, self.height + 1)
        screen.feed(captured.replace("\n", "\r\n").encode())
        return screen.lines(marked=True)

    async def waitFor(self, check: Callable[[list[str]], bool], what: str) -> list[str]:
        """
        Wait until the screen's rows pass C{check}; return them.
        """
        deadline = reactor.seconds() + TIMEOUT
        while True:
            lines = await self.screen()
            if check(lines):
                return lines
            if reactor.seconds() > deadline:
                raise AssertionError(f"no {what} within {TIMEOUT} s: {lines!r}")
            await deferLater(reactor, 0.05)

    async def waitForBottom(self, line: str) -> list[str]:
        """
        Wait until the last row with text is C{line}; return the rows.
        """
        return await self.waitFor(lambda lines: lines[-1:] == [line], repr(line))

    async def exitStatus(self) -> int:
        """
        Wait for the command to exit; return its exit status, which the shell
        writes on a row of its own (tmux itself may miss it).
        """
        rows = await self.waitFor(
            lambda lines: any(map(_EXITED.fullmatch, lines)), "exit status"
        )
        [status] = [int(match[1]) for match in map(_EXITED.fullmatch, rows) if match]
        return status

    async def kill(self) -> None:
        """
        Stop the tmux server and whatever runs in it.
        """
        await self.run("kill-server")


@pytest_twisted.ensureDeferred
async def test_tmuxRoomsCompletionAndDimming(tmp_path: Path) -> None:
    """
    When typed into a real terminal (tmux), `@JO<Tab>#py<Tab>` completes to `@JOIN
    #python`, and the client's prompt follows the join, it dims the room's history
    and another room's line, and keeps a half-typed line intact while lines arrive.
    """
    tmux = Tmux(tmp_path, 80, 24)
    history = str(tmp_path / "history.sqlite3")
    try:
        async with running(tmp_path, "--history", history) as server:
            bob = await server.user("bob")
            bob.send("@JOIN #python", "first", "second")
            await bob.waitFor("You are now in #python (1 users).")
            await tmux.start(clientCommand(server.port))
            await tmux.waitForBottom("Username:")
            await tmux.type("alice")
            await tmux.press("Enter")
            await tmux.waitForBottom("Password:")
            await tmux.type("s3cret")
            await tmux.press("Enter")
            await tmux.waitForBottom("alice [#general] >")
            await tmux.type("@ROOMS")
            await tmux.press("Enter")
            await tmux.waitFor(
                lambda lines: "Rooms: #general (2), #python (1)" in lines, "room list"
            )

            await tmux.type("@JO")
            await tmux.press("Tab")
            await tmux.type("#py")
            await tmux.press("Tab")
            await tmux.waitForBottom("alice [#general] > @JOIN #python")
            await tmux.press("Enter")
            await tmux.waitForBottom("alice [#python] >")
            await bob.waitFor("* alice joined #python.")

            await tmux.type("@HISTORY 1")
            await tmux.press("Enter")
            await tmux.waitFor(
                lambda lines: (
                    lines[-5:-3]
                    == [
                        "alice [#python] > @HISTORY 1",
                        "«--- History of #python (1 lines) ---»",
                    ]
                    and lines[-2] == "«--- End of history ---»"
                ),
                "history",
            )
            await tmux.type("half typ")
            await tmux.waitForBottom("alice [#python] > half typ")
            carol = await server.user("carol")
            carol.send("hello general")
            bob.send("hi python")
            lines = await tmux.waitFor(
                lambda lines: (
                    "bob > hi python" in lines
                    and "«[#general] carol > hello general»" in lines
                    and lines[-1] == "alice [#python] > half typ"
                ),
                "lines from both rooms",
            )
            shown = [
                re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "TIME", line) for line in lines
            ]
            assert "alice [#general] > @JOIN #python" in shown
            assert "You are now in #python (2 users)." in shown
            start = shown.index("alice [#python] > @HISTORY 1")
            assert shown[start + 1 : start + 4] == [
                "«--- History of #python (1 lines) ---»",
                "«[TIME] bob > second»",
                "«--- End of history ---»",
            ]
            cursor = await tmux.show("#{cursor_x} #{cursor_y}")
            assert cursor == f"{len(lines[-1])} {len(lines) - 1}"

            await tmux.type("ed")
            await tmux.press("Enter")
            await bob.waitFor("alice > half typed")
            await tmux.press("C-c")
            assert await tmux.exitStatus() == 0
            rows = await tmux.screen()
            assert rows[rows.index("[exit 0]") - 1] == "Goodbye, alice!"
    finally:
        await tmux.kill()


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "notaport"],
        ["--bogus"],
        ["--room", "#two words"],
        ["--room", "#"],
        ["--history", "0"],
        ["--history", "many"],
    ],
)
def test_badArguments(argv: list[str]) -> None:
    """Bad command-line arguments exit with status 2."""
    with pytest.raises(SystemExit) as raised:
        parseArguments(argv)
    assert raised.value.code == 2
