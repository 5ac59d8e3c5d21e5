"""VoiceflowClient over real HTTP against the Simulator, and over httpx.MockTransport to feed
arbitrary byte re-chunking through the real httpx-sse decoder."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from core.config import Secret
from core.errors import (
    StreamInterruptedError,
    VoiceflowAuthError,
    VoiceflowError,
    VoiceflowNotFoundError,
    VoiceflowRequestError,
    VoiceflowUnavailableError,
)
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Faults, Simulator
from core.simulator.content import echo_answer
from core.simulator.wire import WireFormat, encode_end, encode_event, encode_trace
from core.traces import AgentError, Choice, Completion, Ignored, Text, Trace
from core.voiceflow import VoiceflowClient

LAUNCH = {"type": "launch"}
HELLO = {"type": "text", "payload": "hello café 👋"}
OTHER_KEY = "VF.DM.111111111111111111111111.s3cr3tAbCdEf"


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(token_delay_s=0) as simulator:
        yield simulator


def make_client(base_url: str, **overrides: Any) -> VoiceflowClient:
    options: dict[str, Any] = {
        "base_url": base_url,
        "api_key": Secret(SIMULATOR_API_KEY),
        "project_id": SIMULATOR_PROJECT_ID,
        "environment": "production",
        "backoff_base_s": 0.01,
        "trust_env": False,
    }
    return VoiceflowClient(**(options | overrides))


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[VoiceflowClient]:
    async with make_client(sim.url) as voiceflow:
        yield voiceflow


async def collect(
    client: VoiceflowClient,
    action: dict[str, Any],
    user: str = "u1",
    into: list[Trace] | None = None,
) -> list[Trace]:
    traces = [] if into is None else into
    async with contextlib.aclosing(client.interact(user, action)) as stream:
        async for trace in stream:
            traces.append(trace)
    return traces


def content_of(traces: list[Trace]) -> str:
    return "".join(t.content for t in traces if isinstance(t, Completion))


def stream_requests(sim: Simulator) -> int:
    return sum("/interact/stream" in r.path for r in sim.requests)


# --- over the simulator: the happy path and every wire variant ----------------------------------


async def test_launch_then_streamed_answer(client: VoiceflowClient) -> None:
    launch = await collect(client, LAUNCH)
    assert [type(t) for t in launch if not isinstance(t, Ignored)] == [Text, Choice]
    answer = await collect(client, HELLO)
    assert content_of(answer) == echo_answer("hello café 👋")
    states = [t.state for t in answer if isinstance(t, Completion)]
    assert states[0] == "start" and states[-1] == "end" and set(states[1:-1]) == {"content"}
    assert {t.kind for t in answer if isinstance(t, Ignored)} >= {"flow", "block", "path", "debug"}


WIRE_VARIANTS = {
    "end-empty-object": Faults(end_data="empty_object"),
    "end-legacy": Faults(end_data="legacy"),
    "retry-line": Faults(send_retry_line=True),
    "keepalives": Faults(send_keepalives=True),
    "no-space": Faults(omit_space_after_colon=True),
    "crlf": Faults(use_crlf=True),
    "bare-cr": Faults(use_bare_cr=True),
    "event-first": Faults(put_event_first=True),
    "bom-event-first": Faults(send_bom=True, put_event_first=True),
    "batched": Faults(batch_events=True),
    "split-1-byte": Faults(split_writes_bytes=1),
    "split-5-bytes": Faults(split_writes_bytes=5),
    "everything": Faults(
        end_data="legacy",
        send_retry_line=True,
        send_keepalives=True,
        omit_space_after_colon=True,
        use_crlf=True,
        split_writes_bytes=3,
    ),
}


@pytest.mark.parametrize("faults", WIRE_VARIANTS.values(), ids=WIRE_VARIANTS.keys())
async def test_wire_variants(sim: Simulator, client: VoiceflowClient, faults: Faults) -> None:
    await collect(client, LAUNCH)
    baseline = await collect(client, HELLO)
    sim.faults = faults
    variant = await collect(client, HELLO)
    assert variant == baseline
    assert content_of(variant) == echo_answer("hello café 👋")


async def test_non_json_and_unknown_traces_are_skipped(
    sim: Simulator, client: VoiceflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    await collect(client, LAUNCH)
    sim.faults.non_json_data = True
    sim.faults.unknown_trace = True
    traces = await collect(client, HELLO)
    assert traces[0] == Ignored("x-simulator-unknown")
    assert content_of(traces) == echo_answer("hello café 👋")
    assert "not JSON" in caplog.text


async def test_internal_error_debug_then_end_is_a_complete_stream(
    sim: Simulator, client: VoiceflowClient
) -> None:
    """The stream itself ends normally; the trace says the agent failed (the relay shows it)."""
    sim.faults.internal_error = True
    traces = await collect(client, LAUNCH)
    assert traces[-1] == AgentError("An internal error occurred.")


# --- over the simulator: interruptions, never retried --------------------------------------------


@pytest.mark.parametrize("is_abort", [False, True], ids=["eof", "reset"])
async def test_stream_cut_inside_a_completion(
    sim: Simulator, client: VoiceflowClient, is_abort: bool
) -> None:
    await collect(client, LAUNCH)
    sim.faults.close_after_events = 5  # flow, block, start, two content chunks
    sim.faults.abort_on_close = is_abort
    received: list[Trace] = []
    with pytest.raises(StreamInterruptedError):
        await collect(client, HELLO, into=received)
    last = received[-1]
    assert len(received) == 5 and isinstance(last, Completion) and last.state == "content"
    assert stream_requests(sim) == 2  # launch + this one: nothing retried after an event


async def test_idle_timeout_mid_stream(sim: Simulator) -> None:
    sim.faults.stall_after_events = 3
    sim.faults.stall_s = 10
    received: list[Trace] = []
    async with make_client(sim.url, idle_timeout_s=0.3) as client:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="no event"):
            await collect(client, LAUNCH, into=received)
    assert time.monotonic() - started < 2
    assert len(received) == 3 and stream_requests(sim) == 1


async def test_keepalives_do_not_reset_the_idle_timer(sim: Simulator) -> None:
    # The stall sends one keep-alive half-way (0.6 s) and resumes at 1.2 s. The byte timer
    # (0.7 s) is reset by the comment and would not fire before 1.3 s; only the timer between
    # events can interrupt this turn.
    sim.faults.stall_after_events = 3
    sim.faults.stall_s = 1.2
    sim.faults.send_keepalives = True
    async with make_client(sim.url, idle_timeout_s=0.7) as client:
        with pytest.raises(StreamInterruptedError, match="no event"):
            await collect(client, LAUNCH)


async def test_aclose_mid_stream_closes_the_upstream_request() -> None:
    async with Simulator(token_delay_s=0.05) as sim, make_client(sim.url) as client:
        await collect(client, LAUNCH)
        stream = client.interact("u1", {"type": "text", "payload": "long"})
        first = [await anext(stream) for _ in range(5)]
        await stream.aclose()
        await asyncio.wait_for(sim.wait_for_disconnects(1), 5)
    assert Completion("start") in first
    assert sim.disconnects == ["u1"] and sim.finished_turns == ["u1"]


async def test_cancelling_the_consumer_closes_the_upstream_request() -> None:
    async with Simulator(token_delay_s=0.05) as sim, make_client(sim.url) as client:
        await collect(client, LAUNCH)
        received: list[Trace] = []
        started = asyncio.Event()

        async def consume() -> None:
            async with contextlib.aclosing(client.interact("u1", HELLO)) as stream:
                async for trace in stream:
                    received.append(trace)
                    if isinstance(trace, Completion) and trace.state == "content":
                        started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(sim.wait_for_disconnects(1), 5)
    assert sim.disconnects == ["u1"]
    assert content_of(received) != echo_answer("hello café 👋")


# --- over the simulator: errors before the first event -------------------------------------------


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda s: s.faults.fail_next(401), VoiceflowAuthError),
        (lambda s: s.faults.fail_next(404), VoiceflowNotFoundError),
        (lambda s: setattr(s.faults, "production_unpublished", True), VoiceflowNotFoundError),
        (lambda s: s.faults.fail_next(400), VoiceflowRequestError),
        (lambda s: s.faults.fail_next(403), VoiceflowRequestError),
    ],
    ids=["401", "404", "unpublished", "400", "403"],
)
async def test_refusals_are_mapped_and_not_retried(
    sim: Simulator,
    client: VoiceflowClient,
    setup: Callable[[Simulator], None],
    error: type[VoiceflowError],
) -> None:
    setup(sim)
    with pytest.raises(error) as caught:
        await collect(client, LAUNCH)
    assert type(caught.value) is error and caught.value.status in (400, 401, 403, 404)
    assert stream_requests(sim) == 1


async def test_wrong_key_is_an_auth_error_naming_the_variable(sim: Simulator) -> None:
    async with make_client(sim.url, api_key=Secret(OTHER_KEY)) as client:
        with pytest.raises(VoiceflowAuthError, match=r"401: Unauthorized.*VOICEFLOW_API_KEY"):
            await collect(client, LAUNCH)


async def test_malformed_environment_is_a_request_error(sim: Simulator) -> None:
    async with make_client(sim.url, environment="not valid") as client:
        with pytest.raises(VoiceflowRequestError, match="VOICEFLOW_ENVIRONMENT"):
            await collect(client, LAUNCH)


async def test_429_waits_for_retry_after_then_succeeds(
    sim: Simulator, client: VoiceflowClient
) -> None:
    sim.faults.retry_after_s = 1
    sim.faults.fail_next(429)
    traces = await collect(client, LAUNCH)
    assert any(isinstance(t, Choice) for t in traces)
    first, second = sim.requests
    assert second.time - first.time >= 0.9  # Retry-After: 1, not the 10 ms backoff


async def test_a_retry_after_longer_than_a_turn_waits_gives_up_at_once(sim: Simulator) -> None:
    """Retrying before the time Voiceflow named would only meet the same 429."""
    sim.faults.retry_after_s = 5
    sim.faults.fail_next(429, times=2)
    async with make_client(sim.url, max_retry_after_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(VoiceflowUnavailableError, match="wait 5s") as caught:
            await collect(client, LAUNCH)
    assert caught.value.status == 429 and stream_requests(sim) == 1
    assert time.monotonic() - started < 1.0


async def test_a_408_is_not_sent_again(sim: Simulator, client: VoiceflowClient) -> None:
    """The runtime's "response timeout" comes after 20 s of work on the turn: it may have run."""
    sim.faults.fail_next(408)
    with pytest.raises(VoiceflowUnavailableError, match="408") as caught:
        await collect(client, LAUNCH)
    assert caught.value.status == 408 and stream_requests(sim) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_server_errors_are_retried_with_backoff(sim: Simulator, status: int) -> None:
    sim.faults.fail_next(status, times=2)
    async with make_client(sim.url, backoff_base_s=0.05) as client:
        traces = await collect(client, LAUNCH)
    assert any(isinstance(t, Choice) for t in traces)
    times = [r.time for r in sim.requests]
    assert len(times) == 3
    # 0.05 s, then 0.1 s (±20 %): lower bounds only, so a loaded machine cannot fail it.
    assert times[1] - times[0] >= 0.04 and times[2] - times[1] >= 0.08


async def test_retries_run_out(sim: Simulator) -> None:
    sim.faults.fail_next(503, times=10)
    async with make_client(sim.url, max_retries=2) as client:
        with pytest.raises(VoiceflowUnavailableError, match="503") as caught:
            await collect(client, LAUNCH)
    assert caught.value.status == 503 and stream_requests(sim) == 3


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def unanswered_port_url() -> Iterator[str]:
    """A port that never completes a TCP handshake: its listen backlog is full, so the
    kernel drops further SYNs and a connect hangs until the client's connect timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            yield f"http://127.0.0.1:{port}"
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_timeout_is_unavailable_and_retried() -> None:
    with unanswered_port_url() as url:
        async with make_client(url, connect_timeout_s=0.2, max_retries=1) as client:
            started = time.monotonic()
            with pytest.raises(VoiceflowUnavailableError, match="VOICEFLOW_API_URL") as caught:
                await collect(client, LAUNCH)
    assert "2 attempts" in str(caught.value)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 5  # two whole connect timeouts (no refusal), and not a hang


async def test_connect_error_is_unavailable() -> None:
    async with make_client(closed_port_url(), max_retries=1) as client:
        with pytest.raises(VoiceflowUnavailableError, match="VOICEFLOW_API_URL") as caught:
            await collect(client, LAUNCH)
    assert "2 attempts" in str(caught.value)


async def test_a_single_attempt_is_counted_in_the_singular() -> None:
    async with make_client(closed_port_url(), max_retries=0) as client:
        with pytest.raises(VoiceflowUnavailableError) as caught:
            await client.check()
    assert "(ConnectError) after 1 attempt: check VOICEFLOW_API_URL" in str(caught.value)


@pytest.mark.parametrize("then", ["hangs", "closes"])
async def test_a_request_that_got_no_answer_is_not_sent_again(then: str) -> None:
    """Voiceflow read it (and may have run the turn) but never answered: one request only —
    whether it then hangs (a read timeout) or drops the connection (a crashed pod)."""
    received: list[bytes] = []
    done = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        if then == "hangs":
            await done.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_client(f"http://127.0.0.1:{port}", idle_timeout_s=0.3) as client:
            with pytest.raises(VoiceflowUnavailableError, match="not sent again"):
                await collect(client, HELLO)
    finally:
        done.set()
        server.close()
        await server.wait_closed()
    assert len(received) == 1


# --- over the simulator: what was sent, and what was never logged --------------------------------


async def test_request_is_exactly_what_voiceflow_expects(
    sim: Simulator, client: VoiceflowClient
) -> None:
    user = "discord:guild 1:chan/2:é"
    launch = await collect(client, LAUNCH, user=user)
    button = next(t for t in launch if isinstance(t, Choice)).buttons[0]
    async with contextlib.aclosing(
        client.interact(user, button.request, variables={"platform": "discord"})
    ) as stream:
        [trace async for trace in stream]
    sent = sim.requests[-1]
    assert sent.method == "POST"
    assert sent.path == f"/v2/project/{SIMULATOR_PROJECT_ID}/user/{user}/interact/stream"
    assert "discord%3Aguild%201%3Achan%2F2%3A%C3%A9" in sent.raw_path
    assert sent.query == {"completion_events": "true", "environment": "production"}
    assert sent.headers["Authorization"] == SIMULATOR_API_KEY  # raw, no Bearer
    assert sent.headers["Accept"] == "text/event-stream"
    assert sent.json == {"action": button.request, "variables": {"platform": "discord"}}
    assert button.request["type"].startswith("path-")


async def test_the_key_never_leaks(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim.faults.retry_after_s = 0
    sim.faults.fail_next(429)
    errors: list[BaseException] = []
    async with make_client(sim.url) as good, make_client(sim.url, api_key=Secret(OTHER_KEY)) as bad:
        await collect(good, LAUNCH)
        sim.faults.close_after_events = 2
        for client in (good, bad):
            try:
                await collect(client, HELLO)
            except VoiceflowError as exc:
                errors.append(exc)
        with contextlib.suppress(VoiceflowError):
            await bad.check()
        await bad.delete_state("u1")
    assert [type(e) for e in errors] == [StreamInterruptedError, VoiceflowAuthError]
    assert "retrying" in caplog.text and "HTTP Request" in caplog.text
    for key in (SIMULATOR_API_KEY, OTHER_KEY, "s3cr3t"):
        assert key not in caplog.text
        assert all(key not in f"{e!s} {e!r} {e.__cause__!r}" for e in errors)


# --- state and check -----------------------------------------------------------------------------


async def test_delete_state(sim: Simulator, client: VoiceflowClient) -> None:
    await collect(client, LAUNCH, user="a b")
    assert (SIMULATOR_PROJECT_ID, "a b") in sim.state
    await client.delete_state("a b")
    assert (SIMULATOR_PROJECT_ID, "a b") not in sim.state
    assert sim.requests[-1].method == "DELETE" and sim.requests[-1].raw_path == "/state/user/a%20b"


async def test_delete_state_is_best_effort(
    sim: Simulator, client: VoiceflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    sim.faults.fail_next(500)
    await client.delete_state("u1")
    async with make_client(closed_port_url()) as unreachable:
        await unreachable.delete_state("u1")
    assert caplog.text.count("could not delete Voiceflow state") == 2


async def test_check_passes(sim: Simulator, client: VoiceflowClient) -> None:
    await client.check()
    sent = sim.requests[-1]
    assert sent.method == "GET" and sent.headers["versionID"] == "production"
    assert sent.headers["Authorization"] == SIMULATOR_API_KEY


async def test_check_failures_say_what_to_fix(sim: Simulator) -> None:
    async with make_client(sim.url, api_key=Secret(OTHER_KEY)) as bad_key:
        with pytest.raises(VoiceflowAuthError, match="VOICEFLOW_API_KEY"):
            await bad_key.check()
    sim.faults.production_unpublished = True
    async with make_client(sim.url) as unpublished:
        with pytest.raises(VoiceflowNotFoundError, match="VOICEFLOW_ENVIRONMENT"):
            await unpublished.check()
    async with make_client(closed_port_url(), max_retries=0) as unreachable:
        with pytest.raises(VoiceflowUnavailableError, match="VOICEFLOW_API_URL"):
            await unreachable.check()


async def test_check_on_a_wrong_url_path_names_the_url(sim: Simulator) -> None:
    """The simulator's own 404 ("404: Not Found", from aiohttp) is not Voiceflow's."""
    async with make_client(f"{sim.url}/some/prefix") as wrong_path:
        with pytest.raises(VoiceflowNotFoundError) as caught:
            await wrong_path.check()
    message = str(caught.value)
    assert "VOICEFLOW_API_URL is likely wrong" in message and "(Not Found)" in message
    assert "VOICEFLOW_ENVIRONMENT" not in message and "404: 404" not in message


async def test_check_of_an_unpublished_environment_keeps_its_message(sim: Simulator) -> None:
    sim.faults.production_unpublished = True
    async with make_client(sim.url) as unpublished:
        with pytest.raises(VoiceflowNotFoundError) as caught:
            await unpublished.check()
    assert str(caught.value) == (
        "Voiceflow environment 'production' not found (404: Voiceflow project was not published"
        " to production): publish the agent to it or set VOICEFLOW_ENVIRONMENT"
    )


# --- MockTransport: arbitrary re-chunking through the real httpx-sse decoder ---------------------


class ChunkStream(httpx.AsyncByteStream):
    """Yields chosen byte slices; can hang after them; records that it was closed."""

    def __init__(self, chunks: list[bytes], *, hangs: bool = False) -> None:
        self.chunks = chunks
        self.hangs = hangs
        self.closed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.hangs:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed.set()


class Upstream:
    """A MockTransport handler serving the next scripted response."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []
        self.requests: list[httpx.Request] = []

    def serve(
        self, chunks: list[bytes], *, hangs: bool = False, content_type: str = "text/event-stream"
    ) -> ChunkStream:
        stream = ChunkStream(chunks, hangs=hangs)
        headers = {"content-type": content_type}
        self.responses.append(httpx.Response(200, headers=headers, stream=stream))
        return stream

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def mocked(upstream: Upstream) -> AsyncIterator[VoiceflowClient]:
    transport = httpx.MockTransport(upstream)
    async with make_client("http://voiceflow.test", transport=transport) as client:
        yield client


GOLDEN_TRACES: list[dict[str, Any]] = [
    {"type": "completion", "payload": {"state": "start"}, "time": 1725899197200},
    {"type": "completion", "payload": {"state": "content", "content": "Sure, café 👋 here is"}},
    {"type": "completion", "payload": {"state": "content", "content": " the answer — ünïcödé."}},
    {"type": "completion", "payload": {"state": "end"}, "time": 1725899197500},
    {"type": "choice", "payload": {"buttons": [{"name": "More", "request": {"type": "path-a"}}]}},
]
GOLDEN_CONTENT = "Sure, café 👋 here is the answer — ünïcödé."


DEFAULT_WIRE = WireFormat()


def golden_bytes(fmt: WireFormat = DEFAULT_WIRE) -> bytes:
    body = b"".join(encode_trace(i, t, fmt) for i, t in enumerate(GOLDEN_TRACES, start=1))
    return body + encode_end(len(GOLDEN_TRACES) + 1, fmt)


def assert_golden(traces: list[Trace]) -> None:
    assert content_of(traces) == GOLDEN_CONTENT
    assert len(traces) == 5 and isinstance(traces[-1], Choice)


async def test_documented_golden_turn(upstream: Upstream, mocked: VoiceflowClient) -> None:
    upstream.serve([golden_bytes()])
    assert_golden(await collect(mocked, HELLO))


@pytest.mark.parametrize(
    "fmt",
    [WireFormat(), WireFormat(uses_crlf=True, has_space_after_colon=False, end_data="legacy")],
    ids=["lf", "crlf-nospace-legacy"],
)
async def test_every_two_way_split(
    upstream: Upstream, mocked: VoiceflowClient, fmt: WireFormat
) -> None:
    data = golden_bytes(fmt)
    assert b"\r\n" in data or fmt == WireFormat()
    for cut in range(1, len(data)):
        upstream.serve([data[:cut], data[cut:]])
        assert_golden(await collect(mocked, HELLO))


async def test_one_byte_at_a_time(upstream: Upstream, mocked: VoiceflowClient) -> None:
    data = golden_bytes(WireFormat(uses_crlf=True))
    upstream.serve([data[i : i + 1] for i in range(len(data))])
    assert_golden(await collect(mocked, HELLO))


async def test_split_inside_a_multibyte_character(
    upstream: Upstream, mocked: VoiceflowClient
) -> None:
    data = golden_bytes()
    wave = data.index("👋".encode())
    upstream.serve([data[: wave + 2], data[wave + 2 :]])
    assert_golden(await collect(mocked, HELLO))


async def test_split_between_cr_and_lf(upstream: Upstream, mocked: VoiceflowClient) -> None:
    data = golden_bytes(WireFormat(uses_crlf=True))
    cuts = [i + 1 for i in range(len(data)) if data[i : i + 1] == b"\r"]
    pieces = [data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)])]
    assert all(p.endswith(b"\r") for p in pieces[:-1])
    upstream.serve(pieces)
    assert_golden(await collect(mocked, HELLO))


@pytest.mark.parametrize(
    "end",
    [b"event: end\n\n", b"id: 9\nevent: end\ndata: {}\n\n", b'event:end\ndata:{"type":"end"}\n\n'],
    ids=["data-less", "empty-object", "legacy"],
)
async def test_end_event_forms(upstream: Upstream, mocked: VoiceflowClient, end: bytes) -> None:
    body = b"".join(encode_trace(i, t, WireFormat()) for i, t in enumerate(GOLDEN_TRACES, 1))
    upstream.serve([body + end])
    assert_golden(await collect(mocked, HELLO))


async def test_what_is_not_a_trace_is_skipped(
    upstream: Upstream, mocked: VoiceflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    fmt = WireFormat()
    upstream.serve(
        [
            b"retry: 2000\n\n: hello\n\n",
            encode_trace(1, GOLDEN_TRACES[0], fmt),
            b":\n\n\n\n",
            encode_event(2, "trace", "{broken", fmt),
            encode_event(3, "trace", "", fmt),
            encode_trace(4, {"type": "calendar", "payload": {"today": 1}}, fmt),
            encode_event(5, "state", '{"stack":[]}', fmt),
            encode_event(6, "message", '{"type":"text","payload":{"message":"no"}}', fmt),
            b"".join(encode_trace(i, t, fmt) for i, t in enumerate(GOLDEN_TRACES[1:], 7)),
            encode_end(20, fmt),
        ]
    )
    traces = await collect(mocked, HELLO)
    assert traces[1] == Ignored("calendar")
    assert_golden([t for t in traces if t != Ignored("calendar")])
    assert caplog.text.count("not JSON") == 2


@pytest.mark.parametrize(
    "tail", [b"", b'id: 9\nevent: trace\ndata: {"type":"te'], ids=["clean", "truncated-event"]
)
async def test_eof_without_end(upstream: Upstream, mocked: VoiceflowClient, tail: bytes) -> None:
    body = b"".join(encode_trace(i, t, WireFormat()) for i, t in enumerate(GOLDEN_TRACES[:3], 1))
    upstream.serve([body, tail] if tail else [body])
    received: list[Trace] = []
    with pytest.raises(StreamInterruptedError, match="without an end"):
        await collect(mocked, HELLO, into=received)
    assert content_of(received) == GOLDEN_CONTENT and len(received) == 3


async def test_aclose_closes_the_response(upstream: Upstream, mocked: VoiceflowClient) -> None:
    stream = upstream.serve([encode_trace(1, GOLDEN_TRACES[0], WireFormat())], hangs=True)
    traces = mocked.interact("u1", HELLO)
    assert await anext(traces) == Completion("start")
    await traces.aclose()
    assert stream.closed.is_set()


async def test_cancel_closes_the_response(upstream: Upstream, mocked: VoiceflowClient) -> None:
    stream = upstream.serve([encode_trace(1, GOLDEN_TRACES[0], WireFormat())], hangs=True)
    first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(mocked.interact("u1", HELLO)) as traces:
            async for _ in traces:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.closed.is_set()


async def test_200_that_is_not_an_event_stream(upstream: Upstream, mocked: VoiceflowClient) -> None:
    stream = ChunkStream([b"<html>proxy login</html>"])
    upstream.responses.append(
        httpx.Response(200, headers={"content-type": "text/html"}, stream=stream)
    )
    with pytest.raises(VoiceflowRequestError, match="VOICEFLOW_API_URL"):
        await collect(mocked, HELLO)
    assert stream.closed.is_set()


@pytest.mark.parametrize(
    "body",
    ["", "404 page not found", "<html><body>Not Found</body></html>", '{"error":"no route"}'],
    ids=["empty", "text", "html", "other-json"],
)
async def test_a_404_without_a_voiceflow_body_points_at_the_url(
    upstream: Upstream, mocked: VoiceflowClient, body: str
) -> None:
    upstream.responses.append(httpx.Response(404, text=body))
    with pytest.raises(VoiceflowNotFoundError, match="VOICEFLOW_API_URL is likely wrong"):
        await collect(mocked, HELLO)


async def test_a_voiceflow_404_names_the_environment(
    upstream: Upstream, mocked: VoiceflowClient
) -> None:
    body = '{"code":404,"status":"Not Found","data":"Model not found. Ensure project is rendered."}'
    upstream.responses.append(httpx.Response(404, text=body))
    with pytest.raises(VoiceflowNotFoundError, match="VOICEFLOW_ENVIRONMENT") as caught:
        await collect(mocked, HELLO)
    assert "Model not found" in str(caught.value)


async def test_error_bodies_are_redacted(upstream: Upstream, mocked: VoiceflowClient) -> None:
    echoed = f'{{"name":"verror","message":"bad key {SIMULATOR_API_KEY} for project"}}'
    upstream.responses.append(httpx.Response(400, text=echoed))
    with pytest.raises(VoiceflowRequestError) as caught:
        await collect(mocked, HELLO)
    assert SIMULATOR_API_KEY not in str(caught.value)
    assert "bad key [redacted] for project" in str(caught.value)


class BrokenStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"data":"Serv'
        raise httpx.ReadError("connection reset")


async def test_error_body_that_breaks_is_still_retried(
    upstream: Upstream, mocked: VoiceflowClient
) -> None:
    upstream.responses.append(httpx.Response(503, stream=BrokenStream()))
    upstream.serve([golden_bytes()])
    assert_golden(await collect(mocked, HELLO))
    assert len(upstream.requests) == 2


async def test_retry_after_as_http_date(upstream: Upstream, mocked: VoiceflowClient) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    upstream.responses.append(httpx.Response(429, headers={"Retry-After": past}, text="slow"))
    upstream.serve([golden_bytes()])
    assert_golden(await collect(mocked, HELLO))
    assert len(upstream.requests) == 2


async def test_charset_in_content_type(upstream: Upstream, mocked: VoiceflowClient) -> None:
    upstream.serve([golden_bytes()], content_type="text/event-stream; charset=utf-8")
    assert_golden(await collect(mocked, HELLO))


# --- overhead per trace (printed, not asserted on time) ------------------------------------------

BENCH_TRACES = 20_000


def bench_body() -> list[bytes]:
    fmt = WireFormat()
    chunk = {"type": "completion", "payload": {"state": "content", "content": "token café "}}
    events = [encode_trace(i, chunk, fmt) for i in range(1, BENCH_TRACES + 1)]
    data = b"".join(events) + encode_end(BENCH_TRACES + 1, fmt)
    return [data[i : i + 16_384] for i in range(0, len(data), 16_384)]


async def measure_s(run: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    count = await run()
    elapsed = time.perf_counter() - started
    assert count == BENCH_TRACES
    return elapsed


async def test_overhead_per_trace(upstream: Upstream, mocked: VoiceflowClient) -> None:
    chunks = bench_body()

    async def through_client() -> int:
        upstream.serve(chunks)
        return len(await collect(mocked, HELLO))

    async def through_httpx_sse() -> int:
        upstream.serve(chunks)
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as raw,
            aconnect_sse(raw, "POST", "http://voiceflow.test/") as source,
        ):
            return sum([sse.event == "trace" async for sse in source.aiter_sse()])

    upstream.serve(chunks[:2])  # warm-up: imports, first request
    with contextlib.suppress(StreamInterruptedError):
        await collect(mocked, HELLO)
    # Measured at the production log level: the suite's secret scan (tests/conftest.py) turns
    # on DEBUG for our loggers, which adds a log record per trace.
    logger = logging.getLogger("core.voiceflow")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        client_s = await measure_s(through_client)
        decoder_s = await measure_s(through_httpx_sse)
    finally:
        logger.setLevel(level)
    print(
        f"\n{BENCH_TRACES} traces: client {client_s / BENCH_TRACES * 1e6:.1f} µs/trace, "
        f"httpx-sse alone {decoder_s / BENCH_TRACES * 1e6:.1f} µs/event, "
        f"client overhead {(client_s - decoder_s) / BENCH_TRACES * 1e6:.1f} µs/trace"
    )
