"""
What the chat tells a session: the typed results of its own actions and the
notifications other users' actions cause.  Front-ends render these, each in
its own wire format; nothing here is text a user sees.

Every event is a small frozen dataclass.  The notifications that cross nodes
(through Redis) are encoded as C{[kind, field, ...]} lists by L{encode} and
read back by L{decode}.
"""

from dataclasses import astuple, dataclass
from enum import Enum, auto
from typing import Any

# Notifications: what another user's action (or time) did to this session.


# Events about a user carry C{origin}, the kind of front-end the user came
# in through (C{line}, C{irc}, C{web}), which some front-ends show (IRC's
# hostmasks).


@dataclass(frozen=True, slots=True)
class ChatLine:
    """
    A line said in C{room} by C{sender}, at C{time}, with the id C{msgid}
    (C{<milliseconds>-<sequence>}, in order) under which history keeps it;
    a C{notice} is a line no one should answer automatically (IRC's NOTICE).
    """

    room: str
    sender: str
    text: str
    time: float = 0.0
    msgid: str = ""
    origin: str = "line"
    notice: bool = False


@dataclass(frozen=True, slots=True)
class PrivateLine:
    """
    A line from the private-chat partner C{sender}.
    """

    sender: str
    text: str
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class UserJoined:
    """
    C{name} came online (into C{#general}).
    """

    name: str
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class UserLeft:
    """
    C{name} went offline, saying C{reason} (if it said anything).
    """

    name: str
    origin: str = "line"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RoomJoined:
    """
    C{name} joined C{room}.
    """

    name: str
    room: str
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class RoomLeft:
    """
    C{name} left C{room}, saying C{reason} (if it said anything).
    """

    name: str
    room: str
    origin: str = "line"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MissedLines:
    """
    While this session was in a private chat, C{count} lines were said in
    its current room C{room}.
    """

    room: str
    count: int


@dataclass(frozen=True, slots=True)
class PrivateRequest:
    """
    C{requester} asks this session for a private chat.
    """

    requester: str


@dataclass(frozen=True, slots=True)
class PrivateStarted:
    """
    This session is now in a private chat with C{partner} (whichever side
    asked).
    """

    partner: str


@dataclass(frozen=True, slots=True)
class PrivateRejected:
    """
    C{target} rejected this session's request.
    """

    target: str


@dataclass(frozen=True, slots=True)
class RequestToExpired:
    """
    This session's request to C{target} went unanswered too long.
    """

    target: str


@dataclass(frozen=True, slots=True)
class RequestFromExpired:
    """
    The request from C{requester} to this session expired.
    """

    requester: str


@dataclass(frozen=True, slots=True)
class RequestToCancelled:
    """
    This session's request to C{target} ended because C{target} left.
    """

    target: str


@dataclass(frozen=True, slots=True)
class RequestFromCancelled:
    """
    The request from C{requester} ended because C{requester} left.
    """

    requester: str


@dataclass(frozen=True, slots=True)
class PartnerLeft:
    """
    The private-chat partner C{partner} left the private chat (or the chat).
    """

    partner: str


# Results: what this session's own action came to.


class Refusal(Enum):
    """
    Why a login attempt did not log in.
    """

    WRONG_PASSWORD = auto()
    TOO_MANY_FAILURES = auto()
    TOO_MANY_REGISTRATIONS = auto()


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """
    The login succeeded as C{name} (the account's own spelling); with
    C{takeover}, another connection of the user was superseded.
    """

    name: str
    takeover: bool


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """
    The login failed for C{reason}; after C{TOO_MANY_FAILURES} the
    connection is to be closed.
    """

    reason: Refusal


class Request(Enum):
    """
    The outcome of asking someone for a private chat.
    """

    SENT = auto()
    SELF = auto()
    NO_SUCH_USER = auto()
    OFFLINE = auto()
    TARGET_IN_PM = auto()
    TARGET_HAS_REQUEST = auto()
    ALREADY_IN_PM = auto()
    ALREADY_ASKED = auto()
    BEING_ASKED = auto()


@dataclass(frozen=True, slots=True)
class RequestResult:
    """
    A L{Request} outcome and the user it names: the target, or for
    C{ALREADY_IN_PM}, C{ALREADY_ASKED} and C{BEING_ASKED} the other user
    already involved.
    """

    outcome: Request
    name: str


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """
    This session rejected the request made to it.
    """


@dataclass(frozen=True, slots=True)
class NoRequest:
    """
    There was no request to this session to answer.
    """


@dataclass(frozen=True, slots=True)
class LeftPrivate:
    """
    This session left its private chat with C{partner}.
    """

    partner: str


@dataclass(frozen=True, slots=True)
class NotInPrivate:
    """
    This session asked to leave a private chat it is not in.
    """


@dataclass(frozen=True, slots=True)
class UserStatus:
    """
    What others may know of an online user: the name, the private-chat
    partner and the kind of front-end it came in through.
    """

    name: str
    partner: str | None
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """
    What others may know of the online user C{name}: the private-chat
    partner, the rooms and the kind of front-end it came in through.
    """

    name: str
    partner: str | None
    rooms: tuple[str, ...]
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class NoSuchUser:
    """
    No user C{name} is online.
    """

    name: str


@dataclass(frozen=True, slots=True)
class OnlineUsers:
    """
    Everyone online, sorted by folded name.
    """

    users: tuple[UserStatus, ...]


@dataclass(frozen=True, slots=True)
class SearchResults:
    """
    The accounts whose names contain C{text}, sorted, and which are online.
    """

    text: str
    names: tuple[str, ...]
    online: frozenset[str]


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    """
    The outcome of a password change: C{changed} if the old one was right.
    """

    changed: bool


@dataclass(frozen=True, slots=True)
class HeartbeatGrant:
    """
    Where and how often to send the UDP heartbeat C{token}.
    """

    port: int
    token: str
    interval: float
    timeout: float


@dataclass(frozen=True, slots=True)
class InRoom:
    """
    C{room}, which has C{count} members, is now this session's current room.
    """

    room: str
    count: int


@dataclass(frozen=True, slots=True)
class LeftRoom:
    """
    This session left C{room}.
    """

    room: str


class RoomRefusal(Enum):
    """
    Why a room command was refused.
    """

    INVALID_NAME = auto()
    NOT_A_MEMBER = auto()
    NO_SUCH_ROOM = auto()
    CANNOT_LEAVE_GENERAL = auto()
    TOO_MANY_JOINED = auto()
    TOO_MANY_ROOMS = auto()


@dataclass(frozen=True, slots=True)
class RoomRefused:
    """
    A room command about C{room} was refused for C{reason}; C{limit} is the
    limit that was reached, if one was.
    """

    reason: RoomRefusal
    room: str
    limit: int = 0


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """
    A room that has members, and how many.
    """

    name: str
    count: int


@dataclass(frozen=True, slots=True)
class RoomList:
    """
    The rooms that have members, sorted by folded name.
    """

    rooms: tuple[RoomInfo, ...]


@dataclass(frozen=True, slots=True)
class RoomMembers:
    """
    The members of C{room}, sorted by folded name, and the kind of front-end
    each came in through (in the same order).
    """

    room: str
    names: tuple[str, ...]
    origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """
    One line of a room's history.
    """

    time: float
    sender: str
    text: str
    msgid: str
    origin: str = "line"


@dataclass(frozen=True, slots=True)
class History:
    """
    The last lines of C{room}, oldest first.
    """

    room: str
    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class HistoryOff:
    """
    This server keeps no history.
    """


@dataclass(frozen=True, slots=True)
class Help:
    """
    The list of commands was asked for.
    """


@dataclass(frozen=True, slots=True)
class Goodbye:
    """
    C{name} logged out; the connection is to be closed.
    """

    name: str


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """
    C{command} is not a command.
    """

    command: str


@dataclass(frozen=True, slots=True)
class BadArguments:
    """
    A command came with arguments that do not fit C{usage}.
    """

    usage: str


# Connection events: the limits and the server's own state.


@dataclass(frozen=True, slots=True)
class Superseded:
    """
    The user logged in from another connection; this one is to be closed.
    """


@dataclass(frozen=True, slots=True)
class ServiceDegraded:
    """
    The shared store is out of reach; the action may be tried again later.
    """


@dataclass(frozen=True, slots=True)
class ServerError:
    """
    The server failed to do what was asked; the connection is to be closed.
    """


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """
    The server is stopping.
    """


@dataclass(frozen=True, slots=True)
class TooManyConnections:
    """
    The connection limits refused this connection.
    """


@dataclass(frozen=True, slots=True)
class LoginTimedOut:
    """
    The connection did not log in in time; it is to be closed.
    """


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """
    A line longer than C{limit} bytes was dropped.
    """

    limit: int


@dataclass(frozen=True, slots=True)
class SlowDown:
    """
    Input comes faster than the flood limit; it is handled in turn.
    """


@dataclass(frozen=True, slots=True)
class ExcessFlood:
    """
    Too much input is waiting; the connection is to be closed.
    """


Notification = (
    ChatLine
    | PrivateLine
    | UserJoined
    | UserLeft
    | RoomJoined
    | RoomLeft
    | MissedLines
    | PrivateRequest
    | PrivateStarted
    | PrivateRejected
    | RequestToExpired
    | RequestFromExpired
    | RequestToCancelled
    | RequestFromCancelled
    | PartnerLeft
)
"""
What other users' actions (or time) tell a session.
"""

Result = (
    LoggedIn
    | LoginRefused
    | RequestResult
    | RequestRejected
    | NoRequest
    | LeftPrivate
    | NotInPrivate
    | OnlineUsers
    | UserInfo
    | NoSuchUser
    | SearchResults
    | PasswordChanged
    | HeartbeatGrant
    | InRoom
    | LeftRoom
    | RoomRefused
    | RoomList
    | RoomMembers
    | History
    | HistoryOff
    | Help
    | Goodbye
    | UnknownCommand
    | BadArguments
)
"""
What a session's own action came to.
"""

ConnectionEvent = (
    Superseded
    | ServiceDegraded
    | ServerError
    | ShuttingDown
    | TooManyConnections
    | LoginTimedOut
    | LineTooLong
    | SlowDown
    | ExcessFlood
)
"""
What the limits and the server's own state tell a connection.
"""

Event = Notification | Result | ConnectionEvent

# The notifications a hub may send to a session on another node, by kind.
_NOTIFICATIONS: dict[str, type[Notification]] = {
    cls.__name__: cls
    for cls in (
        ChatLine,
        PrivateLine,
        UserJoined,
        UserLeft,
        RoomJoined,
        RoomLeft,
        MissedLines,
        PrivateRequest,
        PrivateStarted,
        PrivateRejected,
        RequestToExpired,
        RequestFromExpired,
        RequestToCancelled,
        RequestFromCancelled,
        PartnerLeft,
    )
}


def encode(event: Notification) -> list[Any]:
    """
    A notification as a JSON-ready list: its kind, then its fields in order.
    """
    return [type(event).__name__, *astuple(event)]


def decode(encoded: list[Any]) -> Notification:
    """
    The notification that L{encode} made C{encoded} of.

    @raise ValueError: if C{encoded} is not one.
    """
    kind = _NOTIFICATIONS.get(encoded[0]) if encoded else None
    if kind is None:
        raise ValueError(f"not a notification: {encoded!r}")
    return kind(*encoded[1:])
