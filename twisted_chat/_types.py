"""
Types for what Twisted leaves loosely typed.
"""

from typing import Any, Protocol


class StreamTransport(Protocol):
    """
    What a connection of ours uses of its TCP (or TLS) transport.  Twisted
    types C{Protocol.transport} as an optional L{ITransport}, which has
    neither C{abortConnection} nor the producer methods nor C{disconnecting}.
    """

    disconnecting: bool

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def getPeer(self) -> Any: ...

    def getHost(self) -> Any: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...
