"""
Unit tests of L{twisted_chat.frontends.connection.Coalescer}, the batching
of client writes over polls of the reactor, on a fake clock whose
C{advance(0)} stands for one pass of the reactor.
"""

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from twisted_chat.config import ServerConfig
from twisted_chat.frontends.connection import EXTRA_POLLS, HUB_FIRST_WAIT, Coalescer
from twisted_chat.testing import makeFactory


class PassClock(Clock):
    """
    A clock whose C{advance} runs the calls due when it began, as one pass
    of the reactor does: a call added meanwhile waits for the next pass
    (L{Clock} would run it at once).
    """

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        due = [call for call in self.calls if call.getTime() <= self.rightNow]
        for call in due:
            self.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)


class Writes:
    """
    A coalescer on a fake clock, recording each batch it hands on.
    """

    def __init__(self, firstWait: float = 0.0) -> None:
        self.clock = PassClock()
        self.batches: list[list[Any]] = []
        self.coalescer = Coalescer(self.clock, self.batches.append, firstWait=firstWait)

    def passes(self, count: int, input: bool = False) -> None:
        for _ in range(count):
            if input:
                self.coalescer.inputs += 1
            self.clock.advance(0)


def test_loneLineWaitsOnePoll() -> None:
    """
    When one connection queues output and no input comes, the coalescer
    writes it after the pass that queued it and one more poll.
    """
    writes = Writes()
    writes.coalescer.add("alice")  # type: ignore[arg-type]
    writes.passes(1)
    assert writes.batches == []
    writes.passes(1)
    assert writes.batches == [["alice"]]
    writes.passes(5)
    assert writes.batches == [["alice"]]


def test_inputKeepsTheBatchOpen() -> None:
    """
    When polls keep bringing input, the coalescer gathers the connections
    queued meanwhile into one batch, for at most its extra polls.
    """
    writes = Writes()
    writes.coalescer.add("alice")  # type: ignore[arg-type]
    writes.passes(1)
    writes.coalescer.add("bob")  # type: ignore[arg-type]
    writes.passes(EXTRA_POLLS - 1, input=True)
    assert writes.batches == []
    writes.passes(1, input=True)
    assert writes.batches == [["alice", "bob"]]


def test_quietPollEndsTheBatch() -> None:
    """
    When a poll brings no input, the coalescer writes at once, though it
    could have waited longer.
    """
    writes = Writes()
    writes.coalescer.add("alice")  # type: ignore[arg-type]
    writes.passes(1)
    writes.passes(1, input=True)
    assert writes.batches == []
    writes.passes(1)
    assert writes.batches == [["alice"]]


def test_noClockWritesAtOnce() -> None:
    """
    When the coalescer has no clock (unit tests of protocols), it writes
    each connection's output as soon as it is queued.
    """
    batches: list[list[Any]] = []
    coalescer = Coalescer(None, batches.append)
    coalescer.add("alice")  # type: ignore[arg-type]
    assert batches == [["alice"]]


def test_firstWaitGathersWhatComesMeanwhile() -> None:
    """
    With a first wait (a node on a hub), output queued by passes during the
    wait goes in the same batch, after the wait and one more poll.
    """
    writes = Writes(firstWait=HUB_FIRST_WAIT)
    writes.coalescer.add("alice")  # type: ignore[arg-type]
    writes.passes(3)
    writes.coalescer.add("bob")  # type: ignore[arg-type]
    writes.clock.advance(HUB_FIRST_WAIT / 2)
    assert writes.batches == []
    writes.clock.advance(HUB_FIRST_WAIT / 2)
    assert writes.batches == []
    writes.passes(1)
    assert writes.batches == [["alice", "bob"]]


def test_hubNodeWaitsBeforeWriting() -> None:
    """
    On a hub, a connection's first output waits HUB_FIRST_WAIT before it is
    written; on a single node, only for the polls.
    """
    for hub, wait in ((None, 0.0), ("redis://127.0.0.1/0", HUB_FIRST_WAIT)):
        clock = Clock()
        factory, _ = makeFactory(clock, config=ServerConfig(hub=hub), batchWrites=True)
        transport = StringTransport()
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        protocol.makeConnection(transport)
        clock.advance(0)
        if wait:
            assert transport.value() == b""
            clock.advance(wait)
        assert transport.value().endswith(b"Username: ")
