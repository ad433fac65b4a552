"""
The core's events as IRC messages: the renderers a room's line is written
by once per capability variant (with or without C{@time}, with or without
C{msgid}: at most four per node, never one per recipient), and what every
message of one client shares with them: hostmasks and tags.

The core's text is IRC's own (formatting and actions included), so a line
reads on IRC as the core carries it.
"""

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from ...core.events import ChatLine, RoomJoined, RoomLeft, UserJoined, UserLeft
from ...core.hub import Broadcast, IRenderer
from ...core.text import GENERAL
from ..times import isoTime
from . import numerics
from .parser import MAX_MESSAGE, formatMessage
from .text import splitText

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


def quitReason(reason: str) -> str:
    """
    What a QUIT says for a user who left saying C{reason} (if anything).
    """
    if reason:
        return numerics.QUIT_REASON.format(reason=reason)
    return numerics.QUIT_DEFAULT


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
        clock: IReactorTime,
        serverTime: bool,
        tags: bool,
    ) -> None:
        self.server = server
        self.clock = clock
        self.serverTime = serverTime
        self.tags = tags

    def mask(self, name: str, origin: str) -> str:
        """
        The hostmask of C{name}, who came in through the front-end kind
        C{origin}.
        """
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
            allTags["time"] = isoTime(self.clock.seconds() if when is None else when)
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
        head = f":{prefix} {command} {target} :".encode()
        room = MAX_MESSAGE - len(head) - 2
        if not (tags or self.serverTime or (self.tags and msgid)):
            # No tags to write: the common line, in one piece, is its head
            # and its text (what formatMessage would make of it).
            data = text.encode()
            if len(data) <= room:
                return head + data + b"\r\n"
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

    def part(self, prefix: str, room: str, reason: str) -> bytes:
        """
        The PART of C{room} by C{prefix}, with the C{reason} given, if any.
        """
        if reason:
            return self.encode("PART", room, reason, prefix=prefix, trailing=True)
        return self.encode("PART", room, prefix=prefix)

    def render(self, event: Broadcast, current: bool) -> bytes:
        if type(event) is ChatLine:
            command = "NOTICE" if event.notice else "PRIVMSG"
            mask = self.mask(event.sender, event.origin)
            return self.text(
                command, mask, event.room, event.text, event.time, event.msgid
            )
        assert not isinstance(event, ChatLine)
        mask = self.mask(event.name, event.origin)
        if type(event) is UserJoined:
            return self.encode("JOIN", GENERAL, prefix=mask)
        if type(event) is UserLeft:
            return self.encode("QUIT", quitReason(event.reason), prefix=mask)
        if type(event) is RoomJoined:
            return self.encode("JOIN", event.room, prefix=mask)
        assert type(event) is RoomLeft
        return self.part(mask, event.room, event.reason)


def renderers(server: str, clock: IReactorTime) -> dict[tuple[bool, bool], IRCRenderer]:
    """
    The renderers of one node, by (server-time, message-tags).
    """
    return {
        (serverTime, tags): IRCRenderer(server, clock, serverTime, tags)
        for serverTime in (False, True)
        for tags in (False, True)
    }
