"""
Argon2id password hashing, run in threads so that the reactor never waits.
"""

import ctypes
import hmac
import os
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

# Seconds without any hashing before the hashes' memory goes back to the
# system.
RELEASE_MEMORY_AFTER = 1.0


# glibc's mallopt() parameter for the number of malloc arenas.
_M_ARENA_MAX = -8


def _glibcFunction(name: str) -> Callable[..., int] | None:
    """
    A function of glibc's malloc, or L{None} on a C library without it.
    """
    try:
        return getattr(ctypes.CDLL(None), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def releaseMemory() -> None:
    """
    Give freed memory back to the system.  Each Argon2 hash takes 19 MiB,
    which glibc keeps after the first few hashes; after a burst of logins
    that is tens of MiB held for nothing.
    """
    trim = _glibcFunction("malloc_trim")
    if trim is not None:
        trim(0)


def shareOneArena() -> None:
    """
    Have every thread allocate from glibc's main arena: C{malloc_trim} can
    give back the free memory at the top of that one only, and a hashing
    thread's own arena would keep its last 19 MiB for good.  To be called
    before the hashing threads start.
    """
    mallopt = _glibcFunction("mallopt")
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


def makeHasher() -> PasswordHasher:
    """
    The hasher with OWASP's Argon2id parameters, given explicitly because the
    library's defaults differ (and may change).
    """
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class PasswordHashing:
    """
    Hash and verify passwords in a thread pool, at most C{limit} at once.

    The bound keeps memory flat when a thousand people log in together (each
    hash takes 19 MiB); the others wait in order of arrival.  Given a clock,
    once hashing has stopped for L{RELEASE_MEMORY_AFTER} seconds, the
    hashes' memory is given back to the system (in a pool thread).
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        threadpool: ThreadPool,
        limit: int | None = None,
        hasher: PasswordHasher | None = None,
        clock: IReactorTime | None = None,
        release: Callable[[], None] = releaseMemory,
    ) -> None:
        self._reactor = reactor
        self._threadpool = threadpool
        self._hasher = hasher or makeHasher()
        self._semaphore = DeferredSemaphore(limit or len(os.sched_getaffinity(0)))
        self._clock = clock
        self._release = release
        self._releaseCall: IDelayedCall | None = None

    def _run(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        d = self._semaphore.run(
            deferToThreadPool, self._reactor, self._threadpool, function, *args
        )
        if self._clock is not None:
            d.addBoth(self._hashed)
        return d

    def _idle(self) -> bool:
        return self._semaphore.tokens == self._semaphore.limit

    def _hashed(self, result: T) -> T:
        """
        After the last hash of a burst, plan to give its memory back.
        """
        if self._idle() and self._clock is not None:
            if self._releaseCall is not None and self._releaseCall.active():
                self._releaseCall.reset(RELEASE_MEMORY_AFTER)
            else:
                self._releaseCall = self._clock.callLater(
                    RELEASE_MEMORY_AFTER, self._releaseIfIdle
                )
        return result

    def _releaseIfIdle(self) -> None:
        self._releaseCall = None
        if self._idle():
            self._threadpool.callInThread(self._release)

    def hash(self, password: str) -> "Deferred[str]":
        """
        Hash C{password} into a PHC string.
        """
        return self._run(self._hasher.hash, password)

    def verify(self, stored: str, password: str) -> "Deferred[bool]":
        """
        Whether C{password} matches the PHC string C{stored}.
        """
        return self._run(self._verify, stored, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needsRehash(self, stored: str) -> bool:
        """
        Whether C{stored} was made with other parameters than ours.
        """
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


def plaintextMatches(stored: str, password: str) -> bool:
    """
    Compare a legacy plaintext password in constant time.
    """
    return hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))
