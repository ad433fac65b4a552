"""
The line protocol: UTF-8 lines for telnet, netcat and the bundled client.
"""
