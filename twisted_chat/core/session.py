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
    LeftPrivate,
    LoggedIn,
    LoginRefused,
    NoRequest,
    NotInPrivate,
    OnlineUsers,
    PasswordChanged,
    PrivateStarted,
    Refusal,
    Request,
    RequestRejected,
    RequestResult,
    SearchResults,
    UnknownCommand,
    UserStatus,
)
from .hub import Departure, IChatClient, Session
from .limits import addressKey
from .services import ChatServices, IHeartbeatClient
from .text import foldName, normalizeName


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
        the name rules.  An invalid name is not a failed login.
        """
        return normalizeName(raw)

    def logIn(self, name: str, password: str) -> "Deferred[None]":
        """
        Log in as C{name} (valid by L{checkName}), registering it if it is
        unknown, within the registration limit and after the login backoff
        of this account and address.  Shows L{LoggedIn} or L{LoginRefused}.
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
            return checked.addCallback(self._authenticated, backoffKey)

        return services.accounts.lookup(name).addCallback(known)

    def _authenticated(
        self, result: tuple[AuthResult, str], backoffKey: tuple[str, str]
    ) -> "Deferred[None] | None":
        services = self.services
        outcome, name = result
        if outcome is AuthResult.REGISTERED:
            services.audit.registered(name)
        if outcome is AuthResult.REJECTED:
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
        return services.hub.attach(session).addCallback(self._attached, session)

    def _attached(self, takeover: bool, session: Session) -> None:
        services = self.services
        self.session = session
        services.audit.loggedIn(session.name, self.peer.host, self.peer.port)
        services.onlineChanged()
        if self._ended:
            self._leave(services.audit.lostConnection)
            return
        self._show(LoggedIn(session.name, takeover))

    # Leaving

    def connectionLost(self) -> "Deferred[None] | None":
        """
        The connection ended: the user, if logged in, leaves the chat.
        """
        self._ended = True
        if self.session is None:
            return None
        return self._leave(self.services.audit.lostConnection)

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

    def _leave(self, record: Callable[[str], None]) -> "Deferred[None]":
        """
        End the session: the hub tells whoever needs to know, and the audit
        log records it through C{record} unless the session was superseded.
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

        return services.hub.detach(session).addCallback(departed)

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
        Say C{text}: to the partner in a private chat, else to the group.
        """
        session = self.session
        assert session is not None
        if self.services.hub.say(session, text):
            self.services.audit.message(session.name, text)

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

        def left(partner: str | None) -> None:
            if partner is None:
                self._show(NotInPrivate())
            else:
                self.services.audit.privateChatClosed(session.name, partner)
                self._show(LeftPrivate(partner))

        return self.services.hub.leavePrivateChat(session).addCallback(left)

    def who(self) -> "Deferred[None]":
        """
        List everyone online.
        """

        def listed(users: list[UserStatus]) -> None:
            self._show(OnlineUsers(tuple(users)))

        return self.services.hub.online().addCallback(listed)

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

    def logOut(self) -> "Deferred[None]":
        """
        Leave the chat: L{Goodbye}, and the front-end closes the connection.
        """
        session = self.session
        assert session is not None
        # Leave first: closing the connection ends the session otherwise.
        leaving = self._leave(self.services.audit.loggedOut)
        self._show(Goodbye(session.name))
        return leaving
