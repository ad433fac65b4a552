"""
Argon2id password hashing, run in threads so that the reactor never waits.
"""

import hmac
import os
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


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
    hash takes 19 MiB); the others wait in order of arrival.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        threadpool: ThreadPool,
        limit: int | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._reactor = reactor
        self._threadpool = threadpool
        self._hasher = hasher or makeHasher()
        self._semaphore = DeferredSemaphore(limit or len(os.sched_getaffinity(0)))

    def _run(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        return self._semaphore.run(
            deferToThreadPool, self._reactor, self._threadpool, function, *args
        )

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
