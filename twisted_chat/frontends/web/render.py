"""
The core's events as the web front-end's JSON messages (the contract is
in the README), and those messages as complete WebSocket frames.

Every string a message carries is plain text; a client shows it as text,
never as markup.  The chat's text is IRC's (L{twisted_chat.core.text}): a
line's C{text} is sent without IRC's formatting codes, and an action
(C{/me waves}) as its own text with C{action: true}.  A room's line is
rendered once, into the bytes of a whole server-to-client frame, and those
same bytes go to every web client that gets the line.
"""

import json
import struct
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from ...core.commands import COMMANDS
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
    NoSuchUser,
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
    UnknownCommand,
    UserInfo,
    UserJoined,
    UserLeft,
)
from ...core.hub import Broadcast, IRenderer
from ...core.text import actionOf, plain
from ..times import isoTime
from . import messages

Message = dict[str, Any]
"""
One JSON message, as a dict ready for L{encode}.
"""

_REFUSALS = {
    Refusal.WRONG_PASSWORD: "wrong_password",
    Refusal.TOO_MANY_FAILURES: "too_many_failures",
    Refusal.TOO_MANY_REGISTRATIONS: "too_many_registrations",
}

_REQUEST_ERRORS = {
    Request.SELF: "self",
    Request.NO_SUCH_USER: "no_such_user",
    Request.OFFLINE: "offline",
    Request.TARGET_IN_PM: "target_in_private",
    Request.TARGET_HAS_REQUEST: "target_has_request",
    Request.ALREADY_IN_PM: "already_in_private",
    Request.ALREADY_ASKED: "already_asked",
    Request.BEING_ASKED: "being_asked",
}

_ROOM_ERRORS = {
    RoomRefusal.INVALID_NAME: "invalid_room",
    RoomRefusal.NOT_A_MEMBER: "not_in_room",
    RoomRefusal.NO_SUCH_ROOM: "no_such_room",
    RoomRefusal.CANNOT_LEAVE_GENERAL: "cannot_leave_general",
    RoomRefusal.TOO_MANY_JOINED: "too_many_joined",
    RoomRefusal.TOO_MANY_ROOMS: "too_many_rooms",
}

# The events that are an error with no fields of their own.
_FIXED_ERRORS: dict[type, str] = {
    NoRequest: "no_request",
    NotInPrivate: "not_in_private",
    HistoryOff: "history_off",
    ServiceDegraded: "degraded",
    ServerError: "server_error",
    Superseded: "superseded",
    LoginTimedOut: "login_timeout",
    ExcessFlood: "excess_flood",
}

_HELP = tuple(spec.usage for spec in COMMANDS.values())


def error(code: str, **fields: Any) -> Message:
    """
    The error C{code} of L{messages.ERRORS}, with its text and C{fields}.
    """
    text = messages.ERRORS[code].format(**fields)
    return {"type": "error", "code": code, "text": text, **fields}


def notice(code: str) -> Message:
    """
    The notice C{code} of L{messages.NOTICES}, with its text.
    """
    return {"type": "notice", "code": code, "text": messages.NOTICES[code]}


def loginRefused(code: str) -> Message:
    """
    A refused login for C{code} of L{messages.LOGIN_REFUSALS}, with its text.
    """
    text = messages.LOGIN_REFUSALS[code]
    return {"type": "login_refused", "code": code, "text": text}


def said(text: str) -> Message:
    """
    The fields that show the chat's C{text}: C{text}, plain, and for an
    action (C{/me waves}) C{action: true}, C{text} being its own (C{waves}).
    """
    done = actionOf(text)
    if done is None:
        return {"text": plain(text)}
    return {"text": plain(done), "action": True}


def optional(name: str, value: object) -> Message:
    """
    The optional field C{name}, present only when C{value} is set (a true
    flag, a reason given).
    """
    return {name: value} if value else {}


def message(event: Event) -> Message:
    """
    The JSON message that tells a web client about C{event}.
    """
    fixed = _FIXED_ERRORS.get(type(event))
    if fixed is not None:
        return error(fixed)
    match event:
        case ChatLine(room, sender, text, time, msgid, origin, isNotice):
            return {
                "type": "line",
                "room": room,
                "from": sender,
                **said(text),
                "time": isoTime(time),
                "id": msgid,
                "origin": origin,
                **optional("notice", isNotice),
            }
        case PrivateLine(sender, text, _):
            return {"type": "private", "from": sender, **said(text)}
        case UserJoined(name, origin):
            return {"type": "online", "name": name, "origin": origin}
        case UserLeft(name, origin, reason):
            return {
                "type": "offline",
                "name": name,
                "origin": origin,
                **optional("reason", reason),
            }
        case RoomJoined(name, room, origin):
            return {"type": "joined", "room": room, "name": name, "origin": origin}
        case RoomLeft(name, room, origin, reason):
            return {
                "type": "left",
                "room": room,
                "name": name,
                "origin": origin,
                **optional("reason", reason),
            }
        case MissedLines(room, count):
            return {"type": "missed", "room": room, "count": count}
        case PrivateRequest(name):
            return {"type": "private_request", "from": name}
        case PrivateStarted(name):
            return {"type": "private_started", "with": name}
        case PrivateRejected(name):
            return {"type": "private_rejected", "by": name}
        case RequestRejected():
            return {"type": "request_declined"}
        case RequestToExpired(name):
            return {"type": "request_expired", "to": name}
        case RequestFromExpired(name):
            return {"type": "request_expired", "from": name}
        case RequestToCancelled(name):
            return {"type": "request_cancelled", "to": name}
        case RequestFromCancelled(name):
            return {"type": "request_cancelled", "from": name}
        case PartnerLeft(name):
            return {"type": "private_ended", "with": name, "by": "partner"}
        case LeftPrivate(name):
            return {"type": "private_ended", "with": name, "by": "you"}
        case RequestResult(Request.SENT, name):
            return {"type": "request_sent", "to": name}
        case RequestResult(outcome, name):
            return error(_REQUEST_ERRORS[outcome], name=name)
        case LoggedIn(name, takeover):
            return {"type": "logged_in", "name": name, "takeover": takeover}
        case LoginRefused(reason):
            return loginRefused(_REFUSALS[reason])
        case InRoom(room, count):
            return {"type": "in_room", "room": room, "count": count}
        case LeftRoom(room):
            return {"type": "left_room", "room": room}
        case RoomRefused(reason, room, limit):
            fields: Message = {"room": room}
            if limit:
                fields["limit"] = limit
            return error(_ROOM_ERRORS[reason], **fields)
        case RoomList(rooms):
            listed = [{"name": room.name, "count": room.count} for room in rooms]
            return {"type": "rooms", "rooms": listed}
        case RoomMembers(room, names):
            return {"type": "members", "room": room, "names": list(names)}
        case History(room, entries):
            lines = [
                {
                    "id": entry.msgid,
                    "time": isoTime(entry.time),
                    "from": entry.sender,
                    **said(entry.text),
                }
                for entry in entries
            ]
            return {"type": "history", "room": room, "lines": lines}
        case OnlineUsers(users):
            listed = [{"name": user.name, "partner": user.partner} for user in users]
            return {"type": "online_users", "users": listed}
        case UserInfo(name, partner, rooms):
            return {
                "type": "user_info",
                "name": name,
                "partner": partner,
                "rooms": list(rooms),
            }
        case NoSuchUser(name):
            return error("not_online", name=name)
        case SearchResults(text, names, online):
            found = [{"name": name, "online": name in online} for name in names]
            return {"type": "search_results", "text": text, "users": found}
        case PasswordChanged(changed):
            return {"type": "password_changed"} if changed else error("wrong_password")
        case HeartbeatGrant(port, token, interval, timeout):
            return {
                "type": "heartbeat",
                "port": port,
                "token": token,
                "interval": interval,
                "timeout": timeout,
            }
        case Help():
            return {"type": "help", "commands": list(_HELP)}
        case Goodbye(name):
            return {"type": "goodbye", "name": name}
        case UnknownCommand(command):
            return error("unknown_command", command=command)
        case BadArguments(usage):
            return error("usage", usage=usage)
        case LineTooLong(limit):
            return error("line_too_long", limit=limit)
        case SlowDown():
            return notice("slow_down")
        case ShuttingDown():
            return notice("shutting_down")
    raise TypeError(f"no message for {event!r}")


# One encoder for every message: json.dumps with options builds a new one
# each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A string as that encoder writes it (the C function it calls).
_string: Callable[[str], str] = json.encoder.encode_basestring


def encode(message: Message) -> bytes:
    """
    C{message} as compact UTF-8 JSON.
    """
    return _ENCODER.encode(message).encode()


def textFrame(payload: bytes) -> bytes:
    """
    C{payload} as one whole, unmasked, uncompressed WebSocket text frame
    (RFC 6455 section 5.2), as a server sends it.
    """
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 0x10000:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def frame(message: Message) -> bytes:
    """
    C{message} as the bytes of one WebSocket frame on the wire.
    """
    return textFrame(encode(message))


def lineFrame(line: ChatLine) -> bytes:
    """
    The frame of L{message}C{(line)}, the same bytes written without the
    message's dict and the encoder's walk over it: a room's line is the one
    message a busy chat renders many times a second.
    """
    text = line.text
    done = actionOf(text)
    action = ""
    if done is not None:
        text, action = done, ',"action":true'
    notice = ',"notice":true}' if line.notice else "}"
    payload = (
        f'{{"type":"line","room":{_string(line.room)},'
        f'"from":{_string(line.sender)},"text":{_string(plain(text))}{action},'
        f'"time":"{isoTime(line.time)}","id":{_string(line.msgid)},'
        f'"origin":{_string(line.origin)}{notice}'
    )
    return textFrame(payload.encode())


@implementer(IRenderer)
class WebRenderer:
    """
    Renders the lines shared by many web clients, once each, as whole
    frames.  A message names its room, so a client's current room does not
    change it; during a private chat a web client hears no room, as a line
    client does, and is told afterwards how many lines it missed.
    """

    kind = "web"
    currentMatters = False
    privateHidesRooms = True

    def render(self, event: Broadcast, current: bool) -> bytes:
        if type(event) is ChatLine:
            return lineFrame(event)
        return frame(message(event))


WEB_RENDERER = WebRenderer()
