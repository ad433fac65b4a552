"""
Accounts in a JSON file (C{users.json}), rewritten atomically: the
L{IAccountStore} of a single node.
"""

import json
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from ..core.accounts import AuthResult, IAccountStore
from ..core.text import foldName, normalizeName
from .passwords import PasswordHashing, plaintextMatches

FORMAT_VERSION = 1


class AccountFileError(Exception):
    """
    The account file cannot be used; the message says why and what to do.
    """


class Inflight:
    """
    The operations under way, so that a shutdown can wait for them.
    """

    def __init__(self) -> None:
        self._pending: set[Deferred[Any]] = set()

    def track(self, d: "Deferred[Any]") -> "Deferred[Any]":
        """
        Remember C{d} until it fires; return it.
        """
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        return d.addBoth(done)

    def drain(self) -> "Deferred[None]":
        """
        Fire once every tracked operation, and any it started, has finished.
        """
        pending = list(self._pending)
        if not pending:
            return succeed(None)
        return DeferredList(pending, consumeErrors=True).addCallback(
            lambda _: self.drain()
        )


@dataclass(frozen=True)
class Account:
    """
    One account: the display name and either an Argon2 PHC string or, for an
    entry carried over from the course project's format, its plaintext
    password (replaced by a hash at the first login).  Immutable, so that
    its line in the file is encoded once.
    """

    name: str
    hash: str | None = None
    plaintext: str | None = None

    def toJSON(self) -> dict[str, str]:
        if self.hash is not None:
            return {"name": self.name, "hash": self.hash}
        assert self.plaintext is not None
        return {"name": self.name, "password": self.plaintext}

    @cached_property
    def encoded(self) -> str:
        """
        This account's entry in the file.
        """
        return _dumps(self.toJSON())


@dataclass
class AccountFile:
    """
    The parsed content of an account file: the usable accounts by folded
    name, and the entries left untouched because they break the name rules
    or collide under case folding.
    """

    accounts: dict[str, Account]
    unusable: list[Any]

    @classmethod
    def parse(cls, data: bytes, path: str) -> "AccountFile":
        """
        Parse an account file in our format or the course project's old one.

        @raise AccountFileError: if it is neither.
        """
        if not data.strip():
            return cls({}, [])
        try:
            document = json.loads(data)
        except ValueError as e:
            raise AccountFileError(
                f"{path} is not valid JSON ({e}); fix it or move it away. "
                "It was left untouched."
            ) from None
        if isinstance(document, dict) and isinstance(document.get("users"), list):
            entries = document["users"]
            unusable = list(document.get("unusable", []))
        elif isinstance(document, dict) and isinstance(document.get("client"), list):
            entries = document["client"]
            unusable = []
        else:
            raise AccountFileError(
                f'{path} is not an account file (expected {{"version": 1, '
                '"users": [...]}} or the old {"client": [...]}). '
                "It was left untouched."
            )
        accounts: dict[str, Account] = {}
        for entry in entries:
            account = _accountFromEntry(entry)
            key = foldName(account.name) if account else None
            if account is None or key is None or key in accounts:
                unusable.append(entry)
            else:
                accounts[key] = account
        return cls(accounts, unusable)

    def serialize(self) -> bytes:
        """
        The file's content: one account per line, so that it reads well and
        each line is encoded by the C encoder (C{indent} would use the pure
        Python one, which costs milliseconds per write with many accounts).
        """
        lines = [f'{{"version": {FORMAT_VERSION}, "users": [']
        entries = [self.accounts[key].encoded for key in sorted(self.accounts)]
        lines.append(",\n".join(" " + entry for entry in entries))
        if self.unusable:
            lines.append('], "unusable": [')
            lines.append(",\n".join(" " + _dumps(entry) for entry in self.unusable))
        lines.append("]}")
        return "\n".join(line for line in lines if line).encode("utf-8") + b"\n"


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _accountFromEntry(entry: object) -> Account | None:
    if not isinstance(entry, dict):
        return None
    name = entry.get("name")
    if not isinstance(name, str) or normalizeName(name) != name:
        return None
    stored, plaintext = entry.get("hash"), entry.get("password")
    if isinstance(stored, str):
        return Account(name, hash=stored)
    if isinstance(plaintext, str):
        return Account(name, plaintext=plaintext)
    return None


def writeAtomically(path: str, data: bytes) -> None:
    """
    Replace the file at C{path} by C{data} so that a crash at any moment
    leaves either the old or the new content: write a temporary file in the
    same directory, fsync it, rename it over C{path}, fsync the directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".users-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directoryFD = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directoryFD)
    finally:
        os.close(directoryFD)


@implementer(IAccountStore)
class JsonAccountStore:
    """
    Accounts kept in memory and saved to a JSON file.

    Saves are group commits: while one write is under way, the changes made
    meanwhile wait and go to disk together in the next write, and each change
    is answered only once a write holding it has finished.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        content: AccountFile,
        hashing: PasswordHashing,
        reactor: IReactorFromThreads,
        threadpool: ThreadPool,
    ) -> None:
        self.path = path
        self._file = content
        self._hashing = hashing
        self._reactor = reactor
        self._threadpool = threadpool
        self._registering: dict[str, list[Deferred[None]]] = {}
        self._inflight = Inflight()
        self._track = self._inflight.track
        self.drain = self._inflight.drain
        self._writing = False
        self._waitingForWrite: list[Deferred[None]] = []

    @classmethod
    def open(
        cls,
        path: str,
        hashing: PasswordHashing,
        reactor: IReactorFromThreads,
        threadpool: ThreadPool,
    ) -> "JsonAccountStore":
        """
        Read the account file at C{path} (a missing file is an empty store).

        @raise AccountFileError: if the file cannot be read or understood.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise AccountFileError(f"cannot read {path}: {e.strerror}") from None
        content = AccountFile.parse(data, path)
        for entry in content.unusable:
            cls.log.warn(
                "{path}: entry left untouched (invalid or duplicate name): {entry!r}",
                path=path,
                entry=entry.get("name") if isinstance(entry, dict) else entry,
            )
        return cls(path, content, hashing, reactor, threadpool)

    def _account(self, name: str) -> Account | None:
        return self._file.accounts.get(foldName(name))

    def lookup(self, name: str) -> "Deferred[str | None]":
        account = self._account(name)
        return succeed(account.name if account else None)

    def search(self, text: str) -> "Deferred[list[str]]":
        needle = foldName(text)
        accounts = self._file.accounts
        return succeed(
            [accounts[key].name for key in sorted(accounts) if needle in key]
        )

    def authenticate(
        self, name: str, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        key = foldName(name)
        waiters = self._registering.get(key)
        if waiters is not None:
            # Someone is registering this very name: wait, then log in
            # against the account they made.
            waiter: Deferred[None] = Deferred()
            waiters.append(waiter)
            return waiter.addCallback(lambda _: self.authenticate(name, password))
        account = self._file.accounts.get(key)
        if account is None:
            return self._track(self._register(key, name, password))
        return self._track(self._login(account, password))

    def _register(
        self, key: str, name: str, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        self._registering[key] = []

        def hashed(stored: str) -> "Deferred[None]":
            self._file.accounts[key] = Account(name, hash=stored)
            return self._save()

        def failed(failure: Any) -> Any:
            self._file.accounts.pop(key, None)
            return failure

        def release(result: object) -> object:
            for waiter in self._registering.pop(key):
                waiter.callback(None)
            return result

        d = self._hashing.hash(password)
        d.addCallback(hashed)
        d.addErrback(failed)
        d.addBoth(release)
        return d.addCallback(lambda _: (AuthResult.REGISTERED, name))

    def _login(
        self, account: Account, password: str
    ) -> "Deferred[tuple[AuthResult, str]]":
        def checked(
            matches: bool,
        ) -> "Deferred[tuple[AuthResult, str]] | tuple[AuthResult, str]":
            if not matches:
                return (AuthResult.REJECTED, account.name)
            if account.hash is None or self._hashing.needsRehash(account.hash):
                upgrade = self._setPassword(account, password)
                return upgrade.addCallback(
                    lambda _: (AuthResult.ACCEPTED, account.name)
                )
            return (AuthResult.ACCEPTED, account.name)

        return self._matches(account, password).addCallback(checked)

    def _matches(self, account: Account, password: str) -> "Deferred[bool]":
        if account.hash is not None:
            return self._hashing.verify(account.hash, password)
        assert account.plaintext is not None
        return succeed(plaintextMatches(account.plaintext, password))

    def _setPassword(self, account: Account, password: str) -> "Deferred[None]":
        def hashed(stored: str) -> "Deferred[None]":
            key = foldName(account.name)
            self._file.accounts[key] = Account(account.name, hash=stored)
            return self._save()

        return self._hashing.hash(password).addCallback(hashed)

    def changePassword(self, name: str, old: str, new: str) -> "Deferred[bool]":
        account = self._account(name)
        if account is None:
            return succeed(False)

        def checked(matches: bool) -> "Deferred[bool] | bool":
            if not matches:
                return False
            return self._setPassword(account, new).addCallback(lambda _: True)

        return self._track(self._matches(account, old).addCallback(checked))

    def _save(self) -> "Deferred[None]":
        """
        Fire once the current accounts are on disk.
        """
        d: Deferred[None] = Deferred()
        self._waitingForWrite.append(d)
        if not self._writing:
            self._startWrite()
        return d

    def _startWrite(self) -> None:
        waiting, self._waitingForWrite = self._waitingForWrite, []
        self._writing = True
        data = self._file.serialize()

        def finished(result: object) -> None:
            self._writing = False
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(None)
            if self._waitingForWrite:
                self._startWrite()

        written = deferToThreadPool(
            self._reactor, self._threadpool, writeAtomically, self.path, data
        )
        self._track(written).addBoth(finished)
