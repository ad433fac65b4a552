"""
The hub: everything a session reaches beyond itself.

A session core never touches another session directly.  It asks the hub to
claim a name, relay a line, join and leave rooms, look users up and change
private-chat state; the hub answers and tells the other sessions'
front-ends what happened, as the typed notifications of
L{twisted_chat.core.events}.  L{twisted_chat.core.localhub.LocalHub} keeps
that state in this process; the Redis hub answers the same calls for several
nodes.

A room's line is rendered once per front-end kind (L{IRenderer}) and the
same bytes are handed to every client of that kind.
"""

from dataclasses import dataclass, field
from enum import Enum, auto

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

from .events import (
    ChatLine,
    Event,
    HistoryEntry,
    MissedLines,
    RequestResult,
    RoomInfo,
    RoomJoined,
    RoomLeft,
    UserJoined,
    UserLeft,
    UserStatus,
)
from .history import HistoryQuery
from .text import GENERAL, foldName

REQUEST_TIMEOUT = 60.0


class HubUnavailableError(Exception):
    """
    The hub cannot answer now (the store shared by several nodes is out of
    reach); the caller should say the service is degraded, not fail.
    """


Broadcast = ChatLine | UserJoined | UserLeft | RoomJoined | RoomLeft
"""
The notifications sent to a whole room at once.
"""


class IRenderer(Interface):
    """
    How one kind of front-end writes the notifications it shares with many
    clients: made once per message and variant, whatever the number of
    recipients.
    """

    kind = Attribute(
        "The front-end kind (C{line}, C{irc}, C{web}): the origin of the events"
        " of users who came in through it."
    )
    currentMatters = Attribute(
        "Whether a room's line reads otherwise in the client's current room."
    )
    privateHidesRooms = Attribute(
        "Whether, during a private chat, the client hears no room at all (and"
        " is told afterwards how many lines its current room had meanwhile)."
    )

    def render(event: Broadcast, current: bool) -> bytes:
        """
        The bytes that tell a client of this kind about C{event}, for a
        client whose current room is the event's room or not.
        """


class IChatClient(Interface):
    """
    The front-end end of one logged-in session, as the hub sees it.
    """

    renderer = Attribute("The L{IRenderer} of this client's front-end kind.")
    echoes = Attribute(
        "Whether the client gets its own room lines back (IRC's echo-message)."
    )

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


GENERAL_KEY = foldName(GENERAL)


@dataclass(eq=False)
class Session:
    """
    One logged-in user on one connection.

    @ivar rooms: the rooms the user is in, folded name to display name, and
        C{current} the one plain lines go to; both are the hub's to change.
    @ivar missedFrom: while the user hears no room (a private chat), the
        count of its current room's lines when that began.
    """

    name: str
    client: IChatClient
    key: str = ""
    rooms: dict[str, str] = field(default_factory=dict)
    current: str = GENERAL_KEY
    missedFrom: int = 0

    def __post_init__(self) -> None:
        self.key = foldName(self.name)

    @property
    def origin(self) -> str:
        """
        The kind of front-end this session came in through.
        """
        kind: str = self.client.renderer.kind
        return kind


@dataclass(frozen=True)
class Departure:
    """
    What ended when a user left: the private chat partner they had, if any.
    """

    partner: str | None


class Join(Enum):
    """
    The outcome of joining a room.
    """

    JOINED = auto()
    ALREADY_IN = auto()
    TOO_MANY_JOINED = auto()
    TOO_MANY_ROOMS = auto()


@dataclass(frozen=True)
class Joined:
    """
    A L{Join} outcome, the room's name as first spelled and how many
    members it has.
    """

    outcome: Join
    room: str
    count: int = 0


@dataclass(frozen=True)
class Left:
    """
    The user left C{room}; if it was the current room, C{current} is the
    room that is current now, with C{count} members.
    """

    room: str
    current: str | None = None
    count: int = 0


@dataclass(frozen=True)
class PrivateEnded:
    """
    The user left the private chat with C{partner}; C{missed} is what the
    user's current room said meanwhile, if the user heard none of it.
    """

    partner: str
    missed: MissedLines | None = None


class IHub(Interface):
    """
    Sessions, rooms and private chats.
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
        announced to C{#general}, a takeover keeps the user's state (rooms,
        current room, private chat) silently.
        """

    def detach(session: Session, reason: str = "") -> "Deferred[Departure | None]":
        """
        C{session} has ended: cancel its requests, end its private chat, take
        it out of its rooms and announce its departure (with C{reason}) to
        their members.  Fires with L{None} if it had been superseded.
        """

    def sayInRoom(
        session: Session, room: str, text: str, notice: bool = False
    ) -> str | None:
        """
        Relay C{text} (a C{notice} if so) from C{session} to the other
        members of the room C{room} (a folded name); return the room's name,
        or L{None} if C{session} is not in that room.  A failure to deliver
        is reported to C{session.client}.
        """

    def sayToPartner(session: Session, text: str) -> bool:
        """
        Relay C{text} from C{session} to its private-chat partner; return
        whether it has one.  A failure is reported to C{session.client}.
        """

    def joinRoom(session: Session, name: str) -> "Deferred[Joined]":
        """
        Put C{session} in the room C{name} (creating it within the limits)
        and make it the current room; its members are told.
        """

    def leaveRoom(
        session: Session, room: str, reason: str = ""
    ) -> "Deferred[Left | None]":
        """
        Take C{session} out of the room C{room} (a folded name); its members
        are told (with C{reason}).  L{None} if C{session} was not in it.
        """

    def rooms() -> "Deferred[list[RoomInfo]]":
        """
        The rooms that have members, sorted by folded name.
        """

    def roomsOf(name: str) -> "Deferred[list[str]]":
        """
        The names of the rooms the online user C{name} is in, sorted by
        folded name (none if offline).
        """

    def roomMembers(room: str) -> "Deferred[tuple[str, list[tuple[str, str]]] | None]":
        """
        The name of the room C{room} (a folded name) and its members, sorted
        by folded name, each with its origin; L{None} if it does not exist.
        """

    def recentLines(room: str, count: int) -> "Deferred[list[HistoryEntry]] | None":
        """
        The last C{count} lines of the room C{room} (a folded name), oldest
        first; L{None} if this chat keeps no history.
        """

    def queryHistory(
        room: str, query: HistoryQuery
    ) -> "Deferred[list[HistoryEntry]] | None":
        """
        The lines of the room C{room} that C{query} asks for, oldest first;
        L{None} if this chat keeps no history.
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

    def leavePrivateChat(session: Session) -> "Deferred[PrivateEnded | None]":
        """
        End the private chat of C{session}; fire with the partner's name and
        what C{session} missed, or L{None} if it was not in one.
        """
