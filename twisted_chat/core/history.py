"""
What the hub needs of a store of room history, whichever keeps it, and the
queries IRC's CHATHISTORY asks of it.
"""

from dataclasses import dataclass
from enum import Enum

from twisted.internet.defer import Deferred
from zope.interface import Interface

from .events import HistoryEntry


class Around(Enum):
    """
    Which lines of a room's history a L{HistoryQuery} wants.
    """

    LATEST = "LATEST"
    BEFORE = "BEFORE"
    AFTER = "AFTER"
    AROUND = "AROUND"
    BETWEEN = "BETWEEN"


@dataclass(frozen=True)
class Reference:
    """
    A point in a room's history: a line's id, or a time (seconds).
    """

    msgid: str | None = None
    time: float | None = None

    @property
    def ms(self) -> int:
        """
        The point as milliseconds, for ordering: a line's id starts with its
        own.
        """
        if self.msgid is not None:
            return int(self.msgid.split("-", 1)[0])
        assert self.time is not None
        return int(self.time * 1000)


@dataclass(frozen=True)
class HistoryQuery:
    """
    Lines of one room: the last C{limit} (after C{first}, if given), the
    C{limit} before or after C{first}, those around it (half before, half
    from it on), or those between C{first} and C{second}, the C{limit}
    nearest to C{first}.  Always oldest first, references excluded (but for
    the second half of C{AROUND}).
    """

    around: Around
    limit: int
    first: Reference | None = None
    second: Reference | None = None


class IHistoryStore(Interface):
    """
    The lines said in each room, kept for those who come later.  Private
    chats are never stored.
    """

    def add(room: str, entry: HistoryEntry) -> None:
        """
        Keep C{entry}, a line said in the room C{room} (a folded name).  The
        write may wait to be batched with others.
        """

    def latest(room: str, count: int) -> "Deferred[list[HistoryEntry]]":
        """
        The last C{count} lines of the room C{room}, oldest first, the lines
        not yet written included.
        """

    def query(room: str, query: HistoryQuery) -> "Deferred[list[HistoryEntry]]":
        """
        The lines of the room C{room} that C{query} asks for.
        """

    def close() -> "Deferred[None]":
        """
        Write what is pending and stop.
        """
