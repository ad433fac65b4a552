"""
The node's counts in the Prometheus text format, at C{/metrics}.

They are read when scraped, in the reactor thread, which owns them: not
through C{prometheus_client.twisted.MetricsResource}, whose WSGI app runs
in a thread of the reactor's pool and would read the sessions while the
reactor changes them.
"""

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from ..connection import Connections


class ChatCollector:
    """
    Collects the sessions online by front-end, from the open connections of
    every front-end, and the counters the session cores and connections
    keep (L{twisted_chat.core.metrics.ChatMetrics}).

    @ivar kinds: the front-end kinds always listed, even with no one online.
    """

    def __init__(self, connections: Connections, kinds: Iterable[str]) -> None:
        self.connections = connections
        self.kinds = tuple(kinds)

    def collect(self) -> Iterator[Metric]:
        online = GaugeMetricFamily(
            "chat_sessions_online",
            "Users logged in on this node, by front-end.",
            labels=["frontend"],
        )
        counts = Counter(
            connection.renderer.kind
            for connection in self.connections.open
            if connection.core.session is not None
        )
        for kind in sorted(set(self.kinds) | set(counts)):
            online.add_metric([kind], counts[kind])
        yield online
        metrics = self.connections.services.metrics
        for name, documentation, value in (
            ("chat_logins", "Logins.", metrics.logins),
            ("chat_failed_logins", "Logins refused for a wrong password.",
             metrics.failedLogins),
            ("chat_registrations", "Accounts registered.", metrics.registrations),
            ("chat_lines_relayed", "Lines relayed to rooms and private chats.",
             metrics.linesRelayed),
            ("chat_private_chats", "Private chats started.", metrics.privateChats),
            ("chat_sendq_drops", "Clients dropped for not reading what they were"
             " sent.", metrics.sendqDrops),
        ):  # fmt: skip
            yield CounterMetricFamily(name, documentation, value=value)


def metricsRegistry(
    connections: Connections, kinds: Iterable[str]
) -> CollectorRegistry:
    """
    A registry of this node's own (never the process-wide one) holding
    a L{ChatCollector}.
    """
    registry = CollectorRegistry()
    registry.register(ChatCollector(connections, kinds))
    return registry


class MetricsPage(Resource):
    """
    C{/metrics}: C{registry} in the format the scraper asks for (the
    Prometheus text format unless it asks for OpenMetrics).
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        Resource.__init__(self)
        self.registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        accept = request.getHeader("accept") or ""
        encoder, contentType = choose_encoder(accept)
        request.setHeader("content-type", contentType)
        return encoder(self.registry)
