"""
L{twisted_chat.reactor.ChatReactor}, driven by hand (it is not installed in
the test process): a connection whose protocol raises is logged and closed,
and the others go on.
"""

import contextlib
import socket
import time

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogEvent, globalLogPublisher

from twisted_chat.reactor import ChatReactor

TIMEOUT = 5.0


class Echo(Protocol):
    """
    Sends back what it gets, but raises on C{boom}.
    """

    def dataReceived(self, data: bytes) -> None:
        if b"boom" in data:
            raise RuntimeError("boom")
        self.transport.write(data)  # type: ignore[union-attr]


def test_exceptionLoggedAndOnlyThatConnectionClosed() -> None:
    """
    When a protocol raises while the reactor hands it input, the reactor logs
    the error with its traceback, closes that connection only, and keeps
    serving the others.
    """
    reactor = ChatReactor()
    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    address = ("127.0.0.1", port.getHost().port)
    first = socket.create_connection(address, timeout=TIMEOUT)
    second = socket.create_connection(address, timeout=TIMEOUT)
    for client in (first, second):
        client.setblocking(False)
    try:
        first.sendall(b"boom")
        second.sendall(b"hello")
        got, closed = b"", False
        deadline = time.monotonic() + TIMEOUT
        while (got != b"hello" or not closed) and time.monotonic() < deadline:
            reactor.iterate(0.01)
            with contextlib.suppress(BlockingIOError):
                got += second.recv(100)
            try:
                closed = closed or first.recv(100) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = True
        assert got == b"hello"
        assert closed
    finally:
        globalLogPublisher.removeObserver(logged.append)
        first.close()
        second.close()
        port.stopListening()
        for _ in range(10):
            reactor.iterate(0)
    # Twisted's reactor logs through its legacy API: the failure is there
    # under its legacy key.
    failures = [e.get("log_failure") or e.get("failure") for e in logged]
    assert [f.check(RuntimeError) for f in failures if f is not None] == [RuntimeError]
