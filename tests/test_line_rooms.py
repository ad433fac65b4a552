"""
The line protocol's lines for rooms and history, byte for byte, over string
transports and a fake clock (L{twisted_chat.frontends.line}).
"""

import time
from collections.abc import Iterator

import pytest
from test_protocol import Chat, Client, crlf

from twisted_chat.config import ServerConfig
from twisted_chat.frontends.line import messages
from twisted_chat.testing import MemoryHistory, makeFactory


class RoomChat(Chat):
    """
    A line-protocol chat whose hub keeps history in memory.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        super().__init__(config=config)
        self.history = MemoryHistory()
        self.factory, self.audit = makeFactory(
            self.clock, self.store, config, history=self.history
        )


@pytest.fixture
def chat() -> Iterator[RoomChat]:
    chat = RoomChat()
    yield chat
    assert chat.invariants() == []


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def join(client: Client, room: str) -> str:
    client.line(f"@JOIN {room}")
    return client.take()


class TestRoomLines:
    def test_join(self, chat: RoomChat) -> None:
        """When a user joins a room, the server confirms it and tells the members."""
        alice, bob = chat.users("alice", "bob")
        assert join(alice, "#python") == crlf("You are now in #python (1 users).")
        assert join(bob, "#Python") == crlf("You are now in #python (2 users).")
        assert alice.take() == crlf("* bob joined #python.")

    def test_currentAndOtherRoomLines(self, chat: RoomChat) -> None:
        """
        When a room has a line, members for whom it is current see it as
        today, and the others with the room's name first.
        """
        alice, bob = chat.users("alice", "bob")
        join(alice, "#python")
        join(bob, "#python")
        alice.take()
        alice.line("@JOIN #general")
        assert alice.take() == crlf("You are now in #general (2 users).")
        bob.line("in python")
        assert alice.take() == crlf("[#python] bob > in python")
        alice.line("in general")
        assert bob.take() == crlf("[#general] alice > in general")

    def test_leave(self, chat: RoomChat) -> None:
        """When a user leaves its current room, the server says where it is now."""
        alice, bob = chat.users("alice", "bob")
        join(alice, "#python")
        join(bob, "#python")
        alice.take()
        bob.line("@LEAVE")
        assert bob.take() == crlf(
            "You left #python.", "You are now in #general (2 users)."
        )
        assert alice.take() == crlf("* bob left #python.")

    @pytest.mark.parametrize(
        ("line", "reply"),
        [
            ("@LEAVE #general", "You cannot leave #general."),
            ("@LEAVE", "You cannot leave #general."),
            ("@LEAVE #nowhere", "You are not in #nowhere."),
            ("@JOIN python", messages.INVALID_ROOM),
            ("@JOIN #a-b_c!", messages.INVALID_ROOM),
            ("@WHO #nowhere", "Room #nowhere does not exist."),
            ("@WHO general", messages.INVALID_ROOM),
            ("@JOIN", "Usage: @JOIN #room"),
            ("@HISTORY x", "Usage: @HISTORY [N]"),
        ],
    )
    def test_errors(self, chat: RoomChat, line: str, reply: str) -> None:
        """When a room command cannot be done, the server says why in one line."""
        (alice,) = chat.users("alice")
        alice.line(line)
        assert alice.take() == crlf(reply)

    def test_invalidRoomText(self) -> None:
        """When a room name is invalid, the server says what a room name is."""
        assert messages.INVALID_ROOM == (
            "Invalid room name: use # and 1-32 letters, digits, _ or -."
        )

    def test_limits(self) -> None:
        """When the room limits are reached, the server names the limit."""
        chat = RoomChat(ServerConfig(maxRoomsPerUser=2, maxRooms=3))
        alice, bob, carol = chat.users("alice", "bob", "carol")
        assert join(alice, "#a") == crlf("You are now in #a (1 users).")
        assert join(alice, "#b") == crlf("You are in too many rooms (max 2).")
        assert join(bob, "#b") == crlf("You are now in #b (1 users).")
        assert join(carol, "#c") == crlf("Too many rooms exist (max 3).")
        assert join(carol, "#a") == crlf("You are now in #a (2 users).")

    def test_rooms(self, chat: RoomChat) -> None:
        """When a user lists rooms, the server names each with its member count."""
        alice, bob = chat.users("alice", "bob")
        join(bob, "#zoo")
        join(alice, "#apes")
        alice.line("@ROOMS")
        assert alice.take() == crlf("Rooms: #apes (1), #general (2), #zoo (1)")

    def test_roomsPastFifty(self) -> None:
        """
        When more than 50 rooms have members, the server lists 50 and the rest's
        count.
        """
        chat = RoomChat(ServerConfig(maxRoomsPerUser=0, floodRate=0))
        (alice,) = chat.users("alice")
        for n in range(55):
            join(alice, f"#r{n:02d}")
        alice.line("@ROOMS")
        listed = alice.take()
        assert listed.startswith("Rooms: #general (1), #r00 (1), #r01 (1),")
        assert listed.endswith(", #r48 (1), and 6 more\r\n")
        assert listed.count("(1)") == 50

    def test_whoInRoom(self, chat: RoomChat) -> None:
        """When a user asks who is in a room, the server lists its members."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        join(carol, "#python")
        join(alice, "#python")
        bob.line("@WHO #python")
        assert bob.take() == crlf("Users in #python: alice, carol")
        bob.line("@WHO")
        assert bob.take() == crlf("Online users: alice, bob, carol")

    def test_history(self, chat: RoomChat) -> None:
        """
        When a user asks for history, the server frames the lines with their
        times.
        """
        alice, bob = chat.users("alice", "bob")
        alice.line("first")
        alice.line("second")
        bob.take()
        bob.line("@HISTORY")
        stamped = [stamp(e.time) for e in chat.history.rooms["#general"]]
        assert bob.take() == crlf(
            "--- History of #general (2 lines) ---",
            f"[{stamped[0]}] alice > first",
            f"[{stamped[1]}] alice > second",
            "--- End of history ---",
        )

    def test_historyOff(self) -> None:
        """When the server keeps no history, the server says so."""
        chat = Chat()
        (alice,) = chat.users("alice")
        alice.line("@history 5")
        assert alice.take() == crlf("History is off on this server.")

    def test_replayAfterLoginSuccess(self, chat: RoomChat) -> None:
        """When history exists, the server replays it right after Login success!."""
        (alice,) = chat.users("alice")
        alice.line("before you came")
        bob = chat.connect()
        bob.take()
        bob.send("bob\npw\n")
        when = stamp(chat.history.rooms["#general"][0].time)
        assert bob.take() == "Password: " + crlf(
            messages.LOGIN_SUCCESS,
            "--- History of #general (1 lines) ---",
            f"[{when}] alice > before you came",
            "--- End of history ---",
        )

    def test_missedAfterPrivateChat(self, chat: RoomChat) -> None:
        """When a private chat ends, the server says how many lines were missed."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob, "bob")
        carol.line("while you were away")
        alice.line("EXIT PM")
        assert alice.take() == crlf(
            "You left the private chat with bob.",
            "You missed 1 lines in #general; type @HISTORY to see them.",
        )
        assert bob.take() == crlf(
            "Your partner alice left pm!",
            "You missed 1 lines in #general; type @HISTORY to see them.",
        )

    def test_helpListsRoomCommands(self, chat: RoomChat) -> None:
        """When a user asks for help, the server lists the room commands."""
        (alice,) = chat.users("alice")
        alice.line("@HELP")
        text = alice.take()
        for command in ("@JOIN #room", "@LEAVE [#room]", "@ROOMS", "@WHO [#room]"):
            assert command in text
        assert "@HISTORY [N]" in text

    def test_auditOfRooms(self, chat: RoomChat) -> None:
        """When users join, talk in and leave rooms, the audit log says so."""
        (alice,) = chat.users("alice")
        join(alice, "#python")
        alice.line("hello")
        alice.line("@LEAVE")
        alice.line("hello general")
        assert chat.audit.lines[-4:] == [
            "User alice joined room #python",
            "Received message from alice in #python: hello",
            "User alice left room #python",
            "Received message from alice: hello general",
        ]
