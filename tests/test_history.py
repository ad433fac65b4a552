"""
L{twisted_chat.stores.history.SQLiteHistory} on real files with the real
reactor: lines survive a reopen, retention prunes, CHATHISTORY queries, an
unusable file is refused untouched, and a SIGKILL during a burst of writes
leaves a file that opens and holds every batch acknowledged before it.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from twisted_chat.core.events import HistoryEntry
from twisted_chat.core.history import Around, HistoryQuery, Reference
from twisted_chat.stores.history import HistoryFileError, SQLiteHistory, checkFile

KILL_TIMEOUT = 20.0


def entries(room: str, count: int, start: int = 0) -> list[HistoryEntry]:
    """
    C{count} lines of C{room}, one a second from second C{start}.
    """
    return [
        HistoryEntry(1000.0 + n, "alice", f"{room} line {n}", f"{1000000 + n * 1000}-0")
        for n in range(start, start + count)
    ]


@asynccontextmanager
async def opened(path: Path, retention: int = 10000) -> AsyncIterator[SQLiteHistory]:
    store = SQLiteHistory.open(str(path), reactor, retention)
    try:
        yield store
    finally:
        await store.close()


def texts(found: list[HistoryEntry]) -> list[str]:
    return [entry.text for entry in found]


@pytest_twisted.ensureDeferred
async def test_linesSurviveReopen(tmp_path: Path) -> None:
    """When the store is closed and opened again, the lines of each room are there."""
    path = tmp_path / "history.sqlite3"
    async with opened(path) as store:
        for entry in entries("#a", 3):
            store.add("#a", entry)
        for entry in entries("#b", 2):
            store.add("#b", entry)
    async with opened(path) as store:
        assert texts(await store.latest("#a", 10)) == [
            "#a line 0",
            "#a line 1",
            "#a line 2",
        ]
        assert await store.latest("#b", 1) == entries("#b", 2)[1:]
        assert await store.latest("#c", 5) == []
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


@pytest_twisted.ensureDeferred
async def test_unwrittenLinesIncluded(tmp_path: Path) -> None:
    """When lines wait to be written, the store still answers with them."""
    async with opened(tmp_path / "h.sqlite3") as store:
        for entry in entries("#a", 2):
            store.add("#a", entry)
        await store.flush()
        store.add("#a", entries("#a", 1, start=2)[0])
        assert texts(await store.latest("#a", 3)) == [
            "#a line 0",
            "#a line 1",
            "#a line 2",
        ]
        store.add("#a", entries("#a", 1, start=3)[0])
        again = store.latest("#a", 2)
        assert again.called, "a loaded room is answered at once"
        assert texts(await again) == ["#a line 2", "#a line 3"]


@pytest_twisted.ensureDeferred
async def test_batchedWrites(tmp_path: Path) -> None:
    """When many lines come at once, the store writes them in one transaction."""
    path = tmp_path / "h.sqlite3"
    async with opened(path) as store:
        for entry in entries("#a", 50):
            store.add("#a", entry)
        assert len(store._writes) <= 1
        await store.flush()
        assert store._writes == []
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT count(*) FROM lines").fetchone() == (50,)
    connection.close()


@pytest_twisted.ensureDeferred
async def test_retentionPrunes(tmp_path: Path) -> None:
    """When a room has more lines than the retention, pruning keeps the newest."""
    path = tmp_path / "h.sqlite3"
    async with opened(path, retention=5) as store:
        for entry in entries("#a", 12):
            store.add("#a", entry)
        for entry in entries("#b", 3):
            store.add("#b", entry)
        await store.flush()
        await store._prune()
        assert texts(await store.query("#a", HistoryQuery(Around.LATEST, 100))) == [
            f"#a line {n}" for n in range(7, 12)
        ]
        assert len(await store.query("#b", HistoryQuery(Around.LATEST, 100))) == 3


@pytest_twisted.ensureDeferred
async def test_queries(tmp_path: Path) -> None:
    """When CHATHISTORY asks by id or time, the store answers in order."""
    async with opened(tmp_path / "h.sqlite3") as store:
        lines = entries("#a", 10)
        for entry in lines:
            store.add("#a", entry)
        msgid = Reference(msgid=lines[5].msgid)
        at = Reference(time=lines[5].time)

        async def ask(around: Around, limit: int, *refs: Reference) -> list[int]:
            found = await store.query("#a", HistoryQuery(around, limit, *refs))
            return [lines.index(entry) for entry in found]

        assert await ask(Around.LATEST, 3) == [7, 8, 9]
        assert await ask(Around.LATEST, 10, msgid) == [6, 7, 8, 9]
        assert await ask(Around.BEFORE, 2, msgid) == [3, 4]
        assert await ask(Around.BEFORE, 2, at) == [3, 4]
        assert await ask(Around.AFTER, 2, msgid) == [6, 7]
        assert await ask(Around.AFTER, 2, at) == [6, 7]
        assert await ask(Around.AROUND, 4, msgid) == [3, 4, 5, 6]
        two = Reference(msgid=lines[2].msgid)
        assert await ask(Around.BETWEEN, 10, two, msgid) == [3, 4]
        assert await ask(Around.BETWEEN, 1, msgid, two) == [4]
        unknown = Reference(msgid="1-0")
        assert await ask(Around.AFTER, 5, unknown) == []


def test_corruptFileRefusedUntouched(tmp_path: Path) -> None:
    """When the history file is not a database, the store refuses it unchanged."""
    path = tmp_path / "history.sqlite3"
    garbage = b"this is not sqlite\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(HistoryFileError, match="left untouched"):
        checkFile(str(path))
    assert path.read_bytes() == garbage


def test_otherDatabaseRefused(tmp_path: Path) -> None:
    """When the file is some other SQLite database, the store refuses it."""
    path = tmp_path / "other.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(HistoryFileError, match="not a twisted-chat history file"):
        checkFile(str(path))
    assert path.read_bytes() == before


def test_missingFileIsFine(tmp_path: Path) -> None:
    """When there is no history file yet, the store will create one."""
    checkFile(str(tmp_path / "new.sqlite3"))
    assert not (tmp_path / "new.sqlite3").exists()


WRITER = """
import sys
from twisted.internet import reactor, task
from twisted_chat.core.events import HistoryEntry
from twisted_chat.stores.history import SQLiteHistory

store = SQLiteHistory.open(sys.argv[1], reactor)

def burst(n):
    for i in range(50):
        k = n * 50 + i
        store.add("#a", HistoryEntry(float(k), "w", f"line {k}", f"{k}-0"))
    store.flush().addCallback(lambda _: acked(n))

def acked(n):
    print(f"ACK {n}", flush=True)
    reactor.callLater(0, burst, n + 1)

reactor.callWhenRunning(burst, 0)
reactor.run()
"""


def test_sigkillDuringBurstLosesNoAcknowledgedBatch(tmp_path: Path) -> None:
    """
    When the process is killed with SIGKILL in the middle of a burst of
    writes, the file opens, passes its integrity check and holds every
    batch acknowledged before the kill.
    """
    path = tmp_path / "killed.sqlite3"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked = -1
    deadline = time.monotonic() + KILL_TIMEOUT
    try:
        assert writer.stdout is not None
        while acked < 20 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            acked = int(line.split()[1])
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(KILL_TIMEOUT)
    assert acked >= 20, "the writer did not get going"
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count = connection.execute("SELECT count(*) FROM lines").fetchone()[0]
        kept = {row[0] for row in connection.execute("SELECT msgid FROM lines")}
    finally:
        connection.close()
    assert count >= (acked + 1) * 50
    assert {f"{k}-0" for k in range((acked + 1) * 50)} <= kept
    checkFile(str(path))
