"""
The web listener's site: the page at C{/} (with its script and style), the
chat's WebSocket at C{/ws} and the node's metrics at C{/metrics}, every
connection to it counted against the connection limits.
"""

from collections.abc import Iterable
from importlib.resources import files

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from ..connection import Connections, Refused
from .metrics import MetricsPage, metricsRegistry
from .protocol import ChatWebSocketFactory

# The page's files (package data), and their types.
ASSETS = {
    b"": ("index.html", "text/html; charset=utf-8"),
    b"chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    b"chat.css": ("chat.css", "text/css; charset=utf-8"),
}

# Only the page's own script and style run, and the page talks to its own
# server only: even a line that slipped through as markup could run nothing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self';"
    " style-src 'self'; connect-src 'self'; img-src 'self' data:;"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


# The answer to a connection over the limits, before it says anything: what
# a proxy's connection limit answers, so that a page's WebSocket fails (and
# the page tries again later) and nothing of the refused connection is kept.
_REFUSAL = b"Too many connections.\n"
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Retry-After: 60\r\n"
    b"Connection: close\r\n"
    b"\r\n%s"
) % (len(_REFUSAL), _REFUSAL)


class ChatChannel(HTTPChannel):
    """
    One connection to the web listener, counted against the connection
    limits from its accept to its end.  One that becomes the chat's
    WebSocket hands its count over to it: autobahn takes the transport over,
    and this channel hears no more of the connection.
    """

    site: "ChatSite"
    limitKey: str | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        HTTPChannel.connectionLost(self, reason)
        self.site.connections.release(self.limitKey)


class ChatSite(Site):
    """
    The site of the web listeners of one node: a connection within the
    connection limits gets a L{ChatChannel}, one over them
    L{TOO_MANY_CONNECTIONS}.
    """

    # A channel of our own, hence no HTTP/2 (which only TLS with ALPN would
    # bring): a page's few requests and its WebSocket need none.  Twisted
    # types the attribute for its HTTP/2-capable proxy only.
    protocol = ChatChannel  # type: ignore[assignment]

    def __init__(self, resource: IResource, connections: Connections) -> None:
        Site.__init__(self, resource, reactor=connections.clock)
        self.connections = connections

    # Twisted narrows the result to its HTTP/2-capable proxy; any protocol
    # serves a listener.
    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> Protocol | None:
        admitted, key = self.connections.admit(addr)
        if not admitted:
            return Refused(TOO_MANY_CONNECTIONS)
        channel: ChatChannel = Site.buildProtocol(self, addr)
        channel.limitKey = key
        return channel


class Root(Resource):
    """
    The site's root: its children, and a plain 404 for any other path.
    """

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return notFound()


class Asset(Resource):
    """
    One file of the page, read once at start.
    """

    isLeaf = True

    def __init__(self, body: bytes, contentType: str) -> None:
        Resource.__init__(self)
        self.body = body
        self.contentType = contentType

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader("content-type", self.contentType)
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        return self.body


def makeSite(
    connections: Connections,
    origins: Iterable[str] = (),
    metricsKinds: Iterable[str] | None = None,
) -> ChatSite:
    """
    The site of the web listeners of one node: its WebSocket chats join
    C{connections}, pages from C{origins} (by default, the page's own) may
    open them, and C{/metrics} lists the sessions of the front-end kinds
    C{metricsKinds} (L{None}: no C{/metrics}).
    """
    static = files(__package__) / "static"
    root = Root()  # type: ignore[no-untyped-call]  # Twisted leaves it unannotated.
    for path, (name, contentType) in ASSETS.items():
        root.putChild(path, Asset((static / name).read_bytes(), contentType))
    factory = ChatWebSocketFactory(connections, origins)
    # autobahn leaves the constructor unannotated.
    root.putChild(b"ws", WebSocketResource(factory))  # type: ignore[no-untyped-call]
    if metricsKinds is not None:
        registry = metricsRegistry(connections, metricsKinds)
        root.putChild(b"metrics", MetricsPage(registry))
    site = ChatSite(root, connections)
    site.displayTracebacks = False
    return site
