"""
The IRC front-end: IRC clients (irssi, weechat, HexChat ...) in the same
chat as the line protocol's users, over the same session core.
"""
