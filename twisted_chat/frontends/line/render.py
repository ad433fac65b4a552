"""
The core's events as the line protocol's server lines (L{messages}).
"""

import time

from zope.interface import implementer

from ...core.events import (
    BadArguments,
    ChatLine,
    Event,
    ExcessFlood,
    Goodbye,
    HeartbeatGrant,
    Help,
    History,
    HistoryOff,
    InRoom,
    LeftPrivate,
    LeftRoom,
    LineTooLong,
    LoggedIn,
    LoginRefused,
    LoginTimedOut,
    MissedLines,
    NoRequest,
    NotInPrivate,
    OnlineUsers,
    PartnerLeft,
    PasswordChanged,
    PrivateLine,
    PrivateRejected,
    PrivateRequest,
    PrivateStarted,
    Refusal,
    Request,
    RequestFromCancelled,
    RequestFromExpired,
    RequestRejected,
    RequestResult,
    RequestToCancelled,
    RequestToExpired,
    RoomJoined,
    RoomLeft,
    RoomList,
    RoomMembers,
    RoomRefusal,
    RoomRefused,
    SearchResults,
    ServerError,
    ServiceDegraded,
    ShuttingDown,
    SlowDown,
    Superseded,
    TooManyConnections,
    UnknownCommand,
    UserJoined,
    UserLeft,
    UserStatus,
)
from ...core.hub import Broadcast, IRenderer
from ...core.text import actionOf, plain
from . import messages

_REQUEST_REPLIES = {
    Request.SENT: messages.PM_REQUEST_SENT,
    Request.SELF: messages.PM_WITH_YOURSELF,
    Request.NO_SUCH_USER: messages.USER_DOES_NOT_EXIST,
    Request.OFFLINE: messages.USER_OFFLINE,
    Request.TARGET_IN_PM: messages.USER_IN_PM,
    Request.TARGET_HAS_REQUEST: messages.USER_HAS_REQUEST,
    Request.ALREADY_IN_PM: messages.ALREADY_IN_PM,
    Request.ALREADY_ASKED: messages.YOU_HAVE_REQUEST,
    Request.BEING_ASKED: messages.PM_REQUEST_RECEIVED,
}

_ROOM_REFUSALS = {
    RoomRefusal.INVALID_NAME: messages.INVALID_ROOM,
    RoomRefusal.NOT_A_MEMBER: messages.NOT_IN_ROOM,
    RoomRefusal.NO_SUCH_ROOM: messages.NO_SUCH_ROOM,
    RoomRefusal.CANNOT_LEAVE_GENERAL: messages.CANNOT_LEAVE_GENERAL,
    RoomRefusal.TOO_MANY_JOINED: messages.TOO_MANY_JOINED,
    RoomRefusal.TOO_MANY_ROOMS: messages.TOO_MANY_ROOMS,
}

_REFUSALS = {
    Refusal.WRONG_PASSWORD: messages.WRONG_PASSWORD,
    Refusal.TOO_MANY_FAILURES: messages.TOO_MANY_FAILED_LOGINS,
    Refusal.TOO_MANY_REGISTRATIONS: messages.TOO_MANY_REGISTRATIONS,
}

# The events whose line is a fixed text.
_FIXED: dict[type, str] = {
    RequestRejected: messages.REQUEST_REJECTED,
    NoRequest: messages.NO_REQUEST,
    NotInPrivate: messages.NOT_IN_PM,
    Superseded: messages.LOGGED_IN_ELSEWHERE,
    ServiceDegraded: messages.SERVICE_DEGRADED,
    ServerError: messages.SERVER_ERROR,
    ShuttingDown: messages.SHUTTING_DOWN,
    TooManyConnections: messages.TOO_MANY_CONNECTIONS,
    LoginTimedOut: messages.LOGIN_TIMED_OUT,
    SlowDown: messages.SLOW_DOWN,
    ExcessFlood: messages.EXCESS_FLOOD,
    LoggedIn: messages.LOGIN_SUCCESS,
    HistoryOff: messages.HISTORY_OFF,
}


def encodeLine(text: str) -> bytes:
    """
    Encode one server line for the wire.
    """
    return text.encode("utf-8") + b"\r\n"


def _listed(names: list[str], total: int) -> str:
    shown = ", ".join(names)
    if total > messages.LIST_LIMIT:
        shown += messages.LIST_MORE.format(count=total - messages.LIST_LIMIT)
    return shown


def _whoEntry(user: UserStatus) -> str:
    if user.partner:
        return messages.WHO_ENTRY_IN_PM.format(name=user.name, partner=user.partner)
    return user.name


def _searchLines(event: SearchResults) -> list[str]:
    lines = [messages.SEARCH_FOUND.format(count=len(event.names), text=event.text)]
    for name in event.names[: messages.LIST_LIMIT]:
        online = name in event.online
        entry = messages.SEARCH_ONLINE if online else messages.SEARCH_OFFLINE
        lines.append(entry.format(name=name))
    if len(event.names) > messages.LIST_LIMIT:
        more = len(event.names) - messages.LIST_LIMIT
        lines.append(messages.SEARCH_MORE.format(count=more))
    return lines


def said(name: str, text: str, room: str | None = None) -> str:
    """
    The line that shows C{name}'s C{text} (the chat's text: an action reads
    C{* alice waves}, IRC formatting is left out), from C{room} if that is
    not the client's current room.
    """
    done = actionOf(text)
    if done is None:
        text = plain(text)
        if room is None:
            return messages.CHAT_LINE.format(name=name, text=text)
        return messages.ROOM_LINE.format(room=room, name=name, text=text)
    if room is None:
        return messages.ACTION_LINE.format(name=name, text=plain(done))
    return messages.ROOM_ACTION_LINE.format(room=room, name=name, text=plain(done))


def _historyLines(event: History) -> list[str]:
    lines = [messages.HISTORY_START.format(room=event.room, count=len(event.entries))]
    for entry in event.entries:
        when = time.strftime(messages.HISTORY_TIME, time.localtime(entry.time))
        done = actionOf(entry.text)
        if done is None:
            line = messages.HISTORY_LINE.format(
                time=when, name=entry.sender, text=plain(entry.text)
            )
        else:
            line = messages.HISTORY_ACTION_LINE.format(
                time=when, name=entry.sender, text=plain(done)
            )
        lines.append(line)
    lines.append(messages.HISTORY_END)
    return lines


def lines(event: Event) -> list[str]:
    """
    The server lines that tell a line-protocol client about C{event}.
    """
    fixed = _FIXED.get(type(event))
    if fixed is not None:
        return [fixed]
    match event:
        case ChatLine(_, sender, text) | PrivateLine(sender, text):
            return [said(sender, text)]
        case UserJoined(name):
            return [messages.JOINED.format(name=name)]
        case UserLeft(name):
            return [messages.LEFT.format(name=name)]
        case RoomJoined(name, room):
            return [messages.JOINED_ROOM.format(name=name, room=room)]
        case RoomLeft(name, room):
            return [messages.LEFT_ROOM.format(name=name, room=room)]
        case MissedLines(room, count):
            return [messages.MISSED.format(room=room, count=count)]
        case InRoom(room, count):
            return [messages.NOW_IN_ROOM.format(room=room, count=count)]
        case LeftRoom(room):
            return [messages.YOU_LEFT_ROOM.format(room=room)]
        case RoomRefused(reason, room, limit):
            return [_ROOM_REFUSALS[reason].format(room=room, limit=limit)]
        case RoomList(rooms):
            shown = [
                messages.ROOM_ENTRY.format(room=room.name, count=room.count)
                for room in rooms[: messages.LIST_LIMIT]
            ]
            return [messages.ROOMS.format(rooms=_listed(shown, len(rooms)))]
        case RoomMembers(room, names):
            shown = list(names[: messages.LIST_LIMIT])
            listed = _listed(shown, len(names))
            return [messages.USERS_IN_ROOM.format(room=room, names=listed)]
        case History():
            return _historyLines(event)
        case PrivateRequest(name):
            return [messages.PM_REQUEST_RECEIVED.format(name=name)]
        case PrivateStarted(name):
            return [messages.PM_STARTED.format(name=name)]
        case PrivateRejected(name):
            return [messages.PM_REJECTED.format(name=name)]
        case RequestToExpired(name):
            return [messages.REQUEST_TO_EXPIRED.format(name=name)]
        case RequestFromExpired(name):
            return [messages.REQUEST_FROM_EXPIRED.format(name=name)]
        case RequestToCancelled(name):
            return [messages.REQUEST_TO_CANCELLED.format(name=name)]
        case RequestFromCancelled(name):
            return [messages.REQUEST_FROM_CANCELLED.format(name=name)]
        case PartnerLeft(name):
            return [messages.PARTNER_LEFT.format(name=name)]
        case LeftPrivate(name):
            return [messages.YOU_LEFT_PM.format(name=name)]
        case LoginRefused(reason):
            return [_REFUSALS[reason]]
        case RequestResult(outcome, name):
            return [_REQUEST_REPLIES[outcome].format(name=name)]
        case OnlineUsers(users):
            shown = [_whoEntry(user) for user in users[: messages.LIST_LIMIT]]
            return [messages.ONLINE_USERS.format(names=_listed(shown, len(users)))]
        case SearchResults():
            return _searchLines(event)
        case PasswordChanged(changed):
            return [messages.PASSWORD_CHANGED if changed else messages.WRONG_PASSWORD]
        case HeartbeatGrant(port, token, interval, timeout):
            return [
                messages.HEARTBEAT.format(
                    port=port, token=token, interval=interval, timeout=timeout
                )
            ]
        case Help():
            return list(messages.HELP)
        case Goodbye(name):
            return [messages.GOODBYE.format(name=name)]
        case UnknownCommand(command):
            return [messages.UNKNOWN_COMMAND.format(command=command)]
        case BadArguments(usage):
            return [messages.USAGE.format(usage=usage)]
        case LineTooLong(limit):
            return [messages.LINE_TOO_LONG.format(limit=limit)]
    raise TypeError(f"no line for {event!r}")


@implementer(IRenderer)
class LineRenderer:
    """
    Renders the lines shared by many line-protocol clients, once each: a
    room's line reads C{X > text} in the client's current room and
    C{[#room] X > text} in another.  During a private chat a line user hears
    no room at all, as in the course project.
    """

    kind = "line"
    currentMatters = True
    privateHidesRooms = True

    def render(self, event: Broadcast, current: bool) -> bytes:
        if type(event) is ChatLine:
            room = None if current else event.room
            return encodeLine(said(event.sender, event.text, room))
        return b"".join(encodeLine(line) for line in lines(event))


LINE_RENDERER = LineRenderer()
