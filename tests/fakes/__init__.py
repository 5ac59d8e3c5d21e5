"""Fake Discord and Slack servers on 127.0.0.1 for the real client libraries (see their modules)."""

#: Pending connections a fake's listening socket holds (aiohttp's default is 128). Real APIs
#: never refuse a burst of connections; with 128, hundreds of clients connecting at once
#: overflow the accept queue and sit in TCP retransmits for minutes.
LISTEN_BACKLOG = 1024
