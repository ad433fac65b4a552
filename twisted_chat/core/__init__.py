"""
The chat itself, whatever the wire: the session core (what a user's action
means), the hub (who is online, the group, private chats), the command
table, the typed events they produce, and the rules for names, text and
limits.  Nothing here knows a wire format or a transport.
"""
