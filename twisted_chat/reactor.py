"""
The reactor C{twistd chat} runs on when the choice is its own: Twisted's
epoll reactor, handing each ready connection its event directly instead of
through C{log.callWithLogger}, whose per-event logging context is the
largest cost of the reactor's own loop under a busy chat.

An exception in a connection is still logged with its traceback and closes
that connection only: C{_doReadOrWrite} catches and logs it (C{log.err()})
as it does under C{callWithLogger}; what is left out is the connection's
log prefix in that message.
"""

import errno
import sys
from collections.abc import Callable

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.main import installReactor


class ChatReactor(EPollReactor):
    """
    The epoll reactor without the logging context around each event.
    """

    def __init__(self) -> None:
        EPollReactor.__init__(self)

    def doPoll(self, timeout: float | None) -> None:
        """
        Poll for new events and hand each to its connection.
        """
        if timeout is None:
            timeout = -1
        try:
            events = self._poller.poll(timeout, len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        handle: Callable[[object, int, int], None] = self._doReadOrWrite
        selectables = self._selectables
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is not None:
                handle(selectable, fd, event)

    doIteration = doPoll


def installIfFree() -> bool:
    """
    Install L{ChatReactor} unless a reactor is installed already (twistd's
    C{--reactor}, a test runner's); return whether it was.
    """
    if "twisted.internet.reactor" in sys.modules:
        return False
    installReactor(ChatReactor())
    return True
