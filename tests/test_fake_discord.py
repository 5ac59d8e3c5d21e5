"""Self-tests of tests/fakes/discord.py: the REAL discord.py client against FakeDiscord."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakes import discord_client
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import (
    PATCH_ROUTE,
    POST_ROUTE,
    STARTUP_TIMEOUT_S,
    RecordingClient,
    point_at,
    routes,
    running,
    text_channel,
)

no_proxy = discord_client.no_proxy


# -- login, ready, cache -------------------------------------------------------------------------


async def test_login_ready_caches_guild_channels_and_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake:
        async with running(fake, monkeypatch) as client:
            assert client.user is not None and client.user.id == 1000
            guild = client.get_guild(4000)
            assert guild is not None and guild.default_role.permissions.administrator
            assert {c.id for c in guild.text_channels} == {3000, 3001}
            thread = guild.get_thread(3500)
            assert thread is not None and thread.parent_id == 3000
            assert fake.identify is not None and fake.identify["intents"] & (1 << 15)
            login = [r.route for r in fake.requests[:2]]
            assert login == ["GET /users/@me", "GET /oauth2/applications/@me"]
            assert fake.requests[0].headers["Authorization"] == f"Bot {FakeDiscord.token}"
        # discord.py 2.7 + aiohttp 3.14 actually send close code 4000 here (its receive loop
        # closes first); what matters is that the client left and did not come back.
        await fake.wait_until(lambda: not fake.gateway.is_connected)
        assert (fake.gateway.identify_count, fake.gateway.resume_count) == (1, 0)


async def test_wrong_token_is_login_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord() as fake:
        point_at(fake, monkeypatch)
        client = discord.Client(intents=discord.Intents.default())
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
        await client.close()
        assert fake.requests[0].status == 401


# -- incoming messages ---------------------------------------------------------------------------


async def test_dm_and_guild_mention_arrive_with_channel_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        await fake.send_message("hi in dm", channel_id="5000")
        dm = await client.next_from_others()
        assert isinstance(dm.channel, discord.DMChannel) and dm.guild is None
        assert dm.content == "hi in dm"

        await fake.send_message("hello bot", mention_bot=True)
        mention = await client.next_from_others()
        assert isinstance(mention.channel, discord.TextChannel) and mention.channel.id == 3000
        assert client.user in mention.mentions and mention.content == "<@1000> hello bot"
        assert isinstance(mention.author, discord.Member)


async def test_thread_message_arrives_in_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        await fake.send_message("in thread", channel_id="3500", mention_bot=True)
        message = await client.next_from_others()
        assert isinstance(message.channel, discord.Thread)
        assert message.channel.parent_id == 3000 and message.guild is not None


# -- sending and editing -------------------------------------------------------------------------


async def test_send_reply_and_edit_are_recorded_and_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        await fake.send_message("question", mention_bot=True)
        question = await client.next_from_others()
        sent = await question.reply("thinking", allowed_mentions=discord.AllowedMentions.none())
        edited = await sent.edit(content="the answer")

        assert edited.content == "the answer"
        stored = fake.messages[str(sent.id)]
        assert (stored.content, stored.edits, stored.author_id) == (
            "the answer",
            ["the answer"],
            "1000",
        )
        assert stored.message_reference == {
            "message_id": str(question.id),
            "channel_id": "3000",
            "guild_id": "4000",
        }
        assert stored.allowed_mentions == routes(fake, POST_ROUTE)[0].json["allowed_mentions"]
        assert stored.allowed_mentions is not None and stored.allowed_mentions["parse"] == []
        assert routes(fake, POST_ROUTE)[0].json["content"] == "thinking"
        assert routes(fake, PATCH_ROUTE)[0].json["content"] == "the answer"
        echo = await asyncio.wait_for(client.inbox.get(), STARTUP_TIMEOUT_S)
        assert echo.id == sent.id and echo.author == client.user
        assert [m.content for m in fake.channel_messages("3000")] == [
            "<@1000> question",
            "the answer",
        ]


async def test_enforced_nonce_returns_the_same_message(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        channel = await text_channel(client)
        first = await channel.send("once", nonce="turn-1")
        second = await channel.send("once", nonce="turn-1")
        assert first.id == second.id
        assert len(fake.channel_messages("3000")) == 1
        assert routes(fake, POST_ROUTE)[1].json["enforce_nonce"] is True


async def test_content_over_2000_chars_is_invalid_form_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        channel = await text_channel(client)
        with pytest.raises(discord.HTTPException) as err:
            await channel.send("x" * 2001)
        assert (err.value.status, err.value.code) == (400, 50035)
        assert "Must be 2000 or fewer in length." in err.value.text
        assert fake.channel_messages("3000") == []


async def test_deleted_message_edit_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        placeholder = await (await text_channel(client)).send("…")
        fake.delete_message(str(placeholder.id))
        with pytest.raises(discord.NotFound) as err:
            await placeholder.edit(content="too late")
        assert err.value.code == 10008
        assert fake.channel_messages("3000") == []


# -- interactions --------------------------------------------------------------------------------


def stop_view(on_click: Callable[[discord.Interaction], Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
        label="Stop", custom_id="relay:stop"
    )
    button.callback = on_click  # type: ignore[method-assign, assignment]
    view.add_item(button)
    return view


async def test_button_click_reaches_view_callback_within_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        clicked: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def on_click(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            clicked.set_result(str(interaction.data.get("custom_id") if interaction.data else ""))

        message = await (await text_channel(client)).send("streaming…", view=stop_view(on_click))
        assert (
            fake.messages[str(message.id)].components[0]["components"][0]["custom_id"]
            == "relay:stop"
        )
        interaction_id = await fake.click(str(message.id), "relay:stop")
        assert await asyncio.wait_for(clicked, STARTUP_TIMEOUT_S) == "relay:stop"
        await fake.wait_until(lambda: fake.interactions[interaction_id].responded)
        state = fake.interactions[interaction_id]
        assert state.response_type == 6 and state.response_after_s is not None
        assert state.response_after_s < 3.0

        async with aiohttp.ClientSession() as http:  # a second ack is Discord's 40060
            url = f"{fake.api_url}/interactions/{interaction_id}/{state.token}/callback"
            async with http.post(url, json={"type": 6}) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 40060


async def test_late_interaction_response_is_unknown_interaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A deadline of 0 s makes every response late without sleeping through the real 3 s.
    fake_discord = FakeDiscord(rate_limits=False, interaction_deadline_s=0.0)
    async with fake_discord as fake, running(fake, monkeypatch) as client:
        outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def on_click(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.defer()
            except discord.NotFound as exc:
                outcome.set_result(exc)

        message = await (await text_channel(client)).send("x", view=stop_view(on_click))
        interaction_id = await fake.click(str(message.id), "relay:stop")
        error = await asyncio.wait_for(outcome, STARTUP_TIMEOUT_S)
        assert isinstance(error, discord.NotFound) and error.code == 10062
        assert not fake.interactions[interaction_id].responded


async def test_slash_command_defer_then_followup_replaces_loading_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake:
        client = RecordingClient()

        @client.tree.command(name="ask", description="Ask the agent")
        async def ask(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("the answer")

        async with running(fake, monkeypatch, client):
            await client.tree.sync()
            assert [c["name"] for c in fake.slash_commands] == ["ask"]
            interaction_id = await fake.slash("ask")
            state = fake.interactions[interaction_id]
            await fake.wait_until(lambda: state.original_message_id is not None and any(
                fake.messages[state.original_message_id].edits))  # fmt: skip
            original = fake.messages[str(state.original_message_id)]
            assert state.response_type == 5 and original.content == "the answer"
            assert original.flags & (1 << 7) == 0 and state.followups == []


# -- gateway -------------------------------------------------------------------------------------


async def test_disallowed_privileged_intent_closes_4014(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(require_intents_allowed=0) as fake:
        point_at(fake, monkeypatch)
        client = RecordingClient()
        try:
            with pytest.raises(discord.PrivilegedIntentsRequired):
                await asyncio.wait_for(client.start(FakeDiscord.token), STARTUP_TIMEOUT_S)
        finally:
            await client.close()
        assert fake.identify is not None and fake.identify["intents"] & (1 << 15)
        assert fake.gateway.close_codes == [4014]


async def test_dropped_gateway_resumes_and_replays_missed_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        await fake.drop_gateway()
        await fake.send_message("sent while disconnected", channel_id="5000")
        missed = await client.next_from_others()
        await fake.wait_until(lambda: fake.gateway.resume_count == 1)
        await fake.send_message("after resume", channel_id="5000")
        after = await client.next_from_others()
        assert (missed.content, after.content) == ("sent while disconnected", "after resume")
        assert fake.gateway.identify_count == 1


# -- the fake's own contract ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "error_path"),
    [
        ({"content": ""}, 50006, None),
        ({"content": "x", "embeds": [{"description": "d"}] * 11}, 50035, ["embeds"]),
        ({"embeds": [{"description": "d" * 4097}]}, 50035, ["embeds", "0", "description"]),
        (
            {"content": "x", "components": [{"type": 1, "components": []}] * 6},
            50035,
            ["components"],
        ),
        (
            {"content": "x", "components": [{"type": 1, "components": [{"type": 2}] * 6}]},
            50035,
            ["components", "0", "components"],
        ),
        (
            {
                "content": "x",
                "components": [{"type": 1, "components": [{"type": 2, "custom_id": "c" * 101}]}],
            },
            50035,
            ["components", "0", "components", "0", "custom_id"],
        ),
    ],
)
async def test_validation_errors_match_discord(
    body: dict[str, Any], code: int, error_path: list[str] | None
) -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {FakeDiscord.token}"}
        async with http.post(
            f"{fake.api_url}/channels/3000/messages", json=body, headers=headers
        ) as resp:
            assert resp.status == 400 and resp.headers["Content-Type"] == "application/json"
            error = await resp.json()
        assert error["code"] == code
        node = error.get("errors", {})
        for key in error_path or []:
            node = node[key]
        assert error_path is None or node["_errors"][0]["code"].startswith(("BASE_TYPE", "MAX"))


async def test_failing_predicate_fails_the_wait_not_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake:
        point_at(fake, monkeypatch)
        client = discord.Client(intents=discord.Intents.default())
        waiter = asyncio.create_task(
            fake.wait_until(lambda: bool(fake.requests) and fake.requests[5] is None)
        )
        try:
            await client.login(FakeDiscord.token)  # each request re-checks the predicate
        finally:
            await client.close()
        with pytest.raises(IndexError):
            await waiter
        assert [r.status for r in fake.requests] == [200, 200]


async def test_wait_until_timeout_names_the_condition() -> None:
    async with FakeDiscord() as fake:
        with pytest.raises(TimeoutError, match=r"condition not met within 0\.01s: .*count_429"):
            await fake.wait_until(lambda: fake.count_429 > 0, timeout=0.01)
