"""
The session core: what one user's actions on one connection mean, whatever
the wire they came over.

A front-end parses its wire format and calls L{SessionCore}; the core
checks, asks the hub and the account store, records the audit events and
tells the front-end the outcome as typed events (L{IChatClient.notify}),
which the front-end renders.  A call returns L{None} when it is done, or a
Deferred that fires once it is, so that a front-end can hold the next input
until then and keep replies in order.
"""

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from .accounts import AuthResult
from .commands import ANSWERS, COMMANDS, parseLine
from .events import (
    BadArguments,
    Event,
    Goodbye,
    Help,
    History,
    HistoryEntry,
    HistoryOff,
    InRoom,
    LeftPrivate,
    LeftRoom,
    LoggedIn,
    LoginRefused,
    NoRequest,
    NoSuchUser,
    NotInPrivate,
    OnlineUsers,
    PasswordChanged,
    PrivateStarted,
    Refusal,
    Request,
    RequestRejected,
    RequestResult,
    RoomInfo,
    RoomList,
    RoomMembers,
    RoomRefusal,
    RoomRefused,
    SearchResults,
    UnknownCommand,
    UserInfo,
    UserStatus,
)
from .history import HistoryQuery
from .hub import (
    GENERAL_KEY,
    Departure,
    IChatClient,
    Join,
    Joined,
    Left,
    PrivateEnded,
    Session,
)
from .limits import addressKey
from .services import ChatServices, IHeartbeatClient
from .text import (
    GENERAL,
    RESERVED,
    described,
    foldName,
    normalizeName,
    normalizeRoom,
)

HISTORY_DEFAULT = 20
HISTORY_MAX = 200


@dataclass(frozen=True)
class Peer:
    """
    Where a connection comes from: its address, and the key under which the
    per-address limits count it (L{None}: exempt, as loopback is).
    """

    host: str
    port: int
    limitKey: str | None


class SessionCore:
    """
    One user on one connection, from the login to the goodbye.

    @ivar session: the hub's record of the logged-in user, or L{None}
        before login and after the user left.
    """

    __slots__ = ("_client", "_ended", "_failedLogins", "peer", "services", "session")

    def __init__(self, services: ChatServices, client: IChatClient, peer: Peer) -> None:
        self.services = services
        self._client = client
        self.peer = peer
        self.session: Session | None = None
        self._failedLogins = 0
        self._ended = False

    @property
    def name(self) -> str | None:
        """
        The logged-in user's name, or L{None}.
        """
        return self.session.name if self.session is not None else None

    def _show(self, event: Event) -> None:
        if not self._ended:
            self._client.notify(event)

    # Login

    @staticmethod
    def checkName(raw: str) -> str | None:
        """
        The account name C{raw} stands for (NFKC), or L{None} if it breaks
        the name rules or is reserved.  An invalid name is not a failed login.
        """
        name = normalizeName(raw)
        return None if name is None or foldName(name) in RESERVED else name

    def logIn(self, name: str, password: str, replay: bool = True) -> "Deferred[None]":
        """
        Log in as C{name} (valid by L{checkName}), registering it if it is
        unknown, within the registration limit and after the login backoff
        of this account and address.  Shows L{LoggedIn} or L{LoginRefused},
        and then, if C{replay}, the recent history of C{#general}.
        """
        services = self.services
        # Per address even for loopback: the login delay spares no one.
        backoffKey = (foldName(name), addressKey(self.peer.host))

        def known(account: str | None) -> "Deferred[None] | None":
            if account is None and not services.mayRegister(self.peer.limitKey):
                self._show(LoginRefused(Refusal.TOO_MANY_REGISTRATIONS))
                return None
            delay = services.loginBackoff.delay(backoffKey)
            waited = deferLater(services.clock, delay) if delay else succeed(None)
            checked = waited.addCallback(
                lambda _: services.accounts.authenticate(name, password)
            )
            return checked.addCallback(self._authenticated, backoffKey, replay)

        return services.accounts.lookup(name).addCallback(known)

    def _authenticated(
        self, result: tuple[AuthResult, str], backoffKey: tuple[str, str], replay: bool
    ) -> "Deferred[None] | None":
        services = self.services
        outcome, name = result
        if outcome is AuthResult.REGISTERED:
            services.audit.registered(name)
            services.metrics.registrations += 1
        if outcome is AuthResult.REJECTED:
            services.metrics.failedLogins += 1
            services.loginBackoff.failed(backoffKey)
        else:
            services.loginBackoff.succeeded(backoffKey)
        if self._ended:
            return None
        if outcome is AuthResult.REJECTED:
            self._failedLogins += 1
            limit = services.config.maxFailedLogins
            tooMany = bool(limit) and self._failedLogins >= limit
            self._show(
                LoginRefused(
                    Refusal.TOO_MANY_FAILURES if tooMany else Refusal.WRONG_PASSWORD
                )
            )
            return None
        session = Session(name, self._client)
        attached = services.hub.attach(session)
        return attached.addCallback(self._attached, session, replay)

    def _attached(
        self, takeover: bool, session: Session, replay: bool
    ) -> "Deferred[None] | None":
        services = self.services
        self.session = session
        services.metrics.logins += 1
        services.audit.loggedIn(session.name, self.peer.host, self.peer.port)
        services.onlineChanged()
        if self._ended:
            self._leave(services.audit.lostConnection)
            return None
        self._show(LoggedIn(session.name, takeover))
        if takeover:
            return self._showWhereTakenOver(session)
        return self._replay(GENERAL_KEY, GENERAL) if replay else None

    def _replay(self, room: str, name: str) -> "Deferred[None] | None":
        """
        Show the last lines of the room C{room} (C{--history-on-login} of
        them), if there are any.
        """
        count = self.services.config.historyOnLogin
        lines = self.services.hub.recentLines(room, count) if count else None
        if lines is None:
            return None

        def replay(entries: list[HistoryEntry]) -> None:
            if entries:
                self._show(History(name, tuple(entries)))

        return lines.addCallback(replay)

    def _showWhereTakenOver(self, session: Session) -> "Deferred[None]":
        """
        The new connection of a takeover starts with an empty screen: say
        which room is current, if not C{#general}, and which private chat
        goes on, if one does.
        """
        hub = self.services.hub

        def inRoom(members: tuple[str, list[tuple[str, str]]] | None) -> None:
            if members is not None and session.current != GENERAL_KEY:
                self._show(InRoom(members[0], len(members[1])))

        def inPrivate(status: UserStatus | None) -> None:
            if status is not None and status.partner is not None:
                self._show(PrivateStarted(status.partner))

        d = hub.roomMembers(session.current).addCallback(inRoom)
        d.addCallback(lambda _: hub.lookup(session.name))
        return d.addCallback(inPrivate)

    # Leaving

    def connectionLost(self, reason: str = "") -> "Deferred[None] | None":
        """
        The connection ended (saying C{reason}, if anything): the user, if
        logged in, leaves the chat.
        """
        self._ended = True
        if self.session is None:
            return None
        return self._leave(self.services.audit.lostConnection, reason)

    def superseded(self) -> None:
        """
        The user logged in from another connection, which has the session
        now: this connection no longer speaks for it.
        """
        self.session = None

    def heartbeatsStopped(self, timeout: float) -> None:
        """
        The client stopped heartbeating: record it (the front-end drops the
        connection).
        """
        if self.session is not None:
            self.services.audit.heartbeatLost(self.session.name, timeout)

    def _leave(
        self, record: Callable[[str], None], reason: str = ""
    ) -> "Deferred[None]":
        """
        End the session: the hub tells whoever needs to know (with
        C{reason}), and the audit log records it through C{record} unless
        the session was superseded.
        """
        session, self.session = self.session, None
        assert session is not None
        services = self.services

        def departed(departure: Departure | None) -> None:
            if departure is None:
                return
            record(session.name)
            if departure.partner is not None:
                services.audit.privateChatClosed(session.name, departure.partner)
            services.onlineChanged()

        return services.hub.detach(session, reason).addCallback(departed)

    # Chat

    def perform(self, text: str) -> "Deferred[None] | None":
        """
        Act on one line of the line protocol's language (a command, or chat)
        from the logged-in user: the one command table, for every front-end
        that takes such lines.
        """
        parsed = parseLine(text)
        if parsed is None:
            self.say(text)
            return None
        if parsed.name not in COMMANDS and parsed.name not in ANSWERS:
            self._show(UnknownCommand(parsed.name))
            return None
        if parsed.arguments is None:
            self._show(BadArguments(COMMANDS[parsed.name].usage))
            return None
        if parsed.name in ANSWERS:
            return self.answer(ANSWERS[parsed.name], text)
        handler: Callable[..., Deferred[None] | None] = getattr(
            self, COMMANDS[parsed.name].handler
        )
        return handler(*parsed.arguments)

    def say(self, text: str) -> None:
        """
        Say C{text}: to the partner in a private chat, else to the current
        room.
        """
        session = self.session
        assert session is not None
        if not self.sayToPartner(text):
            self.sayInRoom(session.current, text)

    def sayToPartner(self, text: str) -> bool:
        """
        Say C{text} to the private-chat partner; return whether there is one.
        """
        session = self.session
        assert session is not None
        if not self.services.hub.sayToPartner(session, text):
            return False
        self.services.metrics.linesRelayed += 1
        return True

    def sayInRoom(self, room: str, text: str, notice: bool = False) -> None:
        """
        Say C{text} (a C{notice} if so) in the room C{room} (a folded name),
        which this user must be in.
        """
        session = self.session
        assert session is not None
        name = self.services.hub.sayInRoom(session, room, text, notice)
        if name is None:
            self._show(RoomRefused(RoomRefusal.NOT_A_MEMBER, room))
        else:
            self.services.metrics.linesRelayed += 1
            self.services.audit.message(session.name, described(text), name)

    def answer(self, accept: bool, text: str | None = None) -> "Deferred[None]":
        """
        Answer the request made to this user; with no request pending,
        C{text} (a plain C{y} or C{n}) is chat, and without C{text} (an
        C{@ACCEPT} or C{@REJECT}) the answer is L{NoRequest}.
        """
        session = self.session
        assert session is not None

        def answered(requester: str | None) -> None:
            if requester is None:
                if text is None:
                    self._show(NoRequest())
                else:
                    self.say(text)
            elif accept:
                self.services.metrics.privateChats += 1
                self.services.audit.privateChatStarted(requester, session.name)
                self._show(PrivateStarted(requester))
            else:
                self._show(RequestRejected())

        d = self.services.hub.answerPrivateChat(session, accept)
        return d.addCallback(answered)

    def accept(self) -> "Deferred[None]":
        return self.answer(True)

    def reject(self) -> "Deferred[None]":
        return self.answer(False)

    def requestPrivateChat(self, target: str) -> "Deferred[None] | None":
        """
        Ask C{target} for a private chat.
        """
        session = self.session
        assert session is not None
        services = self.services
        name = normalizeName(target)
        if name is None:
            self._show(RequestResult(Request.NO_SUCH_USER, target))
            return None

        def requested(result: RequestResult) -> "Deferred[None] | None":
            if result.outcome is Request.OFFLINE:
                return services.accounts.lookup(name).addCallback(offline)
            if result.outcome is Request.SENT:
                services.audit.privateChatRequested(session.name, result.name)
            self._show(result)
            return None

        def offline(account: str | None) -> None:
            if account is None:
                self._show(RequestResult(Request.NO_SUCH_USER, name))
            else:
                self._show(RequestResult(Request.OFFLINE, account))

        d = services.hub.requestPrivateChat(session, name)
        return d.addCallback(requested)

    def leavePrivateChat(self) -> "Deferred[None]":
        """
        Leave the private chat.
        """
        session = self.session
        assert session is not None

        def left(ended: PrivateEnded | None) -> None:
            if ended is None:
                self._show(NotInPrivate())
                return
            self.services.audit.privateChatClosed(session.name, ended.partner)
            self._show(LeftPrivate(ended.partner))
            if ended.missed is not None:
                self._show(ended.missed)

        return self.services.hub.leavePrivateChat(session).addCallback(left)

    def who(self, room: str | None = None) -> "Deferred[None] | None":
        """
        List everyone online, or the members of C{room}.
        """
        if room is not None:
            return self.roomMembers(room)

        def listed(users: list[UserStatus]) -> None:
            self._show(OnlineUsers(tuple(users)))

        return self.services.hub.online().addCallback(listed)

    # Rooms

    def _roomName(self, raw: str) -> str | None:
        """
        The room C{raw} names, or L{None} after saying the name is invalid.
        """
        room = normalizeRoom(raw)
        if room is None:
            self._show(RoomRefused(RoomRefusal.INVALID_NAME, raw))
        return room

    def joinRoom(self, name: str, replay: bool = True) -> "Deferred[None] | None":
        """
        Join the room C{name} (creating it) and make it current; show its
        recent history if newly joined and C{replay}.
        """
        session = self.session
        assert session is not None
        room = self._roomName(name)
        if room is None:
            return None
        config = self.services.config

        def joined(result: Joined) -> "Deferred[None] | None":
            if result.outcome is Join.TOO_MANY_JOINED:
                limit = config.maxRoomsPerUser
                self._show(RoomRefused(RoomRefusal.TOO_MANY_JOINED, room, limit))
                return None
            if result.outcome is Join.TOO_MANY_ROOMS:
                limit = config.maxRooms
                self._show(RoomRefused(RoomRefusal.TOO_MANY_ROOMS, room, limit))
                return None
            self._show(InRoom(result.room, result.count))
            if result.outcome is Join.ALREADY_IN:
                return None
            self.services.audit.joinedRoom(session.name, result.room)
            if not replay:
                return None
            return self._replay(foldName(result.room), result.room)

        return self.services.hub.joinRoom(session, room).addCallback(joined)

    def leaveRoom(
        self, name: str | None = None, mayLeaveGeneral: bool = False, reason: str = ""
    ) -> "Deferred[None] | None":
        """
        Leave the room C{name} (by default the current one), saying
        C{reason} to its members; C{#general} only if C{mayLeaveGeneral}.
        """
        session = self.session
        assert session is not None
        if name is None:
            key = session.current
            room = session.rooms.get(key, GENERAL)
        else:
            found = self._roomName(name)
            if found is None:
                return None
            room, key = found, foldName(found)
        if key == GENERAL_KEY and not mayLeaveGeneral:
            self._show(RoomRefused(RoomRefusal.CANNOT_LEAVE_GENERAL, GENERAL))
            return None

        def left(result: Left | None) -> None:
            if result is None:
                self._show(RoomRefused(RoomRefusal.NOT_A_MEMBER, room))
                return
            self.services.audit.leftRoom(session.name, result.room)
            self._show(LeftRoom(result.room))
            if result.current is not None:
                self._show(InRoom(result.current, result.count))

        return self.services.hub.leaveRoom(session, key, reason).addCallback(left)

    def listRooms(self) -> "Deferred[None]":
        """
        List the rooms that have members.
        """

        def listed(rooms: list[RoomInfo]) -> None:
            self._show(RoomList(tuple(rooms)))

        return self.services.hub.rooms().addCallback(listed)

    def roomMembers(self, name: str) -> "Deferred[None] | None":
        """
        List the members of the room C{name}.
        """
        room = self._roomName(name)
        if room is None:
            return None

        def listed(members: tuple[str, list[tuple[str, str]]] | None) -> None:
            if members is None:
                self._show(RoomRefused(RoomRefusal.NO_SUCH_ROOM, room))
                return
            name, people = members
            names = tuple(person for person, _ in people)
            origins = tuple(origin for _, origin in people)
            self._show(RoomMembers(name, names, origins))

        return self.services.hub.roomMembers(foldName(room)).addCallback(listed)

    def chatHistory(self, name: str, query: HistoryQuery) -> "Deferred[None] | None":
        """
        Show the lines of the room C{name} (one this user is in) that
        C{query} asks for.
        """
        session = self.session
        assert session is not None
        room = self._roomName(name)
        if room is None:
            return None
        key = foldName(room)
        if key not in session.rooms:
            self._show(RoomRefused(RoomRefusal.NOT_A_MEMBER, room))
            return None
        lines = self.services.hub.queryHistory(key, query)
        if lines is None:
            self._show(HistoryOff())
            return None
        shown = session.rooms[key]

        def found(entries: list[HistoryEntry]) -> None:
            self._show(History(shown, tuple(entries)))

        return lines.addCallback(found)

    def whois(self, name: str) -> "Deferred[None]":
        """
        Tell what others may know of the user C{name}.
        """
        hub = self.services.hub

        def found(status: UserStatus | None) -> "Deferred[None] | None":
            if status is None:
                self._show(NoSuchUser(name))
                return None

            def listed(rooms: list[str]) -> None:
                assert status is not None
                partner, origin = status.partner, status.origin
                self._show(UserInfo(status.name, partner, tuple(rooms), origin))

            return hub.roomsOf(status.name).addCallback(listed)

        return hub.lookup(name).addCallback(found)

    def history(self, count: str | None = None) -> "Deferred[None] | None":
        """
        Show the last C{count} (default 20, at most 200) lines of the
        current room.
        """
        session = self.session
        assert session is not None
        wanted = HISTORY_DEFAULT
        if count is not None:
            if not count.isdecimal() or int(count) < 1:
                self._show(BadArguments(COMMANDS["@HISTORY"].usage))
                return None
            wanted = min(int(count), HISTORY_MAX)
        name = session.rooms.get(session.current, GENERAL)
        lines = self.services.hub.recentLines(session.current, wanted)
        if lines is None:
            self._show(HistoryOff())
            return None

        def shown(entries: list[HistoryEntry]) -> None:
            self._show(History(name, tuple(entries)))

        return lines.addCallback(shown)

    def search(self, text: str) -> "Deferred[None]":
        """
        Find the accounts whose names contain C{text}.
        """
        services = self.services

        def found(names: list[str]) -> "Deferred[None]":
            def listed(users: list[UserStatus]) -> None:
                online = frozenset(user.name for user in users)
                self._show(SearchResults(text, tuple(names), online))

            return services.hub.online().addCallback(listed)

        return services.accounts.search(text).addCallback(found)

    def changePassword(self, old: str, new: str) -> "Deferred[None]":
        """
        Change the password, if C{old} is the current one.
        """
        session = self.session
        assert session is not None

        def changed(ok: bool) -> None:
            self._show(PasswordChanged(ok))

        d = self.services.accounts.changePassword(session.name, old, new)
        return d.addCallback(changed)

    def help(self) -> None:
        self._show(Help())

    def heartbeat(self) -> None:
        """
        Start presence by heartbeats for this connection.
        """
        client = IHeartbeatClient(self._client)
        self._show(self.services.presence.track(client))

    def logOut(self, reason: str = "") -> "Deferred[None]":
        """
        Leave the chat (saying C{reason}): L{Goodbye}, and the front-end
        closes the connection.
        """
        session = self.session
        assert session is not None
        # Leave first: closing the connection ends the session otherwise.
        leaving = self._leave(self.services.audit.loggedOut, reason)
        self._show(Goodbye(session.name))
        return leaving
