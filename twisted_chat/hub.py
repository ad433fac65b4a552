"""
The hub: everything a session reaches beyond itself.

The protocol never touches another session directly.  It asks the hub to
deliver lines, broadcast to the group, claim a name, look users up and change
private-chat state, and the hub answers with Deferreds.  L{LocalHub} keeps that
state in this process and answers at once; a hub spanning several nodes
answers the same calls over the network.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, auto

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import Attribute, Interface, implementer

from . import messages
from .text import foldName

REQUEST_TIMEOUT = 60.0


class HubUnavailableError(Exception):
    """
    The hub cannot answer now (the store shared by several nodes is out of
    reach); the caller should say the service is degraded, not fail.
    """


class IChatClient(Interface):
    """
    The end of one logged-in connection, as the hub sees it.
    """

    def deliver(data: bytes) -> None:
        """
        Send C{data}, one or more encoded lines, to this client.
        """

    def announce(data: bytes) -> None:
        """
        Send C{data}, a notice that someone joined or left, which may wait
        a moment to share a write with other lines: a crowd arriving costs
        each client a few writes a second, not one per arrival.
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
class UserStatus:
    """
    What others may know of an online user: the name and private-chat partner.
    """

    name: str
    partner: str | None


class Request(Enum):
    """
    The outcome of asking someone for a private chat.
    """

    SENT = auto()
    SELF = auto()
    OFFLINE = auto()
    TARGET_IN_PM = auto()
    TARGET_HAS_REQUEST = auto()
    ALREADY_IN_PM = auto()
    ALREADY_ASKED = auto()
    BEING_ASKED = auto()


@dataclass(frozen=True)
class RequestResult:
    """
    A L{Request} outcome and the user it names: the target, or for
    C{ALREADY_IN_PM}, C{ALREADY_ASKED} and C{BEING_ASKED} the other user
    already involved.
    """

    outcome: Request
    name: str


@dataclass(frozen=True)
class Departure:
    """
    What ended when a user left: the private chat partner they had, if any.
    """

    partner: str | None


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

    def say(session: Session, text: str) -> "Deferred[bool]":
        """
        Relay C{text} from C{session} to its partner if it is in a private
        chat, otherwise to the group.  Fires with whether it went to the group.
        """

    def deliver(name: str, text: str) -> "Deferred[bool]":
        """
        Send one line to the user C{name}; fire with whether they are online.
        """

    def broadcast(text: str, exclude: Session | None) -> "Deferred[None]":
        """
        Send one line to every user in the group (not in a private chat).
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


def encodeLine(text: str) -> bytes:
    """
    Encode one server line for the wire.
    """
    return text.encode("utf-8") + b"\r\n"


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
        self._group: dict[str, Session] = {}
        # The clients of the group's sessions, for the fan-out loop; rebuilt
        # after the group changes (None until then).
        self._groupClients: tuple[IChatClient, ...] | None = None
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

    def _send(self, key: str, text: str) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.client.deliver(encodeLine(text))

    def _groupSnapshot(self) -> tuple[IChatClient, ...]:
        """
        The clients of the group's sessions, kept until the group changes.
        A snapshot: a delivery may end a session (a full send queue) and so
        change the group while the caller loops.
        """
        clients = self._groupClients
        if clients is None:
            clients = tuple(session.client for session in self._group.values())
            self._groupClients = clients
        return clients

    def _sendToGroup(self, text: str, exclude: Session | None) -> None:
        data = encodeLine(text)
        skip = exclude.client if exclude is not None else None
        for client in self._groupSnapshot():
            if client is not skip:
                client.deliver(data)

    def _announceToGroup(self, text: str) -> None:
        data = encodeLine(text)
        for client in self._groupSnapshot():
            client.announce(data)

    def attach(self, session: Session) -> "Deferred[bool]":
        old = self._sessions.get(session.key)
        self._sessions[session.key] = session
        if old is not None:
            if session.key in self._group:
                self._group[session.key] = session
                self._groupClients = None
            for request in self._requests.values():
                if request.requester is old:
                    request.requester = session
                if request.target is old:
                    request.target = session
            old.client.supersede()
            return succeed(True)
        self._announceToGroup(messages.JOINED.format(name=session.name))
        self._group[session.key] = session
        self._groupClients = None
        return succeed(False)

    def detach(self, session: Session) -> "Deferred[Departure | None]":
        if self._sessions.get(session.key) is not session:
            return succeed(None)
        request = self._requests.get(session.key)
        if request is not None:
            self._dropRequest(request)
            if request.requester is session:
                self._send(
                    request.target.key,
                    messages.REQUEST_FROM_CANCELLED.format(name=session.name),
                )
            else:
                self._send(
                    request.requester.key,
                    messages.REQUEST_TO_CANCELLED.format(name=session.name),
                )
        partner = self._unpair(session)
        if partner is not None:
            self._send(partner.key, messages.PARTNER_LEFT.format(name=session.name))
        del self._sessions[session.key]
        self._group.pop(session.key, None)
        self._groupClients = None
        self._announceToGroup(messages.LEFT.format(name=session.name))
        return succeed(Departure(partner.name if partner else None))

    def say(self, session: Session, text: str) -> "Deferred[bool]":
        line = messages.CHAT_LINE.format(name=session.name, text=text)
        partnerKey = self._partners.get(session.key)
        if partnerKey is not None:
            self._send(partnerKey, line)
            return succeed(False)
        self._sendToGroup(line, session)
        return succeed(True)

    def deliver(self, name: str, text: str) -> "Deferred[bool]":
        key = foldName(name)
        self._send(key, text)
        return succeed(key in self._sessions)

    def broadcast(self, text: str, exclude: Session | None) -> "Deferred[None]":
        self._sendToGroup(text, exclude)
        return succeed(None)

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
        self._send(other.key, messages.PM_REQUEST_RECEIVED.format(name=session.name))
        return RequestResult(Request.SENT, other.name)

    def _dropRequest(self, request: _PendingRequest) -> None:
        if request.timer is not None and request.timer.active():
            request.timer.cancel()
        del self._requests[request.requester.key]
        del self._requests[request.target.key]

    def _expire(self, request: _PendingRequest) -> None:
        self._dropRequest(request)
        requester, target = request.requester, request.target
        self._send(requester.key, messages.REQUEST_TO_EXPIRED.format(name=target.name))
        self._send(
            target.key, messages.REQUEST_FROM_EXPIRED.format(name=requester.name)
        )

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
            self._send(requester.key, messages.PM_STARTED.format(name=session.name))
        else:
            self._send(requester.key, messages.PM_REJECTED.format(name=session.name))
        return succeed(requester.name)

    def leavePrivateChat(self, session: Session) -> "Deferred[str | None]":
        partner = self._unpair(session)
        if partner is None:
            return succeed(None)
        self._send(partner.key, messages.PARTNER_LEFT.format(name=session.name))
        return succeed(partner.name)

    def _pair(self, first: Session, second: Session) -> None:
        self._partners[first.key] = second.key
        self._partners[second.key] = first.key
        self._group.pop(first.key, None)
        self._group.pop(second.key, None)
        self._groupClients = None

    def _unpair(self, session: Session) -> Session | None:
        partnerKey = self._partners.pop(session.key, None)
        if partnerKey is None:
            return None
        del self._partners[partnerKey]
        partner = self._sessions[partnerKey]
        self._group[partnerKey] = partner
        self._group[session.key] = self._sessions[session.key]
        self._groupClients = None
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
