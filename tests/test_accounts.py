"""
Unit tests for the account store: L{JsonAccountStore} on a temporary
directory, its file format and atomic writes, and L{PasswordHashing}.

Thread pools are replaced by fakes that run work when the test says so, so
that every Deferred is driven by hand.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from twisted_chat.stores import accounts
from twisted_chat.stores.accounts import (
    AccountFile,
    AccountFileError,
    AuthResult,
    JsonAccountStore,
    writeAtomically,
)
from twisted_chat.stores.passwords import (
    RELEASE_MEMORY_AFTER,
    PasswordHashing,
    makeHasher,
    plaintextMatches,
)

# Cheap Argon2 parameters keep these tests fast; real ones are used sparingly.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
OTHER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)


class SyncReactor:
    """
    A reactor whose C{callFromThread} calls at once.
    """

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class QueuedThreadPool:
    """
    A thread pool that runs nothing until told, in order, on this thread;
    with C{immediate=True} it runs each call as it comes.
    """

    def __init__(self, immediate: bool = False) -> None:
        self.immediate = immediate
        self.queue: list[tuple[Callable[..., Any], Callable[..., Any], tuple]] = []

    def callInThreadWithCallback(
        self, onResult: Callable[..., Any], f: Callable[..., Any], *args: Any
    ) -> None:
        self.queue.append((onResult, f, args))
        if self.immediate:
            self.runAll()

    def callInThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.callInThreadWithCallback(lambda succeeded, result: None, f, *args)

    def runOne(self) -> None:
        onResult, f, args = self.queue.pop(0)
        try:
            result = f(*args)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def runAll(self) -> None:
        while self.queue:
            self.runOne()


def openStore(
    path: Path, pool: QueuedThreadPool | None = None, hasher: PasswordHasher = FAST
) -> JsonAccountStore:
    pool = pool or QueuedThreadPool(immediate=True)
    reactor = SyncReactor()
    hashing = PasswordHashing(reactor, pool, limit=2, hasher=hasher)  # type: ignore[arg-type]
    return JsonAccountStore.open(str(path), hashing, reactor, pool)  # type: ignore[arg-type]


def result(d: "Deferred[Any]") -> Any:
    """
    The result of a Deferred that has fired; raise its failure.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def fired(d: "Deferred[Any]") -> bool:
    """
    Whether C{d} has a result now (not merely waiting on another Deferred).
    """
    seen: list[object] = []

    def look(value: object) -> object:
        seen.append(value)
        return value

    d.addBoth(look)
    return bool(seen)


def users(path: Path) -> list[dict[str, str]]:
    document = json.loads(path.read_bytes())
    assert document["version"] == 1
    return document["users"]


class TestFile:
    def test_missingFileCreatedAtFirstRegistration(self, tmp_path: Path) -> None:
        """
        When the file is missing, the server starts empty and creates it at the first
        registration.
        """
        path = tmp_path / "users.json"
        store = openStore(path)
        assert result(store.lookup("alice")) is None
        assert not path.exists()
        assert result(store.authenticate("alice", "pw")) == (
            AuthResult.REGISTERED,
            "alice",
        )
        [entry] = users(path)
        assert entry["name"] == "alice"
        assert entry["hash"].startswith("$argon2id$")
        assert "pw" not in entry["hash"].split("$")[-1:]
        assert PasswordHasher().verify(entry["hash"], "pw")

    def test_emptyFileIsEmptyStore(self, tmp_path: Path) -> None:
        """When the file is empty (0 bytes), the server treats it as an empty store."""
        path = tmp_path / "users.json"
        path.write_bytes(b"")
        store = openStore(path)
        assert result(store.search("")) == []
        assert path.read_bytes() == b""
        result(store.authenticate("bob", "pw"))
        assert [entry["name"] for entry in users(path)] == ["bob"]

    @pytest.mark.parametrize(
        "content",
        [
            b"{not json",
            b'{"client": [',
            b"\xff\xfe garbage",
            b"[1, 2]",
            b'"text"',
            b'{"foo": []}',
            b'{"client": "alice"}',
            b'{"users": {}}',
            b"null",
        ],
    )
    def test_badFileRefusedAndUntouched(self, tmp_path: Path, content: bytes) -> None:
        """
        When the file is not valid JSON or not a known format, the server refuses it and
        leaves it untouched.
        """
        path = tmp_path / "users.json"
        path.write_bytes(content)
        with pytest.raises(AccountFileError) as error:
            openStore(path)
        assert str(path) in str(error.value)
        assert "untouched" in str(error.value)
        assert path.read_bytes() == content
        assert os.listdir(tmp_path) == ["users.json"]

    def test_unreadableFileRefused(self, tmp_path: Path) -> None:
        """When the path cannot be read, the server refuses it with a clear error."""
        with pytest.raises(AccountFileError, match="cannot read"):
            openStore(tmp_path)

    def test_reopenKeepsAccounts(self, tmp_path: Path) -> None:
        """When the store is reopened, the server knows the accounts saved before."""
        path = tmp_path / "users.json"
        store = openStore(path)
        result(store.authenticate("Şebnem", "şifre"))
        result(store.authenticate("bob", "pw"))
        assert "Şebnem".encode() in path.read_bytes()
        again = openStore(path)
        assert result(again.authenticate("şebnem", "şifre")) == (
            AuthResult.ACCEPTED,
            "Şebnem",
        )
        assert result(again.authenticate("bob", "nope")) == (
            AuthResult.REJECTED,
            "bob",
        )

    def test_unnormalisedNamesUnusable(self) -> None:
        """
        When a stored name is not in its NFKC form or breaks the rules, the server sets
        it aside.
        """
        document = {
            "version": 1,
            "users": [
                {"name": "\uff41\uff4c\uff49\uff43\uff45", "hash": "x"},
                {"name": "ok", "hash": "y"},
                {"name": "no hash"},
                {"name": 5, "hash": "z"},
                "junk",
            ],
        }
        content = AccountFile.parse(json.dumps(document).encode(), "users.json")
        assert list(content.accounts) == ["ok"]
        assert len(content.unusable) == 4


class TestOldFormat:
    OLD = {
        "client": [
            {"name": "alice", "password": "old-pw"},
            {"name": "Alice", "password": "second"},
            {"name": "bad name", "password": "third"},
            {"name": "bob", "password": "bob-pw"},
        ]
    }

    def write(self, tmp_path: Path) -> Path:
        path = tmp_path / "users.json"
        path.write_text(json.dumps(self.OLD))
        return path

    def test_plaintextLoginRewritesWithHash(self, tmp_path: Path) -> None:
        """
        When an old-format user logs in with the old password, the server rewrites the
        entry with a hash.
        """
        path = self.write(tmp_path)
        store = openStore(path)
        assert result(store.authenticate("alice", "old-pw")) == (
            AuthResult.ACCEPTED,
            "alice",
        )
        entries = {entry["name"]: entry for entry in users(path)}
        assert set(entries["alice"]) == {"name", "hash"}
        assert FAST.verify(entries["alice"]["hash"], "old-pw")
        assert entries["bob"] == {"name": "bob", "password": "bob-pw"}
        # Logging in again checks the hash now.
        assert result(openStore(path).authenticate("ALICE", "old-pw")) == (
            AuthResult.ACCEPTED,
            "alice",
        )

    def test_wrongPasswordLeavesFile(self, tmp_path: Path) -> None:
        """
        When an old-format user gives a wrong password, the server rejects it and leaves
        the file.
        """
        path = self.write(tmp_path)
        before = path.read_bytes()
        store = openStore(path)
        assert result(store.authenticate("alice", "guess")) == (
            AuthResult.REJECTED,
            "alice",
        )
        assert path.read_bytes() == before

    def test_collidingAndInvalidEntriesPreserved(self, tmp_path: Path) -> None:
        """
        When old entries collide or break the name rules, the server keeps them
        untouched across rewrites.
        """
        path = self.write(tmp_path)
        store = openStore(path)
        assert result(store.authenticate("alice", "second")) == (
            AuthResult.REJECTED,
            "alice",
        )
        result(store.authenticate("alice", "old-pw"))
        result(store.authenticate("carol", "pw"))
        document = json.loads(path.read_bytes())
        assert document["unusable"] == [
            {"name": "Alice", "password": "second"},
            {"name": "bad name", "password": "third"},
        ]
        again = openStore(path)
        result(again.authenticate("dave", "pw"))
        assert json.loads(path.read_bytes())["unusable"] == document["unusable"]
        assert result(again.lookup("bad name")) is None


class TestLogin:
    def test_caseFolding(self, tmp_path: Path) -> None:
        """
        When a name is used in another case, the server finds the one account and keeps
        its first spelling.
        """
        path = tmp_path / "users.json"
        store = openStore(path)
        assert result(store.authenticate("Hakan", "pw")) == (
            AuthResult.REGISTERED,
            "Hakan",
        )
        assert result(store.authenticate("hakan", "pw")) == (
            AuthResult.ACCEPTED,
            "Hakan",
        )
        assert result(store.authenticate("HAKAN", "other")) == (
            AuthResult.REJECTED,
            "Hakan",
        )
        assert result(store.lookup("hAKAN")) == "Hakan"
        assert result(store.search("aka")) == ["Hakan"]
        assert [entry["name"] for entry in users(path)] == ["Hakan"]

    def test_searchSortedByFoldedName(self, tmp_path: Path) -> None:
        """When accounts match a search, the server lists them sorted by folded name."""
        store = openStore(tmp_path / "users.json")
        for name in ["carol", "Bob", "alice", "dave"]:
            result(store.authenticate(name, "pw"))
        assert result(store.search("")) == ["alice", "Bob", "carol", "dave"]
        assert result(store.search("O")) == ["Bob", "carol"]

    def test_loginDoesNotRewrite(self, tmp_path: Path) -> None:
        """
        When a user logs in with a current hash, the server does not rewrite the file.
        """
        path = tmp_path / "users.json"
        store = openStore(path)
        result(store.authenticate("alice", "pw"))
        before = path.read_bytes()
        os.utime(path, (0, 0))
        assert result(store.authenticate("alice", "pw"))[0] is AuthResult.ACCEPTED
        assert path.read_bytes() == before
        assert path.stat().st_mtime == 0

    def test_rehashWithOtherParameters(self, tmp_path: Path) -> None:
        """
        When a stored hash has other parameters, the server rehashes it at the next
        login.
        """
        path = tmp_path / "users.json"
        stored = OTHER.hash("pw")
        path.write_text(
            json.dumps({"version": 1, "users": [{"name": "a", "hash": stored}]})
        )
        store = openStore(path)
        assert result(store.authenticate("a", "wrong"))[0] is AuthResult.REJECTED
        assert users(path)[0]["hash"] == stored
        assert result(store.authenticate("a", "pw"))[0] is AuthResult.ACCEPTED
        rehashed = users(path)[0]["hash"]
        assert rehashed != stored
        assert "$m=8,t=1,p=1$" in rehashed
        assert FAST.verify(rehashed, "pw")

    def test_accountOnDiskBeforeAnswer(self, tmp_path: Path) -> None:
        """
        When a name registers, the server answers only once the account is on disk.
        """
        path = tmp_path / "users.json"
        pool = QueuedThreadPool()
        store = openStore(path, pool)
        d = store.authenticate("alice", "pw")
        pool.runOne()  # the hash
        assert not fired(d)
        assert not path.exists()
        pool.runOne()  # the write
        assert result(d) == (AuthResult.REGISTERED, "alice")
        assert [entry["name"] for entry in users(path)] == ["alice"]
        assert pool.queue == []

    def test_concurrentRegistrationOfOneName(self, tmp_path: Path) -> None:
        """
        When two logins register the same new name at once, the server registers it
        exactly once.
        """
        path = tmp_path / "users.json"
        pool = QueuedThreadPool()
        store = openStore(path, pool)
        first = store.authenticate("newbie", "pw")
        second = store.authenticate("NewBie", "pw")
        third = store.authenticate("NEWBIE", "other")
        assert not (fired(first) or fired(second) or fired(third))
        pool.runAll()
        outcomes = [result(d) for d in (first, second, third)]
        assert outcomes == [
            (AuthResult.REGISTERED, "newbie"),
            (AuthResult.ACCEPTED, "newbie"),
            (AuthResult.REJECTED, "newbie"),
        ]
        [entry] = users(path)
        assert FAST.verify(entry["hash"], "pw")

    def test_concurrentRegistrationsShareWrites(self, tmp_path: Path) -> None:
        """
        When several names register at once, the server saves them all, one write at a
        time.
        """
        path = tmp_path / "users.json"
        pool = QueuedThreadPool()
        store = openStore(path, pool)
        ds = [store.authenticate(name, "pw") for name in ["a", "b", "c", "d"]]
        drained = store.drain()
        assert not fired(drained)
        pool.runAll()
        assert [result(d)[0] for d in ds] == [AuthResult.REGISTERED] * 4
        assert result(drained) is None
        assert [entry["name"] for entry in users(path)] == ["a", "b", "c", "d"]

    def test_failedWriteRegistersNothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        When the file cannot be written, the server fails the registration and forgets
        the account.
        """
        path = tmp_path / "users.json"
        store = openStore(path)
        result(store.authenticate("alice", "pw"))
        before = path.read_bytes()

        def broken(path: str, data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(accounts, "writeAtomically", broken)
        with pytest.raises(OSError):
            result(store.authenticate("bob", "pw"))
        assert result(store.lookup("bob")) is None
        assert path.read_bytes() == before
        monkeypatch.undo()
        assert result(store.authenticate("bob", "pw"))[0] is AuthResult.REGISTERED

    def test_changePassword(self, tmp_path: Path) -> None:
        """
        When the old password is right, the server saves the new one; otherwise it
        refuses.
        """
        path = tmp_path / "users.json"
        store = openStore(path)
        result(store.authenticate("alice", "one"))
        assert result(store.changePassword("alice", "wrong", "two")) is False
        assert result(store.changePassword("nobody", "one", "two")) is False
        assert result(store.changePassword("ALICE", "one", "two")) is True
        assert FAST.verify(users(path)[0]["hash"], "two")
        again = openStore(path)
        assert result(again.authenticate("alice", "one"))[0] is AuthResult.REJECTED
        assert result(again.authenticate("alice", "two"))[0] is AuthResult.ACCEPTED


class TestWriteAtomically:
    def test_replacesContent(self, tmp_path: Path) -> None:
        """
        When a file is written atomically, the server leaves the new content and no
        temporary file.
        """
        path = tmp_path / "users.json"
        path.write_bytes(b"old")
        writeAtomically(str(path), b'{"version": 1, "users": []}\n')
        assert json.loads(path.read_bytes()) == {"version": 1, "users": []}
        assert os.listdir(tmp_path) == ["users.json"]

    def test_failureKeepsOldFile(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        When the rename fails, the server leaves the old file whole and removes the
        temporary one.
        """
        path = tmp_path / "users.json"
        path.write_bytes(b'{"version": 1, "users": []}')

        def failingReplace(source: str, target: str) -> None:
            raise OSError("simulated crash")

        monkeypatch.setattr(accounts.os, "replace", failingReplace)
        with pytest.raises(OSError, match="simulated crash"):
            writeAtomically(str(path), b"new content")
        assert path.read_bytes() == b'{"version": 1, "users": []}'
        assert os.listdir(tmp_path) == ["users.json"]

    def test_storeWritesValidJsonEachTime(self, tmp_path: Path) -> None:
        """
        When accounts change one after another, the server leaves valid JSON after
        every write.
        """
        path = tmp_path / "users.json"
        pool = QueuedThreadPool()
        store = openStore(path, pool)
        pending = [store.authenticate(f"user{i}", "pw") for i in range(5)]
        while pool.queue:
            pool.runOne()
            if path.exists():
                names = [entry["name"] for entry in users(path)]
                assert names == sorted(names)
        assert all(fired(d) for d in pending)
        assert len(users(path)) == 5


class TestPasswordHashing:
    def test_realParameters(self) -> None:
        """
        When a password is hashed with the defaults, the server uses OWASP's Argon2id
        parameters.
        """
        pool = QueuedThreadPool(immediate=True)
        hashing = PasswordHashing(SyncReactor(), pool)  # type: ignore[arg-type]
        stored = result(hashing.hash("correct horse"))
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert hashing.needsRehash(stored) is False
        assert hashing.needsRehash(FAST.hash("x")) is True
        assert hashing.needsRehash("not a hash") is True
        assert result(hashing.verify(stored, "correct horse")) is True
        assert makeHasher().time_cost == 2

    def test_verifyNeverRaises(self) -> None:
        """
        When a password or a stored hash is wrong, the server says no instead of
        failing.
        """
        pool = QueuedThreadPool(immediate=True)
        hashing = PasswordHashing(SyncReactor(), pool, hasher=FAST)  # type: ignore[arg-type]
        stored = FAST.hash("pw")
        assert result(hashing.verify(stored, "nope")) is False
        assert result(hashing.verify("garbage", "pw")) is False

    def test_boundedConcurrency(self) -> None:
        """
        When many hashes are asked at once, the server runs at most the limit at a time.
        """
        pool = QueuedThreadPool()
        hashing = PasswordHashing(SyncReactor(), pool, limit=2, hasher=FAST)  # type: ignore[arg-type]
        ds = [hashing.hash(f"pw{i}") for i in range(5)]
        assert len(pool.queue) == 2
        pool.runOne()
        assert len(pool.queue) == 2
        pool.runAll()
        assert all(FAST.verify(result(d), f"pw{i}") for i, d in enumerate(ds))

    def test_memoryReleasedAfterBurst(self) -> None:
        """
        When hashing stops for a second, the server gives the hashes' memory
        back (in a pool thread), once per burst and not while hashing goes on.
        """
        pool, clock, released = QueuedThreadPool(), Clock(), []
        hashing = PasswordHashing(
            SyncReactor(),  # type: ignore[arg-type]
            pool,  # type: ignore[arg-type]
            limit=2,
            hasher=FAST,
            clock=clock,
            release=lambda: released.append(clock.seconds()),
        )
        ds = [hashing.hash(f"pw{i}") for i in range(3)]
        pool.runOne()
        clock.advance(RELEASE_MEMORY_AFTER)
        assert pool.queue and not released  # two still hashing
        pool.runAll()
        assert all(fired(d) for d in ds)
        clock.advance(RELEASE_MEMORY_AFTER / 2)
        late = hashing.hash("late")
        clock.advance(RELEASE_MEMORY_AFTER / 2)
        assert len(pool.queue) == 1  # the late hash, no release yet
        pool.runAll()
        clock.advance(RELEASE_MEMORY_AFTER)
        pool.runAll()
        assert fired(late) and released == [3 * RELEASE_MEMORY_AFTER]

    def test_plaintextMatches(self) -> None:
        """When an old plaintext password is compared, the server matches it exactly."""
        assert plaintextMatches("şifre", "şifre")
        assert not plaintextMatches("şifre", "sifre")
        assert not plaintextMatches("pw", "pw ")
