"""
Abuse limits as pure policies: each takes the time as an argument, keeps
bounded state, and knows nothing of sockets, so tests drive it with numbers.
"""

import ipaddress
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_TRACKED_KEYS = 100_000


def addressKey(host: str) -> str:
    """
    The key under which an address is limited: an IPv4 address itself, an
    IPv6 address by its /64 (one subscriber usually holds a whole /64).
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def isLoopback(host: str) -> bool:
    """
    Whether C{host} is a loopback address (127.0.0.0/8 or ::1).
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


class BoundedTable(OrderedDict[K, V], Generic[K, V]):
    """
    A dict that forgets its least recently touched entries past C{limit},
    so that a flood of distinct keys cannot grow it without bound.
    """

    def __init__(self, limit: int = MAX_TRACKED_KEYS) -> None:
        super().__init__()
        self.limit = limit

    def touch(self, key: K, default: V) -> V:
        """
        Return the entry for C{key}, adding C{default} if absent, and mark it
        as the most recently used.
        """
        value = self.get(key)
        if value is None:
            value = self[key] = default
            while len(self) > self.limit:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


class TokenBucket:
    """
    C{rate} events per second on average, with bursts of up to C{burst}.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    def take(self, now: float) -> bool:
        """
        Spend one token if there is one; return whether there was.
        """
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self, now: float) -> float:
        """
        Seconds until a token is available.
        """
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)


class RateLimiter:
    """
    At most C{count} events per C{period} seconds for each key (a token
    bucket per key), over a bounded table of keys.  A C{count} of 0 allows
    everything.
    """

    def __init__(self, count: int, period: float) -> None:
        self.count = count
        self.period = period
        self._buckets: BoundedTable[str, TokenBucket] = BoundedTable()

    def allow(self, key: str, now: float) -> bool:
        """
        Record an event for C{key}; return whether it is within the limit.
        """
        if not self.count:
            return True
        bucket = self._buckets.touch(
            key, TokenBucket(self.count / self.period, self.count, now)
        )
        return bucket.take(now)


class LoginBackoff:
    """
    A growing delay before each login attempt for an (account, address)
    pair after repeated failures: none for the first C{free} failures in a
    row, then C{base}, twice that, and so on up to C{cap} seconds.  A
    success resets the pair.
    """

    def __init__(self, base: float, cap: float, free: int = 3) -> None:
        self.base = base
        self.cap = cap
        self.free = free
        self._failures: BoundedTable[tuple[str, str], int] = BoundedTable()

    def delay(self, key: tuple[str, str]) -> float:
        """
        Seconds the next attempt for C{key} must wait.
        """
        failures = self._failures.get(key, 0)
        if not self.base or failures < self.free:
            return 0.0
        doublings = min(failures - self.free, 64)
        return min(self.cap or float("inf"), self.base * 2.0**doublings)

    def failed(self, key: tuple[str, str]) -> None:
        self._failures[key] = self._failures.touch(key, 0) + 1

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


class ConnectionCounter:
    """
    Open connections in all and per address key, against their limits
    (0: no limit).
    """

    def __init__(self, total: int, perAddress: int) -> None:
        self.total = total
        self.perAddress = perAddress
        self._open = 0
        self._byAddress: dict[str, int] = {}

    def admit(self, key: str | None) -> bool:
        """
        Count a new connection from C{key} (L{None}: exempt from the
        per-address limit) if the limits allow it; return whether they did.
        """
        if self.total and self._open >= self.total:
            return False
        if key is not None:
            count = self._byAddress.get(key, 0)
            if self.perAddress and count >= self.perAddress:
                return False
            self._byAddress[key] = count + 1
        self._open += 1
        return True

    def release(self, key: str | None) -> None:
        """
        Forget a connection admitted with C{key}.
        """
        self._open -= 1
        if key is not None:
            count = self._byAddress.pop(key) - 1
            if count:
                self._byAddress[key] = count
