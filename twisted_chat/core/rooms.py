"""
The rooms of one node as its sessions see them: who of this node is in
which room, each session's current room, and the fan-out loop that hands a
room's line to its members, rendered once per front-end kind.

L{LocalRooms} is the whole truth for a single node (L{LocalHub}) and this
node's mirror of its own sessions for a hub spanning several nodes.
"""

from collections.abc import Iterable, Iterator, Sequence

from twisted.internet.interfaces import IReactorTime

from .events import MissedLines, UserJoined, UserLeft
from .hub import GENERAL_KEY, Broadcast, IChatClient, IRenderer, Session
from .text import GENERAL, foldName

_Groups = tuple[tuple[IRenderer, bool, tuple[IChatClient, ...]], ...]


class Audience:
    """
    The sessions that get a room's lines now (its members, but those whose
    front-end hides rooms during a private chat), with their clients grouped
    by renderer and by whether the room is their current one, so that the
    fan-out renders a line once per group.
    """

    __slots__ = ("_groups", "_sessions", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._sessions: dict[str, Session] = {}
        # The clients by renderer, rebuilt after a change (None until then).
        self._groups: _Groups | None = None

    def __contains__(self, key: str) -> bool:
        return key in self._sessions

    def __iter__(self) -> Iterator[str]:
        return iter(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def add(self, session: Session) -> None:
        """
        Add C{session}, or put it in place of the session of the same name.
        """
        self._sessions[session.key] = session
        self._groups = None

    def discard(self, key: str) -> None:
        if self._sessions.pop(key, None) is not None:
            self._groups = None

    def changed(self) -> None:
        """
        A member's current room changed: regroup at the next line.
        """
        self._groups = None

    def groups(self) -> _Groups:
        """
        The clients by renderer and current-room flag, kept until the
        audience changes.  A snapshot: a delivery may end a session (a full
        send queue) and so change the audience while the caller loops.
        """
        groups = self._groups
        if groups is None:
            byKind: dict[tuple[IRenderer, bool], list[IChatClient]] = {}
            for session in self._sessions.values():
                renderer = session.client.renderer
                current = session.current == self.key or not renderer.currentMatters
                byKind.setdefault((renderer, current), []).append(session.client)
            groups = tuple(
                (renderer, current, tuple(clients))
                for (renderer, current), clients in byKind.items()
            )
            self._groups = groups
        return groups

    def send(self, event: Broadcast, exclude: IChatClient | None = None) -> None:
        """
        Deliver C{event} to every client but C{exclude}.
        """
        for renderer, current, clients in self.groups():
            data = renderer.render(event, current)
            for client in clients:
                if client is not exclude:
                    client.deliver(data)

    def sendAll(self, lines: Sequence[tuple[Broadcast, IChatClient | None]]) -> None:
        """
        Deliver each event of C{lines} to every client but the one beside
        it, in order: one delivery per client for them all (each rendered
        once per group), not one per line.
        """
        excluded = {exclude for _, exclude in lines if exclude is not None}
        for renderer, current, clients in self.groups():
            rendered = [(renderer.render(event, current), ex) for event, ex in lines]
            whole = b"".join([data for data, _ in rendered])
            for client in clients:
                if client not in excluded:
                    client.deliver(whole)
                    continue
                data = b"".join([data for data, ex in rendered if ex is not client])
                if data:
                    client.deliver(data)

    def announce(self, event: Broadcast, exclude: IChatClient | None = None) -> None:
        """
        Announce C{event} to every client but C{exclude} (a notice, which
        may wait a little to share a write).
        """
        for renderer, current, clients in self.groups():
            data = renderer.render(event, current)
            for client in clients:
                if client is not exclude:
                    client.announce(data)


class Room:
    """
    A room of this node: its name as first spelled, its members here, its
    audience, and how many lines were said in it (to tell a user back from
    a private chat what was missed).
    """

    __slots__ = ("audience", "key", "lines", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = foldName(name)
        self.members: dict[str, Session] = {}
        self.audience = Audience(self.key)
        self.lines = 0


class LocalRooms:
    """
    The rooms that have members on this node, and their sessions.  C{#general}
    always exists.
    """

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {GENERAL_KEY: Room(GENERAL)}

    @property
    def general(self) -> Room:
        return self.rooms[GENERAL_KEY]

    def get(self, key: str) -> Room | None:
        return self.rooms.get(key)

    def __iter__(self) -> Iterator[Room]:
        return iter(self.rooms.values())

    def enter(self, session: Session, name: str, hidden: bool) -> Room:
        """
        Put C{session} in the room C{name} (creating it here), hearing its
        lines unless C{hidden}.
        """
        key = foldName(name)
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(name)
        room.members[session.key] = session
        session.rooms[key] = room.name
        if not hidden:
            room.audience.add(session)
        return room

    def exit(self, session: Session, key: str) -> Room | None:
        """
        Take C{session} out of the room C{key}; the room is forgotten here
        once no session of this node is in it (but C{#general}).
        """
        room = self.rooms.get(key)
        session.rooms.pop(key, None)
        if room is None:
            return None
        room.members.pop(session.key, None)
        room.audience.discard(session.key)
        if not room.members and key != GENERAL_KEY:
            del self.rooms[key]
        return room

    def exitAll(self, session: Session) -> list[Room]:
        """
        Take C{session} out of every room; return those it was in.
        """
        return [
            room
            for key in list(session.rooms)
            if (room := self.exit(session, key)) is not None
        ]

    def replace(self, old: Session, new: Session) -> None:
        """
        C{new} takes over C{old}'s rooms and current room (a takeover).
        """
        new.rooms, new.current = old.rooms, old.current
        new.missedFrom = old.missedFrom
        for key in new.rooms:
            room = self.rooms[key]
            room.members[new.key] = new
            if new.key in room.audience:
                room.audience.add(new)

    def setCurrent(self, session: Session, key: str) -> None:
        """
        Make the room C{key} (one C{session} is in) its current room.
        """
        old, session.current = session.current, key
        for changed in (old, key):
            room = self.rooms.get(changed)
            if room is not None:
                room.audience.changed()

    def hide(self, session: Session) -> None:
        """
        C{session} hears no room until L{show}; count from now what its
        current room says meanwhile.
        """
        for key in session.rooms:
            self.rooms[key].audience.discard(session.key)
        current = self.rooms.get(session.current)
        session.missedFrom = current.lines if current is not None else 0

    def show(self, session: Session) -> MissedLines | None:
        """
        C{session} hears its rooms again; return what its current room said
        while it was hidden, if anything.
        """
        for key in session.rooms:
            self.rooms[key].audience.add(session)
        current = self.rooms.get(session.current)
        if current is None:
            return None
        missed = current.lines - session.missedFrom
        return MissedLines(current.name, missed) if missed > 0 else None

    def announceOnce(self, rooms: Iterable[Room], event: UserJoined | UserLeft) -> None:
        """
        Announce C{event} to the audiences of C{rooms}, once to each client
        however many of those rooms it is in.
        """
        rooms = list(rooms)
        if len(rooms) == 1:
            rooms[0].audience.announce(event)
            return
        seen: set[IChatClient] = set()
        byRenderer: dict[IRenderer, list[IChatClient]] = {}
        for room in rooms:
            for renderer, _, clients in room.audience.groups():
                for client in clients:
                    if client not in seen:
                        seen.add(client)
                        byRenderer.setdefault(renderer, []).append(client)
        for renderer, recipients in byRenderer.items():
            data = renderer.render(event, True)
            for client in recipients:
                client.announce(data)


class MessageIds:
    """
    Ids for room lines, C{<milliseconds>-<sequence>}, in the order the lines
    were said: the time, and a sequence within one millisecond (which also
    carries on if the clock steps back).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._ms = -1
        self._sequence = 0

    def next(self) -> tuple[float, str]:
        """
        A new id and the time it stands for (in step with the ids, even if
        the clock steps back).
        """
        ms = int(self._clock.seconds() * 1000)
        if ms > self._ms:
            self._ms, self._sequence = ms, 0
        else:
            self._sequence += 1
        return self._ms / 1000, f"{self._ms}-{self._sequence}"
