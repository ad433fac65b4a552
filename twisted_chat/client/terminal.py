"""
The client's terminal interface: a line editor on C{twisted.conch.insults}
that keeps the input line at the bottom while the server's lines scroll by
above it, completes names with Tab, dims the lines of other rooms and of
history blocks, and rings the bell when the user is wanted.

Every change redraws the whole input area (prompt and typed text, which may
wrap over several rows) from a row offset kept here, so an incoming line
never clobbers what is being typed.  The terminal is put in raw mode by
L{startTerminal} and restored by the caller; nothing here resets or clears
the screen, so the conversation stays on it after exit.
"""

import codecs
import os
import signal
import tty
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet import stdio
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from .completion import Completer
from .protocol import ChatClientProtocol, LineKind, Stage

CTRL_A = b"\x01"
CTRL_C = b"\x03"
CTRL_D = b"\x04"
CTRL_E = b"\x05"
CTRL_H = b"\x08"
CTRL_L = b"\x0c"
CTRL_U = b"\x15"
ENTER = (b"\r", b"\n")

FAINT, RESET = "2", "0"
TITLE = "twisted-chat"
# The bell rings at most once in this many seconds, however many lines
# name the user.
BELL_INTERVAL = 5.0
# Terminals known to take a window title (OSC 2), by the start of their
# TERM; the title is saved and restored (XTWINOPS 22 and 23) where they can.
TITLED_TERMINALS = (
    "xterm",
    "rxvt",
    "screen",
    "tmux",
    "alacritty",
    "foot",
    "wezterm",
    "vte",
    "gnome",
    "konsole",
    "putty",
)


def visible(text: str) -> str:
    """
    Make C{text} safe to write on a terminal: tabs become spaces and control
    characters caret notation (C{^[}) or C{\\xNN}, so no byte the server
    relays can move the cursor or change the terminal.
    """
    if text.isascii() and text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if char == "\t":
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append("^" + chr(code ^ 0x40))
        elif 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out).expandtabs(8)


def columns(text: str) -> int:
    """
    How many terminal columns C{text} (already L{visible}) takes.
    """
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


@dataclass(frozen=True)
class Features:
    """
    What the terminal interface may do beyond plain text.

    @ivar colour: dim the lines of other rooms and of history blocks.
    @ivar bell: ring the bell when the user is wanted.
    @ivar title: also say why in the window title.
    """

    colour: bool = False
    bell: bool = False
    title: bool = False


def terminalFeatures(environ: Mapping[str, str], quiet: bool) -> Features:
    """
    The L{Features} for the terminal described by C{environ}: colour unless
    C{TERM} is unset or C{dumb} or C{NO_COLOR} is set and not empty (the
    U{no-color.org<https://no-color.org/>} convention); the bell and the
    title (where C{TERM} is known to take one) unless C{quiet}.
    """
    term = environ.get("TERM", "")
    return Features(
        colour=term not in ("", "dumb") and not environ.get("NO_COLOR"),
        bell=not quiet,
        title=not quiet and term.startswith(TITLED_TERMINALS),
    )


class _Silent:
    """
    A terminal that ignores everything, so that L{HistoricRecvLine}'s own
    incremental drawing can be replaced by a full redraw.
    """

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class ChatTerminal(HistoricRecvLine):
    """
    The chat's input line and output area, and the client's L{ChatUI}.

    L{HistoricRecvLine} keeps the line buffer (one element per character,
    as UTF-8 bytes), the cursor index and the history; this class draws.
    """

    def __init__(
        self,
        client: ChatClientProtocol,
        exit: Callable[[int], None],
        features: Features,
    ) -> None:
        self.client = client
        self.exit = exit
        self.features = features
        client.ui = self
        self.prompt = ""
        self.secret = False
        self.cursorRow = 0
        self.completer = Completer(client.seen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._closing = False
        self._titled = False
        self._lastBell = float("-inf")

    def connectionMade(self) -> None:
        HistoricRecvLine.connectionMade(self)
        self.keyHandlers.update(
            {
                CTRL_A: self.handle_HOME,
                CTRL_E: self.handle_END,
                CTRL_H: self.handle_BACKSPACE,
                CTRL_U: self.handle_KILL,
            }
        )

    def initializeScreen(self) -> None:
        self.mode = "insert"
        self.draw()

    def terminalSize(self, width: int, height: int) -> None:
        """
        The window was resized: redraw, assuming (as most terminals today
        do) that it re-wrapped the input line to the new width.
        """
        self.width, self.height = max(width, 1), max(height, 1)
        self.cursorRow = self._cursorColumn() // self.width
        self.redraw()

    # Drawing

    def _write(self, text: str) -> None:
        self.terminal.write(text.encode("utf-8"))

    def clear(self) -> None:
        """
        Erase the input area, leaving the cursor where it began.
        """
        if self.cursorRow:
            self.terminal.cursorUp(self.cursorRow)
        self._write("\r")
        self.terminal.eraseToDisplayEnd()
        self.cursorRow = 0

    def draw(self) -> None:
        """
        Write the prompt and the typed text from the cursor's row start, and
        put the cursor at the editing position.
        """
        typed = [] if self.secret else self._characters()
        prompt = visible(self.prompt)
        before = visible("".join(typed[: self.lineBufferIndex]))
        after = visible("".join(typed[self.lineBufferIndex :]))
        self._write(prompt + before + after)
        end = columns(prompt + before + after)
        if end and end % self.width == 0:
            # The cursor waits at the right margin: make it wrap for real.
            self._write("\n")
        endRow = end // self.width
        target = self._cursorColumn()
        row, column = divmod(target, self.width)
        if endRow > row:
            self.terminal.cursorUp(endRow - row)
        self._write("\r")
        if column:
            self.terminal.cursorForward(column)
        self.cursorRow = row

    def _cursorColumn(self) -> int:
        """
        Where the editing position is, counted in columns from the start
        of the prompt.
        """
        typed = [] if self.secret else self._characters()
        return columns(
            visible(self.prompt) + visible("".join(typed[: self.lineBufferIndex]))
        )

    def redraw(self) -> None:
        """
        Draw the input area again after a change.
        """
        self.clear()
        self.draw()

    def _characters(self) -> list[str]:
        return [char.decode("utf-8", "replace") for char in self.lineBuffer]

    @contextmanager
    def _silently(self) -> Iterator[None]:
        terminal, self.terminal = self.terminal, _Silent()
        try:
            yield
        finally:
            self.terminal = terminal

    # ChatUI

    def showLine(self, text: str, kind: LineKind) -> None:
        self.clear()
        if self.features.colour and kind is not LineKind.NORMAL:
            self.terminal.selectGraphicRendition(FAINT)
            self._write(visible(text))
            self.terminal.selectGraphicRendition(RESET)
        else:
            self._write(visible(text))
        self._write("\n")
        self.draw()

    def alert(self, title: str) -> None:
        """
        Ring the bell, at most once every L{BELL_INTERVAL} seconds (a crowd
        naming the user rings once), and put C{title} in the window title
        (saving the old one the first time), as far as L{features} allow.
        """
        now = self.client.reactor.seconds()
        if self.features.bell and now >= self._lastBell + BELL_INTERVAL:
            self._lastBell = now
            self._write("\a")
        if self.features.title:
            if not self._titled:
                self._write("\x1b[22;2t")
                self._titled = True
            self._write(f"\x1b]2;{visible(f'{TITLE}: {title}')}\a")

    def _untitle(self) -> None:
        """
        The user is back: put the window title back (or, where it cannot be
        restored, at least name the program).
        """
        if self._titled:
            self._write(f"\x1b]2;{TITLE}\a\x1b[23;2t")
            self._titled = False

    def setPrompt(self, prompt: str, secret: bool) -> None:
        if secret != self.secret:
            self.lineBuffer, self.lineBufferIndex = [], 0
        self.prompt, self.secret = prompt, secret
        self.redraw()

    def sent(self, stage: Stage, text: str) -> None:
        pass

    def closed(self, status: int, message: str | None) -> None:
        self._untitle()
        self.clear()
        if message is not None:
            self._write(visible(message) + "\n")
        self.prompt, self.lineBuffer, self.lineBufferIndex = "", [], 0
        self._closing = True
        self.exit(status)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.exit(1)

    # Keys

    def keystrokeReceived(self, keyID: bytes, modifier: object) -> None:
        if self._closing:
            return
        self._untitle()
        if keyID != self.terminal.TAB:
            self.completer.reset()
        if keyID == CTRL_C or (keyID == CTRL_D and not self.lineBuffer):
            self.quit()
        elif keyID == CTRL_D:
            self.keystrokeReceived(self.terminal.DELETE, None)
        elif keyID == CTRL_L:
            self.redraw()
        elif keyID in ENTER:
            self.submit()
        elif len(keyID) == 1 and keyID[0] >= 0x80:
            char = self._decoder.decode(keyID)
            if char:
                self._insert(char.encode("utf-8"))
        elif self.secret:
            if keyID in (self.terminal.BACKSPACE, CTRL_H) and self.lineBuffer:
                self.lineBuffer.pop()
                self.lineBufferIndex = len(self.lineBuffer)
            elif keyID in self._printableChars:
                self.lineBuffer.append(keyID)
                self.lineBufferIndex = len(self.lineBuffer)
        else:
            with self._silently():
                HistoricRecvLine.keystrokeReceived(self, keyID, modifier)
            self.redraw()

    def _insert(self, char: bytes) -> None:
        if self.secret:
            self.lineBuffer.append(char)
            self.lineBufferIndex = len(self.lineBuffer)
            return
        with self._silently():
            HistoricRecvLine.characterReceived(self, char, False)
        self.redraw()

    def _deliverBuffer(self, buf: bytes) -> None:
        for char in buf.decode("utf-8", "replace"):
            HistoricRecvLine.characterReceived(self, char.encode("utf-8"), True)

    def handle_TAB(self) -> None:
        """
        Tab, once logged in: complete the word before the cursor, or put the
        next candidate in its place (see L{Completer}).
        """
        if self.client.stage is not Stage.CHAT:
            return
        line = "".join(self._characters())
        completed = self.completer.complete(line, self.lineBufferIndex)
        if completed is not None:
            line, self.lineBufferIndex = completed
            self.lineBuffer = [char.encode("utf-8") for char in line]

    def handle_KILL(self) -> None:
        """
        Ctrl-U: delete from the start of the line to the cursor.
        """
        del self.lineBuffer[: self.lineBufferIndex]
        self.lineBufferIndex = 0

    def submit(self) -> None:
        """
        Enter: leave the line on screen above a fresh prompt and send it.
        """
        line = b"".join(self.lineBuffer).decode("utf-8", "replace")
        if not line.strip():
            return
        self.clear()
        shown = "" if self.secret else line
        self._write(visible(self.prompt + shown) + "\n")
        if self.secret:
            self.lineBuffer, self.lineBufferIndex = [], 0
        else:
            with self._silently():
                HistoricRecvLine.handle_RETURN(self)
        self.draw()
        self.client.userLine(line)

    def quit(self) -> None:
        """
        Ctrl-C or Ctrl-D: log out; a second time, just close.
        """
        if self.client.loggingOut and self.client.transport is not None:
            self.client.transport.abortConnection()
        else:
            self.client.logout()


def startTerminal(
    reactor: Any,
    exit: Callable[[int], None],
    fd: int,
    features: Features,
    loginCommands: Sequence[str],
) -> tuple[ChatClientProtocol, stdio.StandardIO]:
    """
    Put the terminal C{fd} in raw mode (the caller restores it) and run the
    chat's terminal interface on stdin and stdout, with C{features}; the
    client sends C{loginCommands} after login.
    """
    client = ChatClientProtocol(None, reactor, loginCommands)  # type: ignore[arg-type]
    tty.setraw(fd)
    server = ServerProtocol(ChatTerminal, client, exit, features)
    io = stdio.StandardIO(server, reactor=reactor)
    chat = server.terminalProtocol
    assert isinstance(chat, ChatTerminal)

    def resized() -> None:
        size = os.get_terminal_size(fd)
        chat.terminalSize(size.columns or 80, size.lines or 24)

    resized()
    signal.signal(signal.SIGWINCH, lambda *_: reactor.callFromThread(resized))
    return client, io
