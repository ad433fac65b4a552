"""
The web front-end: one page served at C{/}, JSON messages over a WebSocket
at C{/ws} (autobahn on twisted.web), and C{/metrics} for Prometheus.
"""
