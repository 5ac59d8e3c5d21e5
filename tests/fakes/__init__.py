"""Fake Discord and Slack servers on 127.0.0.1 for the real client libraries (see their modules)."""

# The fakes listen with the simulator's backlog (core.simulator.server.LISTEN_BACKLOG): real
# APIs never refuse a burst of connections.
