"""
Work gathered during one pass of the reactor and done once at its end.
"""

import math
from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

T = TypeVar("T")

# The share of a step by which an aligned hand-over may come before the
# step's start and still count in it.
_SLACK = 0.01


class PassBatch(Generic[T]):
    """
    Items added during one pass of the reactor, handed to C{handle} together
    when the pass ends (at once if there is no clock, as in unit tests), so
    that one write or one event serves everything a pass produced.

    With an C{interval}, hand-overs are at least that many seconds apart: a
    lone item still goes at the end of its pass, but under a steady load one
    hand-over serves every pass of the interval.  C{aligned} puts them on a
    grid of steps of C{interval} on the clock instead, at most one per step:
    under load each goes as a step starts, at the same instants on every
    process whose clock shows the same time.
    """

    def __init__(
        self,
        clock: IReactorTime | None,
        handle: Callable[[list[T]], None],
        interval: float = 0.0,
        aligned: bool = False,
    ) -> None:
        self._clock = clock
        self._handle = handle
        self._interval = interval
        self._aligned = aligned
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
            self._call = clock.callLater(self._delay(clock.seconds()), self.flush)
        self._items.append(item)

    def _delay(self, now: float) -> float:
        """
        How long the items added from C{now} on wait to be handed on.
        """
        last, interval = self._last, self._interval
        if not interval or last == float("-inf"):
            return 0.0
        if self._aligned:
            # The start of the step after the last hand-over's; a hand-over a
            # hair before a step starts (the clock's rounding) counts in it.
            start = (math.floor(last / interval + _SLACK) + 1) * interval
        else:
            start = last + interval
        # Never more than an interval, even if the clock was set back.
        return min(interval, max(0.0, start - now))

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
