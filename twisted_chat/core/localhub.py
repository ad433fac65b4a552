"""
The hub of a single node: all live state in this process.
"""

from collections.abc import Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

from .events import (
    ChatLine,
    HistoryEntry,
    Notification,
    PartnerLeft,
    PrivateLine,
    PrivateRejected,
    PrivateRequest,
    PrivateStarted,
    Request,
    RequestFromCancelled,
    RequestFromExpired,
    RequestResult,
    RequestToCancelled,
    RequestToExpired,
    RoomInfo,
    RoomJoined,
    RoomLeft,
    UserJoined,
    UserLeft,
    UserStatus,
)
from .history import HistoryQuery, IHistoryStore
from .hub import (
    GENERAL_KEY,
    REQUEST_TIMEOUT,
    Departure,
    IHub,
    Join,
    Joined,
    Left,
    PrivateEnded,
    Session,
)
from .rooms import LocalRooms, MessageIds
from .text import foldName


class _PendingRequest:
    __slots__ = ("requester", "target", "timer")

    def __init__(self, requester: Session, target: Session) -> None:
        self.requester = requester
        self.target = target
        self.timer: IDelayedCall | None = None


@implementer(IHub)
class LocalHub:
    """
    The hub of a single node: all live state in this process.

    It is the one owner of who is online, who is in which room, who asked
    whom for a private chat and who is paired with whom; all are keyed by
    folded name, so they survive a takeover.  Room lines go to C{history}
    when there is one.
    """

    def __init__(
        self,
        clock: IReactorTime,
        history: IHistoryStore | None = None,
        maxRoomsPerUser: int = 0,
        maxRooms: int = 0,
    ) -> None:
        self._clock = clock
        self._history = history
        self.maxRoomsPerUser = maxRoomsPerUser
        self.maxRooms = maxRooms
        self._sessions: dict[str, Session] = {}
        self._rooms = LocalRooms()
        self._ids = MessageIds(clock)
        self._partners: dict[str, str] = {}
        self._requests: dict[str, _PendingRequest] = {}

    @property
    def sessionCount(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        """
        Nothing to connect to: all state is in this process.
        """

    def stop(self) -> "Deferred[None]":
        if self._history is None:
            return succeed(None)
        return self._history.close()

    def _notify(self, key: str, event: Notification) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.client.notify(event)

    def _hidden(self, session: Session) -> bool:
        """
        Whether C{session} hears no room now: it is in a private chat and its
        front-end hides rooms meanwhile.
        """
        return (
            session.key in self._partners and session.client.renderer.privateHidesRooms
        )

    # Sessions

    def attach(self, session: Session) -> "Deferred[bool]":
        old = self._sessions.get(session.key)
        self._sessions[session.key] = session
        if old is not None:
            self._rooms.replace(old, session)
            if self._hidden(old) != self._hidden(session):
                if self._hidden(session):
                    self._rooms.hide(session)
                else:
                    self._rooms.show(session)
            for request in self._requests.values():
                if request.requester is old:
                    request.requester = session
                if request.target is old:
                    request.target = session
            old.client.supersede()
            return succeed(True)
        general = self._rooms.general
        general.audience.announce(UserJoined(session.name, session.origin))
        self._rooms.enter(session, general.name, hidden=False)
        session.current = GENERAL_KEY
        return succeed(False)

    def detach(
        self, session: Session, reason: str = ""
    ) -> "Deferred[Departure | None]":
        if self._sessions.get(session.key) is not session:
            return succeed(None)
        request = self._requests.get(session.key)
        if request is not None:
            self._dropRequest(request)
            if request.requester is session:
                self._notify(request.target.key, RequestFromCancelled(session.name))
            else:
                self._notify(request.requester.key, RequestToCancelled(session.name))
        partner = self._unpair(session)
        if partner is not None:
            self._partnerLeft(partner, session.name)
        del self._sessions[session.key]
        rooms = self._rooms.exitAll(session)
        if rooms:
            left = UserLeft(session.name, session.origin, reason)
            self._rooms.announceOnce(rooms, left)
        return succeed(Departure(partner.name if partner else None))

    # Lines

    def sayInRoom(
        self, session: Session, room: str, text: str, notice: bool = False
    ) -> str | None:
        target = self._rooms.get(room)
        if target is None or session.key not in target.members:
            return None
        now, msgid = self._ids.next()
        origin = session.origin
        line = ChatLine(target.name, session.name, text, now, msgid, origin, notice)
        target.lines += 1
        client = session.client
        target.audience.send(line, None if client.echoes else client)
        if self._history is not None:
            entry = HistoryEntry(now, session.name, text, msgid, origin)
            self._history.add(room, entry)
        return target.name

    def sayToPartner(self, session: Session, text: str) -> bool:
        partnerKey = self._partners.get(session.key)
        if partnerKey is None:
            return False
        self._notify(partnerKey, PrivateLine(session.name, text, session.origin))
        return True

    def recentLines(
        self, room: str, count: int
    ) -> "Deferred[list[HistoryEntry]] | None":
        if self._history is None:
            return None
        return self._history.latest(room, count)

    def queryHistory(
        self, room: str, query: HistoryQuery
    ) -> "Deferred[list[HistoryEntry]] | None":
        if self._history is None:
            return None
        return self._history.query(room, query)

    # Rooms

    def joinRoom(self, session: Session, name: str) -> "Deferred[Joined]":
        key = foldName(name)
        room = self._rooms.get(key)
        if key in session.rooms and room is not None:
            self._rooms.setCurrent(session, key)
            return succeed(Joined(Join.ALREADY_IN, room.name, len(room.members)))
        if self.maxRoomsPerUser and len(session.rooms) >= self.maxRoomsPerUser:
            return succeed(Joined(Join.TOO_MANY_JOINED, name))
        if room is None and self.maxRooms and len(self._rooms.rooms) >= self.maxRooms:
            return succeed(Joined(Join.TOO_MANY_ROOMS, name))
        if room is not None:
            room.audience.announce(RoomJoined(session.name, room.name, session.origin))
        hidden = self._hidden(session)
        room = self._rooms.enter(session, room.name if room else name, hidden)
        self._rooms.setCurrent(session, key)
        if hidden:
            self._rooms.hide(session)
        return succeed(Joined(Join.JOINED, room.name, len(room.members)))

    def leaveRoom(
        self, session: Session, room: str, reason: str = ""
    ) -> "Deferred[Left | None]":
        if room not in session.rooms:
            return succeed(None)
        left = self._rooms.exit(session, room)
        assert left is not None
        left.audience.announce(
            RoomLeft(session.name, left.name, session.origin, reason)
        )
        if session.current != room:
            return succeed(Left(left.name))
        general = self._rooms.general
        if GENERAL_KEY not in session.rooms:
            # Only a front-end whose users may leave #general gets here; such
            # a session keeps no current room of its own: #general stands in.
            session.current = GENERAL_KEY
            return succeed(Left(left.name))
        self._rooms.setCurrent(session, GENERAL_KEY)
        if self._hidden(session):
            self._rooms.hide(session)
        return succeed(Left(left.name, general.name, len(general.members)))

    def rooms(self) -> "Deferred[list[RoomInfo]]":
        rooms = self._rooms.rooms
        return succeed(
            [
                RoomInfo(rooms[key].name, len(rooms[key].members))
                for key in sorted(rooms)
                if rooms[key].members
            ]
        )

    def roomsOf(self, name: str) -> "Deferred[list[str]]":
        session = self._sessions.get(foldName(name))
        if session is None:
            return succeed([])
        return succeed([session.rooms[key] for key in sorted(session.rooms)])

    def roomMembers(
        self, room: str
    ) -> "Deferred[tuple[str, list[tuple[str, str]]] | None]":
        found = self._rooms.get(room)
        if found is None:
            return succeed(None)
        members = [found.members[key] for key in sorted(found.members)]
        return succeed((found.name, [(m.name, m.origin) for m in members]))

    # Who is online

    def _status(self, session: Session) -> UserStatus:
        partnerKey = self._partners.get(session.key)
        partner = self._sessions[partnerKey].name if partnerKey else None
        return UserStatus(session.name, partner, session.origin)

    def lookup(self, name: str) -> "Deferred[UserStatus | None]":
        session = self._sessions.get(foldName(name))
        return succeed(self._status(session) if session else None)

    def online(self) -> "Deferred[list[UserStatus]]":
        return succeed(
            [self._status(self._sessions[key]) for key in sorted(self._sessions)]
        )

    # Private chats

    def requestPrivateChat(
        self, session: Session, target: str
    ) -> "Deferred[RequestResult]":
        return succeed(self._request(session, target))

    def _request(self, session: Session, target: str) -> RequestResult:
        partnerKey = self._partners.get(session.key)
        if partnerKey is not None:
            partner = self._sessions[partnerKey].name
            return RequestResult(Request.ALREADY_IN_PM, partner)
        own = self._requests.get(session.key)
        if own is not None:
            if own.requester is session:
                return RequestResult(Request.ALREADY_ASKED, own.target.name)
            return RequestResult(Request.BEING_ASKED, own.requester.name)
        other = self._sessions.get(foldName(target))
        if other is session:
            return RequestResult(Request.SELF, session.name)
        if other is None:
            return RequestResult(Request.OFFLINE, target)
        if other.key in self._partners:
            return RequestResult(Request.TARGET_IN_PM, other.name)
        if other.key in self._requests:
            return RequestResult(Request.TARGET_HAS_REQUEST, other.name)
        request = _PendingRequest(session, other)
        request.timer = self._clock.callLater(REQUEST_TIMEOUT, self._expire, request)
        self._requests[session.key] = self._requests[other.key] = request
        self._notify(other.key, PrivateRequest(session.name))
        return RequestResult(Request.SENT, other.name)

    def _dropRequest(self, request: _PendingRequest) -> None:
        if request.timer is not None and request.timer.active():
            request.timer.cancel()
        del self._requests[request.requester.key]
        del self._requests[request.target.key]

    def _expire(self, request: _PendingRequest) -> None:
        self._dropRequest(request)
        requester, target = request.requester, request.target
        self._notify(requester.key, RequestToExpired(target.name))
        self._notify(target.key, RequestFromExpired(requester.name))

    def answerPrivateChat(
        self, session: Session, accept: bool
    ) -> "Deferred[str | None]":
        request = self._requests.get(session.key)
        if request is None or request.target is not session:
            return succeed(None)
        self._dropRequest(request)
        requester = request.requester
        if accept:
            self._pair(requester, session)
            self._notify(requester.key, PrivateStarted(session.name))
        else:
            self._notify(requester.key, PrivateRejected(session.name))
        return succeed(requester.name)

    def leavePrivateChat(self, session: Session) -> "Deferred[PrivateEnded | None]":
        hidden = self._hidden(session)
        partner = self._unpair(session)
        if partner is None:
            return succeed(None)
        missed = self._rooms.show(session) if hidden else None
        self._partnerLeft(partner, session.name)
        return succeed(PrivateEnded(partner.name, missed))

    def _partnerLeft(self, partner: Session, name: str) -> None:
        """
        Tell C{partner} that C{name} left the private chat (already unpaired),
        and what it missed meanwhile.
        """
        partner.client.notify(PartnerLeft(name))
        if partner.client.renderer.privateHidesRooms:
            missed = self._rooms.show(partner)
            if missed is not None:
                partner.client.notify(missed)

    def _pair(self, first: Session, second: Session) -> None:
        self._partners[first.key] = second.key
        self._partners[second.key] = first.key
        for session in (first, second):
            if self._hidden(session):
                self._rooms.hide(session)

    def _unpair(self, session: Session) -> Session | None:
        """
        End C{session}'s private chat and return the partner; the caller
        lets both hear their rooms again (L{_partnerLeft} for the partner).
        """
        partnerKey = self._partners.pop(session.key, None)
        if partnerKey is None:
            return None
        del self._partners[partnerKey]
        return self._sessions[partnerKey]

    def checkInvariants(self) -> Iterable[str]:
        """
        Describe every inconsistency in the state (none, normally): for tests.
        """
        for key, partnerKey in self._partners.items():
            if self._partners.get(partnerKey) != key:
                yield f"pairing {key} -> {partnerKey} is not symmetric"
        for key, request in self._requests.items():
            if key not in (request.requester.key, request.target.key):
                yield f"request indexed under a stranger {key}"
            for end in (request.requester, request.target):
                if self._sessions.get(end.key) is not end:
                    yield f"request names {end.key}, who is not online there"
        for room in self._rooms:
            for key, member in room.members.items():
                if self._sessions.get(key) is not member:
                    yield f"{key} is in {room.name} but not online there"
                elif room.key not in member.rooms:
                    yield f"{key} is in {room.name}, which it does not list"
                heard = key in room.audience
                if heard == self._hidden(member):
                    yield f"{key} {'hears' if heard else 'misses'} {room.name}"
            for key in room.audience:
                if key not in room.members:
                    yield f"{key} hears {room.name} without being in it"
            if not room.members and room.key != GENERAL_KEY:
                yield f"{room.name} has no members but is kept"
        for key, session in self._sessions.items():
            for listed in session.rooms:
                if self._rooms.get(listed) is None:
                    yield f"{key} lists {listed}, which does not exist"
