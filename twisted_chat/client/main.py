"""
The bundled terminal client: C{python -m twisted_chat.client [--host H]
[--port P] [--tls] [--room #R] [--history N] [--quiet]}, also installed as
the C{twisted-chat} command.

It connects to a twisted-chat server, answers the C{Username: } and
C{Password: } prompts with what the user types (the password is not echoed),
then chats.  The server never echoes a user's own lines, so the client shows
each line it sends as C{<name> > <text>}.  After login it asks for a
heartbeat token (C{@HEARTBEAT}) and sends it by UDP every interval the server
names, to the server's address, so the server knows it is alive.  With
C{--tls} the server's certificate is checked against the system's CAs, or
against C{--tls-ca PEM} (for a self-signed one).

With C{--room #R} it joins that room right after login, and with
C{--history N} it then asks for the room's last N lines (C{@HISTORY N}).

On a terminal (stdin and stdout both ttys) it runs a line editor built on
C{twisted.conch} (see L{twisted_chat.client.terminal}): incoming lines
appear above the input line, which keeps its prompt (C{<name> [<room>] > },
or C{<name> [PM with <partner>] > } in a private chat, C{<name> [PM with
<user>? y/n] > } while a request to you waits for C{y} or C{n}) and what is
typed so far; a sent line stays on screen with its prompt; arrows edit and
recall history; Tab completes commands, user names and room names; lines
of other rooms and history blocks are dimmed (unless C{NO_COLOR} is set);
a private-chat request or a line naming the user rings the bell and sets
the window title (unless C{--quiet}); Ctrl-C, or Ctrl-D on an empty line,
logs out, restores the terminal and leaves the conversation on screen.

Otherwise it runs in plain mode for scripts, printing the server's lines
unchanged: each line read from stdin is one answer or one chat line, and at
the end of input it sends C{LOGOUT}, waits up to five seconds for the server
to close and exits::

    printf 'me\\npw\\nhello\\nLOGOUT\\n' | python -m twisted_chat.client --port 1234

SIGINT and SIGTERM log out too.  Exit status: 0 after logging out
(C{LOGOUT}, Ctrl-C, Ctrl-D, end of input or a signal);
1 if the connection could not be made, or was closed or lost for any other
reason (the server went away, shut down, or closed the session): the client
says so and does not reconnect; 2 for bad command-line arguments.
"""

import argparse
import contextlib
import fcntl
import os
import sys
import termios
from typing import Any

from twisted.internet import stdio
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.python.failure import Failure

from ..core.text import normalizeRoom
from .plain import PlainUI, ttyEcho
from .protocol import ChatClientProtocol, ClientFactory, Stage

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 1234
CONNECT_TIMEOUT = 10.0


class Exit:
    """
    Ends the program: flush stdout, stop the reactor, remember the status.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.status = 1
        self.stdio: stdio.StandardIO | None = None
        self._stopping = False

    def __call__(self, status: int) -> None:
        if self._stopping:
            self.stdioClosed()
            return
        self._stopping = True
        self.status = status
        if self.stdio is not None and not self.stdio.disconnected:
            self.stdio.loseConnection()
            self.reactor.callLater(2.0, self.stdioClosed)
        else:
            self.stdioClosed()

    def stdioClosed(self) -> None:
        """
        Stdout is flushed and closed (or gave up): stop the reactor.
        """
        with contextlib.suppress(ReactorNotRunning):
            self.reactor.stop()


def roomName(text: str) -> str:
    """
    The room C{text} names, for C{--room}; its C{#} may be left out, as the
    shell takes a bare one for a comment.
    """
    room = normalizeRoom(text if text.startswith("#") else "#" + text)
    if room is None:
        raise argparse.ArgumentTypeError(
            "use # and 1-32 letters, digits, _ or -, e.g. #python"
        )
    return room


def lineCount(text: str) -> int:
    """
    A number of history lines, at least 1, for C{--history}.
    """
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError("a number of lines, at least 1")
    return int(text)


def loginCommands(args: argparse.Namespace) -> list[str]:
    """
    The lines to send after login for C{--room} and C{--history}: the join
    first, so that the history asked for is the new room's.
    """
    commands = []
    if args.room is not None:
        commands.append(f"@JOIN {args.room}")
    if args.history is not None:
        commands.append(f"@HISTORY {args.history}")
    return commands


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    parser = argparse.ArgumentParser(
        prog="twisted-chat", description="Chat on a twisted-chat server."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="server host name")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="trust this CA certificate (e.g. a self-signed server's) for --tls",
    )
    parser.add_argument(
        "--room", type=roomName, metavar="#ROOM", help="join this room after login"
    )
    parser.add_argument(
        "--history",
        type=lineCount,
        metavar="N",
        help="show the last N lines of the room after login",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no bell or window title for private-chat requests and mentions",
    )
    parser.add_argument(
        "--debug-log", metavar="FILE", help="write a debugging log to FILE"
    )
    return parser.parse_args(argv)


def _endpoint(reactor: Any, args: argparse.Namespace) -> Any:
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    endpoint = HostnameEndpoint(reactor, args.host, args.port, timeout=CONNECT_TIMEOUT)
    if not args.tls:
        return endpoint
    from twisted.internet import ssl

    trustRoot = None
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            trustRoot = ssl.Certificate.loadPEM(f.read())
    return wrapClientTLS(ssl.optionsForClientTLS(args.host, trustRoot), endpoint)


def _leaving(reactor: Any, client: ChatClientProtocol) -> "Deferred[None] | None":
    """
    Log out before the reactor stops on a signal (SIGINT, SIGTERM); wait
    for the server a little.
    """
    if client.stage in (Stage.CONNECTING, Stage.CLOSED):
        return None
    client.logout()
    closed = client.whenClosed()
    closed.addTimeout(2.0, reactor)
    return closed.addErrback(lambda _: None)


def main(argv: list[str] | None = None, reactor: Any = None) -> int:
    """
    Run the client until it logs out or the connection ends; return the
    exit status.
    """
    args = parseArguments(argv)
    if reactor is None:
        from twisted.internet import reactor
    if args.debug_log:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(open(args.debug_log, "a"))],  # noqa: SIM115
            redirectStandardIO=False,
        )
    exit = Exit(reactor)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    flags = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (stdin, stdout)}
    terminal = os.isatty(stdin) and os.isatty(stdout)
    savedTty = termios.tcgetattr(stdin) if terminal else None
    try:
        if terminal:
            from .terminal import startTerminal, terminalFeatures

            features = terminalFeatures(os.environ, args.quiet)
            client, exit.stdio = startTerminal(
                reactor, exit, stdin, features, loginCommands(args)
            )
        else:
            if os.isatty(stdin):
                ui = PlainUI(exit, ttyEcho(stdin), typedOnTerminal=True)
            else:
                ui = PlainUI(exit)
            client = ChatClientProtocol(ui, reactor, loginCommands(args))
            ui.client = client
            exit.stdio = stdio.StandardIO(ui, reactor=reactor)

        def failed(reason: Failure) -> None:
            if client.loggingOut:
                client.ui.closed(0, None)
            else:
                where = f"{args.host} port {args.port}"
                why = reason.getErrorMessage()
                client.ui.closed(1, f"Could not connect to {where}: {why}")

        client.connecting = _endpoint(reactor, args).connect(ClientFactory(client))
        client.connecting.addErrback(failed)
        reactor.addSystemEventTrigger("before", "shutdown", _leaving, reactor, client)
        reactor.run()
    finally:
        if savedTty is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, savedTty)
        for fd, flag in flags.items():
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flag)
    return exit.status


def run() -> None:
    """
    The C{twisted-chat} console script.
    """
    sys.exit(main())
