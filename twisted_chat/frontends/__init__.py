"""
The ways into the chat: each front-end parses its wire format, calls the
session core and renders the core's events; L{connection} holds what all
stream front-ends share.
"""
