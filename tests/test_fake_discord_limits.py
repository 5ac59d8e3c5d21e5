"""Self-tests of FakeDiscord's rate limits and scripted faults, with the REAL discord.py client."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from tests.fakes import discord_client
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import (
    PATCH_ROUTE,
    POST_ROUTE,
    point_at,
    routes,
    running,
    text_channel,
)
from tests.fakes.discord_limits import FormError, validate_message

no_proxy = discord_client.no_proxy
EDITS = r"/channels/\d+/messages/\d+"
UNAVAILABLE = {"message": "503: Service Unavailable", "code": 0}


# -- rate limits ---------------------------------------------------------------------------------


async def test_sixth_edit_waits_for_the_window_without_429(monkeypatch: pytest.MonkeyPatch) -> None:
    window_s = 0.5
    async with (
        FakeDiscord(limit=5, window_s=window_s) as fake,
        running(fake, monkeypatch) as client,
    ):
        message = await (await text_channel(client)).send("0")
        for i in range(1, 7):
            message = await message.edit(content=str(i))
        patches = routes(fake, PATCH_ROUTE)
        assert fake.count_429 == 0 and [p.status for p in patches] == [200] * 6
        assert patches[4].t - patches[0].t < window_s
        assert patches[5].t - patches[0].t >= window_s  # discord.py slept on Remaining: 0
        assert fake.messages[str(message.id)].edits == ["1", "2", "3", "4", "5", "6"]


async def test_injected_429_with_via_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        message = await (await text_channel(client)).send("a")
        fake.inject(
            "PATCH", r"/channels/\d+/messages/\d+", status=429, headers={"Via": "1.1 google"}
        )
        await message.edit(content="b")
        assert [p.status for p in routes(fake, PATCH_ROUTE)] == [429, 200]
        assert fake.count_429 == 1 and fake.messages[str(message.id)].content == "b"


async def test_injected_429_without_via_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        message = await (await text_channel(client)).send("a")
        fake.inject("PATCH", r"/channels/\d+/messages/\d+", status=429)
        with pytest.raises(discord.HTTPException) as err:
            await message.edit(content="b")
        assert err.value.status == 429 and len(routes(fake, PATCH_ROUTE)) == 1


async def test_global_limit_429_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(global_limit=3) as fake:
        point_at(fake, monkeypatch)
        client = discord.Client(intents=discord.Intents.default())
        await client.login(FakeDiscord.token)  # two requests of the 3 per second
        try:
            channel = client.get_partial_messageable(3000)
            await asyncio.gather(*(channel.typing() for _ in range(3)))
        finally:
            await client.close()
        typing = routes(fake, "POST /channels/{id}/typing")
        assert fake.count_429 >= 1 and [r.status for r in typing].count(204) == 3


async def test_channel_bucket_headers_and_429_shape() -> None:
    async with FakeDiscord(limit=2, window_s=5.0) as fake, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {FakeDiscord.token}"}
        url = f"{fake.api_url}/channels/3000/messages"
        seen = []
        for _ in range(3):
            async with http.post(url, json={"content": "x"}, headers=headers) as resp:
                seen.append((resp.status, dict(resp.headers), await resp.json()))
        async with http.post(f"{fake.api_url}/channels/3001/messages", json={"content": "y"},
                             headers=headers) as other:  # fmt: skip
            assert other.status == 200  # buckets are per channel
        assert [s[0] for s in seen] == [200, 200, 429]
        assert [s[1]["X-RateLimit-Remaining"] for s in seen] == ["1", "0", "0"]
        _, limited, body = seen[2]
        assert limited["Via"] == "1.1 google" and limited["X-RateLimit-Scope"] == "user"
        assert body["global"] is False and 0 < body["retry_after"] <= 5.0
        assert float(limited["X-RateLimit-Reset-After"]) == body["retry_after"]
        assert len({s[1]["X-RateLimit-Bucket"] for s in seen}) == 1 and fake.count_429 == 1


# -- scripted faults -----------------------------------------------------------------------------


async def test_a_committed_fault_applies_the_write_and_still_fails() -> None:
    async with FakeDiscord(rate_limits=False) as fake, aiohttp.ClientSession() as http:
        fake.inject("POST", r"/channels/3000/messages", status=500, commit=True)
        headers = {"Authorization": f"Bot {FakeDiscord.token}"}
        url = f"{fake.api_url}/channels/3000/messages"
        for _ in range(2):
            async with http.post(url, json={"content": "twice"}, headers=headers) as resp:
                await resp.read()
        # Without a nonce, the write that "failed" and its retry are both shown.
        assert [r.status for r in routes(fake, POST_ROUTE)] == [500, 200]
        assert [m.content for m in fake.channel_messages("3000")] == ["twice", "twice"]


async def test_a_retried_create_with_a_nonce_is_shown_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        fake.inject("POST", r"/channels/3000/messages", status=500, commit=True)
        message = await (await text_channel(client)).send("once", nonce="turn-1")
        posts = routes(fake, POST_ROUTE)
        assert [r.status for r in posts] == [500, 200]  # discord.py retried the 500 itself
        assert {r.json["nonce"] for r in posts} == {"turn-1"}
        assert [m.id for m in fake.channel_messages("3000")] == [str(message.id)]


async def test_a_fault_after_n_lets_the_first_requests_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        message = await (await text_channel(client)).send("0")
        fake.inject("PATCH", EDITS, status=503, body=UNAVAILABLE, after=1, times=2)
        outcomes = []
        for i in range(1, 5):
            try:
                await message.edit(content=str(i))
                outcomes.append("ok")
            except discord.HTTPException as exc:  # discord.py does not retry a 503
                outcomes.append(str(exc.status))
        assert outcomes == ["ok", "503", "503", "ok"]
        assert fake.messages[str(message.id)].edits == ["1", "4"]


async def test_cleared_faults_stop_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(rate_limits=False) as fake, running(fake, monkeypatch) as client:
        message = await (await text_channel(client)).send("0")
        fake.inject("PATCH", EDITS, status=503, body=UNAVAILABLE, times=100)
        with pytest.raises(discord.HTTPException):
            await message.edit(content="refused")
        fake.clear_faults()
        await message.edit(content="served")
        assert [r.status for r in routes(fake, PATCH_ROUTE)] == [503, 200]
        assert fake.messages[str(message.id)].content == "served"


@pytest.mark.parametrize("content", ["", "   ", "\n\t "])
def test_an_empty_or_blank_message_is_refused_like_discord(content: str) -> None:
    """Discord trims content before checking it is there (50006)."""
    with pytest.raises(FormError) as refused:
        validate_message({"content": content})
    assert refused.value.body["code"] == 50006
