"""The Slack adapter: slack-bolt (Socket Mode or HTTP) in front of the bridge."""

from bots.slack.bot import SlackBot, run_slack
from bots.slack.check import check_slack
from bots.slack.mentions import neutralize_broadcasts

__all__ = ["SlackBot", "check_slack", "neutralize_broadcasts", "run_slack"]
