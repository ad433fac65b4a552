"""
Plain mode, for scripts and pipes: standard input's lines go to the
client, the server's lines to standard output unchanged, with no terminal
control, no colours and no bell.
"""

import codecs
import termios
from collections.abc import Callable

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from .._types import StreamTransport
from ..frontends.line import messages
from .protocol import ChatClientProtocol, LineKind, Stage


@implementer(IHalfCloseableProtocol)
class PlainUI(Protocol):
    """
    Plain mode: stdin's lines go to the client, the server's lines to
    stdout, with no terminal control at all.

    @ivar typedOnTerminal: stdin is a terminal (stdout is not), which echoes
        the name typed; the password's echo is turned off with C{echo}.
    """

    transport: StreamTransport | None  # type: ignore[assignment]

    def __init__(
        self,
        exit: Callable[[int], None],
        echo: Callable[[bool], None] = lambda on: None,
        typedOnTerminal: bool = False,
    ) -> None:
        self.exit = exit
        self.echo = echo
        self.typedOnTerminal = typedOnTerminal
        self.client: ChatClientProtocol | None = None
        self._buffer = b""
        self._midLine = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _write(self, text: str) -> None:
        if self.transport is not None and not self.transport.disconnecting:
            self.transport.write(text.encode("utf-8"))

    # stdin

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        assert self.client is not None
        self.client.userLine(line.rstrip(b"\r").decode("utf-8", "replace"))

    def readConnectionLost(self) -> None:
        if self._buffer:
            self._line(self._buffer)
            self._buffer = b""
        assert self.client is not None
        self.client.endInput()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.exit(1)

    # ChatUI

    def showLine(self, text: str, kind: LineKind) -> None:
        self._write(("\n" if self._midLine else "") + text + "\n")
        self._midLine = False

    def alert(self, title: str) -> None:
        pass

    def setPrompt(self, prompt: str, secret: bool) -> None:
        if prompt in (messages.PROMPT_USERNAME, messages.PROMPT_PASSWORD):
            self._write(("\n" if self._midLine else "") + prompt)
            self._midLine = True
            self.echo(not secret)

    def sent(self, stage: Stage, text: str) -> None:
        if stage is Stage.USERNAME:
            if not self.typedOnTerminal:
                self._write(text + "\n")
        elif stage is Stage.PASSWORD:
            self.echo(True)
            self._write("\n")
        else:
            assert self.client is not None
            self._write(f"{self.client.name} > {text}\n")
        self._midLine = False

    def closed(self, status: int, message: str | None) -> None:
        self.echo(True)
        if message is not None:
            self.showLine(message, LineKind.NORMAL)
        elif self._midLine:
            self._write("\n")
        self.exit(status)


def ttyEcho(fd: int) -> Callable[[bool], None]:
    """
    Return a switch for the echo of the terminal C{fd}, for the password in
    plain mode when stdin is a terminal but stdout is not.
    """

    def echo(on: bool) -> None:
        try:
            attributes = termios.tcgetattr(fd)
        except termios.error:
            return
        if on:
            attributes[3] |= termios.ECHO
        else:
            attributes[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attributes)

    return echo
