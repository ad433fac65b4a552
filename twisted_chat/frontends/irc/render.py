"""
The core's events as IRC messages: the renderers a room's line is written
by once per capability variant (with or without C{@time}, with or without
C{msgid}: at most four per node, never one per recipient), and what every
message of one client shares with them: hostmasks and tags.
"""

import time

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from ...core.events import ChatLine, RoomJoined, RoomLeft, UserJoined, UserLeft
from ...core.hub import Broadcast, IRenderer
from ...core.limits import BoundedTable
from ...core.text import GENERAL, foldName
from . import numerics
from .parser import MAX_MESSAGE, formatMessage
from .text import fromCore, splitText

KIND = "irc"


def hostmask(name: str, origin: str, server: str) -> str:
    """
    The C{nick!user@host} of a user: line users C{name!name@line.<server>},
    IRC users C{nick!~nick@irc.<server>} (no address is shown; the user is
    the account, with C{~} as for an ident nobody checked).
    """
    if origin == KIND:
        return f"{name}!~{name}@{KIND}.{server}"
    return f"{name}!{name}@{origin}.{server}"


def userAndHost(name: str, origin: str, server: str) -> tuple[str, str]:
    """
    The user and host parts of L{hostmask}.
    """
    user, _, host = hostmask(name, origin, server).partition("!")[2].partition("@")
    return user, host


def serviceMask(server: str) -> str:
    """
    The hostmask of the service nick L{numerics.SERVICE}.
    """
    return f"{numerics.SERVICE}!{numerics.SERVICE_USER}@{server}"


def timeTag(seconds: float) -> str:
    """
    A time as IRCv3 server-time writes it: UTC, milliseconds, C{Z}.
    """
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class OriginBook:
    """
    Which front-end kind each user came in through, as far as this node has
    seen (its own IRC logins and the events rendered for its IRC clients):
    what a hostmask needs when the core gives a name only (NAMES, WHO,
    WHOIS, history).  Anyone not seen is taken for a line user.
    """

    def __init__(self) -> None:
        self._origins: BoundedTable[str, str] = BoundedTable()

    def seen(self, name: str, origin: str) -> None:
        key = foldName(name)
        if origin == KIND:
            self._origins.touch(key, origin)
        else:
            self._origins.pop(key, None)

    def origin(self, name: str) -> str:
        return self._origins.get(foldName(name), "line")


@implementer(IRenderer)
class IRCRenderer:
    """
    Writes IRC messages for the clients of one capability variant: with
    C{@time=} (server-time) or not, with C{msgid} (message-tags) or not.

    @ivar server: the server name, in hostmasks.
    """

    kind = KIND
    currentMatters = False
    privateHidesRooms = False

    def __init__(
        self,
        server: str,
        origins: OriginBook,
        clock: IReactorTime,
        serverTime: bool,
        tags: bool,
    ) -> None:
        self.server = server
        self.origins = origins
        self.clock = clock
        self.serverTime = serverTime
        self.tags = tags

    def mask(self, name: str, origin: str | None = None) -> str:
        """
        The hostmask of C{name}, from C{origin} or from what this node saw.
        """
        if origin is None:
            origin = self.origins.origin(name)
        return hostmask(name, origin, self.server)

    def encode(
        self,
        command: str,
        *params: str,
        prefix: str | None = None,
        when: float | None = None,
        msgid: str = "",
        tags: dict[str, str] | None = None,
        trailing: bool = False,
    ) -> bytes:
        """
        One message, with the tags this variant sends: C{time} (C{when}, by
        default now), C{msgid} if given, and C{tags}, which the caller has
        judged the client may get; the last parameter is C{trailing} text.
        """
        allTags: dict[str, str] = {}
        if self.serverTime:
            allTags["time"] = timeTag(self.clock.seconds() if when is None else when)
        if self.tags and msgid:
            allTags["msgid"] = msgid
        if tags:
            allTags.update(tags)
        line = formatMessage(
            command, *params, prefix=prefix, tags=allTags, trailing=trailing
        )
        return line.encode("utf-8") + b"\r\n"

    def text(
        self,
        command: str,
        prefix: str,
        target: str,
        text: str,
        when: float | None = None,
        msgid: str = "",
        tags: dict[str, str] | None = None,
    ) -> bytes:
        """
        A PRIVMSG or NOTICE of C{text} from C{prefix} to C{target}, split into
        as many messages as IRC's line length needs (the first has the id).
        """
        room = MAX_MESSAGE - len(f":{prefix} {command} {target} :\r\n".encode())
        return b"".join(
            self.encode(
                command,
                target,
                piece,
                prefix=prefix,
                when=when,
                msgid=msgid if index == 0 else "",
                tags=tags,
                trailing=True,
            )
            for index, piece in enumerate(splitText(text, room))
        )

    def render(self, event: Broadcast, current: bool) -> bytes:
        if type(event) is ChatLine:
            self.origins.seen(event.sender, event.origin)
            mask = self.mask(event.sender, event.origin)
            body = fromCore(event.text, event.origin)
            return self.text("PRIVMSG", mask, event.room, body, event.time, event.msgid)
        assert not isinstance(event, ChatLine)
        self.origins.seen(event.name, event.origin)
        if type(event) is UserJoined:
            return self.encode(
                "JOIN", GENERAL, prefix=self.mask(event.name, event.origin)
            )
        if type(event) is UserLeft:
            mask = self.mask(event.name, event.origin)
            return self.encode("QUIT", numerics.QUIT_DEFAULT, prefix=mask)
        assert type(event) is RoomJoined or type(event) is RoomLeft
        command = "JOIN" if type(event) is RoomJoined else "PART"
        return self.encode(
            command, event.room, prefix=self.mask(event.name, event.origin)
        )


def renderers(
    server: str, origins: OriginBook, clock: IReactorTime
) -> dict[tuple[bool, bool], IRCRenderer]:
    """
    The renderers of one node, by (server-time, message-tags).
    """
    return {
        (serverTime, tags): IRCRenderer(server, origins, clock, serverTime, tags)
        for serverTime in (False, True)
        for tags in (False, True)
    }
