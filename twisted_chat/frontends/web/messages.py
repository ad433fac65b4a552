"""
Every sentence the web front-end sends, in one place.

A web client reads the machine-readable C{code} of an error or notice and
may word it its own way; the C{text} sent beside it is what the bundled page
shows.  C{{name}}-style fields are filled in from the message's own fields
with L{str.format}.
"""

LOGIN_REFUSALS = {
    "invalid_name": "Invalid username: use 1-32 letters, digits, _ or -.",
    "wrong_password": "Wrong password.",
    "too_many_failures": "Too many failed logins.",
    "too_many_registrations": (
        "Too many new accounts from your address; try again later."
    ),
}

NOTICES = {
    "slow_down": "You are sending too fast; slow down (your messages are handled"
    " in turn).",
    "shutting_down": "Server shutting down.",
}

ERRORS = {
    # The web front-end's own: messages it cannot take.
    "bad_json": "That message was not valid JSON.",
    "bad_message": "That message was not understood: {reason}",
    "unknown_type": "Unknown message type {message}.",
    "binary": "Binary frames are not accepted; send JSON text.",
    "too_large": "Message too large (max {limit} bytes).",
    "not_logged_in": "Log in first.",
    "already_logged_in": "You are already logged in.",
    # The session core's refusals.
    "line_too_long": "Line too long (max {limit} bytes).",
    "no_such_user": "User {name} does not exist.",
    "offline": "User {name} is offline.",
    "self": "You cannot have a private chat with yourself.",
    "target_in_private": "User {name} is already in a private chat.",
    "target_has_request": "User {name} already has a request pending.",
    "already_in_private": "You are already in a private chat with {name}; leave it"
    " first.",
    "already_asked": "You already have a request pending to {name}.",
    "being_asked": "{name} is asking you for a private chat: answer first.",
    "no_request": "You have no private chat request to answer.",
    "not_in_private": "You are not in a private chat.",
    "not_online": "No user {name} is online.",
    "wrong_password": "Wrong password.",
    "invalid_room": "Invalid room name: use # and 1-32 letters, digits, _ or -.",
    "not_in_room": "You are not in {room}.",
    "no_such_room": "Room {room} does not exist.",
    "cannot_leave_general": "You cannot leave #general.",
    "too_many_joined": "You are in too many rooms (max {limit}).",
    "too_many_rooms": "Too many rooms exist (max {limit}).",
    "history_off": "History is off on this server.",
    "unknown_command": "Unknown command {command}; type @HELP for the list.",
    "usage": "Usage: {usage}",
    # The limits and the server's state; the server closes the connection
    # after those marked so in the README.
    "degraded": "The service is degraded (its shared store is out of reach); try"
    " again later.",
    "server_error": "Sorry, the server could not do that; please try again.",
    "superseded": "You logged in from another connection.",
    "login_timeout": "Login timed out.",
    "excess_flood": "Excess flood.",
}
