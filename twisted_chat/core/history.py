"""
What the hub needs of a store of room history, whichever keeps it.
"""

from twisted.internet.defer import Deferred
from zope.interface import Interface

from .events import HistoryEntry


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

    def close() -> "Deferred[None]":
        """
        Write what is pending and stop.
        """
