"""Discord adapter (discord.py 2.x): mentions, threads and DMs → Voiceflow turns, streamed."""

from bots.discord.bot import DiscordBot, lease_names, run_discord
from bots.discord.onboarding import check_discord

__all__ = ["DiscordBot", "check_discord", "lease_names", "run_discord"]
