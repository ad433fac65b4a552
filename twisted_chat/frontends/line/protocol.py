"""
The line protocol of one TCP connection: decoding lines, the login
dialogue's prompts, and rendering the session core's events as the lines
of the contract (L{messages}).

Lines are UTF-8 and end in LF or CRLF.  What a line means is the session
core's business; this module only says it the line protocol's way.
"""

from collections.abc import Callable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.python.failure import Failure

from ...core.events import (
    Event,
    Goodbye,
    LoggedIn,
    LoginRefused,
    Refusal,
    ServiceDegraded,
    TooManyConnections,
)
from ...core.text import clean
from ..connection import Connections, LineConnection, Refused
from . import messages
from .render import LINE_RENDERER, encodeLine, lines


class LineProtocol(LineConnection):
    """
    One client of the line protocol, from the welcome line to the goodbye.
    """

    __slots__ = ("_pendingName", "_stage")

    renderer = LINE_RENDERER

    def __init__(self, connections: Connections, limitKey: str | None) -> None:
        super().__init__(connections, limitKey)
        self._stage: Callable[[str], None] = self._receiveUsername
        self._pendingName: str | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.sendText(messages.WELCOME)
        self.prompt(messages.PROMPT_USERNAME)

    def sendText(self, text: str) -> None:
        """
        Send one line to this client.
        """
        self.deliver(encodeLine(text))

    def prompt(self, text: str) -> None:
        """
        Send a prompt, which has no line end.
        """
        self.deliver(text.encode("utf-8"))

    def notify(self, event: Event) -> None:
        for line in lines(event):
            self.sendText(line)
        if type(event) is LoggedIn:
            self.loggedIn()
            self._stage = self._receiveChat
        elif type(event) is LoginRefused:
            if event.reason is Refusal.TOO_MANY_FAILURES:
                self.close()
            else:
                self.prompt(messages.PROMPT_USERNAME)
        elif type(event) is ServiceDegraded:
            if self.core.session is None:
                self.prompt(messages.PROMPT_USERNAME)
        elif type(event) is Goodbye:
            self.close()

    def supersede(self) -> None:
        super().supersede()
        self.sendText(messages.LOGGED_IN_ELSEWHERE)
        self.close()

    def lineReceived(self, line: bytes) -> None:
        """
        Decode a line and hand it to the current stage: the login dialogue
        gets it as typed (a name with control or bidirectional characters is
        refused, not silently changed), the chat gets it cleaned.  An empty
        line at a prompt gets the prompt again; in the chat it is ignored.
        """
        raw = line.decode("utf-8", "replace")
        text = clean(raw)
        loggedIn = self.core.session is not None
        if not text.strip():
            if not loggedIn:
                self.prompt(
                    messages.PROMPT_PASSWORD
                    if self._pendingName is not None
                    else messages.PROMPT_USERNAME
                )
            return
        try:
            self._stage(text if loggedIn else raw)
        except Exception:
            self.failed(Failure())

    # Login

    def _receiveUsername(self, text: str) -> None:
        name = self.core.checkName(text)
        if name is None:
            self.sendText(messages.INVALID_USERNAME)
            self.prompt(messages.PROMPT_USERNAME)
            return
        self._pendingName = name
        self._stage = self._receivePassword
        self.prompt(messages.PROMPT_PASSWORD)

    def _receivePassword(self, password: str) -> None:
        name, self._pendingName = self._pendingName, None
        assert name is not None
        self._stage = self._receiveUsername
        self._await(self.core.logIn(name, password))

    # Chat

    def _receiveChat(self, text: str) -> None:
        self._await(self.core.perform(text))


class LineFactory(ServerFactory):
    """
    Makes a L{LineProtocol} per connection admitted by the connection
    limits.
    """

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        Admit a connection within the connection limits, or answer it with
        L{messages.TOO_MANY_CONNECTIONS} and close it.
        """
        admitted, key = self.connections.admit(addr)
        if not admitted:
            return Refused(b"".join(map(encodeLine, lines(TooManyConnections()))))
        protocol = LineProtocol(self.connections, key)
        protocol.factory = self
        return protocol
