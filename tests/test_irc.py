"""
Unit tests of the IRC front-end (L{twisted_chat.frontends.irc.protocol}) on
string transports and a fake clock: registration, CAP, SASL, every command
of the brief, the consent flow both ways, tags and the text rules, with line
users of the same chat beside the IRC users.
"""

import base64
from collections.abc import Iterator

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection

from twisted_chat.config import ServerConfig
from twisted_chat.core.events import HistoryEntry
from twisted_chat.core.localhub import LocalHub
from twisted_chat.frontends.connection import Connections
from twisted_chat.frontends.irc.parser import Message, parseMessage
from twisted_chat.frontends.irc.protocol import IRCFactory, IRCProtocol
from twisted_chat.frontends.line import messages
from twisted_chat.frontends.line.protocol import LineFactory, LineProtocol
from twisted_chat.testing import (
    MemoryAccountStore,
    MemoryHistory,
    connect,
    makeServices,
)

SERVER = "irc.test"
LOG_IN = (
    "*** Log in: give your account password as the server password (or /quote"
    " PASS <password>), or use SASL PLAIN. An unknown name creates an account."
)
BURST = ["001", "002", "003", "004", "005", "375", "372", "372", "372", "372"]
BURST += ["372", "372", "376", "JOIN", "353", "366"]


class IRCClient:
    """
    One IRC connection of the chat, driven by the test.
    """

    burst: list[Message]

    def __init__(self, factory: IRCFactory, port: int) -> None:
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, IRCProtocol)
        self.protocol = protocol
        self.transport = StringTransportWithDisconnection(
            hostAddress=None, peerAddress=IPv4Address("TCP", "192.0.2.7", port)
        )
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]

    def send(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def raw(self) -> list[str]:
        data = self.transport.value().decode("utf-8")
        self.transport.clear()
        assert data == "" or data.endswith("\r\n"), data
        return [line for line in data.split("\r\n") if line]

    def take(self) -> list[Message]:
        messages = []
        for line in self.raw():
            message = parseMessage(line)
            assert message is not None, line
            messages.append(message)
        return messages

    def commands(self) -> list[str]:
        return [message.command for message in self.take()]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting) or not self.transport.connected


class Chat:
    """
    A chat with an IRC factory and a line factory on one hub, a fake clock
    and accounts alice, bob, carol (password C{pw}), keeping its history in
    C{history} if given.
    """

    def __init__(
        self, config: ServerConfig | None = None, history: MemoryHistory | None = None
    ) -> None:
        self.clock = Clock()
        self.store = MemoryAccountStore(
            {name: "pw" for name in ["alice", "bob", "carol"]}
        )
        self.services, self.audit = makeServices(
            self.clock, self.store, config, history
        )
        self.connections = Connections(self.services)
        self.irc = IRCFactory(self.connections, SERVER)
        self.line = LineFactory(self.connections)
        self.ports = iter(range(40000, 50000))

    @property
    def hub(self) -> LocalHub:
        hub = self.services.hub
        assert isinstance(hub, LocalHub)
        return hub

    def connect(self, irc: IRCFactory | None = None) -> IRCClient:
        return IRCClient(irc or self.irc, next(self.ports))

    def ircUser(
        self,
        name: str,
        password: str = "pw",
        *capabilities: str,
        irc: IRCFactory | None = None,
    ) -> IRCClient:
        client = self.connect(irc)
        if capabilities:
            client.send("CAP LS 302", "CAP REQ :" + " ".join(capabilities), "CAP END")
        client.send(f"PASS {password}", f"NICK {name}", f"USER {name} 0 * :Real {name}")
        client.burst = client.take()
        assert "001" in [m.command for m in client.burst], client.burst
        return client

    def lineUser(
        self, name: str
    ) -> tuple[LineProtocol, StringTransportWithDisconnection]:
        protocol, transport = connect(self.line, port=next(self.ports))
        protocol.dataReceived(f"{name}\npw\n".encode())
        assert transport.value().endswith(b"Login success!\r\n")
        transport.clear()
        return protocol, transport


def lineText(transport: StringTransportWithDisconnection) -> list[str]:
    data = transport.value().decode("utf-8")
    transport.clear()
    return [line for line in data.split("\r\n") if line]


def says(line: LineProtocol, text: str) -> None:
    line.dataReceived(text.encode() + b"\n")


@pytest.fixture
def chat() -> Iterator[Chat]:
    chat = Chat()
    yield chat
    assert list(chat.hub.checkInvariants()) == []


def plain(name: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{name}\0{password}".encode()).decode()


class TestRegistration:
    def test_pass_first(self, chat: Chat) -> None:
        """
        When a client sends PASS, NICK and USER, the server sends 001-005,
        the MOTD naming ChatServ, then the JOIN of #general and its names,
        and nothing else.
        """
        client = chat.connect()
        client.send("PASS pw", "NICK alice", "USER a 0 * :Alice")
        messages = client.take()
        assert [m.command for m in messages] == BURST
        assert messages[0].params == (
            "alice",
            "Welcome to the twisted-chat IRC network, alice!~alice@irc.irc.test",
        )
        assert messages[3].params == ("alice", SERVER, "twisted-chat-0.1.0", "i", "n")
        tokens = messages[4].params[1:-1]
        assert "CASEMAPPING=rfc8265" in tokens and "PREFIX=" in tokens
        assert "CHANMODES=,,,n" in tokens and "UTF8ONLY" in tokens
        assert len(tokens) <= 13
        assert any("ChatServ" in m.params[-1] for m in messages if m.command == "372")
        assert messages[13].prefix == "alice!~alice@irc.irc.test"
        assert messages[13].params == ("#general",)
        assert messages[14].params == ("alice", "=", "#general", "alice")

    def test_pass_after_cap_end(self, chat: Chat) -> None:
        """
        When a client sends PASS after CAP END, NICK and USER (irssi's
        order), the login is still checked and registration ends.
        """
        client = chat.connect()
        client.send("CAP LS 302", "JOIN :", "CAP REQ :server-time", "CAP END")
        client.send("NICK alice", "USER a 0 * :Alice")
        commands = client.commands()
        assert commands == ["CAP", "CAP", "NOTICE"]
        client.send("PASS pw")
        assert client.commands() == BURST

    def test_no_credentials(self, chat: Chat) -> None:
        """
        When a client registers without a password, the server says once how
        to log in and holds registration until the login timeout closes it.
        """
        client = chat.connect()
        client.send("NICK alice", "USER a 0 * :Alice", "NICK alice")
        messages = client.take()
        assert [(m.command, m.params) for m in messages] == [
            ("NOTICE", ("alice", LOG_IN))
        ]
        chat.clock.advance(30)
        assert client.raw() == ["ERROR :Login timed out."]
        assert client.closed

    def test_wrong_password(self, chat: Chat) -> None:
        """
        When the password is wrong, the server answers 464 and ERROR and
        closes the connection.
        """
        client = chat.connect()
        client.send("PASS nope", "NICK alice", "USER a 0 * :Alice")
        assert client.raw() == [
            ":irc.test 464 alice :Password incorrect",
            "ERROR :Wrong password.",
        ]
        assert client.closed

    def test_account_form(self, chat: Chat) -> None:
        """
        When PASS is C{account:password}, the account is logged in whatever
        the nick, and 001 carries the account's name.
        """
        client = chat.connect()
        client.send("PASS Bob:pw", "NICK someone", "USER x 0 * :X")
        messages = client.take()
        assert messages[0].params[0] == "bob"

    def test_unknown_name_registers(self, chat: Chat) -> None:
        """
        When the nick is no account yet, the login creates it with the
        password, as on the line protocol, and the audit log says so.
        """
        chat.ircUser("dora", "secret")
        assert chat.store.accounts["dora"] == ("dora", "secret")
        assert "User with dora successfully registered." in chat.audit.lines

    def test_bad_nicks(self, chat: Chat) -> None:
        """
        When NICK is empty, invalid or the service's, the server answers
        431 or 432 and takes another NICK.
        """
        client = chat.connect()
        client.send(
            "NICK", "NICK *", "NICK " + "x" * 33, "NICK chatserv", "NICK a\u200bb"
        )
        assert [(m.command, m.params[1:2]) for m in client.take()] == [
            ("431", ("No nickname given",)),
            ("432", ("*",)),
            ("432", ("x" * 33,)),
            ("432", ("chatserv",)),
            ("432", ("a\u200bb",)),
        ]
        client.send("NICK alice", "USER a 0 * :A", "PASS pw")
        assert "001" in client.commands()

    def test_service_name_reserved(self, chat: Chat) -> None:
        """
        When anyone tries to take the service's name (a NICK in any case,
        SASL, C{PASS ChatServ:pw}, or a line user's login), the server
        refuses it, so no user is shown to IRC users as ChatServ.
        """
        client = chat.connect()
        client.send("NICK CHATSERV")
        assert client.raw() == [
            ":irc.test 432 * CHATSERV :Erroneous nickname: the name is reserved"
        ]
        sasl = chat.connect()
        sasl.send("CAP LS 302", "CAP REQ :sasl", "NICK alice", "USER a 0 * :A")
        sasl.send("AUTHENTICATE PLAIN", "AUTHENTICATE " + plain("ChatServ", "pw"))
        assert sasl.commands()[-1] == "904"
        account = chat.connect()
        account.send("PASS ChatServ:pw", "NICK alice", "USER a 0 * :A")
        assert account.commands() == ["464", "ERROR"]
        protocol, transport = connect(chat.line, port=next(chat.ports))
        protocol.dataReceived(b"ChatServ\n")
        assert b"Login success!" not in transport.value()
        assert "chatserv" not in chat.store.accounts

    def test_no_history_replay(self) -> None:
        """
        When an IRC user logs in to a chat that replays history at login,
        the burst has no history and the history is not even read: IRC
        clients ask for it with CHATHISTORY.
        """
        history = CountingHistory()
        chat = Chat(ServerConfig(historyOnLogin=10), history)
        line, _ = chat.lineUser("bob")
        says(line, "before alice")
        assert history.reads == 1  # the line user's replay
        client = chat.ircUser("alice")
        assert [m.command for m in client.burst] == BURST
        assert history.reads == 1

    def test_before_registration(self, chat: Chat) -> None:
        """
        When a client sends a command before registration, the server answers
        451, but PING is answered and a bare JOIN is ignored.
        """
        client = chat.connect()
        client.send("JOIN #a", "FOO", "JOIN :", "PING tok", "PING")
        assert client.raw() == [
            ":irc.test 451 * :You have not registered",
            ":irc.test 451 * :You have not registered",
            ":irc.test PONG irc.test tok",
            ":irc.test 409 * :No origin specified",
        ]

    def test_reregister(self, chat: Chat) -> None:
        """
        When a registered client sends USER or PASS, the server answers 462.
        """
        client = chat.ircUser("alice")
        client.send("USER a 0 * :A", "PASS x")
        assert client.commands() == ["462", "462"]


class CountingHistory(MemoryHistory):
    """
    Memory history that counts the reads of a room's latest lines.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def latest(self, room: str, count: int) -> "Deferred[list[HistoryEntry]]":
        self.reads += 1
        return super().latest(room, count)


class TestCap:
    def test_ls_302(self, chat: Chat) -> None:
        """
        When a client sends CAP LS 302, the server lists every capability
        with values, and cap-notify is on.
        """
        client = chat.connect()
        client.send("CAP LS 302")
        (message,) = client.take()
        assert message.params[:2] == ("*", "LS")
        offered = message.params[-1].split()
        for name in ("sasl=PLAIN", "server-time", "echo-message", "message-tags"):
            assert name in offered
        for name in ("multi-prefix", "userhost-in-names", "batch", "draft/chathistory"):
            assert name in offered
        client.send("CAP LIST")
        assert client.take()[0].params == ("*", "LIST", "cap-notify")

    def test_ls_301(self, chat: Chat) -> None:
        """
        When a client sends CAP LS without a version, the server lists the
        names on one line, without values.
        """
        client = chat.connect()
        client.send("CAP LS")
        (message,) = client.take()
        assert len(message.params) == 3 and "=" not in message.params[2]

    def test_list_empty(self, chat: Chat) -> None:
        """
        When no capability is on, CAP LIST has an empty parameter.
        """
        client = chat.connect()
        client.send("CAP LIST")
        assert client.raw() == [":irc.test CAP * LIST :"]

    def test_req_exact(self, chat: Chat) -> None:
        """
        When a client requests capabilities, the ACK and NAK echo the request
        exactly, and CAP LIST shows what is on.
        """
        client = chat.connect()
        client.send("CAP REQ :server-time echo-message")
        client.send("CAP REQ :server-time foo")
        client.send("CAP REQ :-echo-message")
        client.send("CAP LIST")
        assert [m.params[1:] for m in client.take()] == [
            ("ACK", "server-time echo-message"),
            ("NAK", "server-time foo"),
            ("ACK", "-echo-message"),
            ("LIST", "server-time"),
        ]

    def test_unknown_subcommand(self, chat: Chat) -> None:
        """
        When a CAP subcommand is unknown, the server answers 410.
        """
        client = chat.connect()
        client.send("CAP FOO", "CAP")
        assert client.commands() == ["410", "461"]

    def test_cap_holds_registration(self, chat: Chat) -> None:
        """
        When a client started CAP negotiation, registration waits for CAP
        END even with NICK, USER and PASS given.
        """
        client = chat.connect()
        client.send("CAP LS 302", "PASS pw", "NICK alice", "USER a 0 * :A")
        assert client.commands() == ["CAP"]
        client.send("CAP END")
        assert client.commands() == BURST

    def test_rendering_caps_fixed_after_login(self, chat: Chat) -> None:
        """
        When a logged-in client asks to change server-time or message-tags,
        the server refuses (its rooms render for it by variant), but takes
        echo-message.
        """
        client = chat.ircUser("alice")
        client.send("CAP REQ server-time", "CAP REQ echo-message")
        assert [m.params[1] for m in client.take()] == ["NAK", "ACK"]


class TestSasl:
    def sasl(self, chat: Chat, *chunks: str) -> IRCClient:
        client = chat.connect()
        client.send("CAP LS 302", "CAP REQ :sasl", "NICK alice", "USER a 0 * :A")
        client.send("AUTHENTICATE PLAIN")
        client.take()
        client.send(*(f"AUTHENTICATE {chunk}" for chunk in chunks))
        return client

    def test_success(self, chat: Chat) -> None:
        """
        When SASL PLAIN names the right password, the server answers 900 and
        903, and registration ends at CAP END.
        """
        client = self.sasl(chat, plain("alice", "pw"))
        assert client.raw() == [
            ":irc.test 900 alice alice!~alice@irc.irc.test alice"
            " :You are now logged in as alice",
            ":irc.test 903 alice :SASL authentication successful",
        ]
        client.send("CAP END")
        assert client.commands() == BURST

    def test_rooms_quiet_until_registered(self, chat: Chat) -> None:
        """
        When a SASL login puts the client in the rooms before registration
        ends, it gets none of their lines or notices until its channels are
        shown, and every line after.
        """
        client = self.sasl(chat, plain("alice", "pw"))
        assert client.commands() == ["900", "903"]
        bob, _ = chat.lineUser("bob")
        says(bob, "before")
        chat.clock.advance(2)
        rooms: list[list[str]] = []
        chat.hub.roomsOf("alice").addCallback(rooms.append)
        assert rooms == [["#general"]]
        assert client.raw() == []
        client.send("CAP END")
        assert client.commands() == BURST
        says(bob, "after")
        chat.clock.advance(2)
        assert [(m.command, m.params[-1]) for m in client.take()] == [
            ("PRIVMSG", "after")
        ]

    def test_chunked_large(self, chat: Chat) -> None:
        """
        When an 800-byte payload (a 592-character password) comes in two
        400-byte chunks and C{+}, the server logs in.
        """
        chat.store.accounts["alice"] = ("alice", "p" * 592)
        payload = plain("alice", "p" * 592)
        assert len(payload) == 800
        client = self.sasl(chat, payload[:400], payload[400:], "+")
        assert [m.command for m in client.take()] == ["900", "903"]

    def test_wrong_password_retry(self, chat: Chat) -> None:
        """
        When SASL names a wrong password, the server answers 904 and lets
        the client try again.
        """
        client = self.sasl(chat, plain("alice", "nope"))
        assert client.commands() == ["904"]
        assert not client.closed
        client.send("AUTHENTICATE PLAIN")
        client.send("AUTHENTICATE " + plain("alice", "pw"))
        assert client.commands() == ["AUTHENTICATE", "900", "903"]

    def test_failures(self, chat: Chat) -> None:
        """
        When a chunk is over 400 bytes, C{*} aborts, or the mechanism is not
        PLAIN, the server answers 905, 906, or 908 and 904.
        """
        assert self.sasl(chat, "x" * 401).commands() == ["905"]
        assert self.sasl(chat, "*").commands() == ["906"]
        client = chat.connect()
        client.send("AUTHENTICATE SCRAM-SHA-256")
        assert [(m.command, m.params[1:2]) for m in client.take()] == [
            ("908", ("PLAIN",)),
            ("904", ("SASL authentication failed",)),
        ]

    def test_cap_end_mid_sasl(self, chat: Chat) -> None:
        """
        When registration ends during SASL, the server answers 906 and the
        server password applies.
        """
        client = chat.connect()
        client.send("CAP LS 302", "PASS pw", "NICK alice", "USER a 0 * :A")
        client.send("AUTHENTICATE PLAIN", "CAP END")
        commands = client.commands()
        assert commands[:3] == ["CAP", "AUTHENTICATE", "906"]
        assert commands[3:] == BURST

    def test_sasl_wins_over_pass(self, chat: Chat) -> None:
        """
        When both SASL and PASS are given, the SASL account is logged in.
        """
        client = chat.connect()
        client.send("PASS wrong", "CAP LS 302", "NICK x", "USER a 0 * :A")
        client.send(
            "AUTHENTICATE PLAIN", "AUTHENTICATE " + plain("bob", "pw"), "CAP END"
        )
        messages = client.take()
        assert [m.params[0] for m in messages if m.command == "001"] == ["bob"]

    def test_after_registration(self, chat: Chat) -> None:
        """
        When a registered client sends AUTHENTICATE, the server answers 907.
        """
        client = chat.ircUser("alice")
        client.send("AUTHENTICATE PLAIN")
        assert client.commands() == ["907"]


class TestChannels:
    def test_join_creates_and_tells_members(self, chat: Chat) -> None:
        """
        When an IRC user joins a new room, it gets its JOIN, 353 and 366;
        a member joining later is shown to it as a JOIN, and a line member
        sees the line protocol's notice.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        line, transport = chat.lineUser("carol")
        says(line, "@JOIN #dev")
        lineText(transport)
        alice.take()
        alice.send("JOIN #dev,#dev")
        messages = alice.take()
        assert [m.command for m in messages] == ["JOIN", "353", "366"]
        assert messages[1].params == ("alice", "=", "#dev", "alice carol")
        assert lineText(transport) == ["* alice joined #dev."]
        bob.send("JOIN #Dev")
        assert [(m.prefix, m.command, m.params) for m in alice.take()] == [
            ("bob!~bob@irc.irc.test", "JOIN", ("#dev",))
        ]

    def test_join_errors(self, chat: Chat) -> None:
        """
        When a JOIN names something that is no room, the server answers 403
        or 476 per name and joins the others; JOIN 0 parts every room.
        """
        alice = chat.ircUser("alice")
        alice.send("JOIN nope,#a\u200bb,#ok,#" + "x" * 40)
        assert [m.command for m in alice.take()] == [
            "403",
            "476",
            "JOIN",
            "353",
            "366",
            "476",
        ]
        alice.send("JOIN 0")
        assert [(m.command, m.params) for m in alice.take()] == [
            ("PART", ("#general",)),
            ("PART", ("#ok",)),
        ]

    def test_too_many(self) -> None:
        """
        When a user is in as many rooms as allowed, the server answers 405.
        """
        chat = Chat(ServerConfig(maxRoomsPerUser=1))
        alice = chat.ircUser("alice")
        alice.send("JOIN #a")
        (message,) = alice.take()
        assert message.command == "405"
        assert message.params[1:] == ("#a", "You are in too many rooms (max 1).")

    def test_part(self, chat: Chat) -> None:
        """
        When an IRC user parts a room with a reason, it and the IRC members
        see the PART with the reason and line members the line protocol's
        notice; a room it is not in gets 442, no room 403; leaving #general
        is allowed.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        _, transport = chat.lineUser("carol")
        alice.take()
        bob.take()
        alice.send("PART #general :bye now")
        assert alice.raw() == [":alice!~alice@irc.irc.test PART #general :bye now"]
        assert bob.raw() == [":alice!~alice@irc.irc.test PART #general :bye now"]
        assert lineText(transport) == ["* alice left #general."]
        alice.send("PART #general", "PART #nowhere", "PART x")
        assert alice.commands() == ["442", "403", "403"]
        alice.send("JOIN #general")
        assert alice.commands() == ["JOIN", "353", "366"]
        bob.take()
        alice.send("PART #general")
        assert bob.raw() == [":alice!~alice@irc.irc.test PART #general"]

    def test_names(self, chat: Chat) -> None:
        """
        When a client asks NAMES, the server lists the members (with
        userhost-in-names, as hostmasks), and only 366 for no room.
        """
        chat.lineUser("bob")
        alice = chat.ircUser("alice", "pw", "userhost-in-names")
        alice.take()
        alice.send("NAMES #general", "NAMES #none", "NAMES")
        assert alice.raw() == [
            ":irc.test 353 alice = #general"
            " :alice!~alice@irc.irc.test bob!bob@line.irc.test",
            ":irc.test 366 alice #general :End of /NAMES list",
            ":irc.test 366 alice #none :End of /NAMES list",
            ":irc.test 366 alice * :End of /NAMES list",
        ]

    def test_names_split(self, chat: Chat) -> None:
        """
        When a room has more names than fit a line, 353 is split.
        """
        names = [f"user{index:02d}name{'x' * 20}" for index in range(40)]
        for name in names:
            chat.lineUser(name)
        alice = chat.ircUser("alice")
        listed = [m for m in alice.burst if m.command == "353"]
        assert len(listed) > 1
        assert sorted(" ".join(m.params[-1] for m in listed).split()) == sorted(
            [*names, "alice"]
        )

    def test_topic_list_mode(self, chat: Chat) -> None:
        """
        When a client asks TOPIC, LIST and MODE of a room, the server answers
        331 (no topics), 482 to a change, 403 for no room; 321-323; 324 +n
        and 329; empty ban lists; 482 to a mode change.
        """
        alice = chat.ircUser("alice")
        alice.take()
        alice.send(
            "TOPIC #general", "TOPIC #general :new", "TOPIC #none", "TOPIC #x :t"
        )
        assert alice.commands() == ["331", "482", "403", "403"]
        alice.send("LIST", "LIST #none")
        assert [(m.command, m.params[1:]) for m in alice.take()] == [
            ("321", ("Channel", "Users  Name")),
            ("322", ("#general", "1", "")),
            ("323", ("End of /LIST",)),
            ("321", ("Channel", "Users  Name")),
            ("323", ("End of /LIST",)),
        ]
        alice.send(
            "MODE #general", "MODE #general b", "MODE #general +e", "MODE #general I"
        )
        alice.send("MODE #general +m", "MODE #none")
        assert alice.commands() == ["324", "329", "368", "349", "347", "482", "403"]

    def test_privmsg(self, chat: Chat) -> None:
        """
        When an IRC user says something in a room, the other members get it
        (a line user as C{alice > text}) and the audit log records it as a
        line user's; errors: 404, 403, 412, 411, and none for NOTICE.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        line, transport = chat.lineUser("carol")
        alice.take()
        bob.take()
        alice.send("PRIVMSG #general :hello all")
        assert bob.raw() == [":alice!~alice@irc.irc.test PRIVMSG #general :hello all"]
        assert lineText(transport) == ["alice > hello all"]
        assert alice.raw() == []
        assert "Received message from alice: hello all" in chat.audit.lines
        says(line, "@JOIN #side")
        lineText(transport)
        alice.send(
            "PRIVMSG #side :x", "PRIVMSG #none :x", "PRIVMSG #general :", "PRIVMSG"
        )
        alice.send("PRIVMSG #general", "NOTICE #side :x", "NOTICE #none :x", "NOTICE")
        assert alice.commands() == ["404", "403", "412", "411", "412"]
        says(line, "from the line")
        assert bob.raw() == []

    def test_line_user_to_irc(self, chat: Chat) -> None:
        """
        When a line user speaks in a room, an IRC member gets a PRIVMSG from
        the line user's hostmask.
        """
        alice = chat.ircUser("alice")
        line, _ = chat.lineUser("bob")
        alice.take()
        says(line, "hi alice")
        assert alice.raw() == [":bob!bob@line.irc.test PRIVMSG #general :hi alice"]

    def test_action_and_formatting(self, chat: Chat) -> None:
        """
        When an IRC user sends /me and formatting, IRC users get the action
        and the formatting as sent (other controls removed), line users read
        C{* alice waves} and the text without formatting, and the audit log
        C{/me waves}.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        _, transport = chat.lineUser("carol")
        alice.take()
        bob.take()
        alice.send("PRIVMSG #general :\x01ACTION waves \x02hi\x02\x01")
        alice.send("PRIVMSG #general :\x02bold\x02 \x0304,01red\x03 \x1b[31mx\u202e")
        alice.send("PRIVMSG #general :\x01VERSION\x01")
        assert bob.raw() == [
            ":alice!~alice@irc.irc.test PRIVMSG #general"
            " :\x01ACTION waves \x02hi\x02\x01",
            ":alice!~alice@irc.irc.test PRIVMSG #general"
            " :\x02bold\x02 \x0304,01red\x03 x",
        ]
        assert lineText(transport) == ["* alice waves hi", "alice > bold red x"]
        assert "Received message from alice: /me waves hi" in chat.audit.lines

    def test_notice(self, chat: Chat) -> None:
        """
        When an IRC user sends a NOTICE to a room, IRC members get a NOTICE
        (its sender too, with echo-message) and line members a normal line.
        """
        alice = chat.ircUser("alice", "pw", "echo-message")
        bob = chat.ircUser("bob")
        _, transport = chat.lineUser("carol")
        alice.take()
        bob.take()
        alice.send("NOTICE #general :build \x02passed\x02")
        notice = ":alice!~alice@irc.irc.test NOTICE #general :build \x02passed\x02"
        assert bob.raw() == [notice]
        assert alice.raw() == [notice]
        assert lineText(transport) == ["alice > build passed"]
        alice.send("PRIVMSG #general :and a line")
        assert bob.raw() == [":alice!~alice@irc.irc.test PRIVMSG #general :and a line"]

    def test_long_line_split(self, chat: Chat) -> None:
        """
        When a line user says 4 KiB of text, IRC users get it as several
        PRIVMSGs of at most 512 bytes, cut at UTF-8 boundaries, nothing lost.
        """
        alice = chat.ircUser("alice", "pw", "server-time", "message-tags")
        line, _ = chat.lineUser("bob")
        alice.take()
        text = "ğüş😀" * 300
        says(line, text)
        raw = alice.raw()
        assert len(raw) > 1
        messages = [parseMessage(item) for item in raw]
        for item in raw:
            assert len(item.partition(" ")[2].encode()) + 2 <= 512
        assert "".join(m.params[1] for m in messages if m) == text
        assert "msgid" in messages[0].tags and "msgid" not in messages[1].tags  # type: ignore[union-attr]

    def test_quit(self, chat: Chat) -> None:
        """
        When an IRC user quits, it gets ERROR and is closed, the members see
        a QUIT, and the audit log says it logged out.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        alice.take()
        bob.send("QUIT :off to bed")
        assert bob.raw() == ["ERROR :Closing link (Quit: off to bed)"]
        assert bob.closed
        assert alice.raw() == [":bob!~bob@irc.irc.test QUIT :Quit: off to bed"]
        assert "bob logged out." in chat.audit.lines

    def test_quit_without_reason(self, chat: Chat) -> None:
        """
        When an IRC user quits saying nothing, IRC members see the default
        QUIT reason and line members the line protocol's notice.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        _, transport = chat.lineUser("carol")
        alice.take()
        bob.take()
        bob.send("QUIT")
        assert bob.raw() == ["ERROR :Closing link"]
        assert alice.raw() == [":bob!~bob@irc.irc.test QUIT :Quit: left the chat"]
        assert lineText(transport) == ["* bob left the chat."]

    def test_quit_before_registration(self, chat: Chat) -> None:
        """
        When a client quits before registering, it gets ERROR and is closed.
        """
        client = chat.connect()
        client.send("QUIT")
        assert client.raw() == ["ERROR :Closing link"]
        assert client.closed


class TestUsers:
    def test_who(self, chat: Chat) -> None:
        """
        When a client asks WHO of a room or of a nick mask, the server sends
        352 per match (channel C{*} for a mask) and 315 echoing the mask;
        ChatServ is in no list.
        """
        chat.lineUser("bob")
        alice = chat.ircUser("alice")
        alice.take()
        alice.send("WHO #general", "WHO B*", "WHO #none")
        assert alice.raw() == [
            ":irc.test 352 alice #general ~alice irc.irc.test irc.test alice H"
            " :0 Real alice",
            ":irc.test 352 alice #general bob line.irc.test irc.test bob H :0 bob",
            ":irc.test 315 alice #general :End of WHO list",
            ":irc.test 352 alice * bob line.irc.test irc.test bob H :0 bob",
            ":irc.test 315 alice B* :End of WHO list",
            ":irc.test 315 alice #none :End of WHO list",
        ]

    def test_whois(self, chat: Chat) -> None:
        """
        When a client asks WHOIS, the server answers 311, 312, 319, 330 and
        318; 401 and 318 for someone offline; ChatServ answers too.
        """
        chat.lineUser("bob")
        alice = chat.ircUser("alice")
        alice.take()
        alice.send("WHOIS bob", "WHOIS irc.test nobody", "WHOIS chatserv")
        assert [(m.command, m.params[1:]) for m in alice.take()] == [
            ("311", ("bob", "bob", "line.irc.test", "*", "bob")),
            ("312", ("bob", SERVER, "twisted-chat")),
            ("319", ("bob", "#general")),
            ("330", ("bob", "bob", "is logged in as")),
            ("318", ("bob", "End of /WHOIS list")),
            ("401", ("nobody", "No such nick/channel")),
            ("318", ("nobody", "End of /WHOIS list")),
            (
                "311",
                (
                    "ChatServ",
                    "chat",
                    SERVER,
                    "*",
                    "The chat's service: /msg ChatServ @HELP",
                ),
            ),
            ("312", ("ChatServ", SERVER, "twisted-chat")),
            ("318", ("chatserv", "End of /WHOIS list")),
        ]

    def test_hostmasks_from_the_core(self, chat: Chat) -> None:
        """
        When IRC users came in through another IRC listener (as through
        another node) and this listener never saw them, NAMES, WHO, WHOIS
        and USERHOST still show their IRC hostmasks, which the core gives.
        """
        other = IRCFactory(chat.connections, SERVER)
        chat.ircUser("bob", irc=other)
        chat.lineUser("carol")
        alice = chat.ircUser("alice", "pw", "userhost-in-names")
        alice.take()
        alice.send("NAMES #general", "WHO #general", "WHO b*")
        alice.send("WHOIS bob", "USERHOST bob carol")
        assert [(m.command, m.params[1:]) for m in alice.take()] == [
            (
                "353",
                (
                    "=",
                    "#general",
                    "alice!~alice@irc.irc.test bob!~bob@irc.irc.test"
                    " carol!carol@line.irc.test",
                ),
            ),
            ("366", ("#general", "End of /NAMES list")),
            (
                "352",
                (
                    *("#general", "~alice", "irc.irc.test", SERVER, "alice", "H"),
                    "0 Real alice",
                ),
            ),
            ("352", ("#general", "~bob", "irc.irc.test", SERVER, "bob", "H", "0 bob")),
            (
                "352",
                ("#general", "carol", "line.irc.test", SERVER, "carol", "H", "0 carol"),
            ),
            ("315", ("#general", "End of WHO list")),
            ("352", ("*", "~bob", "irc.irc.test", SERVER, "bob", "H", "0 bob")),
            ("315", ("b*", "End of WHO list")),
            ("311", ("bob", "~bob", "irc.irc.test", "*", "bob")),
            ("312", ("bob", SERVER, "twisted-chat")),
            ("319", ("bob", "#general")),
            ("330", ("bob", "bob", "is logged in as")),
            ("318", ("bob", "End of /WHOIS list")),
            ("302", ("bob=+~bob@irc.irc.test carol=+carol@line.irc.test",)),
        ]

    def test_user_modes(self, chat: Chat) -> None:
        """
        When a client sets its own mode +i, the server echoes it; other
        letters get 501, another nick 502, and MODE me shows 221.
        """
        alice = chat.ircUser("alice")
        alice.send("MODE alice", "MODE alice +i", "MODE Alice +i", "MODE alice +x")
        alice.send("MODE bob +i", "MODE alice")
        assert alice.raw() == [
            ":irc.test 221 alice +",
            ":alice!~alice@irc.irc.test MODE alice +i",
            ":irc.test 501 alice :Unknown MODE flag",
            ":irc.test 502 alice :Cant change mode for other users",
            ":irc.test 221 alice +i",
        ]

    def test_nick_change(self, chat: Chat) -> None:
        """
        When a registered client asks for another nick, the server answers
        447; its own name in any case is ignored.
        """
        alice = chat.ircUser("alice")
        alice.send("NICK ALICE", "NICK other")
        assert alice.raw() == [
            ":irc.test 447 alice other :Your nickname is your account name"
        ]

    def test_time_ison_userhost_unknown(self, chat: Chat) -> None:
        """
        When a client sends TIME, ISON, USERHOST or an unknown command, the
        server answers 391, 303 (online nicks, ChatServ included), 302 and 421.
        """
        chat.lineUser("bob")
        alice = chat.ircUser("alice")
        alice.send("TIME", "ISON bob carol ChatServ", "USERHOST bob carol", "FROB x")
        messages = alice.take()
        assert [m.command for m in messages] == ["391", "303", "302", "421"]
        assert messages[1].params == ("alice", "bob ChatServ")
        assert messages[2].params == ("alice", "bob=+bob@line.irc.test")
        assert messages[3].params == ("alice", "FROB", "Unknown command")

    def test_line_too_long(self, chat: Chat) -> None:
        """
        When a line or its tags are too long, the server answers 417, drops
        the line and keeps the connection.
        """
        alice = chat.ircUser("alice")
        alice.send("PRIVMSG #general :" + "x" * 600, "@a=" + "x" * 5000 + " PING t")
        alice.send("@a=" + "y" * 9000 + " PING t", "PING ok")
        assert alice.commands() == ["417", "417", "417", "PONG"]
        assert not alice.closed


class TestConsent:
    def test_irc_asks_line(self, chat: Chat) -> None:
        """
        When an IRC user messages a line user with no private chat, the text
        is not delivered: it is a request, answered through ChatServ; once
        accepted, lines flow both ways.
        """
        alice = chat.ircUser("alice")
        line, transport = chat.lineUser("bob")
        alice.take()
        alice.send("PRIVMSG bob :psst, a secret")
        assert alice.raw() == [
            ":ChatServ!chat@irc.test NOTICE alice :Private chat request sent to bob."
        ]
        assert lineText(transport) == [
            "The user alice wants to have a private chat with you (Y/N)?"
        ]
        says(line, "y")
        lineText(transport)
        assert alice.raw() == [
            ":ChatServ!chat@irc.test NOTICE alice :You are now in a private chat"
            " with bob. Type EXIT PM to leave."
        ]
        alice.send("PRIVMSG bob :now secret")
        assert lineText(transport) == ["alice > now secret"]
        says(line, "hello back")
        assert alice.raw() == [":bob!bob@line.irc.test PRIVMSG alice :hello back"]
        says(line, "EXIT PM")
        assert alice.raw() == [
            ":ChatServ!chat@irc.test NOTICE alice :Your partner bob left pm!"
        ]

    def test_line_asks_irc(self, chat: Chat) -> None:
        """
        When a line user asks an IRC user, ChatServ asks by PRIVMSG; the IRC
        user answers y in that query, and the partner's lines come as
        PRIVMSGs from it.
        """
        alice = chat.ircUser("alice")
        line, transport = chat.lineUser("bob")
        alice.take()
        says(line, "@PM alice")
        assert alice.raw() == [
            ":ChatServ!chat@irc.test PRIVMSG alice :The user bob wants to have a"
            " private chat with you (Y/N)?"
        ]
        alice.send("PRIVMSG ChatServ :y")
        assert [m.command for m in alice.take()] == ["NOTICE"]
        assert lineText(transport)[-1].startswith(
            "You are now in a private chat with alice"
        )
        says(line, "hi")
        assert alice.raw() == [":bob!bob@line.irc.test PRIVMSG alice :hi"]

    def test_answers(self, chat: Chat) -> None:
        """
        When an IRC user is asked, y in the requester's query accepts and
        ACCEPT -nick refuses; ACCEPT of someone who did not ask says so.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        carol = chat.ircUser("carol")
        for client in (alice, bob, carol):
            client.take()
        bob.send("PRIVMSG alice :hello?")
        alice.take()
        alice.send("ACCEPT carol", "ACCEPT -bob")
        assert [m.params[-1] for m in alice.take()] == [
            "You have no private chat request from carol to answer.",
            "Request rejected.",
        ]
        assert bob.take()[-1].params[-1] == "alice rejected your private chat request."
        carol.send("PRIVMSG alice :hi")
        alice.take()
        alice.send("PRIVMSG carol :Y")
        assert (
            alice.take()[-1]
            .params[-1]
            .startswith("You are now in a private chat with carol")
        )
        carol.take()
        alice.send("PRIVMSG carol :between us")
        assert carol.raw() == [":alice!~alice@irc.irc.test PRIVMSG carol :between us"]

    def test_private_action(self, chat: Chat) -> None:
        """
        When IRC users in a private chat send /me and formatting, the IRC
        partner (and the sender, with echo-message) gets them as sent and a
        line partner reads C{* alice waves} in plain text.
        """
        alice = chat.ircUser("alice", "pw", "echo-message")
        bob = chat.ircUser("bob")
        line, transport = chat.lineUser("carol")
        alice.send("PRIVMSG bob :hi")
        bob.send("PRIVMSG ChatServ :y")
        alice.take()
        bob.take()
        alice.send("PRIVMSG bob :\x01ACTION waves \x1dslowly\x1d\x01")
        action = "PRIVMSG bob :\x01ACTION waves \x1dslowly\x1d\x01"
        assert bob.raw() == [":alice!~alice@irc.irc.test " + action]
        assert alice.raw() == [":alice!~alice@irc.irc.test " + action]
        bob.send("PRIVMSG ChatServ :EXIT PM")
        alice.take()
        says(line, "@PM bob")
        bob.send("PRIVMSG ChatServ :y")
        lineText(transport)
        bob.take()
        bob.send("PRIVMSG carol :\x01ACTION nods \x02hard\x02\x01")
        assert lineText(transport) == ["* bob nods hard"]

    def test_dropped_and_unknown(self, chat: Chat) -> None:
        """
        When an IRC user sends a NOTICE or a CTCP to a nick with no private
        chat, nothing happens; a nick offline or unknown gets 401.
        """
        alice = chat.ircUser("alice")
        _, transport = chat.lineUser("bob")
        alice.take()
        alice.send("NOTICE bob :x", "PRIVMSG bob :\x01VERSION\x01", "TAGMSG bob")
        alice.send("PRIVMSG carol :x", "PRIVMSG nobody :x", "PRIVMSG * :x")
        assert alice.commands() == ["401", "401", "401"]
        assert lineText(transport) == []

    def test_service_commands(self, chat: Chat) -> None:
        """
        When an IRC user writes line commands to ChatServ, they run through
        the core's command table and answer in NOTICEs; plain text gets a
        hint; @JOIN shows the client its JOIN.
        """
        alice = chat.ircUser("alice")
        chat.lineUser("bob")
        alice.take()
        alice.send(
            "PRIVMSG ChatServ :@WHO",
            "PRIVMSG chatserv :hello",
            "PRIVMSG ChatServ :@FOO",
        )
        assert [m.params[-1] for m in alice.take()] == [
            "Online users: alice, bob",
            "ChatServ takes the chat's commands (@HELP lists them); to talk, write"
            " in a channel or to a nick.",
            "Unknown command @FOO; type @HELP for the list.",
        ]
        alice.send(
            "PRIVMSG ChatServ :@JOIN #den",
            "PRIVMSG ChatServ :n",
            "PRIVMSG ChatServ :EXIT PM",
        )
        assert [(m.command, m.params[-1]) for m in alice.take()] == [
            ("NOTICE", "You are now in #den (1 users)."),
            ("JOIN", "#den"),
            ("353", "alice"),
            ("366", "End of /NAMES list"),
            ("NOTICE", "You have no private chat request to answer."),
            ("NOTICE", "You are not in a private chat."),
        ]
        alice.send("PRIVMSG ChatServ :@LEAVE #den", "PRIVMSG ChatServ :LOGOUT")
        assert [(m.command, m.params[-1]) for m in alice.take()] == [
            ("NOTICE", "You left #den."),
            ("NOTICE", "You are now in #general (2 users)."),
            ("PART", "#den"),
            ("ERROR", "Closing link"),
        ]
        assert alice.closed

    def test_away(self, chat: Chat) -> None:
        """
        When an IRC user is away, 306 says so, its partner gets 301 with a
        line to it and WHOIS shows it; 305 when back.
        """
        alice = chat.ircUser("alice")
        bob = chat.ircUser("bob")
        alice.send("PRIVMSG bob :hi")
        bob.send("PRIVMSG ChatServ :y")
        alice.take()
        bob.take()
        bob.send("AWAY :lunch")
        assert bob.commands() == ["306"]
        alice.send("PRIVMSG bob :there?", "WHOIS bob")
        messages = alice.take()
        assert (messages[0].command, messages[0].params[1:]) == (
            "301",
            ("bob", "lunch"),
        )
        assert "301" in [m.command for m in messages[1:]]
        bob.send("AWAY")
        assert bob.commands() == ["PRIVMSG", "305"]


class TestTakeover:
    def test_irc_takes_over_line(self, chat: Chat) -> None:
        """
        When an IRC login takes over a line session, the line connection is
        told and closed, and the IRC client is shown every room of the
        session and keeps its private chat.
        """
        line, transport = chat.lineUser("alice")
        bob, bobTransport = chat.lineUser("bob")
        says(line, "@JOIN #den")
        says(bob, "@PM alice")
        says(line, "y")
        lineText(transport)
        lineText(bobTransport)
        alice = chat.ircUser("alice")
        assert lineText(transport) == ["You logged in from another connection."]
        messages = alice.burst
        assert [(m.command, m.params[-1]) for m in messages if m.command == "JOIN"] == [
            ("JOIN", "#den"),
            ("JOIN", "#general"),
        ]
        assert lineText(bobTransport) == []
        alice.send("PRIVMSG bob :still here")
        assert lineText(bobTransport) == ["alice > still here"]

    def test_line_takes_over_irc(self, chat: Chat) -> None:
        """
        When a line login takes over an IRC session, the IRC client gets
        ERROR and is closed.
        """
        alice = chat.ircUser("alice")
        alice.take()
        chat.lineUser("alice")
        assert alice.raw() == ["ERROR :You logged in from another connection."]
        assert alice.closed


class TestTags:
    def test_server_time_msgid_echo(self, chat: Chat) -> None:
        """
        When a client has server-time, message-tags and echo-message, every
        line has @time, room lines a msgid, and its own lines come back.
        """
        alice = chat.ircUser(
            "alice", "pw", "server-time", "message-tags", "echo-message"
        )
        assert all("time" in m.tags for m in alice.burst if m.command != "CAP")
        alice.send("PRIVMSG #general :mine")
        (echo,) = alice.take()
        assert echo.params == ("#general", "mine") and set(echo.tags) == {
            "time",
            "msgid",
        }

    def test_one_rendering_per_variant(self, chat: Chat) -> None:
        """
        When IRC clients share capabilities, they share one renderer, so a
        room's line is rendered once per variant, not per recipient.
        """
        first = chat.ircUser("alice", "pw", "server-time")
        second = chat.ircUser("bob", "pw", "server-time")
        third = chat.ircUser("carol")
        assert first.protocol.renderer is second.protocol.renderer
        assert third.protocol.renderer is not first.protocol.renderer
        assert len(chat.irc.renderers) == 4

    def test_chathistory_origins_and_text(self) -> None:
        """
        When a room's history has lines of IRC and line users, CHATHISTORY
        gives each its sender's own hostmask and the text as said: actions
        and formatting kept.
        """
        chat = Chat(history=MemoryHistory())
        bob = chat.ircUser("bob")
        line, _ = chat.lineUser("carol")
        bob.send("PRIVMSG #general :\x01ACTION waves\x01", "NOTICE #general :\x02b\x02")
        says(line, "plain")
        alice = chat.ircUser("alice", "pw", "batch")
        alice.take()
        alice.send("CHATHISTORY LATEST #general * 10")
        assert alice.raw()[1:-1] == [
            "@batch=h1 :bob!~bob@irc.irc.test PRIVMSG #general :\x01ACTION waves\x01",
            "@batch=h1 :bob!~bob@irc.irc.test PRIVMSG #general :\x02b\x02",
            "@batch=h1 :carol!carol@line.irc.test PRIVMSG #general :plain",
        ]

    def test_chathistory_without_history(self, chat: Chat) -> None:
        """
        When a chat keeps no history, CHATHISTORY answers an empty batch;
        bad requests get FAIL.
        """
        alice = chat.ircUser("alice", "pw", "batch")
        alice.take()
        alice.send("CHATHISTORY LATEST #general * 10")
        assert [(m.command, m.params) for m in alice.take()] == [
            ("BATCH", ("+h1", "chathistory", "#general")),
            ("BATCH", ("-h1",)),
        ]
        alice.send("CHATHISTORY LATEST #none * 10", "CHATHISTORY BEFORE #general x 10")
        alice.send("CHATHISTORY FOO #general", "CHATHISTORY LATEST #general * x")
        assert [m.params[1] for m in alice.take()] == [
            "INVALID_TARGET",
            "INVALID_PARAMS",
            "UNKNOWN_COMMAND",
            "INVALID_PARAMS",
        ]


def test_too_many_connections() -> None:
    """
    When the server holds --max-connections connections, the next IRC
    client gets C{ERROR} with the line protocol's reason and is closed, and
    the clients already in are not disturbed.
    """
    chat = Chat(ServerConfig(maxConnections=1))
    alice = chat.ircUser("alice")
    refused = chat.irc.buildProtocol(IPv4Address("TCP", "192.0.2.8", 40001))
    assert not isinstance(refused, IRCProtocol)
    transport = StringTransportWithDisconnection()
    transport.protocol = refused
    refused.makeConnection(transport)  # type: ignore[no-untyped-call]
    assert transport.value() == f"ERROR :{messages.TOO_MANY_CONNECTIONS}\r\n".encode()
    assert transport.disconnecting or not transport.connected
    assert not alice.closed
