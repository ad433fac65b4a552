"""
Unit tests for L{twisted_chat.protocol.LineProtocol}: the line protocol of
issue 2, line by line, over string transports and a fake clock.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from twisted_chat.config import ServerConfig
from twisted_chat.core.hub import Session
from twisted_chat.core.localhub import LocalHub
from twisted_chat.core.session import SessionCore
from twisted_chat.frontends.connection import NOTICE_INTERVAL
from twisted_chat.frontends.line import messages
from twisted_chat.frontends.line.protocol import LineFactory
from twisted_chat.testing import MemoryAccountStore, connect, makeFactory

WELCOME = "Welcome to twisted-chat. An unknown name creates an account.\r\nUsername: "
TURKISH = "Çok güzel! Şimdi ığüşöç İĞÜŞÖÇ dağ, ılık."  # noqa: RUF001


def crlf(*lines: str) -> str:
    """
    Server lines as they appear on the wire.
    """
    return "".join(line + "\r\n" for line in lines)


class Client:
    """
    One connection of a chat factory, driven by the test.
    """

    def __init__(self, factory: LineFactory, port: int = 40000) -> None:
        self.protocol, self.transport = connect(factory, port=port)

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.protocol.dataReceived(data)

    def line(self, text: str) -> None:
        self.send(text + "\n")

    def take(self) -> str:
        value = self.transport.value().decode("utf-8")
        self.transport.clear()
        return value

    @property
    def closed(self) -> bool:
        return not self.transport.connected


class Chat:
    """
    A chat factory on a fake clock with accounts alice, bob, carol and dave
    (password C{pw}), and helpers to log in.
    """

    def __init__(
        self,
        store: Any = None,
        config: ServerConfig | None = None,
        batchWrites: bool = False,
    ) -> None:
        self.clock = Clock()
        self.store = store or MemoryAccountStore(
            {name: "pw" for name in ["alice", "bob", "carol", "dave"]}
        )
        self.factory, self.audit = makeFactory(
            self.clock, self.store, config, batchWrites
        )
        self.ports = iter(range(40000, 50000))

    @property
    def hub(self) -> LocalHub:
        hub = self.factory.connections.services.hub
        assert isinstance(hub, LocalHub)
        return hub

    def connect(self) -> Client:
        return Client(self.factory, next(self.ports))

    def login(self, name: str, password: str = "pw") -> Client:
        client = self.connect()
        client.take()
        client.send(f"{name}\n{password}\n")
        assert client.take() == "Password: " + crlf(messages.LOGIN_SUCCESS)
        return client

    def users(self, *names: str) -> list[Client]:
        clients = [self.login(name) for name in names]
        for client in clients:
            client.take()
        return clients

    def pair(self, requester: Client, target: Client, targetName: str) -> None:
        requester.line(f"@PM {targetName}")
        target.line("Y")
        requester.take()
        target.take()

    def invariants(self) -> list[str]:
        return list(self.hub.checkInvariants())


@pytest.fixture
def chat() -> Iterator[Chat]:
    chat = Chat()
    yield chat
    assert chat.invariants() == []


class TestLogin:
    def test_welcome(self, chat: Chat) -> None:
        """When a client connects, the server sends the welcome line and the prompt."""
        assert chat.connect().take() == WELCOME

    def test_passwordPrompt(self, chat: Chat) -> None:
        """When a client sends a name, the server prompts for the password."""
        client = chat.connect()
        client.take()
        client.line("alice")
        assert client.take() == "Password: "

    def test_rightPassword(self, chat: Chat) -> None:
        """When the password is right, the server says Login success!."""
        client = chat.connect()
        client.take()
        client.send("alice\npw\n")
        assert client.take() == "Password: Login success!\r\n"
        assert chat.hub.sessionCount == 1

    def test_register(self, chat: Chat) -> None:
        """When the name is unknown, the server registers it and logs in."""
        client = chat.connect()
        client.take()
        client.send("newbie\nsecret\n")
        assert client.take() == "Password: Login success!\r\n"
        assert chat.store.accounts["newbie"] == ("newbie", "secret")

    def test_wrongPassword(self, chat: Chat) -> None:
        """When the password is wrong, the server says so and prompts for a name."""
        client = chat.connect()
        client.take()
        client.send("alice\nnope\n")
        assert client.take() == "Password: Wrong password.\r\nUsername: "
        assert chat.hub.sessionCount == 0
        client.send("alice\npw\n")
        assert client.take() == "Password: Login success!\r\n"

    @pytest.mark.parametrize("name", ["bad name", "x" * 33, "bob!", "a\u200bb"])
    def test_invalidName(self, chat: Chat, name: str) -> None:
        """When the name breaks the rules, the server says so and prompts again."""
        client = chat.connect()
        client.take()
        client.line(name)
        assert client.take() == crlf(messages.INVALID_USERNAME) + "Username: "

    def test_fifthFailureCloses(self, chat: Chat) -> None:
        """When a connection fails the 5th login, the server says so and closes it."""
        client = chat.connect()
        client.take()
        for name in ["alice", "bob", "carol", "dave"]:
            client.send(f"{name}\nwrong\n")
            assert client.take() == "Password: Wrong password.\r\nUsername: "
        assert not client.closed
        client.send("alice\nwrong\n")
        assert client.take() == "Password: Too many failed logins.\r\n"
        assert client.closed

    def test_failuresBackOff(self, chat: Chat) -> None:
        """When one account fails repeatedly, the server delays the later attempts."""
        client = chat.connect()
        client.take()
        for _ in range(3):
            client.send("alice\nwrong\n")
            assert client.take() == "Password: Wrong password.\r\nUsername: "
        client.send("alice\nwrong\n")
        assert client.take() == "Password: "
        chat.clock.advance(1)
        assert client.take() == "Wrong password.\r\nUsername: "
        client.send("alice\nwrong\n")
        chat.clock.advance(1)
        assert client.take() == "Password: "
        chat.clock.advance(1)
        assert client.take() == "Too many failed logins.\r\n"
        assert client.closed

    def test_invalidNamesDoNotCount(self) -> None:
        """When invalid names are sent, the server does not count them as failures."""
        chat = Chat(config=ServerConfig(loginBackoffBase=0))
        client = chat.connect()
        client.take()
        for _ in range(10):
            client.line("no way")
        for _ in range(4):
            client.send("alice\nwrong\n")
        client.take()
        client.send("alice\npw\n")
        assert client.take() == "Password: Login success!\r\n"

    def test_nameCaseKeepsFirstSpelling(self, chat: Chat) -> None:
        """
        When a user logs in with another case, the server shows the first spelling.
        """
        (bob,) = chat.users("bob")
        chat.login("ALICE")
        assert bob.take() == crlf("* alice joined the chat.")

    def test_takeover(self, chat: Chat) -> None:
        """
        When a user logs in elsewhere, the server closes the old connection silently.
        """
        alice, bob = chat.users("alice", "bob")
        again = chat.login("alice")
        assert alice.take() == crlf(messages.LOGGED_IN_ELSEWHERE)
        assert alice.closed
        assert bob.take() == ""
        bob.line("hi")
        assert again.take() == crlf("bob > hi")
        assert chat.hub.sessionCount == 2

    def test_takeoverKeepsPrivateChat(self, chat: Chat) -> None:
        """
        When a user in a private chat logs in elsewhere, the server keeps the
        chat and says so on the new connection.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        again = chat.connect()
        again.take()
        again.send("alice\npw\n")
        assert again.take() == "Password: " + crlf(
            messages.LOGIN_SUCCESS, messages.PM_STARTED.format(name="bob")
        )
        assert bob.take() == ""
        again.line("back")
        assert bob.take() == crlf("alice > back")
        bob.line("welcome back")
        assert again.take() == crlf("bob > welcome back")
        assert alice.take() == crlf(messages.LOGGED_IN_ELSEWHERE)
        assert carol.take() == ""
        carol.line("@WHO")
        assert carol.take() == crlf(
            "Online users: alice (PM with bob), bob (PM with alice), carol"
        )

    def test_disconnectWhileAuthenticating(self) -> None:
        """
        When a client drops while its password is checked, the server logs nobody in.
        """
        store = SlowStore({"alice": "pw", "bob": "pw"})
        chat = Chat(store)
        bob = chat.connect()
        bob.send("bob\npw\n")
        store.fireAll()
        bob.take()
        client = chat.connect()
        client.send("alice\npw\n")
        client.transport.loseConnection()
        store.fireAll()
        assert chat.hub.sessionCount == 1
        assert bob.take() == ""
        assert chat.invariants() == []


class TestWriteBatching:
    def test_noticesShareWrites(self) -> None:
        """
        When people join one after another, the server sends a lone join
        notice at the end of its pass, holds later ones for up to
        NOTICE_INTERVAL to send them together, and sends the held ones
        first when a chat line comes.
        """
        chat = Chat(batchWrites=True)

        def arrive(name: str) -> Client:
            client = chat.connect()
            client.send(f"{name}\npw\n")
            chat.clock.advance(0)
            assert client.take().endswith(crlf(messages.LOGIN_SUCCESS))
            return client

        alice = arrive("alice")
        arrive("bob")
        assert alice.take() == crlf("* bob joined the chat.")
        carol = arrive("carol")
        assert alice.take() == ""
        chat.clock.advance(NOTICE_INTERVAL / 2)
        arrive("dave")
        assert alice.take() == ""
        chat.clock.advance(NOTICE_INTERVAL / 2)
        assert alice.take() == crlf(
            "* carol joined the chat.", "* dave joined the chat."
        )
        arrive("erin")
        carol.line("hello")
        assert alice.take() == ""
        chat.clock.advance(0)
        assert alice.take() == crlf("* erin joined the chat.", "carol > hello")
        chat.clock.advance(NOTICE_INTERVAL)
        assert alice.take() == ""


class TestGroup:
    def test_joinAndLeaveLines(self, chat: Chat) -> None:
        """When a user logs in and out, the server tells the others in the group."""
        alice, bob = chat.users("alice", "bob")
        carol = chat.login("carol")
        assert alice.take() == crlf("* carol joined the chat.")
        assert bob.take() == crlf("* carol joined the chat.")
        carol.line("LOGOUT")
        assert alice.take() == crlf("* carol left the chat.")
        assert bob.take() == crlf("* carol left the chat.")

    def test_dropIsLeave(self, chat: Chat) -> None:
        """When a user's connection drops, the server tells the group they left."""
        alice, bob = chat.users("alice", "bob")
        alice.transport.loseConnection()
        assert bob.take() == crlf("* alice left the chat.")
        assert chat.hub.sessionCount == 1

    def test_groupLineNotEchoed(self, chat: Chat) -> None:
        """When a user talks, the server relays to every other user but not back."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        alice.line("hello all")
        assert alice.take() == ""
        assert bob.take() == crlf("alice > hello all")
        assert carol.take() == crlf("alice > hello all")

    def test_groupLineNotToPrivateChat(self, chat: Chat) -> None:
        """When a user talks to the group, the server skips users in a private chat."""
        alice, bob, carol, dave = chat.users("alice", "bob", "carol", "dave")
        chat.pair(bob, carol, "carol")
        alice.line("hello")
        assert bob.take() == ""
        assert carol.take() == ""
        assert dave.take() == crlf("alice > hello")

    def test_privateChatGetsNoJoinLeave(self, chat: Chat) -> None:
        """
        When someone joins or leaves, the server does not tell a pair in private chat.
        """
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob, "bob")
        carol = chat.login("carol")
        carol.line("LOGOUT")
        assert alice.take() == ""
        assert bob.take() == ""

    def test_crlfAndLf(self, chat: Chat) -> None:
        """When lines end in CRLF or LF, the server drops the CR and relays the text."""
        alice, bob = chat.users("alice", "bob")
        alice.send(b"one\r\ntwo\n")
        assert bob.take() == crlf("alice > one", "alice > two")

    def test_crlfLogin(self, chat: Chat) -> None:
        """
        When a client logs in with CRLF lines, the server accepts the name and password.
        """
        client = chat.connect()
        client.take()
        client.send(b"alice\r\npw\r\n")
        assert client.take() == "Password: Login success!\r\n"

    def test_emptyLinesAtPromptsPromptAgain(self, chat: Chat) -> None:
        """
        When lines are empty once controls are removed at a login prompt, the
        server sends the same prompt again for each, and counts no failure.
        """
        client = chat.connect()
        client.take()
        client.send(b"\n\r\n   \n\x01\x02\n\x1b[0m\n\xe2\x80\xae\n")
        assert client.take() == "Username: " * 6
        client.send(b"alice\n\n\x07\n")
        assert client.take() == "Password: " * 3
        client.send(b"pw\n")
        assert client.take() == crlf(messages.LOGIN_SUCCESS)
        assert chat.audit.lines[0] == "User alice logged in."

    def test_emptyAndControlLinesIgnored(self, chat: Chat) -> None:
        """When a user's lines are empty once cleaned, the server ignores them."""
        client = chat.connect()
        client.take()
        client.send(b"alice\npw\n")
        (bob,) = chat.users("bob")
        client.take()
        client.send(b"\n\r\n \t \n\x07\x1b[2J\n\x7f\n")
        assert bob.take() == ""
        assert client.take() == ""

    def test_controlsRemovedFromRelayedText(self, chat: Chat) -> None:
        """
        When a line holds controls or bidi overrides, the server relays it without them.
        """
        alice, bob = chat.users("alice", "bob")
        alice.send("a\x1b[2Jb\x07c\u202ed\x85e\n".encode())
        assert bob.take() == crlf("alice > abcde")

    def test_turkishIntact(self, chat: Chat) -> None:
        """When a user sends Turkish UTF-8 text, the server relays it byte for byte."""
        alice, bob = chat.users("alice", "bob")
        alice.send(TURKISH.encode("utf-8") + b"\r\n")
        assert bob.transport.value() == b"alice > " + TURKISH.encode("utf-8") + b"\r\n"

    def test_invalidUtf8Replaced(self, chat: Chat) -> None:
        """
        When a line is not valid UTF-8, the server relays it with replacement marks.
        """
        alice, bob = chat.users("alice", "bob")
        alice.send(b"ab\xffcd\n")
        assert bob.take() == crlf("alice > ab\ufffdcd")

    @pytest.mark.parametrize("size", [1, 2, 3, 5, 7, None])
    def test_framing(self, chat: Chat, size: int | None) -> None:
        """
        When input comes whole or cut in chunks, even mid-character, the server frames
        the same lines.
        """
        (bob,) = chat.users("bob")
        client = chat.connect()
        data = f"alice\r\npw\n{TURKISH}\nğğğ\r\n".encode()
        step = size or len(data)
        for i in range(0, len(data), step):
            client.send(data[i : i + step])
        assert client.take() == WELCOME + "Password: Login success!\r\n"
        assert bob.take() == crlf(
            "* alice joined the chat.", f"alice > {TURKISH}", "alice > ğğğ"
        )

    def test_splitInsideCharacter(self, chat: Chat) -> None:
        """
        When a chunk ends inside a multi-byte character, the server keeps the character
        whole.
        """
        alice, bob = chat.users("alice", "bob")
        data = "Ş\n".encode()
        alice.send(data[:1])
        assert bob.take() == ""
        alice.send(data[1:])
        assert bob.take() == crlf("alice > Ş")

    def test_lineTooLong(self, chat: Chat) -> None:
        """
        When a line is over 4096 bytes, the server refuses it and handles the next line.
        """
        alice, bob = chat.users("alice", "bob")
        alice.send(b"x" * 5000 + b"\nafter\n")
        assert alice.take() == crlf("Line too long (max 4096 bytes).")
        assert bob.take() == crlf("alice > after")

    def test_lineTooLongInChunks(self, chat: Chat) -> None:
        """
        When an over-long line comes in chunks, the server refuses it once and goes on.
        """
        alice, bob = chat.users("alice", "bob")
        for _ in range(10):
            alice.send(b"y" * 1000)
        alice.send(b"yyy\r\nafter\n")
        assert alice.take() == crlf("Line too long (max 4096 bytes).")
        assert bob.take() == crlf("alice > after")

    def test_longestLineAccepted(self, chat: Chat) -> None:
        """When a line is exactly 4096 bytes before CRLF, the server relays it."""
        alice, bob = chat.users("alice", "bob")
        alice.send(b"z" * 4096 + b"\r\n")
        assert alice.take() == ""
        assert bob.take() == crlf("alice > " + "z" * 4096)


class SlowStore(MemoryAccountStore):
    """
    An account store whose answers wait until the test fires them, as when
    a password hash is being computed.
    """

    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        super().__init__(accounts)
        self.pending: list[tuple[Deferred[Any], str, str]] = []

    def authenticate(self, name: str, password: str) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.pending.append((d, name, password))
        return d

    def fireAll(self) -> None:
        pending, self.pending = self.pending, []
        for d, name, password in pending:
            super().authenticate(name, password).chainDeferred(d)


class SlowAttachHub:
    """
    A hub whose C{attach} answers only when the test fires it, as a hub
    across the network would.
    """

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub
        self.pending: list[tuple[Deferred[bool], Session]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)

    def attach(self, session: Session) -> "Deferred[bool]":
        d: Deferred[bool] = Deferred()
        self.pending.append((d, session))
        return d

    def fireAll(self) -> None:
        pending, self.pending = self.pending, []
        for d, session in pending:
            self.hub.attach(session).chainDeferred(d)


class TestPipelining:
    def test_linesWaitForPasswordCheck(self) -> None:
        """
        When lines follow the password while it is checked, the server handles them
        after it, in order.
        """
        store = SlowStore({"bob": "pw"})
        chat = Chat(store)
        bob = chat.connect()
        bob.send("bob\npw\n")
        store.fireAll()
        bob.take()
        alice = chat.connect()
        alice.take()
        alice.send("alice\nsecret\nhello\nsecond\nLOGOUT\n")
        assert alice.take() == "Password: "
        assert bob.take() == ""
        assert not alice.closed
        store.fireAll()
        assert alice.take() == crlf("Login success!", "Goodbye, alice!")
        assert alice.closed
        assert bob.take() == crlf(
            "* alice joined the chat.",
            "alice > hello",
            "alice > second",
            "* alice left the chat.",
        )
        assert chat.invariants() == []

    def test_linesWaitForWrongPassword(self) -> None:
        """
        When lines follow a wrong password being checked, the server reads them as a new
        login.
        """
        store = SlowStore({"alice": "pw"})
        chat = Chat(store)
        client = chat.connect()
        client.take()
        client.send("alice\nbad\nalice\npw\nhi\n")
        assert client.take() == "Password: "
        store.fireAll()
        assert client.take() == "Wrong password.\r\nUsername: Password: "
        store.fireAll()
        assert client.take() == crlf("Login success!")
        assert chat.hub.sessionCount == 1

    def test_linesWaitForSlowHub(self) -> None:
        """
        When the hub answers a login later, the server holds the following lines until
        then.
        """
        chat = Chat()
        (bob,) = chat.users("bob")
        hub = SlowAttachHub(chat.hub)
        chat.factory.connections.services.hub = hub  # type: ignore[assignment]
        alice = chat.connect()
        alice.take()
        alice.send("alice\npw\nhello\n")
        assert alice.take() == "Password: "
        assert bob.take() == ""
        hub.fireAll()
        assert alice.take() == crlf("Login success!")
        assert bob.take() == crlf("* alice joined the chat.", "alice > hello")


class TestPauseReasons:
    def test_inputWaitsForEveryReason(self, chat: Chat) -> None:
        """
        When input is paused for two reasons, the server resumes only once both are
        gone, then handles the waiting lines in order.
        """
        alice, bob = chat.users("alice", "bob")
        alice.protocol.pauseFor("first")
        alice.protocol.pauseFor("second")
        alice.send("one\ntwo\n")
        alice.protocol.resumeFrom("first")
        assert bob.take() == ""
        alice.protocol.resumeFrom("second")
        assert bob.take() == crlf("alice > one", "alice > two")

    def test_disconnectWhileHubAttaches(self) -> None:
        """
        When a client drops while the hub is claiming its name, the server takes the
        session back out once the claim is done.
        """
        chat = Chat()
        (bob,) = chat.users("bob")
        hub = SlowAttachHub(chat.hub)
        chat.factory.connections.services.hub = hub  # type: ignore[assignment]
        alice = chat.connect()
        alice.send("alice\npw\n")
        alice.transport.loseConnection()
        hub.fireAll()
        assert hub.hub.sessionCount == 1
        assert bob.take() == crlf("* alice joined the chat.", "* alice left the chat.")
        assert list(hub.hub.checkInvariants()) == []
        chat.factory.connections.services.hub = hub.hub


class TestPrivateChat:
    @pytest.mark.parametrize("answer", ["Y", "y", "@ACCEPT", "@accept"])
    def test_accept(self, chat: Chat, answer: str) -> None:
        """
        When the target accepts with Y or @ACCEPT, the server tells both they are
        paired.
        """
        alice, bob = chat.users("alice", "bob")
        alice.line("@PM bob")
        assert alice.take() == crlf("Private chat request sent to bob.")
        assert bob.take() == crlf(
            "The user alice wants to have a private chat with you (Y/N)?"
        )
        bob.line(answer)
        assert alice.take() == crlf(
            "You are now in a private chat with bob. Type EXIT PM to leave."
        )
        assert bob.take() == crlf(
            "You are now in a private chat with alice. Type EXIT PM to leave."
        )

    @pytest.mark.parametrize("answer", ["N", "n", "@REJECT", "@reject"])
    def test_reject(self, chat: Chat, answer: str) -> None:
        """When the target rejects with N or @REJECT, the server tells both."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        alice.line("@pm BOB")
        alice.take()
        bob.take()
        bob.line(answer)
        assert alice.take() == crlf("bob rejected your private chat request.")
        assert bob.take() == crlf("Request rejected.")
        carol.line("still group")
        assert alice.take() == crlf("carol > still group")
        assert bob.take() == crlf("carol > still group")

    def test_privateLines(self, chat: Chat) -> None:
        """When paired users talk, the server sends each line only to the partner."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        alice.line("just us")
        bob.line(TURKISH)
        assert bob.take() == crlf("alice > just us")
        assert alice.take() == crlf(f"bob > {TURKISH}")
        assert carol.take() == ""
        carol.line("hello?")
        assert alice.take() == ""
        assert bob.take() == ""

    def test_expiry(self, chat: Chat) -> None:
        """When a request is unanswered for 60 s, the server tells both it expired."""
        alice, bob = chat.users("alice", "bob")
        alice.line("@PM bob")
        alice.take()
        bob.take()
        chat.clock.advance(59.9)
        assert alice.take() == ""
        assert bob.take() == ""
        chat.clock.advance(0.1)
        assert alice.take() == crlf("Your private chat request to bob expired.")
        assert bob.take() == crlf("The private chat request from alice expired.")
        bob.line("Y")
        assert alice.take() == crlf("bob > Y")

    @pytest.mark.parametrize("how", ["LOGOUT", "drop"])
    def test_requesterLeavesCancels(self, chat: Chat, how: str) -> None:
        """
        When the requester leaves or drops, the server tells the target the request was
        cancelled.
        """
        alice, bob = chat.users("alice", "bob")
        alice.line("@PM bob")
        bob.take()
        if how == "LOGOUT":
            alice.line("LOGOUT")
        else:
            alice.transport.loseConnection()
        assert bob.take() == crlf(
            "The private chat request from alice was cancelled.",
            "* alice left the chat.",
        )
        bob.line("y")
        assert bob.take() == ""
        assert [c for c in chat.clock.getDelayedCalls() if c.active()] == [
            c for c in chat.clock.getDelayedCalls() if c.func != chat.hub._expire
        ]

    @pytest.mark.parametrize("how", ["LOGOUT", "drop"])
    def test_targetLeavesCancels(self, chat: Chat, how: str) -> None:
        """
        When the target leaves or drops, the server tells the requester the request was
        cancelled.
        """
        alice, bob = chat.users("alice", "bob")
        alice.line("@PM bob")
        alice.take()
        if how == "LOGOUT":
            bob.line("LOGOUT")
        else:
            bob.transport.loseConnection()
        assert alice.take() == crlf(
            "The private chat request to bob was cancelled.", "* bob left the chat."
        )
        chat.clock.advance(120)
        assert alice.take() == ""

    def test_busy(self, chat: Chat) -> None:
        """When the target is in a private chat, the server says so."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(bob, carol, "carol")
        alice.line("@PM carol")
        assert alice.take() == crlf("User carol is already in a private chat.")
        assert carol.take() == ""

    def test_targetAlreadyAsked(self, chat: Chat) -> None:
        """When the target already has a request pending, the server says so."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        carol.line("@PM bob")
        bob.take()
        alice.line("@PM bob")
        assert alice.take() == crlf("User bob already has a request pending.")
        assert bob.take() == ""

    def test_youAskedSomeone(self, chat: Chat) -> None:
        """When the requester already asked someone, the server names them."""
        alice, _bob, _carol = chat.users("alice", "bob", "carol")
        alice.line("@PM bob")
        alice.take()
        alice.line("@PM carol")
        assert alice.take() == crlf("You already have a request pending to bob.")

    def test_beingAskedRemindsOfRequest(self, chat: Chat) -> None:
        """
        When a user with a request to answer asks someone else, the server repeats the
        question.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        alice.line("@PM bob")
        bob.take()
        bob.line("@PM carol")
        assert bob.take() == crlf(
            "The user alice wants to have a private chat with you (Y/N)?"
        )
        assert carol.take() == ""

    def test_alreadyInPrivateChat(self, chat: Chat) -> None:
        """When a paired user asks someone, the server says to EXIT PM first."""
        alice, bob, _carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        alice.line("@PM carol")
        assert alice.take() == crlf(
            "You are already in a private chat with bob; type EXIT PM first."
        )

    def test_yourself(self, chat: Chat) -> None:
        """When a user asks themselves, the server refuses."""
        (alice,) = chat.users("alice")
        alice.line("@PM Alice")
        assert alice.take() == crlf("You cannot have a private chat with yourself.")

    @pytest.mark.parametrize("name", ["ghost", "bad!name"])
    def test_unknown(self, chat: Chat, name: str) -> None:
        """When the target has no account, the server says it does not exist."""
        (alice,) = chat.users("alice")
        alice.line(f"@PM {name}")
        assert alice.take() == crlf(f"User {name} does not exist.")

    def test_offline(self, chat: Chat) -> None:
        """
        When the target has an account but is not online, the server says it is offline.
        """
        (alice,) = chat.users("alice")
        alice.line("@PM DAVE")
        assert alice.take() == crlf("User dave is offline.")

    def test_yesNoAreTextWithoutRequest(self, chat: Chat) -> None:
        """When no request is pending, the server relays Y and N as plain text."""
        alice, bob = chat.users("alice", "bob")
        alice.line("Y")
        alice.line("n")
        assert bob.take() == crlf("alice > Y", "alice > n")
        assert alice.take() == ""

    def test_requesterYesIsText(self, chat: Chat) -> None:
        """When the requester types Y, the server relays it as text, not an answer."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        alice.line("@PM bob")
        bob.take()
        alice.take()
        alice.line("y")
        assert carol.take() == crlf("alice > y")
        assert bob.take() == crlf("alice > y")
        assert alice.take() == ""

    @pytest.mark.parametrize("command", ["@ACCEPT", "@REJECT"])
    def test_acceptWithoutRequest(self, chat: Chat, command: str) -> None:
        """
        When @ACCEPT or @REJECT comes with no request pending, the server explains.
        """
        alice, bob = chat.users("alice", "bob")
        alice.line(command)
        assert alice.take() == crlf(messages.NO_REQUEST)
        assert bob.take() == ""

    @pytest.mark.parametrize("command", ["EXIT PM", "exit pm", "Exit  Pm"])
    def test_exitPM(self, chat: Chat, command: str) -> None:
        """
        When a user types EXIT PM, the server tells both and returns them to the group.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        alice.line(command)
        assert alice.take() == crlf("You left the private chat with bob.")
        assert bob.take() == crlf("Your partner alice left pm!")
        carol.line("welcome back")
        assert alice.take() == crlf("carol > welcome back")
        assert bob.take() == crlf("carol > welcome back")
        bob.line("EXIT PM")
        assert bob.take() == crlf("You are not in a private chat.")

    def test_exitPMFromOtherSide(self, chat: Chat) -> None:
        """
        When the target of the request types EXIT PM, the server tells the requester.
        """
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob, "bob")
        bob.line("EXIT PM")
        assert bob.take() == crlf("You left the private chat with alice.")
        assert alice.take() == crlf("Your partner bob left pm!")
        alice.line("hi all")
        assert bob.take() == crlf("alice > hi all")

    def test_exitPMOutside(self, chat: Chat) -> None:
        """When EXIT PM is sent outside a private chat, the server says so."""
        (alice,) = chat.users("alice")
        alice.line("EXIT PM")
        assert alice.take() == crlf("You are not in a private chat.")

    @pytest.mark.parametrize("how", ["LOGOUT", "drop"])
    def test_partnerDisconnects(self, chat: Chat, how: str) -> None:
        """When a partner disconnects, the server tells the other one."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        if how == "LOGOUT":
            alice.line("LOGOUT")
        else:
            alice.transport.loseConnection()
        assert bob.take().startswith(crlf("Your partner alice left pm!"))
        carol.line("hi")
        assert bob.take() == crlf("carol > hi")

    def test_newRequestAfterPrivateChat(self, chat: Chat) -> None:
        """When a private chat ended, the server lets both start another one."""
        alice, bob, _carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        alice.line("EXIT PM")
        alice.take()
        bob.take()
        bob.line("@PM carol")
        assert bob.take() == crlf("Private chat request sent to carol.")


class TestCommands:
    def test_who(self, chat: Chat) -> None:
        """When a user sends @WHO, the server lists everyone sorted, with partners."""
        carol, alice, bob = chat.users("carol", "alice", "bob")
        chat.pair(bob, carol, "carol")
        alice.line("@who")
        assert alice.take() == crlf(
            "Online users: alice, bob (PM with carol), carol (PM with bob)"
        )

    def test_whoPastFifty(self) -> None:
        """
        When more than 50 users are online, the server lists 50 and counts the rest.
        """
        chat = Chat(MemoryAccountStore())
        names = [f"user{i:02d}" for i in range(53)]
        clients = [chat.login(name) for name in reversed(names)]
        clients[0].take()
        clients[0].line("@WHO")
        assert clients[0].take() == crlf(
            "Online users: " + ", ".join(names[:50]) + ", and 3 more"
        )

    def test_search(self, chat: Chat) -> None:
        """
        When a user searches, the server lists matching accounts online or offline.
        """
        chat.store.accounts["alicia"] = ("Alicia", "pw")
        bob, _alice = chat.users("bob", "alice")
        bob.line("@SEARCH ALI")
        assert bob.take() == crlf(
            'Found 2 users matching "ALI":', "alice (online)", "Alicia (offline)"
        )

    def test_searchNothing(self, chat: Chat) -> None:
        """When nothing matches a search, the server says it found 0 users."""
        (bob,) = chat.users("bob")
        bob.line("@search zzz")
        assert bob.take() == crlf('Found 0 users matching "zzz":')

    def test_searchPastFifty(self, chat: Chat) -> None:
        """When more than 50 accounts match, the server lists 50 and counts the rest."""
        names = [f"member{i:02d}" for i in range(57)]
        for name in names:
            chat.store.accounts[name] = (name, "pw")
        (bob,) = chat.users("bob")
        bob.line("@SEARCH member")
        assert bob.take() == crlf(
            'Found 57 users matching "member":',
            *(f"{name} (offline)" for name in names[:50]),
            "... and 7 more",
        )

    def test_password(self, chat: Chat) -> None:
        """
        When a user changes the password, the server confirms and the new one works.
        """
        (alice,) = chat.users("alice")
        alice.line("@PASSWORD pw newpw")
        assert alice.take() == crlf("Password changed.")
        alice.line("LOGOUT")
        client = chat.connect()
        client.take()
        client.send("alice\npw\n")
        assert client.take() == "Password: Wrong password.\r\nUsername: "
        client.send("alice\nnewpw\n")
        assert client.take() == "Password: Login success!\r\n"

    def test_passwordWrongOld(self, chat: Chat) -> None:
        """When the old password is wrong, the server says so and keeps the old one."""
        (alice,) = chat.users("alice")
        alice.line("@password nope newpw")
        assert alice.take() == crlf("Wrong password.")
        assert chat.store.accounts["alice"] == ("alice", "pw")

    def test_help(self, chat: Chat) -> None:
        """When a user sends @HELP, the server sends one line per command."""
        (alice,) = chat.users("alice")
        alice.line("@help")
        lines = alice.take().split("\r\n")
        assert lines[-1] == ""
        assert lines[:-1] == list(messages.HELP)
        for command in ["@PM", "@ACCEPT", "@REJECT", "EXIT PM", "@WHO", "@SEARCH"]:
            assert sum(command in line for line in lines) == 1, command
        for command in ["@PASSWORD", "@HEARTBEAT", "@HELP", "LOGOUT"]:
            assert any(line.strip().startswith(command) for line in lines), command

    @pytest.mark.parametrize("command", ["LOGOUT", "logout", "LogOut"])
    def test_logout(self, chat: Chat, command: str) -> None:
        """When a user sends LOGOUT, the server says goodbye and closes."""
        alice, bob = chat.users("alice", "bob")
        alice.line(command)
        assert alice.take() == crlf("Goodbye, alice!")
        assert alice.closed
        assert bob.take() == crlf("* alice left the chat.")
        assert chat.hub.sessionCount == 1

    @pytest.mark.parametrize(("line", "name"), [("@foo", "@FOO"), ("@Bar x", "@BAR")])
    def test_unknownCommand(self, chat: Chat, line: str, name: str) -> None:
        """When a user sends an unknown @command, the server points to @HELP."""
        alice, bob = chat.users("alice", "bob")
        alice.line(line)
        assert alice.take() == crlf(f"Unknown command {name}; type @HELP for the list.")
        assert bob.take() == ""

    @pytest.mark.parametrize(
        ("line", "usage"),
        [
            ("@PM", "@PM <user>"),
            ("@pm a b", "@PM <user>"),
            ("@SEARCH", "@SEARCH <text>"),
            ("@PASSWORD one", "@PASSWORD <old> <new>"),
            ("@WHO #a #b", "@WHO [#room]"),
            ("@ACCEPT please", "@ACCEPT"),
        ],
    )
    def test_usage(self, chat: Chat, line: str, usage: str) -> None:
        """When a command has the wrong arguments, the server shows its usage."""
        alice, bob = chat.users("alice", "bob")
        alice.line(line)
        assert alice.take() == crlf(f"Usage: {usage}")
        assert bob.take() == ""


class TestErrors:
    def test_handlerExceptionClosesOnlyThatSession(
        self, chat: Chat, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When a command handler raises, the server closes that session only."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(bob, carol, "carol")

        def broken(self: SessionCore) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(SessionCore, "who", broken)
        alice.line("@WHO")
        assert alice.take() == crlf(messages.SERVER_ERROR)
        assert alice.closed
        assert chat.hub.sessionCount == 2
        bob.line("still fine")
        assert carol.take() == crlf("bob > still fine")
        assert "Lost connection from alice" in chat.audit.lines

    def test_hubErrorClosesOnlyThatSession(
        self, chat: Chat, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the hub fails an answer, the server closes that session only."""
        alice, bob = chat.users("alice", "bob")
        real = chat.hub.online

        def failing() -> Any:
            monkeypatch.setattr(chat.hub, "online", real)
            raise RuntimeError("hub down")

        monkeypatch.setattr(chat.hub, "online", failing)
        alice.line("@WHO")
        assert alice.take() == crlf(messages.SERVER_ERROR)
        assert alice.closed
        assert bob.take() == crlf("* alice left the chat.")
        bob.line("@WHO")
        assert bob.take() == crlf("Online users: bob")

    def test_logoutWithPendingLinesIgnoresThem(self, chat: Chat) -> None:
        """When lines follow LOGOUT in one chunk, the server ignores them."""
        alice, bob = chat.users("alice", "bob")
        alice.send("LOGOUT\nafter\n")
        assert alice.take() == crlf("Goodbye, alice!")
        assert bob.take() == crlf("* alice left the chat.")
