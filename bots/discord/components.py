"""Discord message parts for Voiceflow output: button rows, embeds and custom ids.

Buttons carry only a short server-side id (``vfb:<id>``, ``vfs:<stop_id>``), never state, so
clicks keep working after a restart: the bot resolves them in ``on_interaction`` through the
bridge's store, never through an in-memory ``View``.

``discord.ui.View`` is used here only to *serialise* components. Every view is stopped before
it is sent, because discord.py keeps a non-finished view with custom ids in its in-memory
view store for the message's lifetime (``abc.Messageable.send``): a leak for a bot that answers
forever, and a second dispatcher we do not want.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import discord

from core.platform import ButtonRef
from core.traces import Card, Visual

__all__ = [
    "BUTTON_PREFIX",
    "MAX_BUTTONS",
    "MAX_BUTTONS_PER_ROW",
    "MAX_EMBEDS",
    "MAX_ROWS",
    "STOP_PREFIX",
    "CardMessage",
    "button_custom_id",
    "card_messages",
    "choice_views",
    "chooser_line",
    "chosen_view",
    "image_embed",
    "parse_custom_id",
    "stop_view",
]

BUTTON_PREFIX = "vfb:"
STOP_PREFIX = "vfs:"
MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5
MAX_BUTTONS = MAX_BUTTONS_PER_ROW * MAX_ROWS  # per message
MAX_LABEL_CHARS = 80
MAX_EMBEDS = 10
MAX_EMBED_TITLE_CHARS = 256
MAX_EMBED_DESCRIPTION_CHARS = 4096
MAX_EMBED_TOTAL_CHARS = 6000
#: Room a card title may take in front of a carousel button's own label.
CARD_LABEL_PREFIX_CHARS = 30
STOP_LABEL = "Stop"
STOP_EMOJI = "⏹️"


def button_custom_id(button_id: str) -> str:
    return f"{BUTTON_PREFIX}{button_id}"


def parse_custom_id(custom_id: str) -> tuple[Literal["button", "stop"], str] | None:
    """``("button", id)`` for ``vfb:<id>``, ``("stop", stop_id)`` for ``vfs:<id>``, else None."""
    if custom_id.startswith(BUTTON_PREFIX) and len(custom_id) > len(BUTTON_PREFIX):
        return "button", custom_id[len(BUTTON_PREFIX) :]
    if custom_id.startswith(STOP_PREFIX) and len(custom_id) > len(STOP_PREFIX):
        return "stop", custom_id[len(STOP_PREFIX) :]
    return None


def stop_view(stop_id: str) -> discord.ui.View:
    """The stop control under a streamed message."""
    button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
        style=discord.ButtonStyle.secondary,
        label=STOP_LABEL,
        emoji=STOP_EMOJI,
        custom_id=f"{STOP_PREFIX}{stop_id}",
    )
    return _frozen([button])


def choice_views(refs: Sequence[ButtonRef]) -> list[discord.ui.View]:
    """Buttons of a choice trace: five per row, five rows per message, more in further messages."""
    chunks = [refs[i : i + MAX_BUTTONS] for i in range(0, len(refs), MAX_BUTTONS)]
    return [_frozen(_button(ref, "") for ref in chunk) for chunk in chunks]


@dataclass(frozen=True)
class CardMessage:
    embeds: list[discord.Embed]
    view: discord.ui.View | None


def card_messages(cards: Sequence[tuple[Card, Sequence[ButtonRef]]]) -> list[CardMessage]:
    """A card or carousel as few messages as the limits allow (10 embeds, 6000 chars, 25 buttons).

    A carousel's buttons are packed five to a row across cards, not one row per card, so SPEC §6
    "up to 10 embeds with buttons" is one message whenever they fit in 25. Every button label
    therefore starts with its card's title. A card is never split from its first buttons.
    """
    messages: list[CardMessage] = []
    draft = _Draft()
    labelled = len(cards) > 1
    for number, (card, refs) in enumerate(cards, start=1):
        prefix = _card_prefix(card, number) if labelled else ""
        embed, buttons = card_embed(card), [_button(ref, prefix) for ref in refs]
        if not draft.has_room(embed, len(buttons)):
            messages.append(draft.as_message())
            draft = _Draft()
        draft.embeds.append(embed)
        buttons = draft.take(buttons)
        while buttons:  # one card with more than 25 buttons: the rest go on in further messages
            messages.append(draft.as_message())
            draft = _Draft()
            buttons = draft.take(buttons)
    if draft.embeds or draft.buttons:
        messages.append(draft.as_message())
    return messages


@dataclass
class _Draft:
    """The card message being filled."""

    embeds: list[discord.Embed] = field(default_factory=list)
    buttons: list[discord.ui.Button[discord.ui.View]] = field(default_factory=list)

    def has_room(self, embed: discord.Embed, button_count: int) -> bool:
        """Whether a card fits whole; an empty draft takes any card."""
        if not (self.embeds or self.buttons):
            return True
        return (
            len(self.embeds) < MAX_EMBEDS
            and sum(len(e) for e in self.embeds) + len(embed) <= MAX_EMBED_TOTAL_CHARS
            and len(self.buttons) + button_count <= MAX_BUTTONS
        )

    def take(
        self, buttons: list[discord.ui.Button[discord.ui.View]]
    ) -> list[discord.ui.Button[discord.ui.View]]:
        """Add as many of ``buttons`` as the message holds; return the rest."""
        room = MAX_BUTTONS - len(self.buttons)
        self.buttons.extend(buttons[:room])
        return buttons[room:]

    def as_message(self) -> CardMessage:
        return CardMessage(self.embeds, _frozen_rows(_rows(self.buttons)))


def card_embed(card: Card) -> discord.Embed:
    embed = discord.Embed(
        title=_clip(card.title, MAX_EMBED_TITLE_CHARS) or None,
        description=_clip(card.description, MAX_EMBED_DESCRIPTION_CHARS) or None,
    )
    if card.image_url:
        embed.set_image(url=card.image_url)
    return embed


def image_embed(visual: Visual) -> discord.Embed:
    return discord.Embed().set_image(url=visual.image_url)


def chooser_line(user_name: str, label: str, url: str | None = None) -> str:
    """``**<name>** chose *<label>*``, both escaped so neither can inject markdown; with the
    link a button also opens (Discord cannot both send a click and open a URL)."""
    name = discord.utils.escape_markdown(user_name)
    choice = discord.utils.escape_markdown(label)
    line = f"**{name}** chose *{choice}*"
    return f"{line} → <{url}>" if url else line


def chosen_view(message: discord.Message, chosen_custom_id: str) -> discord.ui.View:
    """The message's buttons, disabled, with the chosen one highlighted. Links stay usable."""
    view = discord.ui.View.from_message(message, timeout=None)
    for item in view.children:
        if isinstance(item, discord.ui.Button) and item.url is None:
            item.disabled = True
            if item.custom_id == chosen_custom_id:
                item.style = discord.ButtonStyle.success
    view.stop()
    return view


def label_of(message: discord.Message, custom_id: str) -> str | None:
    """The label of the button with ``custom_id`` in ``message``, if it is there."""
    for row in message.components:
        for child in getattr(row, "children", ()):
            if isinstance(child, discord.Button) and child.custom_id == custom_id:
                return child.label
    return None


# -- helpers ------------------------------------------------------------------------------
def _rows(
    buttons: list[discord.ui.Button[discord.ui.View]],
) -> list[list[discord.ui.Button[discord.ui.View]]]:
    return [
        buttons[i : i + MAX_BUTTONS_PER_ROW] for i in range(0, len(buttons), MAX_BUTTONS_PER_ROW)
    ]


def _button(ref: ButtonRef, prefix: str) -> discord.ui.Button[discord.ui.View]:
    label = _clip(f"{prefix}{ref.button.name}", MAX_LABEL_CHARS)
    if ref.button.url and ref.button.is_link_only:
        return discord.ui.Button(style=discord.ButtonStyle.link, label=label, url=ref.button.url)
    return discord.ui.Button(
        style=discord.ButtonStyle.primary, label=label, custom_id=button_custom_id(ref.id)
    )


def _card_prefix(card: Card, number: int) -> str:
    title = card.title.strip() or f"Card {number}"
    return f"{_clip(title, CARD_LABEL_PREFIX_CHARS)} · "


def _frozen_rows(rows: list[list[discord.ui.Button[discord.ui.View]]]) -> discord.ui.View | None:
    if not rows:
        return None
    for index, row in enumerate(rows):
        for item in row:
            item.row = index
    return _frozen([item for row in rows for item in row])


def _frozen(items: Iterable[discord.ui.Item[discord.ui.View]]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()  # serialise only: see the module docstring
    return view


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
