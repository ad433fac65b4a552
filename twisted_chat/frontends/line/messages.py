"""
Every line the server sends to a client, in one place.

These lines are the public contract of the line protocol: users' scripts and
outside checks match on them, so each is a named constant and none changes
without a note saying why.  C{{name}}-style fields are filled in with
L{str.format}.
"""

WELCOME = "Welcome to twisted-chat. An unknown name creates an account."
PROMPT_USERNAME = "Username: "
PROMPT_PASSWORD = "Password: "
LOGIN_SUCCESS = "Login success!"
WRONG_PASSWORD = "Wrong password."
INVALID_USERNAME = "Invalid username: use 1-32 letters, digits, _ or -."
TOO_MANY_FAILED_LOGINS = "Too many failed logins."
LOGGED_IN_ELSEWHERE = "You logged in from another connection."

JOINED = "* {name} joined the chat."
LEFT = "* {name} left the chat."
CHAT_LINE = "{name} > {text}"
ROOM_LINE = "[{room}] {name} > {text}"
ACTION_LINE = "* {name} {text}"
ROOM_ACTION_LINE = "[{room}] * {name} {text}"

JOINED_ROOM = "* {name} joined {room}."
LEFT_ROOM = "* {name} left {room}."
NOW_IN_ROOM = "You are now in {room} ({count} users)."
YOU_LEFT_ROOM = "You left {room}."
CANNOT_LEAVE_GENERAL = "You cannot leave #general."
INVALID_ROOM = "Invalid room name: use # and 1-32 letters, digits, _ or -."
NOT_IN_ROOM = "You are not in {room}."
NO_SUCH_ROOM = "Room {room} does not exist."
TOO_MANY_JOINED = "You are in too many rooms (max {limit})."
TOO_MANY_ROOMS = "Too many rooms exist (max {limit})."
ROOMS = "Rooms: {rooms}"
ROOM_ENTRY = "{room} ({count})"
USERS_IN_ROOM = "Users in {room}: {names}"
HISTORY_START = "--- History of {room} ({count} lines) ---"
HISTORY_LINE = "[{time}] {name} > {text}"
HISTORY_ACTION_LINE = "[{time}] * {name} {text}"
HISTORY_TIME = "%Y-%m-%d %H:%M"
HISTORY_END = "--- End of history ---"
HISTORY_OFF = "History is off on this server."
MISSED = "You missed {count} lines in {room}; type @HISTORY to see them."

PM_REQUEST_SENT = "Private chat request sent to {name}."
PM_REQUEST_RECEIVED = "The user {name} wants to have a private chat with you (Y/N)?"
USER_DOES_NOT_EXIST = "User {name} does not exist."
USER_OFFLINE = "User {name} is offline."
PM_WITH_YOURSELF = "You cannot have a private chat with yourself."
USER_IN_PM = "User {name} is already in a private chat."
USER_HAS_REQUEST = "User {name} already has a request pending."
YOU_HAVE_REQUEST = "You already have a request pending to {name}."
ALREADY_IN_PM = "You are already in a private chat with {name}; type EXIT PM first."
PM_STARTED = "You are now in a private chat with {name}. Type EXIT PM to leave."
PM_REJECTED = "{name} rejected your private chat request."
REQUEST_REJECTED = "Request rejected."
REQUEST_TO_EXPIRED = "Your private chat request to {name} expired."
REQUEST_FROM_EXPIRED = "The private chat request from {name} expired."
REQUEST_FROM_CANCELLED = "The private chat request from {name} was cancelled."
REQUEST_TO_CANCELLED = "The private chat request to {name} was cancelled."
PARTNER_LEFT = "Your partner {name} left pm!"
YOU_LEFT_PM = "You left the private chat with {name}."
NOT_IN_PM = "You are not in a private chat."
NO_REQUEST = "You have no private chat request to answer."

ONLINE_USERS = "Online users: {names}"
WHO_ENTRY_IN_PM = "{name} (PM with {partner})"
SEARCH_FOUND = 'Found {count} users matching "{text}":'
SEARCH_ONLINE = "{name} (online)"
SEARCH_OFFLINE = "{name} (offline)"
LIST_MORE = ", and {count} more"
SEARCH_MORE = "... and {count} more"
LIST_LIMIT = 50

PASSWORD_CHANGED = "Password changed."
GOODBYE = "Goodbye, {name}!"
UNKNOWN_COMMAND = "Unknown command {command}; type @HELP for the list."
USAGE = "Usage: {usage}"
LINE_TOO_LONG = "Line too long (max {limit} bytes)."
LOGIN_TIMED_OUT = "Login timed out."
TOO_MANY_CONNECTIONS = "Too many connections."
TOO_MANY_REGISTRATIONS = "Too many new accounts from your address; try again later."
SLOW_DOWN = "You are sending lines too fast; slow down (they will be handled in turn)."
EXCESS_FLOOD = "Excess flood."
SERVICE_DEGRADED = (
    "The service is degraded (its shared store is out of reach); try again later."
)
SERVER_ERROR = "Sorry, the server could not do that; please try again."
SHUTTING_DOWN = "Server shutting down."
HEARTBEAT = "HEARTBEAT {port} {token} {interval:g} {timeout:g}"

HELP = (
    "Commands (case does not matter):",
    "  <text>             talk to your current room (or your private-chat partner)",
    "  @PM <user>         ask <user> for a private chat",
    "  Y or @ACCEPT       accept the private chat request made to you",
    "  N or @REJECT       reject the private chat request made to you",
    "  EXIT PM            leave the private chat",
    "  @WHO [#room]       list the users online (or in #room)",
    "  @JOIN #room        join #room (creating it) and make it your current room",
    "  @LEAVE [#room]     leave #room (by default your current room)",
    "  @ROOMS             list the rooms",
    "  @HISTORY [N]       show the last N lines of your current room (20 by default)",
    "  @SEARCH <text>     find users whose name contains <text>",
    "  @PASSWORD <old> <new>  change your password",
    "  @HEARTBEAT         get a token for UDP presence heartbeats",
    "  @HELP              this list",
    "  LOGOUT             leave the chat",
)
