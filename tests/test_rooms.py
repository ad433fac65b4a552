"""
Unit tests of rooms and history in the session core and the local hub
(L{twisted_chat.core.localhub.LocalHub}, L{twisted_chat.core.rooms}), with
no transport: fake clients that record typed events, and a fake clock.
"""

import pytest
from test_session import Chat, client

from twisted_chat.config import ServerConfig
from twisted_chat.core.events import (
    BadArguments,
    ChatLine,
    History,
    HistoryEntry,
    HistoryOff,
    InRoom,
    LeftPrivate,
    LeftRoom,
    LoggedIn,
    MissedLines,
    NoSuchUser,
    PartnerLeft,
    PrivateLine,
    RoomInfo,
    RoomJoined,
    RoomLeft,
    RoomList,
    RoomMembers,
    RoomRefusal,
    RoomRefused,
    UserInfo,
    UserLeft,
)
from twisted_chat.core.session import SessionCore
from twisted_chat.testing import MemoryHistory


class HistoryChat(Chat):
    """
    A L{Chat} whose hub keeps history in memory.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.history = MemoryHistory()
        super().__init__(config, history=self.history)


@pytest.fixture
def chat() -> Chat:
    return Chat()


def joined(chat: Chat, core: SessionCore, room: str) -> None:
    """
    Have C{core} join C{room} and forget what everyone was told.
    """
    core.perform(f"@JOIN {room}")
    for other in chat.cores:
        client(other).take()


class TestJoin:
    def test_joinCreates(self, chat: Chat) -> None:
        """When a user joins a room that does not exist, the core creates it."""
        (alice,) = chat.users("alice")
        alice.perform("@JOIN #python")
        assert client(alice).take() == [InRoom("#python", 1)]
        assert alice.session is not None
        assert alice.session.current == "#python"
        assert chat.audit.lines[-1] == "User alice joined room #python"

    def test_membersTold(self, chat: Chat) -> None:
        """When a user joins a room, its members are told and others are not."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        joined(chat, alice, "#python")
        bob.perform("@join #PYTHON")
        assert client(bob).take() == [InRoom("#python", 2)]
        assert client(alice).take() == [RoomJoined("bob", "#python")]
        assert client(carol).take() == []

    def test_firstSpellingKept(self, chat: Chat) -> None:
        """When a room is joined with another case, the core keeps its first name."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#PyThon")
        bob.perform("@JOIN #python")
        assert client(bob).take() == [InRoom("#PyThon", 2)]

    def test_alreadyInMakesCurrent(self, chat: Chat) -> None:
        """When a user joins a room it is in, the core only makes it current."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#python")
        joined(chat, bob, "#python")
        alice.perform("@JOIN #general")
        assert client(alice).take() == [InRoom("#general", 2)]
        assert client(bob).take() == []
        assert alice.session is not None and alice.session.current == "#general"

    @pytest.mark.parametrize("name", ["python", "#", "#two words", "#" + "x" * 33])
    def test_invalidName(self, chat: Chat, name: str) -> None:
        """When a room name breaks the rules, the core says so."""
        (alice,) = chat.users("alice")
        alice.joinRoom(name)
        assert client(alice).take() == [RoomRefused(RoomRefusal.INVALID_NAME, name)]

    def test_roomsPerUserLimit(self) -> None:
        """When a user is in as many rooms as allowed, the core refuses another."""
        chat = Chat(ServerConfig(maxRoomsPerUser=3))
        (alice,) = chat.users("alice")
        for room in ("#a", "#b"):
            joined(chat, alice, room)
        alice.perform("@JOIN #c")
        assert client(alice).take() == [
            RoomRefused(RoomRefusal.TOO_MANY_JOINED, "#c", 3)
        ]

    def test_roomsLimit(self) -> None:
        """When as many rooms exist as allowed, the core refuses a new one."""
        chat = Chat(ServerConfig(maxRooms=2))
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#a")
        bob.perform("@JOIN #b")
        assert client(bob).take() == [RoomRefused(RoomRefusal.TOO_MANY_ROOMS, "#b", 2)]
        bob.perform("@JOIN #a")
        assert client(bob).take() == [InRoom("#a", 2)]


class TestLines:
    def test_plainLineGoesToCurrentRoom(self, chat: Chat) -> None:
        """When a user talks, the core relays the line to the current room only."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        joined(chat, alice, "#python")
        joined(chat, bob, "#python")
        alice.perform("import this")
        assert client(bob).take() == [ChatLine("#python", "alice", "import this")]
        assert client(carol).take() == []
        assert (
            chat.audit.lines[-1]
            == "Received message from alice in #python: import this"
        )

    def test_otherRoomLinesStillHeard(self, chat: Chat) -> None:
        """
        When a room that is not a member's current one has a line, the member
        gets it.
        """
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#python")
        bob.perform("hello general")
        assert client(alice).take() == [ChatLine("#general", "bob", "hello general")]

    def test_lineIdsInOrder(self, chat: Chat) -> None:
        """
        When lines are said in one millisecond, the core gives them increasing
        ids.
        """
        alice, bob = chat.users("alice", "bob")
        for text in ("one", "two", "three"):
            alice.perform(text)
        ids = [e.msgid for e in client(bob).events]
        assert ids == ["0-0", "0-1", "0-2"]


class TestLeave:
    def test_leaveCurrentFallsBack(self, chat: Chat) -> None:
        """When a user leaves its current room, the core makes #general current."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#python")
        joined(chat, bob, "#python")
        alice.perform("@LEAVE")
        assert client(alice).take() == [LeftRoom("#python"), InRoom("#general", 2)]
        assert client(bob).take() == [RoomLeft("alice", "#python")]
        assert chat.audit.lines[-1] == "User alice left room #python"

    def test_leaveOtherRoom(self, chat: Chat) -> None:
        """When a user leaves a room that is not current, the current room stays."""
        (alice,) = chat.users("alice")
        joined(chat, alice, "#a")
        joined(chat, alice, "#b")
        alice.perform("@LEAVE #a")
        assert client(alice).take() == [LeftRoom("#a")]
        assert alice.session is not None and alice.session.current == "#b"

    def test_emptyRoomGoes(self, chat: Chat) -> None:
        """When the last member leaves a room, the core forgets it."""
        (alice,) = chat.users("alice")
        joined(chat, alice, "#python")
        alice.perform("@LEAVE #python")
        client(alice).take()
        alice.perform("@WHO #python")
        assert client(alice).take() == [
            RoomRefused(RoomRefusal.NO_SUCH_ROOM, "#python")
        ]

    def test_cannotLeaveGeneral(self, chat: Chat) -> None:
        """When a line user tries to leave #general, the core refuses."""
        (alice,) = chat.users("alice")
        alice.perform("@LEAVE #General")
        alice.perform("@LEAVE")
        refused = RoomRefused(RoomRefusal.CANNOT_LEAVE_GENERAL, "#general")
        assert client(alice).take() == [refused, refused]

    def test_notAMember(self, chat: Chat) -> None:
        """When a user leaves a room it is not in, the core says so."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, bob, "#python")
        alice.perform("@LEAVE #python")
        assert client(alice).take() == [
            RoomRefused(RoomRefusal.NOT_A_MEMBER, "#python")
        ]

    def test_departureToldOnceAcrossRooms(self, chat: Chat) -> None:
        """
        When a user who shares several rooms with another logs out, the
        other is told once.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        for core in (alice, bob):
            joined(chat, core, "#a")
            joined(chat, core, "#b")
        alice.logOut()
        assert client(bob).take() == [UserLeft("alice")]
        assert client(carol).take() == [UserLeft("alice")]


class TestListing:
    def test_rooms(self, chat: Chat) -> None:
        """When a user lists rooms, the core gives those with members, sorted."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, bob, "#zoo")
        joined(chat, alice, "#Alpha")
        joined(chat, bob, "#alpha")
        alice.perform("@ROOMS")
        assert client(alice).take() == [
            RoomList(
                (RoomInfo("#Alpha", 2), RoomInfo("#general", 2), RoomInfo("#zoo", 1))
            )
        ]

    def test_membersOfRoom(self, chat: Chat) -> None:
        """When a user asks who is in a room, the core lists its members, sorted."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        joined(chat, carol, "#python")
        joined(chat, alice, "#python")
        bob.perform("@WHO #Python")
        assert client(bob).take() == [
            RoomMembers("#python", ("alice", "carol"), ("line", "line"))
        ]

    def test_whois(self, chat: Chat) -> None:
        """When a user asks about another, the core gives the partner and rooms."""
        alice, bob = chat.users("alice", "bob")
        joined(chat, bob, "#python")
        chat.pair(alice, bob)
        alice.whois("BOB")
        alice.whois("nobody")
        assert client(alice).take() == [
            UserInfo("bob", "alice", ("#general", "#python")),
            NoSuchUser("nobody"),
        ]


class TestPrivateChat:
    def test_noRoomLinesDuringPrivateChat(self, chat: Chat) -> None:
        """When line users are paired, the core sends them no room lines or notices."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        joined(chat, alice, "#python")
        joined(chat, carol, "#python")
        chat.pair(alice, bob)
        carol.perform("in python")
        carol.perform("@JOIN #general")
        carol.perform("in general")
        chat.login("dave")
        assert client(alice).take() == []
        assert client(bob).take() == []

    def test_missedLinesAfterExit(self, chat: Chat) -> None:
        """
        When a private chat ends, the core tells each side how many lines its
        current room had meanwhile.
        """
        alice, bob, carol = chat.users("alice", "bob", "carol")
        joined(chat, alice, "#python")
        joined(chat, carol, "#python")
        chat.pair(alice, bob)
        carol.perform("one")
        carol.perform("two")
        carol.perform("@JOIN #general")
        carol.perform("three")
        alice.perform("EXIT PM")
        assert client(alice).take() == [
            LeftPrivate("bob"),
            MissedLines("#python", 2),
        ]
        assert client(bob).take() == [PartnerLeft("alice"), MissedLines("#general", 1)]

    def test_nothingMissed(self, chat: Chat) -> None:
        """When nothing was said during a private chat, the core says nothing of it."""
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob)
        bob.perform("EXIT PM")
        assert client(bob).take() == [LeftPrivate("alice")]
        assert client(alice).take() == [PartnerLeft("bob")]

    def test_partnerDisconnectsMissed(self, chat: Chat) -> None:
        """When a partner's connection ends, the other is told what it missed."""
        alice, bob, carol = chat.users("alice", "bob", "carol")
        chat.pair(alice, bob)
        carol.perform("meanwhile")
        bob.connectionLost()
        assert client(alice).take() == [
            PartnerLeft("bob"),
            MissedLines("#general", 1),
            UserLeft("bob"),
        ]

    def test_privateLinesNotInRooms(self, chat: Chat) -> None:
        """When paired users talk, the core puts nothing in any room."""
        chat = HistoryChat()
        alice, bob = chat.users("alice", "bob")
        chat.pair(alice, bob)
        alice.perform("secret")
        assert client(bob).take() == [PrivateLine("alice", "secret")]
        assert chat.history.rooms == {}


class TestTakeover:
    def test_roomsKept(self, chat: Chat) -> None:
        """
        When a user in another room takes over, the core keeps its rooms and
        tells the new connection which room is current.
        """
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#python")
        joined(chat, bob, "#python")
        again = chat.core()
        again.logIn("alice", "pw")
        assert client(again).take() == [
            LoggedIn("alice", True),
            InRoom("#python", 2),
        ]
        bob.perform("still there?")
        assert client(again).take() == [ChatLine("#python", "bob", "still there?")]
        assert client(alice).take() == []
        assert client(bob).take() == []


class TestHistory:
    def entries(
        self, chat: HistoryChat, room: str = "#general"
    ) -> list[tuple[str, str]]:
        return [(e.sender, e.text) for e in chat.history.rooms.get(room, [])]

    def test_linesKept(self) -> None:
        """When users talk in rooms, the core keeps each room's lines apart."""
        chat = HistoryChat()
        alice, bob = chat.users("alice", "bob")
        alice.perform("hi all")
        joined(chat, bob, "#python")
        bob.perform("hi python")
        assert self.entries(chat) == [("alice", "hi all")]
        assert self.entries(chat, "#python") == [("bob", "hi python")]

    def test_historyCommand(self) -> None:
        """
        When a user asks for history, the core shows the current room's last
        lines.
        """
        chat = HistoryChat()
        alice, bob = chat.users("alice", "bob")
        for n in range(5):
            alice.perform(f"line {n}")
        client(bob).take()
        bob.perform("@HISTORY 2")
        (shown,) = client(bob).take()
        assert isinstance(shown, History)
        assert shown.room == "#general"
        assert [e.text for e in shown.entries] == ["line 3", "line 4"]

    @pytest.mark.parametrize("count", ["0", "-1", "two", "1.5"])
    def test_historyBadCount(self, count: str) -> None:
        """When the history count is not a positive number, the core gives the usage."""
        chat = HistoryChat()
        (alice,) = chat.users("alice")
        alice.perform(f"@HISTORY {count}")
        assert client(alice).take() == [BadArguments("@HISTORY [N]")]

    def test_historyAtMost200(self) -> None:
        """When more than 200 lines are asked for, the core shows 200."""
        chat = HistoryChat()
        alice, bob = chat.users("alice", "bob")
        for n in range(250):
            alice.perform(f"line {n}")
        client(bob).take()
        bob.perform("@HISTORY 1000")
        (shown,) = client(bob).take()
        assert isinstance(shown, History) and len(shown.entries) == 200

    def test_historyOff(self, chat: Chat) -> None:
        """When the server keeps no history, the core says so."""
        (alice,) = chat.users("alice")
        alice.perform("@HISTORY")
        assert client(alice).take() == [HistoryOff()]

    def test_replayAtLogin(self) -> None:
        """
        When a user logs in, the core shows the last --history-on-login lines
        of #general after the login; a takeover shows none.
        """
        chat = HistoryChat(ServerConfig(historyOnLogin=2))
        (alice,) = chat.users("alice")
        for n in range(3):
            alice.perform(f"line {n}")
        bob = chat.core()
        bob.logIn("bob", "pw")
        login, shown = client(bob).take()
        assert login == LoggedIn("bob", False)
        assert isinstance(shown, History)
        assert [e.text for e in shown.entries] == ["line 1", "line 2"]
        again = chat.core()
        again.logIn("bob", "pw")
        assert client(again).take() == [LoggedIn("bob", True)]

    def test_noReplayWhenOff(self) -> None:
        """When replay at login is off, the core shows only the login."""
        chat = HistoryChat(ServerConfig(historyOnLogin=0))
        (alice,) = chat.users("alice")
        alice.perform("said")
        bob = chat.core()
        bob.logIn("bob", "pw")
        assert client(bob).take() == [LoggedIn("bob", False)]

    def test_noReplayWhenEmpty(self) -> None:
        """When #general has no history yet, the core shows only the login."""
        chat = HistoryChat()
        alice = chat.core()
        alice.logIn("alice", "pw")
        assert client(alice).take() == [LoggedIn("alice", False)]

    def test_replayOnJoin(self) -> None:
        """When a user joins a room, the core shows its last lines after the join."""
        chat = HistoryChat()
        alice, bob = chat.users("alice", "bob")
        joined(chat, alice, "#python")
        alice.perform("earlier")
        bob.perform("@JOIN #python")
        entered, shown = client(bob).take()
        assert entered == InRoom("#python", 2)
        assert isinstance(shown, History)
        assert [(e.sender, e.text) for e in shown.entries] == [("alice", "earlier")]
        assert all(isinstance(e, HistoryEntry) for e in shown.entries)
        bob.perform("@JOIN #python")
        assert client(bob).take() == [InRoom("#python", 2)]
