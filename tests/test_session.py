"""
Unit tests for L{twisted_chat.core.session.SessionCore}, driven with no
transport at all: fake clients that record the typed events they are told,
a L{LocalHub}, an in-memory account store and a fake clock.
"""

import pickle
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.config import ServerConfig
from twisted_chat.core.accounts import AuthResult
from twisted_chat.core.events import (
    BadArguments,
    ChatLine,
    Event,
    Goodbye,
    HeartbeatGrant,
    Help,
    LeftPrivate,
    LoggedIn,
    LoginRefused,
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
    RequestFromExpired,
    RequestRejected,
    RequestResult,
    RequestToExpired,
    SearchResults,
    UnknownCommand,
    UserJoined,
    UserLeft,
    UserStatus,
)
from twisted_chat.core.history import IHistoryStore
from twisted_chat.core.hub import REQUEST_TIMEOUT, IChatClient, IRenderer
from twisted_chat.core.localhub import LocalHub
from twisted_chat.core.services import IHeartbeatClient
from twisted_chat.core.session import Peer, SessionCore
from twisted_chat.testing import MemoryAccountStore, makeServices


@implementer(IRenderer)
class PickleRenderer:
    """
    Renders a shared event as its pickle, so that a fake client can tell
    which event it was handed.
    """

    kind = "line"
    currentMatters = True
    privateHidesRooms = True

    def __init__(self) -> None:
        self.rendered = 0

    def render(self, event: Any, current: bool) -> bytes:
        self.rendered += 1
        return pickle.dumps(event)


RENDERER = PickleRenderer()


@implementer(IChatClient, IHeartbeatClient)
class FakeClient:
    """
    The front-end end of a session that records every event it is told, in
    order, and whether it was superseded.
    """

    renderer = RENDERER
    echoes = False

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.superseded = False
        self.failures: list[Failure] = []

    def deliver(self, data: bytes) -> None:
        self.events.append(pickle.loads(data))

    announce = deliver

    def notify(self, event: Event) -> None:
        self.events.append(event)

    def failed(self, failure: Failure) -> None:
        self.failures.append(failure)

    def supersede(self) -> None:
        self.superseded = True

    def heartbeatsStopped(self, timeout: float) -> None:
        pass

    def take(self) -> list[Event]:
        """
        The events told so far (a room's line without its time and id).
        """
        events, self.events = self.events, []
        return [
            ChatLine(e.room, e.sender, e.text) if isinstance(e, ChatLine) else e
            for e in events
        ]


class Chat:
    """
    The shared parts of a node with accounts alice, bob, carol and dave
    (password C{pw}), on a fake clock, and the session cores made on it.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        store: Any = None,
        history: IHistoryStore | None = None,
    ) -> None:
        self.clock = Clock()
        self.store = store or MemoryAccountStore(
            {name: "pw" for name in ["alice", "bob", "carol", "dave"]}
        )
        self.services, self.audit = makeServices(
            self.clock, self.store, config, history
        )
        self.ports = iter(range(40000, 50000))
        self.cores: list[SessionCore] = []

    @property
    def hub(self) -> LocalHub:
        hub = self.services.hub
        assert isinstance(hub, LocalHub)
        return hub

    def core(self, host: str = "192.0.2.1", limitKey: str | None = None) -> SessionCore:
        core = SessionCore(
            self.services, FakeClient(), Peer(host, next(self.ports), limitKey)
        )
        self.cores.append(core)
        return core

    def login(self, name: str, password: str = "pw") -> SessionCore:
        core = self.core()
        core.logIn(name, password)
        assert client(core).take() == [LoggedIn(name, False)]
        return core

    def users(self, *names: str) -> list[SessionCore]:
        cores = [self.login(name) for name in names]
        for core in cores:
            client(core).take()
        return cores

    def pair(self, requester: SessionCore, target: SessionCore) -> None:
        assert target.name is not None
        requester.perform(f"@PM {target.name}")
        target.perform("Y")
        client(requester).take()
        client(target).take()


def client(core: SessionCore) -> FakeClient:
    """
    The fake client of C{core}.
    """
    fake = core._client
    assert isinstance(fake, FakeClient)
    return fake


@pytest.fixture
def chat() -> Chat:
    return Chat()


class TestLogin:
    def test_knownNameRightPassword(self, chat: Chat) -> None:
        """When the password is right, the core logs the user in and says so."""
        core = chat.core()
        assert core.logIn("alice", "pw") is not None
        assert client(core).take() == [LoggedIn("alice", False)]
        assert core.name == "alice"
        assert chat.hub.sessionCount == 1
        assert chat.audit.lines[:2] == [
            "User alice logged in.",
            "Accepted new connection from 192.0.2.1:40000 username:alice",
        ]

    def test_accountSpellingKept(self, chat: Chat) -> None:
        """
        When a user logs in with another case, the core uses the account's own
        spelling.
        """
        core = chat.core()
        core.logIn("ALICE", "pw")
        assert client(core).take() == [LoggedIn("alice", False)]

    def test_unknownNameRegisters(self, chat: Chat) -> None:
        """When the name is unknown, the core registers it and logs in."""
        core = chat.core()
        core.logIn("newbie", "secret")
        assert client(core).take() == [LoggedIn("newbie", False)]
        assert chat.store.accounts["newbie"] == ("newbie", "secret")
        assert chat.audit.lines[0] == "User with newbie successfully registered."

    def test_wrongPassword(self, chat: Chat) -> None:
        """When the password is wrong, the core refuses and nobody is online."""
        core = chat.core()
        core.logIn("alice", "nope")
        assert client(core).take() == [LoginRefused(Refusal.WRONG_PASSWORD)]
        assert core.session is None
        assert chat.hub.sessionCount == 0

    def test_failedLoginLimit(self) -> None:
        """
        When a connection fails the login limit's number of times, the core says
        it is the last.
        """
        chat = Chat(ServerConfig(maxFailedLogins=2, loginBackoffBase=0))
        core = chat.core()
        core.logIn("alice", "nope")
        core.logIn("bob", "nope")
        assert client(core).take() == [
            LoginRefused(Refusal.WRONG_PASSWORD),
            LoginRefused(Refusal.TOO_MANY_FAILURES),
        ]

    def test_backoffDelaysTheCheck(self, chat: Chat) -> None:
        """
        When an account fails three times from one address, the core checks
        the next attempt only after a delay, even with the right password.
        """
        for _ in range(3):
            chat.core().logIn("alice", "nope")
        core = chat.core()
        done: list[object] = []
        core.logIn("alice", "pw").addBoth(done.append)
        chat.clock.advance(0.99)
        assert (client(core).take(), done) == ([], [])
        chat.clock.advance(0.01)
        assert client(core).take() == [LoggedIn("alice", False)]
        assert done == [None]

    def test_successResetsBackoff(self, chat: Chat) -> None:
        """When a login succeeds after failures, the core forgets the failures."""
        for _ in range(2):
            chat.core().logIn("alice", "nope")
        chat.core().logIn("alice", "pw")
        for _ in range(2):
            chat.core().logIn("alice", "nope")
        core = chat.core()
        core.logIn("alice", "nope")
        assert client(core).take() == [LoginRefused(Refusal.WRONG_PASSWORD)]

    def test_registrationLimit(self) -> None:
        """
        When an address has registered its quota, the core refuses another new
        name.
        """
        chat = Chat(ServerConfig(maxRegistrationsPerIp=1))
        first = chat.core(limitKey="192.0.2.1")
        first.logIn("one", "pw")
        second = chat.core(limitKey="192.0.2.1")
        second.logIn("two", "pw")
        assert client(first).take() == [LoggedIn("one", False)]
        assert client(second).take() == [LoginRefused(Refusal.TOO_MANY_REGISTRATIONS)]
        assert "two" not in chat.store.accounts

    def test_exemptAddressRegistersFreely(self) -> None:
        """
        When the connection is exempt from address limits, the core lets it
        register past the quota.
        """
        chat = Chat(ServerConfig(maxRegistrationsPerIp=1))
        for name in ["one", "two", "three"]:
            core = chat.core(limitKey=None)
            core.logIn(name, "pw")
            assert client(core).take() == [LoggedIn(name, False)]

    def test_invalidName(self) -> None:
        """When a name breaks the rules, the core says it stands for no account."""
        assert SessionCore.checkName("bad name") is None
        assert SessionCore.checkName("x" * 33) is None
        assert SessionCore.checkName("ﬁx") == "fix"

    def test_takeover(self, chat: Chat) -> None:
        """
        When a logged-in user logs in again, the core supersedes the old
        connection silently and says the new one took over.
        """
        (bob,) = chat.users("bob")
        old = chat.login("alice")
        client(bob).take()
        new = chat.core()
        new.logIn("alice", "pw")
        assert client(new).take() == [LoggedIn("alice", True)]
        assert client(old).superseded
        assert client(bob).take() == []
        assert chat.hub.sessionCount == 2

    def test_endedDuringLogin(self, chat: Chat) -> None:
        """
        When the connection ends while the password is being checked, the
        core tells nobody it logged in and the user never comes online.
        """
        store = SlowStore()
        chat = Chat(store=store)
        core = chat.core()
        core.logIn("alice", "pw")
        core.connectionLost()
        store.finish(AuthResult.REGISTERED, "alice")
        assert client(core).take() == []
        assert chat.hub.sessionCount == 0
        assert chat.audit.lines == ["User with alice successfully registered."]


class SlowStore(MemoryAccountStore):
    """
    An account store whose authentication answers when the test says.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Deferred[tuple[AuthResult, str]]] = []

    def authenticate(
        self, name: str, password: str
    ) -> Deferred[tuple[AuthResult, str]]:
        d: Deferred[tuple[AuthResult, str]] = Deferred()
        self.pending.append(d)
        return d

    def finish(self, result: AuthResult, name: str) -> None:
        self.pending.pop(0).callback((result, name))


class TestChat:
    def test_lineGoesToTheOthers(self, chat: Chat) -> None:
        """
        When a user says a line, the core relays it to everyone else and records
        it.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        assert alice.perform("hello all") is None
        assert client(bob).take() == [ChatLine("#general", "alice", "hello all")]
        assert client(carol).take() == [ChatLine("#general", "alice", "hello all")]
        assert client(alice).take() == []
        assert chat.audit.lines[-1] == "Received message from alice: hello all"

    def test_lineRenderedOncePerKind(self, chat: Chat) -> None:
        """
        When a line reaches many users of one front-end kind, the core renders
        it once.
        """
        alice, *_ = chat.users("alice", "bob", "carol")
        before = RENDERER.rendered
        alice.perform("one rendering")
        assert RENDERER.rendered == before + 1

    def test_arrivalAndDepartureAnnounced(self, chat: Chat) -> None:
        """When users log in and out, the core tells the others."""
        (alice,) = chat.users("alice")
        bob = chat.login("bob")
        assert client(alice).take() == [UserJoined("bob")]
        bob.logOut()
        assert client(bob).take() == [Goodbye("bob")]
        assert client(alice).take() == [UserLeft("bob")]
        assert chat.audit.lines[-1] == "bob logged out."

    def test_lostConnectionAnnounced(self, chat: Chat) -> None:
        """When a connection ends, the core takes the user offline and records it."""
        alice, bob = chat.users("alice", "bob")
        bob.connectionLost()
        assert client(alice).take() == [UserLeft("bob")]
        assert "Lost connection from bob" in chat.audit.lines
        assert chat.hub.sessionCount == 1

    def test_unknownCommand(self, chat: Chat) -> None:
        """When a line starts with an unknown @word, the core says so."""
        (alice,) = chat.users("alice")
        alice.perform("@dance now")
        assert client(alice).take() == [UnknownCommand("@DANCE")]

    def test_badArguments(self, chat: Chat) -> None:
        """When a command has the wrong arguments, the core gives its usage."""
        (alice,) = chat.users("alice")
        alice.perform("@PM")
        alice.perform("@PASSWORD onlyone")
        assert client(alice).take() == [
            BadArguments("@PM <user>"),
            BadArguments("@PASSWORD <old> <new>"),
        ]

    def test_help(self, chat: Chat) -> None:
        """When a user asks for help, the core says so."""
        (alice,) = chat.users("alice")
        alice.perform("@help")
        assert client(alice).take() == [Help()]

    def test_who(self, chat: Chat) -> None:
        """
        When a user asks who is online, the core lists everyone with their
        partners.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(bob, carol)
        alice.perform("@WHO")
        assert client(alice).take() == [
            OnlineUsers(
                (
                    UserStatus("alice", None),
                    UserStatus("bob", "carol"),
                    UserStatus("carol", "bob"),
                )
            )
        ]

    def test_search(self, chat: Chat) -> None:
        """
        When a user searches names, the core lists the matching accounts and who
        is online.
        """
        (alice,) = chat.users("alice")
        alice.perform("@SEARCH a")
        assert client(alice).take() == [
            SearchResults("a", ("alice", "carol", "dave"), frozenset({"alice"}))
        ]

    def test_passwordChange(self, chat: Chat) -> None:
        """When the old password is right, the core changes it; otherwise it refuses."""
        (alice,) = chat.users("alice")
        alice.perform("@PASSWORD wrong new")
        alice.perform("@PASSWORD pw new")
        assert client(alice).take() == [PasswordChanged(False), PasswordChanged(True)]
        assert chat.store.accounts["alice"] == ("alice", "new")

    def test_heartbeat(self, chat: Chat) -> None:
        """When a user asks for heartbeats, the core grants a token and the timings."""
        (alice,) = chat.users("alice")
        alice.perform("@HEARTBEAT")
        (grant,) = client(alice).take()
        assert isinstance(grant, HeartbeatGrant)
        assert (grant.interval, grant.timeout) == (5.0, 20.0)
        assert len(grant.token) == 32

    def test_heartbeatsStoppedRecorded(self, chat: Chat) -> None:
        """When a client's heartbeats stop, the core records it."""
        (alice,) = chat.users("alice")
        alice.heartbeatsStopped(20)
        assert chat.audit.lines[-1].startswith(
            "Could not receive any heartbeat from USER: alice for 20 secs"
        )


class TestPrivateChat:
    def test_requestAndAccept(self, chat: Chat) -> None:
        """When a user asks another and the other says Y, the core pairs them."""
        alice, bob = chat.users("alice", "bob")
        alice.perform("@PM bob")
        assert client(alice).take() == [RequestResult(Request.SENT, "bob")]
        assert client(bob).take() == [PrivateRequest("alice")]
        bob.perform("y")
        assert client(bob).take() == [PrivateStarted("alice")]
        assert client(alice).take() == [PrivateStarted("bob")]
        assert chat.audit.lines[-2:] == [
            "User: alice requested private chat with user: bob",
            "The PM start between alice and bob",
        ]

    def test_privateLinesStayPrivate(self, chat: Chat) -> None:
        """
        When paired users talk, the core sends their lines to the partner only
        and logs none.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob)
        logged = len(chat.audit.lines)
        alice.perform("secret")
        assert client(bob).take() == [PrivateLine("alice", "secret")]
        assert client(carol).take() == []
        carol.perform("anyone?")
        assert client(alice).take() == []
        assert client(bob).take() == []
        assert chat.audit.lines[logged:] == ["Received message from carol: anyone?"]

    def test_leave(self, chat: Chat) -> None:
        """
        When a partner leaves, the core tells both and puts them back in the
        group.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob)
        alice.perform("exit pm")
        assert client(alice).take() == [LeftPrivate("bob")]
        assert client(bob).take() == [PartnerLeft("alice")]
        carol.perform("back")
        assert client(alice).take() == [ChatLine("#general", "carol", "back")]
        alice.perform("EXIT PM")
        assert client(alice).take() == [NotInPrivate()]

    def test_partnerDisconnects(self, chat: Chat) -> None:
        """
        When a partner's connection ends, the core tells the other and records
        the end.
        """
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob)
        bob.connectionLost()
        assert client(alice).take() == [PartnerLeft("bob"), UserLeft("bob")]
        assert "PM between users bob and alice closed." in chat.audit.lines

    def test_reject(self, chat: Chat) -> None:
        """When the target says N, the core tells both and pairs nobody."""
        alice, bob = chat.users("alice", "bob")
        alice.perform("@PM bob")
        client(alice).take()
        client(bob).take()
        bob.perform("@REJECT")
        assert client(bob).take() == [RequestRejected()]
        assert client(alice).take() == [PrivateRejected("bob")]

    def test_expiry(self, chat: Chat) -> None:
        """
        When a request goes unanswered for a minute, the core tells both it
        expired.
        """
        alice, bob = chat.users("alice", "bob")
        alice.perform("@PM bob")
        client(alice).take()
        client(bob).take()
        chat.clock.advance(REQUEST_TIMEOUT)
        assert client(alice).take() == [RequestToExpired("bob")]
        assert client(bob).take() == [RequestFromExpired("alice")]

    def test_answerWithoutRequest(self, chat: Chat) -> None:
        """When no request is pending, a plain Y is chat and @ACCEPT is told so."""
        alice, bob = chat.users("alice", "bob")
        alice.perform("Y")
        assert client(bob).take() == [ChatLine("#general", "alice", "Y")]
        alice.perform("@ACCEPT")
        assert client(alice).take() == [NoRequest()]

    @pytest.mark.parametrize(
        "target, result",
        [
            ("alice", RequestResult(Request.SELF, "alice")),
            ("nobody", RequestResult(Request.NO_SUCH_USER, "nobody")),
            ("bad name!", RequestResult(Request.NO_SUCH_USER, "bad name!")),
            ("CAROL", RequestResult(Request.OFFLINE, "carol")),
        ],
    )
    def test_requestRefused(
        self, chat: Chat, target: str, result: RequestResult
    ) -> None:
        """When the target cannot be asked, the core says why."""
        (alice,) = chat.users("alice")
        alice.requestPrivateChat(target)
        assert client(alice).take() == [result]

    def test_takeoverKeepsPrivateChat(self, chat: Chat) -> None:
        """
        When a paired user takes over, the private chat goes on over the new
        connection.
        """
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob)
        again = chat.core()
        again.logIn("alice", "pw")
        client(again).take()
        bob.perform("still here?")
        assert client(again).take() == [PrivateLine("bob", "still here?")]
        assert client(alice).take() == []
