"""
Room history in an SQLite file, through C{twisted.enterprise.adbapi}, so
that every query runs in a thread of its own and never on the reactor.

Lines are written in batches (one transaction for all the lines of a short
interval), in WAL mode: a crash loses at most the batch not yet written and
never corrupts the file.  The last lines of the rooms asked about recently
are kept in memory as well, so that the replay at login or on joining a room
is answered at once, before any later line.
"""

import os
import sqlite3
from collections import OrderedDict, deque
from typing import Any

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ..batch import PassBatch
from ..core.events import HistoryEntry
from ..core.history import Around, HistoryQuery, IHistoryStore, Reference

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    time REAL NOT NULL,
    msgid TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'line'
);
CREATE INDEX IF NOT EXISTS lines_by_time ON lines (room, time);
"""
# One index, by room and time (and so rowid, which SQLite keeps in every
# index entry): a second one, by line id, would double the cost of a write.
# A line's id starts with its time in milliseconds, and its time is that
# millisecond, so a line is found by time first.

# Seconds between writes while lines keep coming (a lone line is written at
# the end of its reactor pass).
WRITE_INTERVAL = 0.1
# Seconds between prunings of the rooms that grew past the retention.
PRUNE_INTERVAL = 60.0
# Lines kept in memory per room, and rooms kept so.
TAIL_LINES = 200
TAIL_ROOMS = 100


class HistoryFileError(Exception):
    """
    The history file cannot be used; the message says why and what to do.
    """


def checkFile(path: str) -> None:
    """
    Make sure the file at C{path}, if there is one, is a history file that
    opens cleanly, without changing it.

    @raise HistoryFileError: if it is not.
    """
    if not os.path.exists(path):
        return
    problem = None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            checked = connection.execute("PRAGMA quick_check").fetchone()
            tables = {
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as e:
        problem = str(e)
    else:
        if checked != ("ok",):
            problem = f"integrity check failed ({checked[0]})"
        elif tables and ("lines" not in tables or version != SCHEMA_VERSION):
            problem = "it is not a twisted-chat history file"
    if problem is not None:
        raise HistoryFileError(
            f"cannot use the history file {path}: {problem}. It was left "
            "untouched; move it away (or give --history another path, or "
            "--history none) to start."
        )


def _prepare(connection: sqlite3.Connection) -> None:
    """
    Set up a new connection of the pool: WAL mode, and the schema.
    """
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.commit()


_COLUMNS = "SELECT time, sender, text, msgid, origin FROM lines WHERE room = ?"


def _bound(
    transaction: Any, room: str, reference: Reference, after: bool, inclusive: bool
) -> tuple[str, list[Any]] | None:
    """
    The SQL condition for lines after (or before) C{reference}, or L{None}
    if it names a line that is not there.
    """
    operator = (">" if after else "<") + ("=" if inclusive else "")
    if reference.msgid is None:
        return f" AND time {operator} ?", [reference.time]
    transaction.execute(
        "SELECT time, id FROM lines WHERE room = ? AND time = ? AND msgid = ?",
        (room, reference.ms / 1000, reference.msgid),
    )
    row = transaction.fetchone()
    if row is None:
        return None
    return f" AND (time, id) {operator} (?, ?)", list(row)


def _lines(
    transaction: Any,
    room: str,
    bounds: list[tuple[str, list[Any]] | None],
    newest: bool,
    limit: int,
) -> list[HistoryEntry]:
    """
    Up to C{limit} lines of C{room} within C{bounds}, the newest or the
    oldest of them, oldest first.
    """
    if any(bound is None for bound in bounds):
        return []
    sql, parameters = _COLUMNS, [room]
    for condition, values in filter(None, bounds):
        sql += condition
        parameters += values
    order = "DESC" if newest else "ASC"
    sql += f" ORDER BY time {order}, id {order} LIMIT ?"
    transaction.execute(sql, [*parameters, limit])
    rows = transaction.fetchall()
    entries = [HistoryEntry(*row) for row in rows]
    return entries[::-1] if newest else entries


def _select(transaction: Any, room: str, query: HistoryQuery) -> list[HistoryEntry]:
    """
    The lines of C{room} that C{query} asks for, oldest first.
    """
    first, second, limit = query.first, query.second, query.limit
    if query.around is Around.LATEST:
        bounds = (
            [] if first is None else [_bound(transaction, room, first, True, False)]
        )
        return _lines(transaction, room, bounds, True, limit)
    assert first is not None
    if query.around is Around.BEFORE:
        before = _bound(transaction, room, first, False, False)
        return _lines(transaction, room, [before], True, limit)
    if query.around is Around.AFTER:
        after = _bound(transaction, room, first, True, False)
        return _lines(transaction, room, [after], False, limit)
    if query.around is Around.AROUND:
        before = _bound(transaction, room, first, False, False)
        since = _bound(transaction, room, first, True, True)
        earlier = _lines(transaction, room, [before], True, limit // 2)
        return earlier + _lines(transaction, room, [since], False, limit - len(earlier))
    assert second is not None
    forward = first.ms <= second.ms
    bounds = [
        _bound(transaction, room, first, forward, False),
        _bound(transaction, room, second, not forward, False),
    ]
    return _lines(transaction, room, bounds, not forward, limit)


class _Tail:
    """
    The last lines of one room in memory; while the first query for it
    runs, the lines said meanwhile wait to be put after its result.
    """

    __slots__ = ("entries", "loading", "waiting")

    def __init__(self, pending: list[HistoryEntry]) -> None:
        self.entries: deque[HistoryEntry] = deque(maxlen=TAIL_LINES)
        self.loading: list[HistoryEntry] | None = list(pending)
        self.waiting: list[tuple[int, Deferred[list[HistoryEntry]]]] = []

    def add(self, entry: HistoryEntry) -> None:
        if self.loading is not None:
            self.loading.append(entry)
        else:
            self.entries.append(entry)

    def loaded(self, entries: list[HistoryEntry]) -> None:
        assert self.loading is not None
        self.entries.extend(entries)
        self.entries.extend(self.loading)
        self.loading = None
        waiting, self.waiting = self.waiting, []
        for count, d in waiting:
            d.callback(self.last(count))

    def last(self, count: int) -> list[HistoryEntry]:
        entries = self.entries
        return list(entries)[-count:] if count < len(entries) else list(entries)


@implementer(IHistoryStore)
class SQLiteHistory:
    """
    The history of every room in one SQLite file, C{retention} lines per
    room (0: no limit).
    """

    log = Logger()

    def __init__(
        self,
        pool: adbapi.ConnectionPool,
        clock: IReactorTime,
        retention: int = 10000,
        batchWrites: bool = True,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self.retention = retention
        self._batch: PassBatch[tuple[str, HistoryEntry]] = PassBatch(
            clock if batchWrites else None, self._write, WRITE_INTERVAL
        )
        self._writes: list[Deferred[None]] = []
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        self._grown: set[str] = set()
        self._pruning = LoopingCall(self._prune)
        self._pruning.clock = clock

    @classmethod
    def open(
        cls, path: str, clock: IReactorTime, retention: int = 10000
    ) -> "SQLiteHistory":
        """
        The history in the file at C{path}, created if missing.

        @raise HistoryFileError: if the file is there but unusable.
        """
        checkFile(path)
        pool = adbapi.ConnectionPool(
            "sqlite3",
            path,
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_openfun=_prepare,
            cp_reactor=clock,
        )
        return cls(pool, clock, retention)

    def start(self) -> None:
        """
        Begin pruning the rooms that grow past the retention.
        """
        if self.retention and not self._pruning.running:
            self._pruning.start(PRUNE_INTERVAL, now=False)

    # IHistoryStore

    def add(self, room: str, entry: HistoryEntry) -> None:
        self._batch.add((room, entry))
        tail = self._tails.get(room)
        if tail is not None:
            tail.add(entry)
        self._grown.add(room)

    def latest(self, room: str, count: int) -> "Deferred[list[HistoryEntry]]":
        tail = self._tails.get(room)
        if tail is not None:
            self._tails.move_to_end(room)
            if tail.loading is None and (
                count <= len(tail.entries) or len(tail.entries) < TAIL_LINES
            ):
                return succeed(tail.last(count))
            if tail.loading is not None and count <= TAIL_LINES:
                d: Deferred[list[HistoryEntry]] = Deferred()
                tail.waiting.append((count, d))
                return d
        if count > TAIL_LINES:
            return self._query(room, count)
        tail = self._tails[room] = _Tail(self._unwritten(room))
        while len(self._tails) > TAIL_ROOMS:
            self._tails.popitem(last=False)
        d = Deferred()
        tail.waiting.append((count, d))
        self._query(room, TAIL_LINES, unwritten=False).addCallback(tail.loaded)
        return d

    def _query(
        self, room: str, count: int, unwritten: bool = True
    ) -> "Deferred[list[HistoryEntry]]":
        """
        The last C{count} lines of C{room} from the file, oldest first, with
        the lines not yet written after them if C{unwritten}.
        """
        pending = self._unwritten(room)

        def read(transaction: Any) -> list[HistoryEntry]:
            transaction.execute(
                _COLUMNS + " ORDER BY time DESC, id DESC LIMIT ?",
                (room, count),
            )
            return [HistoryEntry(*row) for row in reversed(transaction.fetchall())]

        def merged(entries: list[HistoryEntry]) -> list[HistoryEntry]:
            return (entries + pending)[-count:] if unwritten else entries

        d: Deferred[list[HistoryEntry]] = self._pool.runInteraction(read)
        return d.addCallback(merged)

    def query(self, room: str, query: HistoryQuery) -> "Deferred[list[HistoryEntry]]":
        self.flush()
        d: Deferred[list[HistoryEntry]] = self._pool.runInteraction(
            _select, room, query
        )
        return d

    def _unwritten(self, room: str) -> list[HistoryEntry]:
        """
        The lines of C{room} not yet handed to the database thread.
        """
        return [entry for name, entry in self._batch.pending if name == room]

    def flush(self) -> "Deferred[None]":
        """
        Write what is pending now; fire once it is on disk.
        """
        self._batch.flush()
        return self._drained()

    def _drained(self) -> "Deferred[None]":
        if not self._writes:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._writes[-1].addBoth(lambda _: d.callback(None))
        return d

    def close(self) -> "Deferred[None]":
        if self._pruning.running:
            self._pruning.stop()
        d = self.flush()
        d.addCallback(lambda _: self._pool.close())
        return d

    # Writing

    def _write(self, batch: list[tuple[str, HistoryEntry]]) -> None:
        rows = [
            (room, entry.time, entry.msgid, entry.sender, entry.text, entry.origin)
            for room, entry in batch
        ]

        def insert(transaction: Any) -> None:
            transaction.executemany(
                "INSERT INTO lines (room, time, msgid, sender, text, origin)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        d: Deferred[None] = self._pool.runInteraction(insert)
        self._writes.append(d)

        def written(result: object) -> None:
            self._writes.remove(d)

        d.addErrback(
            lambda failure: self.log.failure(
                "Could not write {count} history lines", failure, count=len(rows)
            )
        )
        d.addBoth(written)

    def _prune(self) -> "Deferred[None]":
        """
        Keep C{retention} lines in each room that grew since the last time.
        """
        rooms, self._grown = sorted(self._grown), set()
        retention = self.retention

        def prune(transaction: Any) -> None:
            for room in rooms:
                transaction.execute(
                    "DELETE FROM lines WHERE room = ? AND (time, id) <= (SELECT"
                    " time, id FROM lines WHERE room = ?"
                    " ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?)",
                    (room, room, retention),
                )

        d: Deferred[None] = self._pool.runInteraction(prune)
        return d.addErrback(
            lambda failure: self.log.failure("Could not prune the history", failure)
        )
