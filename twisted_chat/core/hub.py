"""
The hub: everything a session reaches beyond itself.

A session core never touches another session directly.  It asks the hub to
claim a name, relay a line, look users up and change private-chat state; the
hub answers with Deferreds and tells the other sessions' front-ends what
happened, as the typed notifications of L{twisted_chat.core.events}.
L{LocalHub} keeps that state in this process and answers at once; the Redis
hub answers the same calls for several nodes.

A group line is rendered once per front-end kind (L{IRenderer}) and the same
bytes are handed to every client of that kind (L{Audience}).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from .events import (
    ChatLine,
    Event,
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
    UserJoined,
    UserLeft,
    UserStatus,
)
from .text import foldName

REQUEST_TIMEOUT = 60.0


class HubUnavailableError(Exception):
    """
    The hub cannot answer now (the store shared by several nodes is out of
    reach); the caller should say the service is degraded, not fail.
    """


Broadcast = ChatLine | UserJoined | UserLeft
"""
The notifications sent to a whole audience at once.
"""


class IRenderer(Interface):
    """
    How one kind of front-end writes the notifications it shares with many
    clients: made once per message, whatever the number of recipients.
    """

    def render(event: Broadcast) -> bytes:
        """
        The bytes that tell a client of this kind about C{event}.
        """


class IChatClient(Interface):
    """
    The front-end end of one logged-in session, as the hub sees it.
    """

    renderer = Attribute("The L{IRenderer} of this client's front-end kind.")

    def deliver(data: bytes) -> None:
        """
        Send C{data}, rendered by this client's renderer, to this client.
        """

    def announce(data: bytes) -> None:
        """
        Send C{data}, a notice that someone joined or left, which may wait
        a moment to share a write with other lines: a crowd arriving costs
        each client a few writes a second, not one per arrival.
        """

    def notify(event: Event) -> None:
        """
        Tell this client alone about C{event} (a notification, or the result
        of its own session's action).
        """

    def failed(failure: Failure) -> None:
        """
        Something done for this client failed (the hub was out of reach).
        """

    def supersede() -> None:
        """
        Tell this client that its user logged in elsewhere, and close it.
        """


@dataclass(eq=False)
class Session:
    """
    One logged-in user on one connection.
    """

    name: str
    client: IChatClient
    key: str = ""

    def __post_init__(self) -> None:
        self.key = foldName(self.name)


@dataclass(frozen=True)
class Departure:
    """
    What ended when a user left: the private chat partner they had, if any.
    """

    partner: str | None


class Audience:
    """
    The sessions that get the same lines (the group), by folded name, with
    their clients grouped by renderer for the fan-out loop.
    """

    __slots__ = ("_groups", "_sessions")

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        # The clients by renderer, rebuilt after a change (None until then).
        self._groups: tuple[tuple[IRenderer, tuple[IChatClient, ...]], ...] | None
        self._groups = None

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

    def clear(self) -> None:
        self._sessions.clear()
        self._groups = None

    def _snapshot(self) -> tuple[tuple[IRenderer, tuple[IChatClient, ...]], ...]:
        """
        The clients by renderer, kept until the audience changes.  A
        snapshot: a delivery may end a session (a full send queue) and so
        change the audience while the caller loops.
        """
        groups = self._groups
        if groups is None:
            byRenderer: dict[IRenderer, list[IChatClient]] = {}
            for session in self._sessions.values():
                client = session.client
                byRenderer.setdefault(client.renderer, []).append(client)
            groups = tuple(
                (renderer, tuple(clients)) for renderer, clients in byRenderer.items()
            )
            self._groups = groups
        return groups

    def send(self, event: Broadcast, exclude: IChatClient | None = None) -> None:
        """
        Deliver C{event} to every client but C{exclude}.
        """
        for renderer, clients in self._snapshot():
            data = renderer.render(event)
            for client in clients:
                if client is not exclude:
                    client.deliver(data)

    def announce(
        self, event: UserJoined | UserLeft, exclude: IChatClient | None = None
    ) -> None:
        """
        Announce C{event} to every client but C{exclude} (a notice, which
        may wait a little).
        """
        for renderer, clients in self._snapshot():
            data = renderer.render(event)
            for client in clients:
                if client is not exclude:
                    client.announce(data)


class IHub(Interface):
    """
    Sessions, the group and private chats, reached through Deferreds.
    """

    sessionCount = Attribute("The number of users online on this node.")

    def start() -> None:
        """
        Begin serving (connect to whatever the hub needs).
        """

    def stop() -> "Deferred[None]":
        """
        Stop serving, once every session of this node has been detached.
        """

    def attach(session: Session) -> "Deferred[bool]":
        """
        Claim C{session.name} for C{session}, superseding any session that
        held it.  Fires with whether this was a takeover; a new arrival is
        announced to the group, a takeover keeps the user's state silently.
        """

    def detach(session: Session) -> "Deferred[Departure | None]":
        """
        C{session} has ended: cancel its requests, end its private chat and
        announce its departure.  Fires with L{None} if it had been superseded.
        """

    def say(session: Session, text: str) -> bool:
        """
        Relay C{text} from C{session} to its partner if it is in a private
        chat, otherwise to the group; return whether it went to the group.
        A failure to deliver is reported to C{session.client}.
        """

    def lookup(name: str) -> "Deferred[UserStatus | None]":
        """
        The status of user C{name} if online.
        """

    def online() -> "Deferred[list[UserStatus]]":
        """
        Every online user, sorted by folded name.
        """

    def requestPrivateChat(session: Session, target: str) -> "Deferred[RequestResult]":
        """
        Ask C{target} for a private chat on behalf of C{session}.
        """

    def answerPrivateChat(session: Session, accept: bool) -> "Deferred[str | None]":
        """
        Answer the request made to C{session}; fire with the requester's
        name, or L{None} if no request was pending.
        """

    def leavePrivateChat(session: Session) -> "Deferred[str | None]":
        """
        End the private chat of C{session}; fire with the partner's name, or
        L{None} if it was not in one.
        """


@dataclass(eq=False)
class _PendingRequest:
    requester: Session
    target: Session
    timer: IDelayedCall | None = None


@implementer(IHub)
class LocalHub:
    """
    The hub of a single node: all live state in this process.

    It is the one owner of who is online, who is in the group, who asked
    whom for a private chat and who is paired with whom; all are keyed by
    folded name, so they survive a takeover.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._group = Audience()
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
        return succeed(None)

    def _notify(self, key: str, event: Notification) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.client.notify(event)

    def attach(self, session: Session) -> "Deferred[bool]":
        old = self._sessions.get(session.key)
        self._sessions[session.key] = session
        if old is not None:
            if session.key in self._group:
                self._group.add(session)
            for request in self._requests.values():
                if request.requester is old:
                    request.requester = session
                if request.target is old:
                    request.target = session
            old.client.supersede()
            return succeed(True)
        self._group.announce(UserJoined(session.name))
        self._group.add(session)
        return succeed(False)

    def detach(self, session: Session) -> "Deferred[Departure | None]":
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
            self._notify(partner.key, PartnerLeft(session.name))
        del self._sessions[session.key]
        self._group.discard(session.key)
        self._group.announce(UserLeft(session.name))
        return succeed(Departure(partner.name if partner else None))

    def say(self, session: Session, text: str) -> bool:
        partnerKey = self._partners.get(session.key)
        if partnerKey is not None:
            self._notify(partnerKey, PrivateLine(session.name, text))
            return False
        self._group.send(ChatLine(session.name, text), session.client)
        return True

    def _status(self, session: Session) -> UserStatus:
        partnerKey = self._partners.get(session.key)
        partner = self._sessions[partnerKey].name if partnerKey else None
        return UserStatus(session.name, partner)

    def lookup(self, name: str) -> "Deferred[UserStatus | None]":
        session = self._sessions.get(foldName(name))
        return succeed(self._status(session) if session else None)

    def online(self) -> "Deferred[list[UserStatus]]":
        return succeed(
            [self._status(self._sessions[key]) for key in sorted(self._sessions)]
        )

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

    def leavePrivateChat(self, session: Session) -> "Deferred[str | None]":
        partner = self._unpair(session)
        if partner is None:
            return succeed(None)
        self._notify(partner.key, PartnerLeft(session.name))
        return succeed(partner.name)

    def _pair(self, first: Session, second: Session) -> None:
        self._partners[first.key] = second.key
        self._partners[second.key] = first.key
        self._group.discard(first.key)
        self._group.discard(second.key)

    def _unpair(self, session: Session) -> Session | None:
        partnerKey = self._partners.pop(session.key, None)
        if partnerKey is None:
            return None
        del self._partners[partnerKey]
        partner = self._sessions[partnerKey]
        self._group.add(partner)
        self._group.add(self._sessions[session.key])
        return partner

    def checkInvariants(self) -> Iterable[str]:
        """
        Describe every inconsistency in the state (none, normally): for tests.
        """
        for key, partnerKey in self._partners.items():
            if self._partners.get(partnerKey) != key:
                yield f"pairing {key} -> {partnerKey} is not symmetric"
            if key in self._group:
                yield f"{key} is both paired and in the group"
        for key, request in self._requests.items():
            if key not in (request.requester.key, request.target.key):
                yield f"request indexed under a stranger {key}"
            for end in (request.requester, request.target):
                if self._sessions.get(end.key) is not end:
                    yield f"request names {end.key}, who is not online there"
        for key in self._sessions:
            if key not in self._group and key not in self._partners:
                yield f"{key} is neither in the group nor paired"
        for key in self._group:
            if key not in self._sessions:
                yield f"{key} is in the group but offline"
            elif self._group.get(key) is not self._sessions[key]:
                yield f"{key} is in the group with a superseded session"
