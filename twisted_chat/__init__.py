"""
twisted-chat: a chat server (group chat, consent-based private chat) and a
terminal client, built on Twisted.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
