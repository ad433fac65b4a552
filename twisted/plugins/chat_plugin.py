"""
The twistd plugin: C{twistd -n chat} runs the twisted-chat server.

It only declares; C{twisted_chat.tap} is imported when the plugin is used.
"""

from twisted.application.service import ServiceMaker

chat = ServiceMaker(
    "twisted-chat",
    "twisted_chat.tap",
    "A chat server: group chat, private chat, UDP presence.",
    "chat",
)
