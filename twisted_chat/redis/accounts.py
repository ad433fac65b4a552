"""
Accounts kept in Redis, for several nodes sharing one chat: one hash per
account (C{tc:account:<folded name>} with C{name} and C{hash}) and an index
of names (C{tc:accounts}) for searching.  Hashing stays in threads.
"""

from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from zope.interface import implementer

from ..core.accounts import AuthResult, IAccountStore
from ..core.text import foldName
from ..stores.accounts import Account, Inflight
from ..stores.passwords import PasswordHashing
from .connection import RedisConnection

ACCOUNT_KEY = "tc:account:{key}"
INDEX_KEY = "tc:accounts"

# ARGV: folded name, display name, hash.  Creates the account unless it
# exists; returns {created, name, hash} of the account that now exists.
_CREATE = """
local key = 'tc:account:' .. ARGV[1]
if redis.call('HSETNX', key, 'name', ARGV[2]) == 0 then
  return {0, redis.call('HGET', key, 'name'), redis.call('HGET', key, 'hash')}
end
redis.call('HSET', key, 'hash', ARGV[3])
redis.call('HSET', 'tc:accounts', ARGV[1], ARGV[2])
return {1, ARGV[2], ARGV[3]}
"""


@implementer(IAccountStore)
class RedisAccountStore:
    """
    Accounts in Redis.  Two nodes registering one new name at once end with
    exactly one account: the creation is a single "set if absent", and the
    loser's password is checked against the winner's account.
    """

    def __init__(self, redis: RedisConnection, hashing: PasswordHashing) -> None:
        self.redis = redis
        self._hashing = hashing
        self._inflight = Inflight()
        self._track = self._inflight.track
        self.drain = self._inflight.drain

    def _account(self, name: str) -> "Deferred[Account | None]":
        key = ACCOUNT_KEY.format(key=foldName(name))

        def found(fields: dict[str, str]) -> Account | None:
            if not fields.get("name") or not fields.get("hash"):
                return None
            return Account(fields["name"], hash=fields["hash"])

        return self.redis.call("hgetall", key).addCallback(found)

    def lookup(self, name: str) -> "Deferred[str | None]":
        return self.redis.call("hget", INDEX_KEY, foldName(name))

    def search(self, text: str) -> "Deferred[list[str]]":
        needle = foldName(text)

        def matching(index: dict[str, str]) -> list[str]:
            return [index[key] for key in sorted(index) if needle in key]

        return self.redis.call("hgetall", INDEX_KEY).addCallback(matching)

    def authenticate(
        self, name: str, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        def found(account: Account | None) -> Any:
            if account is None:
                return self._register(name, password)
            return self._login(account, password)

        return self._track(self._account(name).addCallback(found))

    def _register(self, name: str, password: str) -> "Deferred[tuple[AuthResult, str]]":
        def hashed(stored: str) -> "Deferred[Any]":
            return self.redis.script(_CREATE, foldName(name), name, stored)

        def created(reply: list[Any]) -> Any:
            isNew, display, stored = reply
            if isNew:
                return (AuthResult.REGISTERED, display)
            return self._login(Account(display, hash=stored), password)

        return self._hashing.hash(password).addCallback(hashed).addCallback(created)

    def _login(
        self, account: Account, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        assert account.hash is not None
        stored = account.hash

        def checked(matches: bool) -> Any:
            if not matches:
                return (AuthResult.REJECTED, account.name)
            if self._hashing.needsRehash(stored):
                upgrade = self._setPassword(account.name, password)
                return upgrade.addCallback(
                    lambda _: (AuthResult.ACCEPTED, account.name)
                )
            return (AuthResult.ACCEPTED, account.name)

        return self._hashing.verify(stored, password).addCallback(checked)

    def _setPassword(self, name: str, password: str) -> "Deferred[Any]":
        key = ACCOUNT_KEY.format(key=foldName(name))
        return self._hashing.hash(password).addCallback(
            lambda stored: self.redis.call("hset", key, "hash", stored)
        )

    def changePassword(self, name: str, old: str, new: str) -> "Deferred[bool]":
        def found(account: Account | None) -> Any:
            if account is None or account.hash is None:
                return False
            return self._hashing.verify(account.hash, old).addCallback(checked)

        def checked(matches: bool) -> Any:
            if not matches:
                return False
            return self._setPassword(name, new).addCallback(lambda _: True)

        return self._track(self._account(name).addCallback(found))

    def importAccounts(self, accounts: list[Account]) -> "Deferred[tuple[int, int]]":
        """
        Copy accounts (from C{users.json}) into Redis, hashing any legacy
        plaintext password; an account that already exists is kept.  Fires
        with (imported, skipped).
        """
        counts = [0, 0]

        def one(account: Account) -> "Deferred[Any]":
            stored = (
                succeed(account.hash)
                if account.hash is not None
                else self._hashing.hash(account.plaintext or "")
            )
            d = stored.addCallback(
                lambda value: self.redis.script(
                    _CREATE, foldName(account.name), account.name, value
                )
            )
            return d.addCallback(counted)

        def counted(reply: list[Any]) -> None:
            counts[0 if reply[0] else 1] += 1

        d = DeferredList([one(account) for account in accounts], fireOnOneErrback=True)
        return d.addCallback(lambda _: (counts[0], counts[1]))
