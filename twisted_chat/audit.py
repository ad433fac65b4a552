"""
The audit log (C{server.log}): who registered, connected, talked, paired up
and left, one timestamped line per event in the course project's format.

Events go through C{twisted.logger}, to a size-rotated file and to twistd's
own log.  Private-chat text and passwords are never passed here.
"""

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel
from twisted.python.logfile import LogFile
from zope.interface import implementer

from .batch import PassBatch

NAMESPACE = "twisted_chat.audit"

REGISTERED = "User with {name} successfully registered."
LOGGED_IN = "User {name} logged in."
ACCEPTED = "Accepted new connection from {host}:{port} username:{name}"
MESSAGE = "Received message from {name}: {text}"
ROOM_MESSAGE = "Received message from {name} in {room}: {text}"
JOINED_ROOM = "User {name} joined room {room}"
LEFT_ROOM = "User {name} left room {room}"
# The room whose lines are recorded in the course project's own words.
GENERAL = "#general"
PM_REQUESTED = "User: {requester} requested private chat with user: {target}"
PM_STARTED = "The PM start between {requester} and {target}"
PM_CLOSED = "PM between users {first} and {second} closed."
LOGGED_OUT = "{name} logged out."
LOST_CONNECTION = "Lost connection from {name}"
ONLINE_USERS = "Online users ({count}): {names}"
ONLINE_USERS_LIMIT = 50
# Under a steady load, audit lines go out at most this often (seconds): one
# write to the file, and one event to twistd's log, for all lines since the
# last.  A lone event still goes at the end of its reactor pass.
WRITE_INTERVAL = 0.1

HEARTBEAT_LOST = (
    "Could not receive any heartbeat from USER: {name} for {timeout:g} secs "
    "and he/she became offline!"
)


def formatTimestamp(when: float) -> str:
    """
    C{YYYY-MM-DD HH:MM:SS,mmm} in local time, as Python's logging writes it.
    """
    seconds = int(when)
    return f"{_formatSecond(seconds)},{int((when - seconds) * 1000):03d}"


@lru_cache(maxsize=4)
def _formatSecond(seconds: int) -> str:
    """
    C{YYYY-MM-DD HH:MM:SS} in local time: the same for every line of a
    second, so formatted once.
    """
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


class AuditOutput(Protocol):
    """
    Where audit events go: a log observer that holds lines back for a
    while, and so must be closed to pass on the last of them.
    """

    def __call__(self, event: LogEvent) -> None: ...

    def flush(self) -> None:
        """
        Pass on the lines held back so far.
        """

    def close(self) -> None:
        """
        Pass on the lines held back, and stop.
        """


@implementer(ILogObserver)
class AuditFileObserver:
    """
    Write audit events, one timestamped line each, to a rotating log file.

    Given a clock, lines are written together at the end of a reactor pass,
    at most every L{WRITE_INTERVAL} seconds (the file is unbuffered: one
    system call per write).
    """

    def __init__(self, logfile: LogFile, clock: IReactorTime | None = None) -> None:
        self._logfile = logfile
        self._lines: PassBatch[str] = PassBatch(
            clock, lambda lines: logfile.write("".join(lines)), WRITE_INTERVAL
        )

    def __call__(self, event: LogEvent) -> None:
        text = event.get("audit")
        if text is not None:
            self._lines.add(f"{formatTimestamp(event['log_time'])} {text}\n")

    def flush(self) -> None:
        self._lines.flush()

    def close(self) -> None:
        self.flush()
        self._logfile.close()

    @classmethod
    def open(
        cls,
        path: str,
        rotateLength: int = 10_000_000,
        maxRotatedFiles: int = 5,
        clock: IReactorTime | None = None,
    ) -> "AuditFileObserver":
        """
        Append to the log file at C{path}, rotated past C{rotateLength} bytes.
        """
        logfile = LogFile.fromFullPath(
            path, rotateLength=rotateLength, maxRotatedFiles=maxRotatedFiles
        )
        return cls(logfile, clock)


@implementer(ILogObserver)
class BatchedForwarder:
    """
    Pass audit lines on to another observer (twistd's log) in batches, as
    one event at most every L{WRITE_INTERVAL} seconds, so that a busy chat
    costs twistd's log a few formatted, flushed writes a second, not one
    per line.
    """

    def __init__(self, observer: ILogObserver, clock: IReactorTime) -> None:
        log = Logger(namespace=NAMESPACE, observer=observer)
        self._lines: PassBatch[str] = PassBatch(
            clock,
            lambda lines: log.info("{audit}", audit="\n".join(lines)),
            WRITE_INTERVAL,
        )

    def __call__(self, event: LogEvent) -> None:
        text = event.get("audit")
        if text is not None:
            self._lines.add(text)

    def flush(self) -> None:
        self._lines.flush()

    def close(self) -> None:
        self.flush()


class AuditLog:
    """
    The audit events a node records for its own sessions.

    Each is a C{twisted.logger} event, handed to the observers directly:
    what a L{Logger} does for every call (levels, formatting and source
    bookkeeping) would cost a busy room more than the line itself.
    """

    log = Logger()

    def __init__(self, *observers: ILogObserver) -> None:
        self._observers = observers

    def _emit(self, text: str) -> None:
        event = {
            "audit": text,
            "log_format": "{audit}",
            "log_namespace": NAMESPACE,
            "log_level": LogLevel.info,
            "log_time": time.time(),
        }
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                self.log.failure("An audit log observer failed")

    def registered(self, name: str) -> None:
        self._emit(REGISTERED.format(name=name))

    def loggedIn(self, name: str, host: str, port: int) -> None:
        self._emit(LOGGED_IN.format(name=name))
        self._emit(ACCEPTED.format(host=host, port=port, name=name))

    def message(self, name: str, text: str, room: str = GENERAL) -> None:
        if room == GENERAL:
            self._emit(MESSAGE.format(name=name, text=text))
        else:
            self._emit(ROOM_MESSAGE.format(name=name, room=room, text=text))

    def joinedRoom(self, name: str, room: str) -> None:
        self._emit(JOINED_ROOM.format(name=name, room=room))

    def leftRoom(self, name: str, room: str) -> None:
        self._emit(LEFT_ROOM.format(name=name, room=room))

    def privateChatRequested(self, requester: str, target: str) -> None:
        self._emit(PM_REQUESTED.format(requester=requester, target=target))

    def privateChatStarted(self, requester: str, target: str) -> None:
        self._emit(PM_STARTED.format(requester=requester, target=target))

    def privateChatClosed(self, first: str, second: str) -> None:
        self._emit(PM_CLOSED.format(first=first, second=second))

    def loggedOut(self, name: str) -> None:
        self._emit(LOGGED_OUT.format(name=name))

    def lostConnection(self, name: str) -> None:
        self._emit(LOST_CONNECTION.format(name=name))

    def heartbeatLost(self, name: str, timeout: float) -> None:
        self._emit(HEARTBEAT_LOST.format(name=name, timeout=timeout))

    def onlineUsers(self, names: Sequence[str]) -> None:
        shown = ", ".join(names[:ONLINE_USERS_LIMIT])
        self._emit(ONLINE_USERS.format(count=len(names), names=shown))
