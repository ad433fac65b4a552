"""
Work gathered during one pass of the reactor and done once at its end.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

T = TypeVar("T")


class PassBatch(Generic[T]):
    """
    Items added during one pass of the reactor, handed to C{handle} together
    when the pass ends (at once if there is no clock, as in unit tests), so
    that one write or one event serves everything a pass produced.

    With an C{interval}, hand-overs are at least that many seconds apart: a
    lone item still goes at the end of its pass, but under a steady load one
    hand-over serves every pass of the interval.
    """

    def __init__(
        self,
        clock: IReactorTime | None,
        handle: Callable[[list[T]], None],
        interval: float = 0.0,
    ) -> None:
        self._clock = clock
        self._handle = handle
        self._interval = interval
        self._items: list[T] = []
        self._call: IDelayedCall | None = None
        self._last = float("-inf")

    @property
    def pending(self) -> list[T]:
        """
        The items gathered and not yet handed on.
        """
        return self._items

    def add(self, item: T) -> None:
        clock = self._clock
        if clock is None:
            self._handle([item])
            return
        if not self._items:
            delay = 0.0
            if self._interval:
                delay = max(0.0, self._last + self._interval - clock.seconds())
            self._call = clock.callLater(delay, self.flush)
        self._items.append(item)

    def flush(self) -> None:
        """
        Hand on what was gathered so far.
        """
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        if self._items:
            items, self._items = self._items, []
            if self._interval and self._clock is not None:
                self._last = self._clock.seconds()
            self._handle(items)
