"""
The IRC front-end of one TCP connection: registration (NICK, USER, CAP,
PASS, SASL PLAIN), the IRC commands, and the session core's events as IRC
messages and numerics (L{numerics}).

The nick is the account: an unknown name registers itself, as on the line
protocol.  What a command means is the session core's business; this
module maps IRC onto it.  A private message to a nick with no accepted
private chat I{is} a private-chat request (consent before content), and
the service nick L{numerics.SERVICE} runs the line protocol's commands.
"""

import calendar
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import partial
from typing import get_args

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

from ... import __version__
from ...core.commands import ANSWERS, parseLine
from ...core.events import (
    Event,
    ExcessFlood,
    Goodbye,
    History,
    HistoryOff,
    LeftPrivate,
    LeftRoom,
    LineTooLong,
    LoggedIn,
    LoginRefused,
    LoginTimedOut,
    NoSuchUser,
    Notification,
    OnlineUsers,
    PartnerLeft,
    PrivateLine,
    PrivateRequest,
    PrivateStarted,
    Refusal,
    Request,
    RequestFromCancelled,
    RequestFromExpired,
    RequestRejected,
    RequestResult,
    Result,
    RoomList,
    RoomMembers,
    RoomRefused,
    ServerError,
    ServiceDegraded,
    ShuttingDown,
    SlowDown,
    Superseded,
    TooManyConnections,
    UserInfo,
)
from ...core.history import Around, HistoryQuery, Reference
from ...core.session import HISTORY_MAX
from ...core.text import RESERVED, foldName, normalizeRoom
from ..connection import Connections, LineConnection, Refused
from ..line.render import lines as contract
from . import caps, numerics
from .parser import MAX_LINE, LineTooLongError, Message, parseMessage
from .render import KIND, IRCRenderer, renderers, serviceMask, userAndHost
from .sasl import MECHANISM, PlainExchange, Step
from .text import clientText, toCore

CoreCall = Callable[[], "Deferred[None] | None"]
"""
A call of the session core, or of several, done when its Deferred fires.
"""

_RESULTS = get_args(Result)
_NOTIFICATIONS = get_args(Notification)
SERVICE_KEY = foldName(numerics.SERVICE)
_MSGID = re.compile(r"\d+-\d+")
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z?")
_USERHOST_MAX = 5


def isupport(server: str) -> list[str]:
    """
    The ISUPPORT tokens of 005.
    """
    return [
        "CASEMAPPING=rfc8265",
        "CHANTYPES=#",
        "PREFIX=",
        f"CHANMODES=,,,{numerics.CHANNEL_MODES}",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "TARGMAX=NAMES:1,LIST:1,PRIVMSG:1,NOTICE:1,TAGMSG:1",
        "UTF8ONLY",
        f"NETWORK={numerics.NETWORK}",
        f"CHATHISTORY={HISTORY_MAX}",
        "MSGREFTYPES=msgid,timestamp",
    ]


def parseReference(text: str) -> Reference | None:
    """
    A CHATHISTORY reference, C{msgid=<id>} or C{timestamp=<ISO 8601>}.
    """
    kind, _, value = text.partition("=")
    if kind == "msgid" and _MSGID.fullmatch(value):
        return Reference(msgid=value)
    match = _TIMESTAMP.fullmatch(value) if kind == "timestamp" else None
    if match is None:
        return None
    try:
        seconds = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    fraction = float("0." + match[2]) if match[2] else 0.0
    return Reference(time=seconds + fraction)


@dataclass(frozen=True)
class _Command:
    """
    How an IRC command is called: its handler, the parameters it needs,
    and whether it may come before registration ends.
    """

    handler: str
    minimum: int = 0
    beforeRegistration: bool = False


_COMMANDS: dict[str, _Command] = {
    "CAP": _Command("cmd_CAP", 1, True),
    "NICK": _Command("cmd_NICK", 0, True),
    "USER": _Command("cmd_USER", 4, True),
    "PASS": _Command("cmd_PASS", 1, True),
    "AUTHENTICATE": _Command("cmd_AUTHENTICATE", 1, True),
    "PING": _Command("cmd_PING", 0, True),
    "PONG": _Command("cmd_PONG", 0, True),
    "QUIT": _Command("cmd_QUIT", 0, True),
    "JOIN": _Command("cmd_JOIN", 1),
    "PART": _Command("cmd_PART", 1),
    "PRIVMSG": _Command("cmd_PRIVMSG"),
    "NOTICE": _Command("cmd_NOTICE"),
    "TAGMSG": _Command("cmd_TAGMSG", 1),
    "NAMES": _Command("cmd_NAMES"),
    "WHO": _Command("cmd_WHO"),
    "WHOIS": _Command("cmd_WHOIS", 1),
    "TOPIC": _Command("cmd_TOPIC", 1),
    "LIST": _Command("cmd_LIST"),
    "MODE": _Command("cmd_MODE", 1),
    "TIME": _Command("cmd_TIME"),
    "ISON": _Command("cmd_ISON", 1),
    "USERHOST": _Command("cmd_USERHOST", 1),
    "AWAY": _Command("cmd_AWAY"),
    "ACCEPT": _Command("cmd_ACCEPT", 1),
    "MOTD": _Command("cmd_MOTD"),
    "CHATHISTORY": _Command("cmd_CHATHISTORY", 1),
}


def then(d: "Deferred[None] | None", step: CoreCall) -> "Deferred[None] | None":
    """
    Run C{step} once C{d} (a core call's answer, if it is not done) fires.
    """
    if d is None:
        return step()
    return d.addCallback(lambda _: step())


def _unregistered(data: bytes) -> None:
    """
    Drop a room's line or notice: the client is not registered yet.
    """


class IRCProtocol(LineConnection):
    """
    One IRC client, from the first CAP LS to the ERROR that closes it.

    @ivar renderer: the renderer of this client's capability variant.
    @ivar echoes: whether the client gets its own lines back (echo-message).
    """

    __slots__ = (
        "_account",
        "_askedBy",
        "_batches",
        "_caps",
        "_channels",
        "_held",
        "_modes",
        "_negotiating",
        "_nick",
        "_noticeSent",
        "_partner",
        "_password",
        "_realname",
        "_registered",
        "_reply",
        "_sasl",
        "_user",
        "announce",
        "deliver",
        "echoes",
        "irc",
        "renderer",
    )

    def __init__(self, irc: "IRCFactory", limitKey: str | None) -> None:
        super().__init__(irc.connections, limitKey)
        self.irc = irc
        self.maxLength = MAX_LINE
        self.renderer: IRCRenderer = irc.renderers[(False, False)]
        # A room's lines and notices from the hub: none before the client is
        # shown its channels (a SASL login is in the rooms before
        # registration ends).  Slots, not methods that check: the fan-out
        # calls deliver once per recipient, and registration puts the
        # queue's own methods in place.
        self.deliver = self.announce = _unregistered  # type: ignore[method-assign]
        self.echoes = False
        self._caps: set[str] = set()
        self._negotiating = False
        self._nick: str | None = None
        self._user: str | None = None
        self._realname = ""
        self._password: str | None = None
        self._sasl: PlainExchange | None = None
        self._registered = False
        self._noticeSent = False
        self._account: str | None = None
        self._partner: str | None = None
        self._askedBy: str | None = None
        self._modes = ""
        self._reply: Callable[[Event], None] | None = None
        self._held: list[Event] = []
        self._channels: dict[str, str] = {}
        self._batches = 0

    # Who this client is

    @property
    def me(self) -> str:
        """
        The client's nick as numerics address it: the account once logged
        in, the nick asked for before, else C{*}.
        """
        return self._account or self._nick or "*"

    @property
    def mask(self) -> str:
        return self.renderer.mask(self.me, KIND)

    def loginPending(self) -> bool:
        return not self._registered

    # Output

    def send(self, data: bytes) -> None:
        """
        Queue C{data}, made for this client alone.
        """
        LineConnection.deliver(self, data)

    def reply(self, command: str, *params: str, prefix: str | None = None) -> None:
        """
        Send one message from the server (by default) to this client.
        """
        server = self.irc.server
        self.send(self.renderer.encode(command, *params, prefix=prefix or server))

    def numeric(self, code: str, *params: str) -> None:
        """
        Send the numeric C{code} addressed to this client.
        """
        self.reply(code, self.me, *params)

    def error(self, text: str) -> None:
        """
        Send C{ERROR :text} and close.
        """
        self.send(self.renderer.encode("ERROR", text))
        self.close()

    def serviceNotice(self, text: str) -> None:
        """
        A NOTICE from the service nick.
        """
        self.send(
            self.renderer.text("NOTICE", serviceMask(self.irc.server), self.me, text)
        )

    # Events

    def notify(self, event: Event) -> None:
        if isinstance(event, _RESULTS):
            (self._reply or self._serviceReply)(event)
        elif not self._registered and isinstance(event, _NOTIFICATIONS):
            self._held.append(event)
        else:
            self._notification(event)

    def _serviceReply(self, event: Event) -> None:
        """
        A result as the line protocol says it, in NOTICEs from the service.
        """
        if type(event) is Goodbye:
            self.error(numerics.ERROR_CLOSING)
            return
        if type(event) is RequestRejected:
            self._askedBy = None
        elif type(event) is LeftPrivate:
            self._partner = None
        for line in contract(event):
            self.serviceNotice(line)

    def _notification(self, event: Event) -> None:
        server = self.irc.server
        match event:
            case PrivateLine(sender, text, origin):
                self._partner = sender
                mask = self.renderer.mask(sender, origin)
                self.send(self.renderer.text("PRIVMSG", mask, self.me, text))
                return
            case PrivateRequest(requester):
                self._askedBy = requester
                question = contract(event)[0]
                self.send(
                    self.renderer.text(
                        "PRIVMSG", serviceMask(server), self.me, question
                    )
                )
                return
            case PrivateStarted(partner):
                self._partner, self._askedBy = partner, None
            case PartnerLeft():
                self._partner = None
            case RequestFromExpired() | RequestFromCancelled():
                self._askedBy = None
            case LineTooLong():
                self.numeric(numerics.ERR_INPUTTOOLONG, numerics.INPUT_TOO_LONG)
                return
            case SlowDown():
                self.reply("NOTICE", self.me, contract(event)[0])
                return
            case ServiceDegraded() if not self._registered:
                self.error(contract(event)[0])
                return
            case ServerError() | ShuttingDown() | LoginTimedOut() | ExcessFlood():
                # The base closes the connection after these.
                self.send(self.renderer.encode("ERROR", contract(event)[0]))
                return
        for line in contract(event):
            self.serviceNotice(line)

    def supersede(self) -> None:
        super().supersede()
        self.error(contract(Superseded())[0])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        name = self.core.name
        if name is not None:
            self.irc.away.pop(foldName(name), None)
        super().connectionLost(reason)

    # Input

    def lineReceived(self, line: bytes) -> None:
        """
        Parse a line and hand it to its command's handler, holding the next
        input until the handler's core calls are done.
        """
        try:
            message = parseMessage(line.decode("utf-8", "replace"))
        except LineTooLongError:
            self.numeric(numerics.ERR_INPUTTOOLONG, numerics.INPUT_TOO_LONG)
            return
        if message is None:
            return
        self._reply = None
        try:
            self._await(self._dispatch(message))
        except Exception:
            self.failed(Failure())

    def _dispatch(self, message: Message) -> "Deferred[None] | None":
        name = message.command
        if name == "JOIN" and not any(message.params):
            # irssi's bare "JOIN :" during CAP negotiation.
            return None
        command = _COMMANDS.get(name)
        if not self._registered and (command is None or not command.beforeRegistration):
            self.numeric(numerics.ERR_NOTREGISTERED, numerics.NOT_REGISTERED)
            return None
        if command is None:
            self.numeric(numerics.ERR_UNKNOWNCOMMAND, name, numerics.UNKNOWN_COMMAND)
            return None
        if len(message.params) < command.minimum:
            self.numeric(numerics.ERR_NEEDMOREPARAMS, name, numerics.NEED_MORE_PARAMS)
            return None
        handler: Callable[[Message], Deferred[None] | None] = getattr(
            self, command.handler
        )
        return handler(message)

    def _expect(
        self, reply: Callable[[Event], None], call: CoreCall
    ) -> "Deferred[None] | None":
        """
        Make a core call whose results C{reply} renders.
        """
        if not self.connected or self.core.session is None:
            return None
        self._reply = reply
        return call()

    def _sequence(self, steps: Iterable[CoreCall]) -> "Deferred[None] | None":
        """
        Run C{steps} one after the other, each once the one before is done.
        """
        return self._runFrom(list(steps))

    def _runFrom(self, pending: list[CoreCall]) -> "Deferred[None] | None":
        while pending:
            d = pending.pop(0)()
            if d is not None:
                return d.addCallback(self._continue, pending)
        return None

    def _continue(self, _: object, pending: list[CoreCall]) -> "Deferred[None] | None":
        return self._runFrom(pending)

    # Registration

    def cmd_CAP(self, message: Message) -> "Deferred[None] | None":
        sub, params = message.params[0].upper(), message.params[1:]
        if sub == "LS":
            version = int(params[0]) if params and params[0].isdecimal() else 0
            if version >= caps.VALUES_VERSION:
                self._caps.add(caps.CAP_NOTIFY)
            if not self._registered:
                self._negotiating = True
            listing = caps.listing(version)
            for line in listing[:-1]:
                self.reply("CAP", self.me, "LS", "*", line)
            self.reply("CAP", self.me, "LS", listing[-1])
        elif sub == "LIST":
            self.reply("CAP", self.me, "LIST", " ".join(sorted(self._caps)))
        elif sub == "REQ":
            text = params[0] if params else ""
            if not self._registered:
                self._negotiating = True
            self._requestCaps(text)
        elif sub == "END":
            if self._registered:
                return None
            self._negotiating = False
            if self._sasl is not None:
                self._sasl = None
                self.numeric(numerics.ERR_SASLABORTED, numerics.SASL_ABORTED)
            return self._register()
        else:
            self.numeric(numerics.ERR_INVALIDCAPCMD, sub, numerics.INVALID_CAP)
        return None

    def _requestCaps(self, text: str) -> None:
        """
        Grant or refuse a C{CAP REQ} whole.
        """
        request = caps.parseRequest(text)
        if request is None or (
            self.core.session is not None
            and (request.enable | request.disable) & caps.RENDERING
        ):
            self.reply("CAP", self.me, "NAK", text)
            return
        self.reply("CAP", self.me, "ACK", text)
        self._caps |= request.enable
        self._caps -= request.disable
        key = (caps.SERVER_TIME in self._caps, caps.MESSAGE_TAGS in self._caps)
        self.renderer = self.irc.renderers[key]
        self.echoes = caps.ECHO_MESSAGE in self._caps

    def cmd_NICK(self, message: Message) -> "Deferred[None] | None":
        raw = message.params[0] if message.params else ""
        if not raw:
            self.numeric(numerics.ERR_NONICKNAMEGIVEN, numerics.NO_NICKNAME)
            return None
        if self._registered:
            if foldName(raw) != foldName(self.me):
                self.numeric(numerics.ERR_NONICKCHANGE, raw, numerics.NICK_IS_ACCOUNT)
            return None
        name = self.core.checkName(raw)
        if name is None:
            reserved = foldName(raw) in RESERVED
            text = (
                numerics.RESERVED_NICKNAME if reserved else numerics.ERRONEOUS_NICKNAME
            )
            self.numeric(numerics.ERR_ERRONEUSNICKNAME, raw, text)
            return None
        self._nick = name
        return self._register()

    def cmd_USER(self, message: Message) -> "Deferred[None] | None":
        if self._registered:
            self.numeric(numerics.ERR_ALREADYREGISTERED, numerics.ALREADY_REGISTERED)
            return None
        self._user = message.params[0]
        self._realname = message.params[3]
        return self._register()

    def cmd_PASS(self, message: Message) -> "Deferred[None] | None":
        if self._registered:
            self.numeric(numerics.ERR_ALREADYREGISTERED, numerics.ALREADY_REGISTERED)
            return None
        self._password = message.params[0]
        return self._register()

    def _credentials(self) -> tuple[str, str] | None:
        """
        The account and password the server password names: C{account:pw}
        (ZNC's form), else the password of the account NICK named.
        """
        password = self._password
        if not password or self._nick is None:
            return None
        account, colon, rest = password.partition(":")
        name = self.core.checkName(account) if colon and rest else None
        if name is not None:
            return name, rest
        return self._nick, password

    def _register(self) -> "Deferred[None] | None":
        """
        End registration if everything it needs is there: NICK, USER, the
        end of CAP negotiation, and a login (SASL's, or the server
        password's, checked now).  Without credentials, say how to log in.
        """
        if (
            self._registered
            or self._negotiating
            or self._nick is None
            or self._user is None
            or not self.connected
            or self.transport.disconnecting
        ):
            return None
        if self.core.session is not None:
            return self._welcome()
        credentials = self._credentials()
        if credentials is None:
            if not self._noticeSent:
                self._noticeSent = True
                self.reply("NOTICE", self.me, numerics.NOTICE_LOG_IN)
            return None
        self._password = None
        self._reply = self._passwordReply
        d = self.core.logIn(*credentials, replay=False)
        return d.addCallback(lambda _: self._register())

    def _passwordReply(self, event: Event) -> None:
        """
        The outcome of the login by server password.
        """
        if type(event) is LoggedIn:
            self._account = event.name
        elif type(event) is LoginRefused:
            if event.reason is Refusal.TOO_MANY_REGISTRATIONS:
                self.error(contract(event)[0])
            else:
                self.numeric(numerics.ERR_PASSWDMISMATCH, numerics.PASSWORD_INCORRECT)
                self.error(numerics.ERROR_WRONG_PASSWORD)
        # A takeover's current room: the burst shows every channel instead.

    def cmd_AUTHENTICATE(self, message: Message) -> "Deferred[None] | None":
        if self._registered or self.core.session is not None:
            self.numeric(numerics.ERR_SASLALREADY, numerics.SASL_ALREADY)
            return None
        argument = message.params[0]
        exchange = self._sasl
        if exchange is None:
            if argument.upper() != MECHANISM:
                self.numeric(
                    numerics.RPL_SASLMECHS, MECHANISM, numerics.SASL_MECHANISMS
                )
                self.numeric(numerics.ERR_SASLFAIL, numerics.SASL_FAILED)
                return None
            self._sasl = PlainExchange()
            self.send(self.renderer.encode("AUTHENTICATE", "+"))
            return None
        step = exchange.receive(argument)
        if step is Step.MORE:
            return None
        self._sasl = None
        credentials = exchange.credentials
        name = self.core.checkName(credentials.account) if credentials else None
        if step is Step.ABORTED:
            self.numeric(numerics.ERR_SASLABORTED, numerics.SASL_ABORTED)
        elif step is Step.TOO_LONG:
            self.numeric(numerics.ERR_SASLTOOLONG, numerics.SASL_TOO_LONG)
        elif name is None or credentials is None:
            self.numeric(numerics.ERR_SASLFAIL, numerics.SASL_FAILED)
        else:
            self._reply = self._saslReply
            d = self.core.logIn(name, credentials.password, replay=False)
            return d.addCallback(lambda _: self._register())
        return None

    def _saslReply(self, event: Event) -> None:
        """
        The outcome of a SASL login.
        """
        if type(event) is LoggedIn:
            account = self._account = event.name
            self.numeric(
                numerics.RPL_LOGGEDIN,
                self.mask,
                account,
                numerics.LOGGED_IN_AS.format(account=account),
            )
            self.numeric(numerics.RPL_SASLSUCCESS, numerics.SASL_SUCCESS)
        elif type(event) is LoginRefused:
            self.numeric(numerics.ERR_SASLFAIL, numerics.SASL_FAILED)
            if event.reason is not Refusal.WRONG_PASSWORD:
                self.error(contract(event)[0])

    def _welcome(self) -> "Deferred[None] | None":
        """
        Registration ends: the burst (001-005, MOTD), then the client's
        channels: #general at a login, every room the session is in at a
        takeover (as a bouncer replays them), and what was held meanwhile
        (a takeover's private chat).
        """
        self._registered = True
        self.deliver = super().deliver  # type: ignore[method-assign]
        self.announce = super().announce  # type: ignore[method-assign]
        self.loggedIn()
        server = self.irc.server
        version = numerics.VERSION.format(version=__version__)
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.irc.created))
        self.numeric(
            numerics.RPL_WELCOME,
            numerics.WELCOME.format(network=numerics.NETWORK, mask=self.mask),
        )
        self.numeric(
            numerics.RPL_YOURHOST,
            numerics.YOURHOST.format(server=server, version=version),
        )
        self.numeric(numerics.RPL_CREATED, numerics.CREATED.format(date=created))
        self.numeric(
            numerics.RPL_MYINFO,
            server,
            version,
            numerics.USER_MODES,
            numerics.CHANNEL_MODES,
        )
        tokens = isupport(server)
        for start in range(0, len(tokens), numerics.ISUPPORT_PER_LINE):
            chunk = tokens[start : start + numerics.ISUPPORT_PER_LINE]
            self.numeric(numerics.RPL_ISUPPORT, *chunk, numerics.ISUPPORT)
        self.cmd_MOTD(Message("MOTD"))
        session = self.core.session
        assert session is not None
        rooms = sorted(session.rooms.items())
        steps: list[CoreCall] = [partial(self._showJoin, room) for _, room in rooms]
        steps.append(self._release)
        return self._sequence(steps)

    def _release(self) -> None:
        held, self._held = self._held, []
        for event in held:
            self._notification(event)

    def cmd_PING(self, message: Message) -> None:
        if not message.params or not message.params[0]:
            self.numeric(numerics.ERR_NOORIGIN, numerics.NO_ORIGIN)
            return
        server = self.irc.server
        self.reply("PONG", server, message.params[0])

    def cmd_PONG(self, message: Message) -> None:
        """
        A client's answer to a PING: nothing to do (TCP keepalive finds
        vanished peers).
        """

    def cmd_QUIT(self, message: Message) -> "Deferred[None] | None":
        reason = message.params[0] if message.params else ""
        text = (
            numerics.ERROR_CLOSING_WHY.format(
                reason=numerics.QUIT_REASON.format(reason=reason)
            )
            if reason
            else numerics.ERROR_CLOSING
        )

        def quit(event: Event) -> None:
            if type(event) is Goodbye:
                self.error(text)

        if self.core.session is None:
            self.error(text)
            return None
        return self._expect(quit, lambda: self.core.logOut(reason))

    # Channels

    def _channel(self, raw: str) -> str | None:
        """
        The room C{raw} names, or L{None} after C{403}/C{476}.
        """
        room = normalizeRoom(raw)
        if room is None:
            if raw.startswith("#"):
                self.numeric(numerics.ERR_BADCHANMASK, raw, numerics.BAD_CHANNEL_MASK)
            else:
                self.numeric(numerics.ERR_NOSUCHCHANNEL, raw, numerics.NO_SUCH_CHANNEL)
        return room

    def _inRoom(self, room: str) -> bool:
        session = self.core.session
        return session is not None and foldName(room) in session.rooms

    def _ifExists(
        self, room: str, exists: Callable[[RoomMembers], None]
    ) -> "Deferred[None] | None":
        """
        Call C{exists} with the members of C{room} if it exists, else
        answer C{403}.
        """

        def found(event: Event) -> None:
            if type(event) is RoomMembers:
                exists(event)
            else:
                self.numeric(numerics.ERR_NOSUCHCHANNEL, room, numerics.NO_SUCH_CHANNEL)

        return self._expect(found, lambda: self.core.roomMembers(room))

    def _notOn(self, room: str) -> "Deferred[None] | None":
        """
        Answer C{442} if C{room} exists, else C{403}.
        """
        return self._ifExists(
            room,
            lambda _: self.numeric(
                numerics.ERR_NOTONCHANNEL, room, numerics.NOT_ON_CHANNEL
            ),
        )

    def _showJoin(self, room: str) -> "Deferred[None] | None":
        """
        Show the client its JOIN of C{room} and the room's names.
        """
        self._channels[foldName(room)] = room
        self.send(self.renderer.encode("JOIN", room, prefix=self.mask))
        return self._names(room)

    def _names(self, room: str) -> "Deferred[None] | None":
        def listed(event: Event) -> None:
            if type(event) is RoomMembers:
                self._namesReply(event)
            else:
                self.numeric(numerics.RPL_ENDOFNAMES, room, numerics.END_OF_NAMES)

        return self._expect(listed, lambda: self.core.roomMembers(room))

    def _namesReply(self, members: RoomMembers) -> None:
        """
        C{353} lines that fit IRC's line, then C{366}.
        """
        room = members.room
        if caps.USERHOST_IN_NAMES in self._caps:
            pairs = zip(members.names, members.origins, strict=True)
            entries = [self.renderer.mask(name, origin) for name, origin in pairs]
        else:
            entries = list(members.names)
        head = f":{self.irc.server} 353 {self.me} = {room} :"
        space = 510 - len(head.encode())
        line: list[str] = []
        size = 0
        for entry in entries:
            length = len(entry.encode()) + 1
            if line and size + length > space:
                self.numeric(
                    numerics.RPL_NAMREPLY, numerics.PUBLIC, room, " ".join(line)
                )
                line, size = [], 0
            line.append(entry)
            size += length
        if line:
            self.numeric(numerics.RPL_NAMREPLY, numerics.PUBLIC, room, " ".join(line))
        self.numeric(numerics.RPL_ENDOFNAMES, room, numerics.END_OF_NAMES)

    def cmd_JOIN(self, message: Message) -> "Deferred[None] | None":
        target = message.params[0]
        if target == "0":
            return self._partAll()
        return self._sequence(
            partial(self._join, raw) for raw in target.split(",") if raw
        )

    def _join(self, raw: str) -> "Deferred[None] | None":
        room = self._channel(raw)
        if room is None or self._inRoom(room):
            return None

        def joined(event: Event) -> None:
            if type(event) is RoomRefused:
                text = contract(event)[0]
                self.numeric(numerics.ERR_TOOMANYCHANNELS, event.room, text)

        d = self._expect(joined, lambda: self.core.joinRoom(room, replay=False))
        return then(d, lambda: self._showJoin(room) if self._inRoom(room) else None)

    def _partAll(self) -> "Deferred[None] | None":
        session = self.core.session
        assert session is not None
        rooms = sorted(session.rooms.values())
        return self._sequence(partial(self._part, room, "") for room in rooms)

    def cmd_PART(self, message: Message) -> "Deferred[None] | None":
        reason = message.params[1] if len(message.params) > 1 else ""
        return self._sequence(
            partial(self._part, raw, reason)
            for raw in message.params[0].split(",")
            if raw
        )

    def _part(self, raw: str, reason: str) -> "Deferred[None] | None":
        room = self._channel(raw)
        if room is None:
            return None
        if not self._inRoom(room):
            return self._notOn(room)

        def left(event: Event) -> None:
            if type(event) is LeftRoom:
                self._showPart(event.room, reason)
            elif type(event) is RoomRefused:
                self.numeric(numerics.ERR_NOTONCHANNEL, room, numerics.NOT_ON_CHANNEL)

        return self._expect(left, lambda: self.core.leaveRoom(room, True, reason))

    def _showPart(self, room: str, reason: str) -> None:
        self._channels.pop(foldName(room), None)
        self.send(self.renderer.part(self.mask, room, reason))

    def _syncChannels(self) -> "Deferred[None] | None":
        """
        Show the client the rooms a ChatServ command joined or left.
        """
        session = self.core.session
        if session is None or not self._registered:
            return None
        for key, room in list(self._channels.items()):
            if key not in session.rooms:
                self._showPart(room, "")
        return self._sequence(
            partial(self._showJoin, room)
            for key, room in sorted(session.rooms.items())
            if key not in self._channels
        )

    def cmd_NAMES(self, message: Message) -> "Deferred[None] | None":
        if not message.params or not message.params[0]:
            self.numeric(numerics.RPL_ENDOFNAMES, "*", numerics.END_OF_NAMES)
            return None
        raw = message.params[0].split(",")[0]
        room = normalizeRoom(raw)
        if room is None:
            self.numeric(numerics.RPL_ENDOFNAMES, raw, numerics.END_OF_NAMES)
            return None
        return self._names(room)

    def cmd_TOPIC(self, message: Message) -> "Deferred[None] | None":
        room = self._channel(message.params[0])
        if room is None:
            return None
        if len(message.params) > 1:

            def refuse(_: RoomMembers) -> None:
                if self._inRoom(room):
                    self.numeric(
                        numerics.ERR_CHANOPRIVSNEEDED, room, numerics.NOT_OPERATOR
                    )
                else:
                    self.numeric(
                        numerics.ERR_NOTONCHANNEL, room, numerics.NOT_ON_CHANNEL
                    )

            return self._ifExists(room, refuse)
        return self._ifExists(
            room, lambda _: self.numeric(numerics.RPL_NOTOPIC, room, numerics.NO_TOPIC)
        )

    def cmd_LIST(self, message: Message) -> "Deferred[None] | None":
        wanted = (
            {foldName(name) for name in message.params[0].split(",")}
            if message.params and message.params[0]
            else None
        )

        def listed(event: Event) -> None:
            if type(event) is not RoomList:
                return
            self.numeric(numerics.RPL_LISTSTART, *numerics.LIST_START)
            for room in event.rooms:
                if wanted is None or foldName(room.name) in wanted:
                    self.numeric(numerics.RPL_LIST, room.name, str(room.count), "")
            self.numeric(numerics.RPL_LISTEND, numerics.END_OF_LIST)

        return self._expect(listed, self.core.listRooms)

    def cmd_MODE(self, message: Message) -> "Deferred[None] | None":
        target = message.params[0]
        if target.startswith("#"):
            return self._channelMode(target, message.params[1:])
        if foldName(target) != foldName(self.me):
            self.numeric(numerics.ERR_USERSDONTMATCH, numerics.USERS_DONT_MATCH)
            return None
        if len(message.params) == 1:
            self.numeric(numerics.RPL_UMODEIS, "+" + self._modes)
            return None
        applied = ""
        sign = "+"
        unknown = False
        for char in message.params[1]:
            if char in "+-":
                sign = char
            elif char in numerics.USER_MODES:
                had = char in self._modes
                if (sign == "+") != had:
                    self._modes = char if sign == "+" else ""
                    applied += sign + char
            else:
                unknown = True
        if unknown:
            self.numeric(numerics.ERR_UMODEUNKNOWNFLAG, numerics.UNKNOWN_MODE_FLAG)
        if applied:
            self.send(self.renderer.encode("MODE", self.me, applied, prefix=self.mask))
        return None

    def _channelMode(
        self, raw: str, changes: tuple[str, ...]
    ) -> "Deferred[None] | None":
        room = self._channel(raw)
        if room is None:
            return None
        if not changes:

            def show(_: RoomMembers) -> None:
                self.numeric(
                    numerics.RPL_CHANNELMODEIS, room, "+" + numerics.CHANNEL_MODES
                )
                created = str(int(self.irc.created))
                self.numeric(numerics.RPL_CREATIONTIME, room, created)

            return self._ifExists(room, show)
        letters = changes[0].lstrip("+")
        if letters in numerics.LIST_MODES and len(changes) == 1:
            code, text = numerics.LIST_MODES[letters]
            self.numeric(code, room, text)
        else:
            self.numeric(numerics.ERR_CHANOPRIVSNEEDED, room, numerics.NOT_OPERATOR)
        return None

    # Users

    def _away(self, name: str) -> str | None:
        return self.irc.away.get(foldName(name))

    def _online(self, answer: Callable[[OnlineUsers], None]) -> "Deferred[None] | None":
        """
        Call C{answer} with everyone online.
        """

        def listed(event: Event) -> None:
            if type(event) is OnlineUsers:
                answer(event)

        return self._expect(listed, self.core.who)

    def _whoLine(self, channel: str, name: str, origin: str) -> None:
        user, host = userAndHost(name, origin, self.irc.server)
        here = "G" if self._away(name) else "H"
        realname = self._realname if foldName(name) == foldName(self.me) else name
        self.numeric(
            numerics.RPL_WHOREPLY,
            channel,
            user,
            host,
            self.irc.server,
            name,
            here,
            numerics.WHO_REAL_NAME.format(realname=realname),
        )

    def cmd_WHO(self, message: Message) -> "Deferred[None] | None":
        mask = message.params[0] if message.params and message.params[0] else "*"

        def done() -> None:
            self.numeric(numerics.RPL_ENDOFWHO, mask, numerics.END_OF_WHO)

        if mask.startswith("#"):
            room = normalizeRoom(mask)
            if room is None:
                done()
                return None

            def members(event: Event) -> None:
                if type(event) is RoomMembers:
                    for name, origin in zip(event.names, event.origins, strict=True):
                        self._whoLine(event.room, name, origin)
                done()

            return self._expect(members, lambda: self.core.roomMembers(room))

        pattern = foldName(mask)

        def matching(event: OnlineUsers) -> None:
            for user in event.users:
                if fnmatchcase(foldName(user.name), pattern):
                    self._whoLine("*", user.name, user.origin)
            done()

        return self._online(matching)

    def cmd_WHOIS(self, message: Message) -> "Deferred[None] | None":
        nick = message.params[-1].split(",")[0]
        server = self.irc.server

        def end() -> None:
            self.numeric(numerics.RPL_ENDOFWHOIS, nick, numerics.END_OF_WHOIS)

        if foldName(nick) == SERVICE_KEY:
            service = numerics.SERVICE
            self.numeric(
                numerics.RPL_WHOISUSER,
                service,
                numerics.SERVICE_USER,
                server,
                "*",
                numerics.SERVICE_REAL_NAME,
            )
            self.numeric(
                numerics.RPL_WHOISSERVER, service, server, numerics.SERVER_INFO
            )
            end()
            return None

        def found(event: Event) -> None:
            if type(event) is NoSuchUser:
                self.numeric(numerics.ERR_NOSUCHNICK, nick, numerics.NO_SUCH_NICK)
            elif type(event) is UserInfo:
                name = event.name
                user, host = userAndHost(name, event.origin, server)
                self.numeric(numerics.RPL_WHOISUSER, name, user, host, "*", name)
                self.numeric(
                    numerics.RPL_WHOISSERVER, name, server, numerics.SERVER_INFO
                )
                if event.rooms:
                    self.numeric(
                        numerics.RPL_WHOISCHANNELS, name, " ".join(event.rooms)
                    )
                away = self._away(name)
                if away:
                    self.numeric(numerics.RPL_AWAY, name, away)
                self.numeric(
                    numerics.RPL_WHOISACCOUNT, name, name, numerics.IS_LOGGED_IN_AS
                )
            end()

        return self._expect(found, lambda: self.core.whois(nick))

    def cmd_TIME(self, message: Message) -> None:
        now = time.strftime(
            "%A %B %d %Y -- %H:%M:%S UTC", time.gmtime(self.clock.seconds())
        )
        self.numeric(numerics.RPL_TIME, self.irc.server, now)

    def cmd_ISON(self, message: Message) -> "Deferred[None] | None":
        asked = " ".join(message.params).split()

        def answer(event: OnlineUsers) -> None:
            online = {foldName(user.name): user.name for user in event.users}
            online[SERVICE_KEY] = numerics.SERVICE
            found = [online[foldName(n)] for n in asked if foldName(n) in online]
            self.numeric(numerics.RPL_ISON, " ".join(found))

        return self._online(answer)

    def cmd_USERHOST(self, message: Message) -> "Deferred[None] | None":
        asked = " ".join(message.params).split()[:_USERHOST_MAX]
        server = self.irc.server

        def answer(event: OnlineUsers) -> None:
            online = {foldName(user.name): user for user in event.users}
            replies = []
            for nick in asked:
                status = online.get(foldName(nick))
                if status is not None:
                    name = status.name
                    user, host = userAndHost(name, status.origin, server)
                    here = "-" if self._away(name) else "+"
                    replies.append(f"{name}={here}{user}@{host}")
            self.numeric(numerics.RPL_USERHOST, " ".join(replies))

        return self._online(answer)

    def cmd_AWAY(self, message: Message) -> None:
        text = message.params[0] if message.params else ""
        key = foldName(self.me)
        if text:
            self.irc.away[key] = text
            self.numeric(numerics.RPL_NOWAWAY, numerics.NOWAWAY)
        else:
            self.irc.away.pop(key, None)
            self.numeric(numerics.RPL_UNAWAY, numerics.UNAWAY)

    def cmd_MOTD(self, message: Message) -> None:
        server = self.irc.server
        self.numeric(numerics.RPL_MOTDSTART, numerics.MOTD_START.format(server=server))
        for text in numerics.MOTD:
            self.numeric(numerics.RPL_MOTD, numerics.MOTD_LINE.format(text=text))
        self.numeric(numerics.RPL_ENDOFMOTD, numerics.END_OF_MOTD)

    # Messages

    def cmd_PRIVMSG(self, message: Message) -> "Deferred[None] | None":
        return self._message(message, notice=False)

    def cmd_NOTICE(self, message: Message) -> "Deferred[None] | None":
        return self._message(message, notice=True)

    def cmd_TAGMSG(self, message: Message) -> None:
        """
        A message of tags only (typing notices): the chat carries no client
        tags, so there is nothing to relay.
        """

    def _message(self, message: Message, notice: bool) -> "Deferred[None] | None":
        """
        PRIVMSG or NOTICE: to a room, to the service, or to a nick (where it
        is a private chat's line, or a request for one).  No error ever
        answers a NOTICE.
        """
        params = message.params
        if not params or not params[0]:
            if not notice:
                self.numeric(
                    numerics.ERR_NORECIPIENT,
                    numerics.NO_RECIPIENT.format(command=message.command),
                )
            return None
        target = params[0]
        said = clientText(params[1]) if len(params) > 1 else ("", False)
        if said is None:
            return None
        text, action = said
        if not text.strip():
            if not notice:
                self.numeric(numerics.ERR_NOTEXTTOSEND, numerics.NO_TEXT)
            return None
        if target.startswith("#"):
            return self._toRoom(target, toCore(text, action), notice)
        if foldName(target) == SERVICE_KEY:
            return None if notice or action else self._toService(text)
        return self._toNick(target, text, action, notice)

    def _toRoom(self, raw: str, text: str, notice: bool) -> "Deferred[None] | None":
        room = normalizeRoom(raw)
        if room is None:
            if not notice:
                self.numeric(numerics.ERR_NOSUCHCHANNEL, raw, numerics.NO_SUCH_CHANNEL)
            return None
        if self._inRoom(room):
            self._reply = lambda event: None
            self.core.sayInRoom(foldName(room), text, notice)
            return None
        if notice:
            return None
        return self._ifExists(
            room,
            lambda _: self.numeric(
                numerics.ERR_CANNOTSENDTOCHAN, room, numerics.CANNOT_SEND
            ),
        )

    def _toNick(
        self, target: str, text: str, action: bool, notice: bool
    ) -> "Deferred[None] | None":
        name = self.core.checkName(target)
        if name is None:
            if not notice:
                self.numeric(numerics.ERR_NOSUCHNICK, target, numerics.NO_SUCH_NICK)
            return None
        key = foldName(name)
        partner = self._partner
        if partner is not None and foldName(partner) == key:
            if self.core.sayToPartner(toCore(text, action)):
                self._echoPrivate(partner, text, action)
                away = self._away(partner)
                if away and not notice:
                    self.numeric(numerics.RPL_AWAY, partner, away)
                return None
            self._partner = None
        if notice:
            return None
        asker = self._askedBy
        answer = text.strip().upper()
        if asker is not None and foldName(asker) == key and answer in ANSWERS:
            return self._expect(
                self._serviceReply, lambda: self.core.answer(ANSWERS[answer])
            )

        def requested(event: Event) -> None:
            if type(event) is RequestResult and event.outcome in (
                Request.NO_SUCH_USER,
                Request.OFFLINE,
            ):
                self.numeric(numerics.ERR_NOSUCHNICK, target, numerics.NO_SUCH_NICK)
            else:
                self._serviceReply(event)

        return self._expect(requested, lambda: self.core.requestPrivateChat(name))

    def _echoPrivate(self, partner: str, text: str, action: bool) -> None:
        """
        Show an echo-message client its own private line.
        """
        if self.echoes:
            body = toCore(text, action)
            self.send(self.renderer.text("PRIVMSG", self.mask, partner, body))

    def _toService(self, text: str) -> "Deferred[None] | None":
        """
        A line for the service: one of the line protocol's commands, run
        through the core's one command table, answered in NOTICEs.
        """
        parsed = parseLine(text)
        if parsed is None:
            self.serviceNotice(numerics.CHATSERV_PLAIN_TEXT)
            return None
        if parsed.name in ANSWERS:
            return self._expect(
                self._serviceReply, lambda: self.core.answer(ANSWERS[parsed.name])
            )
        d = self._expect(self._serviceReply, lambda: self.core.perform(text))
        return then(d, self._syncChannels)

    def cmd_ACCEPT(self, message: Message) -> "Deferred[None] | None":
        raw = message.params[0]
        accept = not raw.startswith("-")
        name = raw.lstrip("-")
        asker = self._askedBy
        if asker is None or foldName(asker) != foldName(name):
            self.serviceNotice(numerics.NO_REQUEST_FROM.format(name=name))
            return None
        return self._expect(self._serviceReply, lambda: self.core.answer(accept))

    # History

    def cmd_CHATHISTORY(self, message: Message) -> "Deferred[None] | None":
        params = message.params
        sub = params[0].upper()
        try:
            around = Around(sub)
        except ValueError:
            self._historyFail(
                numerics.FAIL_UNKNOWN_COMMAND, sub, numerics.HISTORY_BAD_SUBCOMMAND
            )
            return None
        wanted = 4 if around is Around.BETWEEN else 3
        if len(params) <= wanted or not params[wanted].isdecimal():
            self._historyFail(
                numerics.FAIL_INVALID_PARAMS, sub, numerics.HISTORY_BAD_PARAMS
            )
            return None
        target = params[1]
        limit = min(int(params[wanted]), HISTORY_MAX)
        raws = params[2:wanted]
        references = [parseReference(raw) for raw in raws]
        latestOfAll = around is Around.LATEST and raws == ("*",)
        if limit < 1 or (None in references and not latestOfAll):
            self._historyFail(
                numerics.FAIL_INVALID_PARAMS, sub, numerics.HISTORY_BAD_PARAMS
            )
            return None
        room = normalizeRoom(target)
        if room is None or not self._inRoom(room):
            self._historyFail(
                numerics.FAIL_INVALID_TARGET, sub, target, numerics.HISTORY_BAD_TARGET
            )
            return None
        first = references[0]
        second = references[1] if len(references) > 1 else None
        query = HistoryQuery(around, limit, first, second)

        def found(event: Event) -> None:
            if type(event) is History:
                self._historyBatch(room, event)
            elif type(event) is HistoryOff:
                self._historyBatch(room, History(room, ()))

        return self._expect(found, lambda: self.core.chatHistory(room, query))

    def _historyFail(self, code: str, *context: str) -> None:
        self.reply(numerics.FAIL, numerics.CHATHISTORY, code, *context)

    def _historyBatch(self, room: str, history: History) -> None:
        """
        The lines of C{history} as PRIVMSGs, in a C{chathistory} batch if
        the client takes batches.
        """
        batched = caps.BATCH in self._caps
        self._batches += 1
        reference = f"h{self._batches}"
        tags = {"batch": reference} if batched else None
        if batched:
            self.reply("BATCH", "+" + reference, "chathistory", room)
        for entry in history.entries:
            mask = self.renderer.mask(entry.sender, entry.origin)
            self.send(
                self.renderer.text(
                    "PRIVMSG", mask, room, entry.text, entry.time, entry.msgid, tags
                )
            )
        if batched:
            self.reply("BATCH", "-" + reference)


class IRCFactory(ServerFactory):
    """
    Makes an L{IRCProtocol} per connection admitted by the connection
    limits, and holds what the IRC connections of one node share: the
    server name, the renderers and away texts.

    @ivar away: the away texts of this node's IRC users, by folded name.
    """

    def __init__(self, connections: Connections, server: str) -> None:
        self.connections = connections
        self.server = server
        self.renderers = renderers(server, connections.clock)
        self.away: dict[str, str] = {}
        self.created = connections.clock.seconds()

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        Admit a connection within the connection limits, or answer it with
        C{ERROR} and close it.
        """
        admitted, key = self.connections.admit(addr)
        if not admitted:
            return Refused(f"ERROR :{contract(TooManyConnections())[0]}\r\n".encode())
        protocol = IRCProtocol(self, key)
        protocol.factory = self
        return protocol
