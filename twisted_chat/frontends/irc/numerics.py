"""
Every numeric reply and every fixed text the IRC front-end sends, in one
place (what L{twisted_chat.frontends.line.messages} is for the line
protocol).  C{{name}}-style fields are filled in with L{str.format}.

Numbers and texts follow RFC 1459/2812, modern.ircdocs.horse and the IRCv3
specifications (sasl-3.1, chathistory).
"""

# Registration
RPL_WELCOME = "001"
RPL_YOURHOST = "002"
RPL_CREATED = "003"
RPL_MYINFO = "004"
RPL_ISUPPORT = "005"
WELCOME = "Welcome to the {network} IRC network, {mask}"
YOURHOST = "Your host is {server}, running version {version}"
CREATED = "This server was created {date}"
ISUPPORT = "are supported by this server"
# User modes and channel modes: the letters 004 lists (both non-empty).
USER_MODES = "i"
CHANNEL_MODES = "n"
NETWORK = "twisted-chat"
VERSION = "twisted-chat-{version}"
# At most this many ISUPPORT tokens on one 005 line.
ISUPPORT_PER_LINE = 13

# MOTD
RPL_MOTDSTART = "375"
RPL_MOTD = "372"
RPL_ENDOFMOTD = "376"
MOTD_START = "- {server} Message of the day -"
MOTD = (
    "Welcome to twisted-chat: the same chat as nc and the web page.",
    "Your nick is your account name; an unknown name creates an account.",
    "Private messages need consent: a message to a nick asks for a private",
    "chat first, and ChatServ tells you the answer. Answer a request with",
    "y or n to ChatServ, or /quote ACCEPT nick (ACCEPT -nick to refuse).",
    "/msg ChatServ @HELP lists the chat's own commands (@WHO, @SEARCH ...).",
)
MOTD_LINE = "- {text}"
END_OF_MOTD = "End of /MOTD command."

# Login
NOTICE_LOG_IN = (
    "*** Log in: give your account password as the server password (or /quote"
    " PASS <password>), or use SASL PLAIN. An unknown name creates an account."
)
ERR_PASSWDMISMATCH = "464"
PASSWORD_INCORRECT = "Password incorrect"
ERROR_WRONG_PASSWORD = "Wrong password."
ERROR_CLOSING = "Closing link"
ERROR_CLOSING_WHY = "Closing link ({reason})"
QUIT_REASON = "Quit: {reason}"
QUIT_DEFAULT = "Quit: left the chat"

# SASL
RPL_LOGGEDIN = "900"
RPL_SASLSUCCESS = "903"
ERR_SASLFAIL = "904"
ERR_SASLTOOLONG = "905"
ERR_SASLABORTED = "906"
ERR_SASLALREADY = "907"
RPL_SASLMECHS = "908"
LOGGED_IN_AS = "You are now logged in as {account}"
SASL_SUCCESS = "SASL authentication successful"
SASL_FAILED = "SASL authentication failed"
SASL_TOO_LONG = "SASL message too long"
SASL_ABORTED = "SASL authentication aborted"
SASL_ALREADY = "You have already authenticated using SASL"
SASL_MECHANISMS = "are available SASL mechanisms"

# CAP
ERR_INVALIDCAPCMD = "410"
INVALID_CAP = "Invalid CAP command"

# Errors
ERR_NOSUCHNICK = "401"
ERR_NOSUCHCHANNEL = "403"
ERR_CANNOTSENDTOCHAN = "404"
ERR_TOOMANYCHANNELS = "405"
ERR_NOORIGIN = "409"
ERR_NORECIPIENT = "411"
ERR_NOTEXTTOSEND = "412"
ERR_INPUTTOOLONG = "417"
ERR_UNKNOWNCOMMAND = "421"
ERR_NONICKNAMEGIVEN = "431"
ERR_ERRONEUSNICKNAME = "432"
ERR_NOTONCHANNEL = "442"
ERR_NONICKCHANGE = "447"
ERR_NOTREGISTERED = "451"
ERR_NEEDMOREPARAMS = "461"
ERR_ALREADYREGISTERED = "462"
ERR_BADCHANMASK = "476"
ERR_CHANOPRIVSNEEDED = "482"
ERR_UMODEUNKNOWNFLAG = "501"
ERR_USERSDONTMATCH = "502"
NO_SUCH_NICK = "No such nick/channel"
NO_SUCH_CHANNEL = "No such channel"
CANNOT_SEND = "Cannot send to channel"
NO_ORIGIN = "No origin specified"
NO_RECIPIENT = "No recipient given ({command})"
NO_TEXT = "No text to send"
INPUT_TOO_LONG = "Input line was too long"
UNKNOWN_COMMAND = "Unknown command"
NO_NICKNAME = "No nickname given"
ERRONEOUS_NICKNAME = "Erroneous nickname: use 1-32 letters, digits, _ or -"
RESERVED_NICKNAME = "Erroneous nickname: the name is reserved"
NOT_ON_CHANNEL = "You're not on that channel"
NICK_IS_ACCOUNT = "Your nickname is your account name"
NOT_REGISTERED = "You have not registered"
NEED_MORE_PARAMS = "Not enough parameters"
ALREADY_REGISTERED = "You may not reregister"
BAD_CHANNEL_MASK = "Bad Channel Mask"
NOT_OPERATOR = "You're not channel operator"
UNKNOWN_MODE_FLAG = "Unknown MODE flag"
USERS_DONT_MATCH = "Cant change mode for other users"

# Channels
RPL_NOTOPIC = "331"
RPL_NAMREPLY = "353"
RPL_ENDOFNAMES = "366"
RPL_LISTSTART = "321"
RPL_LIST = "322"
RPL_LISTEND = "323"
RPL_CHANNELMODEIS = "324"
RPL_CREATIONTIME = "329"
RPL_ENDOFBANLIST = "368"
RPL_ENDOFEXCEPTLIST = "349"
RPL_ENDOFINVITELIST = "347"
NO_TOPIC = "No topic is set"
END_OF_NAMES = "End of /NAMES list"
LIST_START = ("Channel", "Users  Name")
END_OF_LIST = "End of /LIST"
END_OF_BANS = "End of channel ban list"
END_OF_EXCEPTS = "End of channel exception list"
END_OF_INVITES = "End of channel invite list"
# The public channel symbol of 353.
PUBLIC = "="
# The list modes a client may query, and the end of each (empty) list.
LIST_MODES = {
    "b": (RPL_ENDOFBANLIST, END_OF_BANS),
    "e": (RPL_ENDOFEXCEPTLIST, END_OF_EXCEPTS),
    "I": (RPL_ENDOFINVITELIST, END_OF_INVITES),
}

# Users
RPL_UMODEIS = "221"
RPL_AWAY = "301"
RPL_USERHOST = "302"
RPL_ISON = "303"
RPL_UNAWAY = "305"
RPL_NOWAWAY = "306"
RPL_WHOISUSER = "311"
RPL_WHOISSERVER = "312"
RPL_ENDOFWHO = "315"
RPL_ENDOFWHOIS = "318"
RPL_WHOISCHANNELS = "319"
RPL_WHOISACCOUNT = "330"
RPL_WHOREPLY = "352"
RPL_TIME = "391"
UNAWAY = "You are no longer marked as being away"
NOWAWAY = "You have been marked as being away"
SERVER_INFO = "twisted-chat"
IS_LOGGED_IN_AS = "is logged in as"
END_OF_WHO = "End of WHO list"
END_OF_WHOIS = "End of /WHOIS list"
# 352's last parameter: the hop count and the real name.
WHO_REAL_NAME = "0 {realname}"
SERVICE_REAL_NAME = "The chat's service: /msg ChatServ @HELP"

# The service nick that speaks for the chat: private-chat notices and the
# line protocol's commands.
SERVICE = "ChatServ"
SERVICE_USER = "chat"
CHATSERV_PLAIN_TEXT = (
    "ChatServ takes the chat's commands (@HELP lists them); to talk, write in"
    " a channel or to a nick."
)
NO_REQUEST_FROM = "You have no private chat request from {name} to answer."

# CHATHISTORY (IRCv3 draft/chathistory): FAIL codes.
FAIL = "FAIL"
CHATHISTORY = "CHATHISTORY"
FAIL_INVALID_PARAMS = "INVALID_PARAMS"
FAIL_INVALID_TARGET = "INVALID_TARGET"
FAIL_UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
FAIL_MESSAGE_ERROR = "MESSAGE_ERROR"
HISTORY_BAD_PARAMS = "Invalid parameters"
HISTORY_BAD_TARGET = "You are not in that channel"
HISTORY_BAD_SUBCOMMAND = "Unknown subcommand"
HISTORY_OFF = "History is off on this server"
