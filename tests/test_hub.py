"""
Unit tests for L{twisted_chat.core.hub.LocalHub}: sessions, the group and private
chats, driven directly with fake clients and a fake clock.
"""

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer

from twisted_chat.core.events import Request, RequestResult, UserStatus
from twisted_chat.core.hub import (
    REQUEST_TIMEOUT,
    Departure,
    IChatClient,
    PrivateEnded,
    Session,
)
from twisted_chat.core.localhub import LocalHub
from twisted_chat.frontends.line import messages
from twisted_chat.frontends.line.render import LINE_RENDERER, lines


@implementer(IChatClient)
class FakeClient:
    """
    A client that remembers the lines delivered to it, as the line protocol
    renders them.
    """

    renderer = LINE_RENDERER
    echoes = False

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.superseded = False

    def deliver(self, data: bytes) -> None:
        assert data.endswith(b"\r\n")
        self.lines.extend(data.decode("utf-8")[:-2].split("\r\n"))

    announce = deliver

    def notify(self, event: Any) -> None:
        self.lines.extend(lines(event))

    def failed(self, failure: Any) -> None:
        raise AssertionError(failure)

    def supersede(self) -> None:
        self.superseded = True

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def result(d: "Deferred[Any]") -> Any:
    """
    The result of a Deferred that has already fired.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert len(results) == 1, "the Deferred has not fired"
    return results[0]


class HubTest:
    """
    A hub on a fake clock, and helpers to log users in.
    """

    def setup_method(self) -> None:
        self.clock = Clock()
        self.hub = LocalHub(self.clock)

    def teardown_method(self) -> None:
        assert list(self.hub.checkInvariants()) == []

    def say(self, session: Session, text: str) -> bool:
        """
        Say C{text} as a line user does; return whether it went to a room.
        """
        if self.hub.sayToPartner(session, text):
            return False
        return self.hub.sayInRoom(session, session.current, text) is not None

    def attach(self, name: str) -> Session:
        session = Session(name, FakeClient())
        result(self.hub.attach(session))
        return session

    def users(self, *names: str) -> list[Session]:
        sessions = [self.attach(name) for name in names]
        for session in sessions:
            session.client.take()
        return sessions

    def pair(self, first: Session, second: Session) -> None:
        assert result(self.hub.requestPrivateChat(first, second.name)).outcome is (
            Request.SENT
        )
        assert result(self.hub.answerPrivateChat(second, True)) == first.name
        first.client.take()
        second.client.take()


class TestAttach(HubTest):
    def test_joinAnnounced(self) -> None:
        """
        When a user logs in, the server tells the others in the group but not them.
        """
        alice, bob = self.users("alice", "bob")
        carol = self.attach("carol")
        assert alice.client.take() == [messages.JOINED.format(name="carol")]
        assert bob.client.take() == [messages.JOINED.format(name="carol")]
        assert carol.client.take() == []
        assert self.hub.sessionCount == 3

    def test_newArrivalIsNotTakeover(self) -> None:
        """When a name is claimed for the first time, the server says it is new."""
        assert result(self.hub.attach(Session("alice", FakeClient()))) is False

    def test_takeoverSupersedesOld(self) -> None:
        """When a logged-in name is claimed again, the server supersedes the old one."""
        alice, bob = self.users("alice", "bob")
        again = Session("Alice", FakeClient())
        assert result(self.hub.attach(again)) is True
        assert alice.client.superseded
        assert bob.client.take() == []
        assert self.hub.sessionCount == 2

    def test_takeoverGetsGroupLines(self) -> None:
        """When a user took over, the server sends group lines to the new session."""
        alice, bob = self.users("alice", "bob")
        again = Session("alice", FakeClient())
        result(self.hub.attach(again))
        self.say(bob, "hi")
        assert again.client.take() == ["bob > hi"]
        assert alice.client.take() == []

    def test_takeoverKeepsPrivateChat(self) -> None:
        """When a user in a private chat takes over, the server keeps the chat."""
        alice, bob = self.users("alice", "bob")
        self.pair(alice, bob)
        again = Session("alice", FakeClient())
        result(self.hub.attach(again))
        assert bob.client.take() == []
        assert result(self.hub.lookup("bob")) == UserStatus("bob", "alice")
        self.say(bob, "still there?")
        assert again.client.take() == ["bob > still there?"]
        self.say(again, "yes")
        assert bob.client.take() == ["alice > yes"]

    def test_takeoverKeepsRequest(self) -> None:
        """
        When a user asked for a private chat takes over, the server keeps the request.
        """
        alice, bob = self.users("alice", "bob")
        result(self.hub.requestPrivateChat(alice, "bob"))
        bob.client.take()
        again = Session("bob", FakeClient())
        result(self.hub.attach(again))
        assert result(self.hub.answerPrivateChat(again, True)) == "alice"
        assert result(self.hub.lookup("alice")) == UserStatus("alice", "bob")

    def test_takeoverRequesterKeepsRequest(self) -> None:
        """
        When a requester takes over, the server lets the target answer the new session.
        """
        alice, bob = self.users("alice", "bob")
        result(self.hub.requestPrivateChat(alice, "bob"))
        again = Session("alice", FakeClient())
        result(self.hub.attach(again))
        assert result(self.hub.answerPrivateChat(bob, False)) == "alice"
        assert again.client.take() == [messages.PM_REJECTED.format(name="bob")]


class TestDetach(HubTest):
    def test_leaveAnnounced(self) -> None:
        """When a user leaves, the server tells the group and forgets them."""
        alice, bob = self.users("alice", "bob")
        assert result(self.hub.detach(alice)) == Departure(None)
        assert bob.client.take() == [messages.LEFT.format(name="alice")]
        assert result(self.hub.lookup("alice")) is None
        assert self.hub.sessionCount == 1

    def test_supersededDetachIsNoop(self) -> None:
        """
        When a superseded session ends, the server changes nothing and says nothing.
        """
        alice, bob = self.users("alice", "bob")
        again = Session("alice", FakeClient())
        result(self.hub.attach(again))
        assert result(self.hub.detach(alice)) is None
        assert bob.client.take() == []
        assert result(self.hub.lookup("alice")) == UserStatus("alice", None)

    def test_partnerToldOnDetach(self) -> None:
        """When a user in a private chat leaves, the server tells the partner."""
        alice, bob = self.users("alice", "bob")
        self.pair(alice, bob)
        assert result(self.hub.detach(alice)) == Departure("bob")
        assert messages.PARTNER_LEFT.format(name="alice") in bob.client.take()
        assert result(self.hub.lookup("bob")) == UserStatus("bob", None)

    def test_requesterLeavesCancels(self) -> None:
        """
        When a requester leaves, the server tells the target the request was cancelled.
        """
        alice, bob = self.users("alice", "bob")
        result(self.hub.requestPrivateChat(alice, "bob"))
        bob.client.take()
        result(self.hub.detach(alice))
        assert bob.client.take()[0] == messages.REQUEST_FROM_CANCELLED.format(
            name="alice"
        )
        assert self.clock.getDelayedCalls() == []

    def test_targetLeavesCancels(self) -> None:
        """
        When a target leaves, the server tells the requester the request was cancelled.
        """
        alice, bob = self.users("alice", "bob")
        result(self.hub.requestPrivateChat(alice, "bob"))
        result(self.hub.detach(bob))
        assert alice.client.take()[0] == messages.REQUEST_TO_CANCELLED.format(
            name="bob"
        )
        assert self.clock.getDelayedCalls() == []
        # Both are free again.
        carol = self.attach("carol")
        assert result(self.hub.requestPrivateChat(alice, "carol")).outcome is (
            Request.SENT
        )
        assert carol.client.take()[-1] == messages.PM_REQUEST_RECEIVED.format(
            name="alice"
        )


class TestSay(HubTest):
    def test_groupNoEcho(self) -> None:
        """When a user talks to the group, the server relays to all others but them."""
        alice, bob, carol = self.users("alice", "bob", "carol")
        assert self.say(alice, "hello") is True
        assert alice.client.take() == []
        assert bob.client.take() == ["alice > hello"]
        assert carol.client.take() == ["alice > hello"]

    def test_groupSkipsPairs(self) -> None:
        """When a user talks to the group, the server skips users in a private chat."""
        alice, bob, carol = self.users("alice", "bob", "carol")
        self.pair(bob, carol)
        self.say(alice, "hello")
        assert bob.client.take() == []
        assert carol.client.take() == []

    def test_privateLinesOnlyToPartner(self) -> None:
        """
        When a user in a private chat talks, the server sends it to the partner only.
        """
        alice, bob, carol = self.users("alice", "bob", "carol")
        self.pair(alice, bob)
        assert self.say(alice, "secret") is False
        assert bob.client.take() == ["alice > secret"]
        assert carol.client.take() == []
        assert alice.client.take() == []

    def test_pairGetsNoJoinLines(self) -> None:
        """When someone joins, the server does not tell users in a private chat."""
        alice, bob = self.users("alice", "bob")
        self.pair(alice, bob)
        self.attach("carol")
        assert alice.client.take() == []
        assert bob.client.take() == []


class TestRequests(HubTest):
    def request(self, session: Session, target: str) -> RequestResult:
        return result(self.hub.requestPrivateChat(session, target))

    def test_sent(self) -> None:
        """When a user asks another, the server tells the target and reports it sent."""
        alice, bob = self.users("alice", "bob")
        assert self.request(alice, "BOB") == RequestResult(Request.SENT, "bob")
        assert bob.client.take() == [messages.PM_REQUEST_RECEIVED.format(name="alice")]

    def test_self(self) -> None:
        """When a user asks themselves, the server refuses."""
        (alice,) = self.users("alice")
        assert self.request(alice, "Alice").outcome is Request.SELF

    def test_offline(self) -> None:
        """When the target is not online, the server reports it offline."""
        (alice,) = self.users("alice")
        assert self.request(alice, "ghost") == RequestResult(Request.OFFLINE, "ghost")

    def test_targetBusy(self) -> None:
        """When the target is in a private chat, the server reports it busy."""
        alice, bob, carol = self.users("alice", "bob", "carol")
        self.pair(bob, carol)
        assert self.request(alice, "bob") == RequestResult(Request.TARGET_IN_PM, "bob")

    def test_targetHasRequest(self) -> None:
        """When the target already has a request, the server reports it pending."""
        alice, _bob, carol = self.users("alice", "bob", "carol")
        self.request(carol, "bob")
        assert self.request(alice, "bob") == RequestResult(
            Request.TARGET_HAS_REQUEST, "bob"
        )
        # The target made a request itself: also pending.
        dave = self.attach("dave")
        assert self.request(dave, "carol").outcome is Request.TARGET_HAS_REQUEST

    def test_alreadyAsked(self) -> None:
        """When the requester already asked someone, the server names that user."""
        alice, _bob, _carol = self.users("alice", "bob", "carol")
        self.request(alice, "bob")
        assert self.request(alice, "carol") == RequestResult(
            Request.ALREADY_ASKED, "bob"
        )

    def test_beingAsked(self) -> None:
        """When the requester is being asked, the server names who asked."""
        alice, bob, _carol = self.users("alice", "bob", "carol")
        self.request(alice, "bob")
        assert self.request(bob, "carol") == RequestResult(Request.BEING_ASKED, "alice")

    def test_alreadyInPM(self) -> None:
        """When the requester is in a private chat, the server names the partner."""
        alice, bob, _carol = self.users("alice", "bob", "carol")
        self.pair(alice, bob)
        assert self.request(alice, "carol") == RequestResult(
            Request.ALREADY_IN_PM, "bob"
        )

    def test_expiresAtSixtySeconds(self) -> None:
        """
        When a request is unanswered for 60 s, the server expires it on both sides.
        """
        alice, bob = self.users("alice", "bob")
        self.request(alice, "bob")
        bob.client.take()
        self.clock.advance(REQUEST_TIMEOUT - 0.001)
        assert alice.client.take() == []
        assert bob.client.take() == []
        self.clock.advance(0.001)
        assert alice.client.take() == [messages.REQUEST_TO_EXPIRED.format(name="bob")]
        assert bob.client.take() == [messages.REQUEST_FROM_EXPIRED.format(name="alice")]
        assert result(self.hub.answerPrivateChat(bob, True)) is None
        assert self.clock.getDelayedCalls() == []

    def test_accept(self) -> None:
        """When the target accepts, the server pairs both and tells the requester."""
        alice, bob, carol = self.users("alice", "bob", "carol")
        self.request(alice, "bob")
        assert result(self.hub.answerPrivateChat(bob, True)) == "alice"
        assert alice.client.take() == [messages.PM_STARTED.format(name="bob")]
        assert result(self.hub.lookup("alice")) == UserStatus("alice", "bob")
        assert result(self.hub.lookup("bob")) == UserStatus("bob", "alice")
        assert self.clock.getDelayedCalls() == []
        self.say(carol, "anyone?")
        assert alice.client.take() == []

    def test_reject(self) -> None:
        """When the target rejects, the server tells the requester and pairs nobody."""
        alice, bob = self.users("alice", "bob")
        self.request(alice, "bob")
        assert result(self.hub.answerPrivateChat(bob, False)) == "alice"
        assert alice.client.take() == [messages.PM_REJECTED.format(name="bob")]
        assert result(self.hub.lookup("alice")) == UserStatus("alice", None)
        assert self.clock.getDelayedCalls() == []

    def test_requesterCannotAnswer(self) -> None:
        """When the requester tries to answer its own request, the server ignores it."""
        alice, _bob = self.users("alice", "bob")
        self.request(alice, "bob")
        assert result(self.hub.answerPrivateChat(alice, True)) is None
        assert result(self.hub.lookup("alice")) == UserStatus("alice", None)

    def test_leavePrivateChat(self) -> None:
        """
        When a user leaves a private chat, the server tells the partner and regroups
        both.
        """
        alice, bob, carol = self.users("alice", "bob", "carol")
        self.pair(alice, bob)
        assert result(self.hub.leavePrivateChat(bob)) == PrivateEnded("alice")
        assert alice.client.take() == [messages.PARTNER_LEFT.format(name="bob")]
        assert result(self.hub.leavePrivateChat(bob)) is None
        self.say(carol, "back?")
        assert alice.client.take() == ["carol > back?"]
        assert bob.client.take() == ["carol > back?"]


class TestOnline(HubTest):
    def test_sortedByFoldedName(self) -> None:
        """When users are listed, the server sorts them by folded name with partners."""
        _carol, alice, bob = self.users("carol", "Alice", "bob")
        self.pair(alice, bob)
        assert result(self.hub.online()) == [
            UserStatus("Alice", "bob"),
            UserStatus("bob", "Alice"),
            UserStatus("carol", None),
        ]


@pytest.mark.parametrize("accept", [True, False])
def test_invariantsAfterFlow(accept: bool) -> None:
    """When users pair, leave and take over, the server keeps its state consistent."""
    clock = Clock()
    hub = LocalHub(clock)
    sessions = {name: Session(name, FakeClient()) for name in ["a", "b", "c"]}
    for session in sessions.values():
        hub.attach(session)
    hub.requestPrivateChat(sessions["a"], "b")
    assert list(hub.checkInvariants()) == []
    hub.answerPrivateChat(sessions["b"], accept)
    assert list(hub.checkInvariants()) == []
    new = Session("b", FakeClient())
    hub.attach(new)
    assert list(hub.checkInvariants()) == []
    hub.detach(sessions["b"])
    hub.detach(new)
    assert list(hub.checkInvariants()) == []
    assert result(hub.lookup("a")) == UserStatus("a", None)
