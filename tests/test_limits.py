"""
Unit tests for L{twisted_chat.limits}: the abuse limits as pure policies,
driven with explicit times (C{now} numbers) and no clock at all.
"""

import pytest

from twisted_chat.core.limits import (
    MAX_TRACKED_KEYS,
    BoundedTable,
    ConnectionCounter,
    LoginBackoff,
    RateLimiter,
    TokenBucket,
    addressKey,
    isLoopback,
)

# addressKey and isLoopback


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("10.0.0.255", "10.0.0.255"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),
        ("2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8::/64"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("::1", "::/64"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_address_key(host: str, key: str) -> None:
    """
    When an address is limited, the server keys IPv4 by the address and IPv6 by its /64
    (IPv4-mapped as IPv4).
    """
    assert addressKey(host) == key


def test_address_key_same_subnet() -> None:
    """
    When two IPv6 addresses share a /64, the server counts them as one address, and a
    neighbouring /64 as another.
    """
    assert addressKey("2001:db8:1:2::a") == addressKey("2001:db8:1:2:ffff::b")
    assert addressKey("2001:db8:1:2::a") != addressKey("2001:db8:1:3::a")
    assert addressKey("192.0.2.1") != addressKey("192.0.2.2")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.0.2.1", False),
        ("::2", False),
        ("2001:db8::1", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """
    When the server decides who is exempt, only 127.0.0.0/8 and ::1 (also IPv4-mapped)
    count as loopback.
    """
    assert isLoopback(host) is loopback


# BoundedTable


def test_bounded_table_forgets_least_recently_touched() -> None:
    """
    When more keys than its limit are touched, the table forgets the least recently
    touched ones.
    """
    table: BoundedTable[str, int] = BoundedTable(limit=3)
    for key in "abc":
        table.touch(key, 0)
    table["a"] = 5
    assert table.touch("a", 0) == 5  # existing value kept, "a" now newest
    table.touch("d", 0)
    assert list(table) == ["c", "a", "d"]
    assert "b" not in table
    for i in range(1000):
        table.touch(f"k{i}", i)
    assert len(table) == 3
    assert list(table) == ["k997", "k998", "k999"]


def test_bounded_table_default_limit() -> None:
    """When no limit is given, the table holds at most 100,000 keys."""
    assert MAX_TRACKED_KEYS == 100_000
    assert BoundedTable().limit == MAX_TRACKED_KEYS


# TokenBucket


def test_token_bucket_burst_then_rate() -> None:
    """
    When a bucket is spent, the server allows the burst at once, then one event per
    1/rate seconds.
    """
    bucket = TokenBucket(rate=5, burst=20, now=100.0)
    assert all(bucket.take(100.0) for _ in range(20))
    assert not bucket.take(100.0)
    assert bucket.wait(100.0) == pytest.approx(0.2)
    assert not bucket.take(100.1)
    assert bucket.wait(100.1) == pytest.approx(0.1)
    assert bucket.take(100.25)
    assert not bucket.take(100.25)


def test_token_bucket_refill_is_capped_at_burst() -> None:
    """
    When a bucket idles for a long time, the server refills it only up to its burst.
    """
    bucket = TokenBucket(rate=5, burst=3, now=0.0)
    for _ in range(3):
        assert bucket.take(0.0)
    assert bucket.wait(1000.0) == 0.0
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_clock_going_backwards() -> None:
    """
    When the time given goes backwards, the server adds no tokens and never goes
    negative.
    """
    bucket = TokenBucket(rate=1, burst=1, now=50.0)
    assert bucket.take(50.0)
    assert not bucket.take(10.0)
    assert not bucket.take(9.0)
    assert bucket.wait(9.0) == pytest.approx(1.0)
    assert bucket.take(10.0)


# RateLimiter


def test_rate_limiter_per_key() -> None:
    """
    When one key uses up its count, the server refuses it until the period refills it,
    and other keys are not affected.
    """
    limiter = RateLimiter(count=3, period=60.0)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)
    assert not limiter.allow("a", 19.0)  # 0.95 of a token: refused, not spent
    assert limiter.allow("a", 21.0)  # one token every 20 s
    assert not limiter.allow("a", 21.0)
    assert [limiter.allow("a", 1000.0) for _ in range(4)] == [True, True, True, False]


def test_rate_limiter_zero_is_off() -> None:
    """When the count is 0, the server allows every event."""
    limiter = RateLimiter(count=0, period=60.0)
    assert all(limiter.allow("a", 0.0) for _ in range(10_000))


def test_rate_limiter_table_is_bounded() -> None:
    """
    When a flood of distinct keys arrives, the server's table of keys stays bounded.
    """
    limiter = RateLimiter(count=1, period=600.0)
    for i in range(MAX_TRACKED_KEYS + 500):
        limiter.allow(f"k{i}", 0.0)
    assert len(limiter._buckets) == MAX_TRACKED_KEYS
    # The most recent keys are still limited.
    assert not limiter.allow(f"k{MAX_TRACKED_KEYS + 499}", 0.0)


# LoginBackoff

ALICE = ("alice", "192.0.2.1")


def test_login_backoff_grows_and_caps() -> None:
    """
    When failures repeat for one (account, address), the server waits nothing for 3,
    then 1, 2, 4 ... seconds up to the cap.
    """
    backoff = LoginBackoff(base=1.0, cap=60.0)
    delays = []
    for _ in range(12):
        delays.append(backoff.delay(ALICE))
        backoff.failed(ALICE)
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_login_backoff_reset_by_success() -> None:
    """When a login succeeds, the server forgets the failures of that pair."""
    backoff = LoginBackoff(base=1.0, cap=60.0)
    for _ in range(5):
        backoff.failed(ALICE)
    assert backoff.delay(ALICE) == 4
    backoff.succeeded(ALICE)
    assert backoff.delay(ALICE) == 0
    backoff.succeeded(ALICE)  # no entry: no error
    for _ in range(3):
        backoff.failed(ALICE)
    assert backoff.delay(ALICE) == 1


def test_login_backoff_per_pair() -> None:
    """
    When one (account, address) pair is delayed, the server does not delay the same
    account from another address, nor another account.
    """
    backoff = LoginBackoff(base=1.0, cap=60.0)
    for _ in range(6):
        backoff.failed(ALICE)
    assert backoff.delay(ALICE) == 8
    assert backoff.delay(("alice", "198.51.100.7")) == 0
    assert backoff.delay(("bob", "192.0.2.1")) == 0


def test_login_backoff_off_and_uncapped() -> None:
    """
    When the base is 0 the server never delays, and when the cap is 0 the delay grows
    without a cap but never overflows.
    """
    off = LoginBackoff(base=0.0, cap=60.0)
    for _ in range(100):
        off.failed(ALICE)
    assert off.delay(ALICE) == 0
    uncapped = LoginBackoff(base=1.0, cap=0.0)
    for _ in range(13):
        uncapped.failed(ALICE)
    assert uncapped.delay(ALICE) == 1024
    for _ in range(1000):
        uncapped.failed(ALICE)
    assert uncapped.delay(ALICE) == 2.0**64


def test_login_backoff_table_is_bounded() -> None:
    """
    When failures come for more than 100,000 pairs, the server drops the oldest pairs.
    """
    backoff = LoginBackoff(base=1.0, cap=60.0)
    for _ in range(3):
        backoff.failed(("first", "192.0.2.1"))
    for i in range(MAX_TRACKED_KEYS):
        backoff.failed((f"user{i}", "192.0.2.1"))
    assert len(backoff._failures) == MAX_TRACKED_KEYS
    assert backoff.delay(("first", "192.0.2.1")) == 0


# ConnectionCounter


def test_connection_counter_per_address() -> None:
    """
    When an address holds its limit of connections, the server refuses more from it
    until one is released.
    """
    counter = ConnectionCounter(total=100, perAddress=2)
    assert counter.admit("a")
    assert counter.admit("a")
    assert not counter.admit("a")
    assert counter.admit("b")
    counter.release("a")
    assert counter.admit("a")
    assert not counter.admit("a")


def test_connection_counter_total_and_exempt() -> None:
    """
    When the total is reached, the server refuses everyone, exempt connections too;
    exempt ones are not limited per address.
    """
    counter = ConnectionCounter(total=5, perAddress=1)
    assert all(counter.admit(None) for _ in range(4))
    assert counter.admit("a")
    assert not counter.admit(None)
    assert not counter.admit("b")
    counter.release(None)
    assert counter.admit("b")
    assert not counter.admit("c")


def test_connection_counter_zero_is_off() -> None:
    """When both limits are 0, the server admits any number of connections."""
    counter = ConnectionCounter(total=0, perAddress=0)
    assert all(counter.admit("a") for _ in range(10_000))
    for _ in range(10_000):
        counter.release("a")
    assert counter._byAddress == {}
    assert counter._open == 0


def test_connection_counter_release_forgets_address() -> None:
    """
    When the last connection of an address closes, the server forgets the address, so
    that its table stays small.
    """
    counter = ConnectionCounter(total=0, perAddress=3)
    for i in range(1000):
        key = f"192.0.2.{i % 250}"
        assert counter.admit(key)
        counter.release(key)
    assert counter._byAddress == {}
