"""
Tab completion for the terminal client: command names, the user names and
room names the client has seen in the server's lines, and the cycling of a
second Tab through the matches.

Pure data and functions: the terminal calls L{Completer.complete} with the
typed line and draws the result.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.commands import COMMANDS
from ..core.text import foldName

COMMAND_NAMES = sorted(name for name in COMMANDS if name.startswith("@"))

_USER_ARGUMENT = re.compile(r"\s*@PM\s+", re.IGNORECASE)
_ROOM_ARGUMENT = re.compile(r"\s*@(?:JOIN|LEAVE|WHO)\s+", re.IGNORECASE)


class Seen:
    """
    The user and room names the client has seen in the server's lines,
    each kept in the spelling last seen and found regardless of case.

    @ivar me: the user's own name, never offered.
    """

    def __init__(self) -> None:
        self.me: str | None = None
        self._users: dict[str, str] = {}
        self._rooms: dict[str, str] = {}

    def addUsers(self, names: Iterable[str]) -> None:
        """
        Remember the users C{names}.
        """
        self._users.update((foldName(name), name) for name in names if name)

    def removeUser(self, name: str) -> None:
        """
        Forget the user C{name}, who left the chat.
        """
        self._users.pop(foldName(name), None)

    def addRooms(self, rooms: Iterable[str]) -> None:
        """
        Remember the rooms C{rooms} (each with its C{#}).
        """
        self._rooms.update((foldName(room), room) for room in rooms if room)

    def removeRoom(self, room: str) -> None:
        """
        Forget C{room}, which the server says does not exist.
        """
        self._rooms.pop(foldName(room), None)

    def users(self) -> list[str]:
        """
        The users seen, but the user, sorted regardless of case.
        """
        me = foldName(self.me) if self.me is not None else None
        return [name for key, name in sorted(self._users.items()) if key != me]

    def rooms(self) -> list[str]:
        """
        The rooms seen, sorted regardless of case.
        """
        return [room for _, room in sorted(self._rooms.items())]


@dataclass(frozen=True)
class Completion:
    """
    The ways to complete the word that starts at C{start} and ends at the
    cursor: each candidate replaces it whole, separator included.
    """

    start: int
    candidates: tuple[str, ...]


def completions(before: str, seen: Seen) -> Completion | None:
    """
    Complete the word that ends C{before}, the text before the cursor: a
    command name (C{@JO} gives C{@JOIN }), a user after C{@PM } or at the
    start of the line (C{bo} gives C{bob: }), a room after C{@JOIN },
    C{@LEAVE } or C{@WHO } (with or without its C{#}).

    @return: the candidates, or L{None} where nothing is completed.
    """
    if (argument := _USER_ARGUMENT.match(before)) is not None:
        word = key = before[argument.end() :]
        names, separator = seen.users(), " "
    elif (argument := _ROOM_ARGUMENT.match(before)) is not None:
        word = before[argument.end() :]
        key = word if word.startswith("#") else "#" + word
        names, separator = seen.rooms(), " "
    else:
        word = key = before.lstrip()
        if word.startswith("@"):
            names, separator = COMMAND_NAMES, " "
        else:
            names, separator = seen.users(), ": "
    if any(char.isspace() for char in word):
        return None
    folded = foldName(key)
    found = tuple(
        name + separator for name in names if foldName(name).startswith(folded)
    )
    if not found:
        return None
    return Completion(len(before) - len(word), found)


class Completer:
    """
    What Tab does to a line: the first Tab puts in the first candidate, each
    Tab right after it the next one, round the list, until L{reset}.
    """

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self._cycle: tuple[Completion, int] | None = None

    def complete(self, line: str, cursor: int) -> tuple[str, int] | None:
        """
        Tab with the cursor at C{cursor} in C{line}.

        @return: the new line and cursor, or L{None} if there is nothing to
            complete.
        """
        if self._cycle is not None:
            completion, index = self._cycle
            index = (index + 1) % len(completion.candidates)
        else:
            found = completions(line[:cursor], self.seen)
            if found is None:
                return None
            completion, index = found, 0
        self._cycle = completion, index
        candidate = completion.candidates[index]
        end = completion.start + len(candidate)
        return line[: completion.start] + candidate + line[cursor:], end

    def reset(self) -> None:
        """
        A key other than Tab was pressed: the next Tab starts afresh.
        """
        self._cycle = None
