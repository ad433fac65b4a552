"""
Work gathered during one pass of the reactor and done once at its end.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")


class PassBatch(Generic[T]):
    """
    Items added during one pass of the reactor, handed to C{handle} together
    when the pass ends (at once if there is no clock, as in unit tests), so
    that one write or one event serves everything a pass produced.
    """

    def __init__(
        self, clock: IReactorTime | None, handle: Callable[[list[T]], None]
    ) -> None:
        self._clock = clock
        self._handle = handle
        self._items: list[T] = []

    def add(self, item: T) -> None:
        if self._clock is None:
            self._handle([item])
            return
        if not self._items:
            self._clock.callLater(0, self.flush)
        self._items.append(item)

    def flush(self) -> None:
        """
        Hand on what was gathered so far.
        """
        if self._items:
            items, self._items = self._items, []
            self._handle(items)
