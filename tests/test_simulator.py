"""The Voiceflow simulator: wire bytes, routes, auth, state, default agent, scripts, faults.

These talk raw HTTP (plain httpx, no VoiceflowClient) so the simulator is checked on its own;
tests/test_voiceflow_client.py runs the client against it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from core.errors import ConfigError
from core.simulator import (
    SIMULATOR_API_KEY,
    SIMULATOR_PROJECT_ID,
    DefaultAgent,
    Faults,
    Simulator,
    load_script,
    serve_simulator,
)
from core.simulator.agent import chunk_text, collapse_completions, expand_completions
from core.simulator.content import code_answer, echo_answer, huge_answer, long_answer
from core.simulator.faults import parse_fault
from core.simulator.wire import (
    WireFormat,
    encode_comment,
    encode_end,
    encode_retry,
    encode_trace,
    split_bytes,
)

EXAMPLE_SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "simulator-script.json"
AUTH = {"Authorization": SIMULATOR_API_KEY}
STREAM_QUERY = {"completion_events": "true", "environment": "production"}


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(token_delay_s=0) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, trust_env=False) as client:
        yield client


def stream_path(user: str = "u1", project: str = SIMULATOR_PROJECT_ID) -> str:
    return f"/v2/project/{project}/user/{user}/interact/stream"


async def post_turn(
    http: httpx.AsyncClient,
    action: dict[str, Any],
    *,
    user: str = "u1",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    variables: dict[str, Any] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"action": action}
    if variables is not None:
        body["variables"] = variables
    return await http.post(
        stream_path(user),
        params=STREAM_QUERY if query is None else query,
        headers=AUTH if headers is None else headers,
        json=body,
    )


def events_of(body: str) -> list[dict[str, str]]:
    """Parse a default-format SSE body strictly: `field: value` lines, blank line after each."""
    assert body.endswith("\n\n")
    events = []
    for block in body[:-2].split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(fields)
    return events


def traces_of(body: str) -> list[dict[str, Any]]:
    return [json.loads(e["data"]) for e in events_of(body) if e["event"] == "trace"]


def joined(traces: list[dict[str, Any]]) -> str:
    return "".join(t["payload"].get("content", "") for t in traces if t["type"] == "completion")


def kinds(traces: list[dict[str, Any]]) -> list[str]:
    return [t["type"] for t in traces]


# --- wire --------------------------------------------------------------------------------------


def test_default_wire_bytes() -> None:
    fmt = WireFormat()
    trace = {"type": "text", "payload": {"message": "café 👋"}, "time": 1725899197143}
    assert (
        encode_trace(1, trace, fmt)
        == (
            'id: 1\nevent: trace\ndata: {"type":"text","payload":{"message":"café 👋"},'
            '"time":1725899197143}\n\n'
        ).encode()
    )
    assert encode_end(2, fmt) == b"id: 2\nevent: end\n\n"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (WireFormat(end_data="empty_object"), b"id: 7\nevent: end\ndata: {}\n\n"),
        (WireFormat(end_data="legacy"), b'id: 7\nevent: end\ndata: {"type":"end"}\n\n'),
        (WireFormat(has_space_after_colon=False), b"id:7\nevent:end\n\n"),
        (WireFormat(uses_crlf=True), b"id: 7\r\nevent: end\r\n\r\n"),
        (WireFormat(uses_bare_cr=True), b"id: 7\revent: end\r\r"),
        (WireFormat(puts_event_first=True), b"event: end\nid: 7\n\n"),
    ],
)
def test_wire_variants(fmt: WireFormat, expected: bytes) -> None:
    assert encode_end(7, fmt) == expected


def test_retry_and_keepalive_lines() -> None:
    assert encode_retry(WireFormat()) == b"retry: 2000\n\n"
    assert encode_comment(WireFormat(uses_crlf=True)) == b":\r\n\r\n"


def test_split_bytes_cuts_inside_characters() -> None:
    data = "é👋".encode()
    pieces = split_bytes(data, 1)
    assert b"".join(pieces) == data and len(pieces) == 6
    with pytest.raises(UnicodeDecodeError):
        pieces[0].decode()


# --- completions and content --------------------------------------------------------------------


@pytest.mark.parametrize("text", [echo_answer("hi café"), long_answer(), code_answer(), "", "a"])
def test_chunks_join_back(text: str) -> None:
    assert "".join(chunk_text(text)) == text


def test_chunks_look_like_an_llm_stream() -> None:
    text = long_answer()
    chunks = chunk_text(text)
    assert chunk_text(text) == chunks  # deterministic
    assert "" in chunks
    assert any(c and c[-1].isalpha() and n[:1].isalpha() for c, n in itertools.pairwise(chunks))
    assert max(len(c.split()) for c in chunks) <= 6
    assert len(chunks) > 200


def test_huge_answer_streams_in_a_few_hundred_chunks() -> None:
    text = huge_answer()
    assert len(text) >= 100_000
    assert 100 < len(chunk_text(text)) < 1_000


def test_long_answer_shape() -> None:
    text = long_answer()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert 6_000 <= len(text) <= 6_200  # the acceptance's 6,000-character answer
    assert code is not None and len(code.group(1)) > 2_000
    assert text.count("\n\n") >= 4
    compile(code.group(1), "<long answer>", "exec")


def test_expand_and_collapse() -> None:
    traces: list[dict[str, Any]] = [
        {"type": "completion", "payload": {"content": "Hello café 👋 world"}},
        {"type": "end"},
    ]
    expanded = expand_completions(traces)
    assert expanded[0]["payload"] == {"state": "start"}
    assert expanded[-2]["payload"] == {"state": "end"}
    assert joined(expanded) == "Hello café 👋 world"
    assert collapse_completions(expanded) == [
        {"type": "text", "payload": {"message": "Hello café 👋 world", "ai": True}},
        {"type": "end"},
    ]


def test_collapse_drops_empty_sequences() -> None:
    assert collapse_completions(expand_completions([{"type": "completion", "payload": {}}])) == []


# --- default agent ------------------------------------------------------------------------------


def respond(text: str) -> list[dict[str, Any]]:
    return expand_completions(DefaultAgent().respond({"type": "text", "payload": text}))


def test_launch_welcomes_with_buttons() -> None:
    traces = DefaultAgent().respond({"type": "launch"})
    assert kinds(traces) == ["text", "choice"]
    assert traces[0]["payload"]["slate"]["content"]
    requests = [b["request"]["type"] for b in traces[1]["payload"]["buttons"]]
    assert requests[0].startswith("path-") and "text" in requests and "action" in requests


def test_buttons_of_every_kind() -> None:
    traces = respond("Show me BUTTONS please")
    choice = traces[-1]
    assert choice["type"] == "choice" and joined(traces)
    types = {b["request"]["type"].split("-")[0] for b in choice["payload"]["buttons"]}
    assert types == {"path", "intent", "text", "action"}


def test_path_answers_mention_their_label() -> None:
    agent = DefaultAgent()
    buttons = respond("buttons")[-1]["payload"]["buttons"]
    answers = [
        joined(expand_completions(agent.respond(b["request"])))
        for b in buttons
        if b["request"]["type"].startswith("path-")
    ]
    assert len(answers) == 2 and answers[0] != answers[1]
    assert "Order coffee" in answers[0] and "Track order" in answers[1]


def test_the_welcome_button_show_me_buttons_shows_them() -> None:
    agent = DefaultAgent()
    welcome = agent.respond({"type": "launch"})[-1]["payload"]["buttons"]
    show = next(b for b in welcome if b["name"] == "Show me buttons")
    assert expand_completions(agent.respond(show["request"])) == respond("buttons")


def test_intent_and_no_reply_requests() -> None:
    agent = DefaultAgent()
    intent = {"type": "intent", "payload": {"intent": {"name": "Forgot password"}}}
    assert "Forgot password" in joined(expand_completions(agent.respond(intent)))
    reply = agent.respond({"type": "no-reply"})
    assert reply[0]["payload"]["message"] == "Are you still there?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image", ["completion", "visual"]),
        ("a card", ["cardV2"]),
        ("carousel", ["carousel"]),
        ("end", ["completion", "end"]),
        ("noreply", ["text", "no-reply"]),
        ("static", ["text"]),
        ("empty", ["completion", "completion"]),
        ("code", ["completion"]),
    ],
)
def test_keyword_routes(text: str, expected: list[str]) -> None:
    traces = respond(text)
    assert list(dict.fromkeys(kinds(traces))) == list(dict.fromkeys(expected))
    if text == "empty":
        assert kinds(traces) == expected and joined(traces) == ""


def test_route_details() -> None:
    assert respond("noreply")[-1]["payload"] == {"timeout": 2}
    carousel = respond("carousel")[0]["payload"]["cards"]
    assert len(carousel) == 3 and all(c["buttons"] for c in carousel)
    assert respond("card")[0]["payload"]["buttons"]
    assert "```python" in joined(respond("code"))
    assert len(joined(respond("long"))) >= 5_500


def test_mixed_interleaves_two_sequences() -> None:
    traces = respond("mixed")
    starts = [i for i, t in enumerate(traces) if t["payload"].get("state") == "start"]
    text_at = kinds(traces).index("text")
    assert len(starts) == 2 and starts[0] < text_at < starts[1]
    assert kinds(traces)[-1] == "choice"


def test_anything_else_is_an_echo() -> None:
    text = joined(respond("Hello café 👋"))
    assert text == echo_answer("Hello café 👋")
    assert "**Hello café 👋**" in text and "\n- " in text


# --- scripts ------------------------------------------------------------------------------------


def test_example_script_loads_and_answers() -> None:
    agent = load_script(EXAMPLE_SCRIPT)
    assert kinds(agent.respond({"type": "launch"})) == ["text", "choice"]
    assert kinds(agent.respond({"type": "text", "payload": "  HELLO "})) == ["completion"]
    assert kinds(agent.respond({"type": "text", "payload": "bye"})) == ["completion", "end"]
    hours = {"type": "intent", "payload": {"label": "Opening hours", "intent": {"name": "hours"}}}
    assert kinds(agent.respond(hours)) == ["text"]
    fallback = agent.respond({"type": "text", "payload": "tea?"})
    assert "only know about coffee" in fallback[0]["payload"]["content"]


def test_script_without_fallback_uses_default_agent(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps({"texts": {"hi": [{"type": "text", "payload": {"message": "!"}}]}})
    )
    agent = load_script(script)
    assert agent.respond({"type": "text", "payload": "hi"})[0]["payload"]["message"] == "!"
    assert kinds(agent.respond({"type": "launch"})) == ["text", "choice"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"launch": "hi"}',
        '{"texts": {"x": [{"payload": 1}]}}',
        '{"lunch": []}',
        '{"texts": []}',
        '{"texts": 0}',
        '{"requests": ""}',
        '{"requests": null}',
    ],
)
def test_bad_script_names_the_option(tmp_path: Path, content: str) -> None:
    script = tmp_path / "bad.json"
    script.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_script(script)
    assert caught.value.variable == "--script"


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_script(tmp_path / "nope.json")


async def test_scripted_simulator_streams_the_script() -> None:
    async with (
        Simulator(token_delay_s=0, script=EXAMPLE_SCRIPT) as scripted,
        httpx.AsyncClient(base_url=scripted.url, trust_env=False) as client,
    ):
        await post_turn(client, {"type": "launch"})
        response = await post_turn(client, {"type": "text", "payload": "hello"})
    assert joined(traces_of(response.text)).startswith("Hello! Our **flat white**")


# --- HTTP: wire ---------------------------------------------------------------------------------


async def test_stream_headers_ids_and_json(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await post_turn(http, {"type": "launch"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    events = events_of(response.text)
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert events[-1] == {"id": str(len(events)), "event": "end"}
    for event in events[:-1]:
        assert event["event"] == "trace"
        assert (
            json.dumps(json.loads(event["data"]), separators=(",", ":"), ensure_ascii=False)
            == (event["data"])
        )
        assert isinstance(json.loads(event["data"])["time"], int)
        assert json.loads(event["data"])["time"] > 1_600_000_000_000  # ms, not s


async def test_noise_on_by_default_and_switchable(sim: Simulator, http: httpx.AsyncClient) -> None:
    noisy = traces_of((await post_turn(http, {"type": "launch"})).text)
    sim.faults.noise = False
    quiet = traces_of((await post_turn(http, {"type": "launch"})).text)
    assert {"flow", "block", "debug"} <= set(kinds(noisy))
    assert kinds(quiet) == ["text", "choice"]


async def test_completion_events_off_sends_one_ai_text(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.faults.noise = False
    await post_turn(http, {"type": "launch"})
    action = {"type": "text", "payload": "hello café"}
    streamed = traces_of((await post_turn(http, action)).text)
    for flag in ("false", None):
        query = {"environment": "production"} | (
            {} if flag is None else {"completion_events": flag}
        )
        whole = traces_of((await post_turn(http, action, query=query)).text)
        assert whole == [
            {
                "type": "text",
                "payload": {"message": joined(streamed), "ai": True},
                "time": whole[0]["time"],
            }
        ]


async def test_state_query_emits_a_state_event(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await post_turn(http, {"type": "launch"}, query=STREAM_QUERY | {"state": "true"})
    events = events_of(response.text)
    assert [e["event"] for e in events[-2:]] == ["state", "end"]
    assert set(json.loads(events[-2]["data"])) == {"stack", "storage", "variables"}


async def test_tokens_arrive_incrementally() -> None:
    async with (
        Simulator(token_delay_s=0.02) as slow,
        httpx.AsyncClient(base_url=slow.url, trust_env=False) as client,
    ):
        await post_turn(client, {"type": "launch"})
        loop = asyncio.get_running_loop()
        arrivals = []
        body = {"action": {"type": "text", "payload": "hello"}}
        async with client.stream(
            "POST", stream_path(), params=STREAM_QUERY, headers=AUTH, json=body
        ) as response:
            async for _ in response.aiter_bytes():
                arrivals.append(loop.time())
    # More than a handful of separate reads spread over the token delays, not one buffered blob.
    assert len(arrivals) > 5
    assert arrivals[-1] - arrivals[0] > 0.2


# --- HTTP: auth, environment, body --------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({}, "Auth Key Required"),
        ({"Authorization": f"Bearer {SIMULATOR_API_KEY}"}, "Unauthorized"),
        ({"Authorization": "VF.DM.111111111111111111111111.other"}, "Unauthorized"),
    ],
)
async def test_auth_refusals(http: httpx.AsyncClient, headers: dict[str, str], data: str) -> None:
    response = await post_turn(http, {"type": "launch"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 401 and response.json()["data"] == data


async def test_auth_header_name_is_case_insensitive(http: httpx.AsyncClient) -> None:
    response = await post_turn(
        http, {"type": "launch"}, headers={"aUTHORIZATION": SIMULATOR_API_KEY}
    )
    assert response.status_code == 200


async def test_other_project_is_unauthorized(http: httpx.AsyncClient) -> None:
    body = {"action": {"type": "launch"}}
    response = await http.post(stream_path(project="f" * 24), headers=AUTH, json=body)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "environment", [None, "development", "production", "65f1a2b3c4d5e6f7a8b9c0d1"]
)
async def test_valid_environments(http: httpx.AsyncClient, environment: str | None) -> None:
    query = {"completion_events": "true"} | (
        {} if environment is None else {"environment": environment}
    )
    assert (await post_turn(http, {"type": "launch"}, query=query)).status_code == 200


async def test_malformed_environment_is_a_verror(http: httpx.AsyncClient) -> None:
    response = await post_turn(http, {"type": "launch"}, query={"environment": "prod uction"})
    assert response.status_code == 400
    assert response.json()["name"] == "verror"


async def test_unpublished_production(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.production_unpublished = True
    assert (await post_turn(http, {"type": "launch"})).status_code == 404
    query = {"completion_events": "true", "environment": "development"}
    assert (await post_turn(http, {"type": "launch"}, query=query)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": {}},
        {"action": {"type": 3}},
        [],
        {"action": "launch"},
        {"action": {"type": "launch"}, "state": 5},
    ],
)
async def test_bad_body(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post(stream_path(), params=STREAM_QUERY, headers=AUTH, json=body)
    assert response.status_code == 400


# --- HTTP: state --------------------------------------------------------------------------------


async def test_a_user_with_no_state_is_started_not_ended(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    """A restarted simulator (or runtime) meeting a userID it has no state for starts it, as
    the runtime does: only an `end` trace ends a conversation until the next launch."""
    sim.faults.noise = False
    answer = traces_of((await post_turn(http, {"type": "text", "payload": "hi"})).text)
    assert "(conversation ended — send launch)" not in str(answer) and answer
    assert (await http.get("/state/user/u1", headers=AUTH)).json()["stack"]


async def test_state_lifecycle(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.noise = False
    state_path = "/state/user/u1"
    patched = await http.patch(f"{state_path}/variables", headers=AUTH, json={"name": "Zoë"})
    assert patched.json()["variables"] == {"name": "Zoë"}
    await post_turn(http, {"type": "launch"}, variables={"platform": "discord"})
    state = (await http.get(state_path, headers=AUTH)).json()
    assert state["variables"] == {"name": "Zoë", "platform": "discord"} and state["stack"]
    ended = traces_of((await post_turn(http, {"type": "text", "payload": "end"})).text)
    assert kinds(ended)[-1] == "end"
    after_end = traces_of((await post_turn(http, {"type": "text", "payload": "hi"})).text)
    assert after_end[0]["payload"]["message"] == "(conversation ended — send launch)"
    assert (await http.delete(state_path, headers=AUTH)).status_code == 200
    assert (await http.get(state_path, headers=AUTH)).json()["variables"] == {}


async def test_put_state_replaces(http: httpx.AsyncClient) -> None:
    new_state = {"stack": [{"nodeID": "x"}], "storage": {}, "variables": {"a": 1}}
    assert (await http.put("/state/user/u9", headers=AUTH, json=new_state)).json() == new_state
    assert (await http.get("/state/user/u9", headers=AUTH)).json() == new_state


@pytest.mark.parametrize(
    "body",
    [
        b'{"variables": "abc"}',
        b'{"variables": [1, 2]}',
        b'{"stack": 5}',
        b'{"storage": "x"}',
        b"junk",
        b"[]",
    ],
)
async def test_put_state_of_the_wrong_shape_is_refused_and_keeps_the_state(
    http: httpx.AsyncClient, body: bytes
) -> None:
    state = {"stack": [{"nodeID": "x"}], "storage": {}, "variables": {"a": 1}}
    await http.put("/state/user/u9", headers=AUTH, json=state)
    refused = await http.put("/state/user/u9", headers=AUTH, content=body)
    assert refused.status_code == 400 and refused.json()["code"] == 400
    assert (await http.get("/state/user/u9", headers=AUTH)).json() == state


async def test_non_stream_interact(sim: Simulator, http: httpx.AsyncClient) -> None:
    headers = AUTH | {"versionID": "production"}
    launch = await http.post(
        "/state/user/u2/interact", headers=headers, json={"request": {"type": "launch"}}
    )
    assert kinds(launch.json()) == ["text", "choice"]
    answer = await http.post(
        "/state/user/u2/interact",
        headers=headers,
        json={"action": {"type": "text", "payload": "x"}},
    )
    assert answer.json()[0]["payload"]["ai"] is True
    bad = await http.post("/state/user/u2/interact", headers=AUTH | {"versionID": "a b"}, json={})
    assert bad.status_code == 400


# --- HTTP: faults -------------------------------------------------------------------------------


async def test_429_looks_like_backend_utils(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.retry_after_s = 7
    sim.faults.fail_next(429, times=2)
    first = await post_turn(http, {"type": "launch"})
    second = await post_turn(http, {"type": "launch"})
    third = await post_turn(http, {"type": "launch"})
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert first.headers["X-RateLimit-Limit"] == "500"
    assert first.headers["X-RateLimit-Reset"].startswith("20")  # ISO date
    assert first.json()["code"] == 429 and first.json()["data"] == "Too Many Requests"


@pytest.mark.parametrize(
    ("status", "content_type"),
    [
        (400, "application/json"),
        (401, "application/json"),
        (404, "application/json"),
        (500, "application/json"),
        (408, "text/plain"),
    ],
)
async def test_pre_stream_statuses(
    sim: Simulator, http: httpx.AsyncClient, status: int, content_type: str
) -> None:
    sim.faults.fail_next(status)
    response = await post_turn(http, {"type": "launch"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    if status == 400:
        assert response.json()["name"] == "verror"


async def test_every_request_is_recorded_in_order(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.fail_next(500)
    await post_turn(http, {"type": "launch"}, variables={"x": 1})
    await post_turn(http, {"type": "launch"}, headers={})
    await http.delete("/state/user/u1", headers=AUTH)
    methods = [(r.method, r.path) for r in sim.requests]
    assert methods == [
        ("POST", stream_path()),
        ("POST", stream_path()),
        ("DELETE", "/state/user/u1"),
    ]
    first = sim.requests[0]
    assert first.json == {"action": {"type": "launch"}, "variables": {"x": 1}}
    assert first.query == STREAM_QUERY and first.headers["authorization"] == SIMULATOR_API_KEY
    assert sim.requests[0].time <= sim.requests[1].time <= sim.requests[2].time


async def test_user_id_is_url_decoded(sim: Simulator, http: httpx.AsyncClient) -> None:
    await post_turn(http, {"type": "launch"}, user="discord%3A1%20%C3%A9")
    assert sim.requests[-1].path == stream_path("discord:1 é")
    assert ("000000000000000000000000", "discord:1 é") in sim.state


async def test_close_after_events_inside_a_completion(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    await post_turn(http, {"type": "launch"})
    sim.faults.close_after_events = 4  # flow, block, start, one content chunk
    response = await post_turn(http, {"type": "text", "payload": "hello"})
    events = events_of(response.text)
    assert [e["event"] for e in events] == ["trace"] * 4
    assert json.loads(events[-1]["data"])["payload"]["state"] == "content"


async def test_internal_error_then_end(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.internal_error = True
    events = events_of((await post_turn(http, {"type": "launch"})).text)
    assert json.loads(events[-2]["data"])["payload"]["message"] == "An internal error occurred."
    assert events[-1]["event"] == "end"


async def test_injected_non_json_and_unknown_trace(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults.non_json_data = True
    sim.faults.unknown_trace = True
    events = events_of((await post_turn(http, {"type": "launch"})).text)
    assert events[0]["data"].startswith("{not json")
    assert json.loads(events[1]["data"])["type"] == "x-simulator-unknown"


def variant_faults() -> Iterator[Faults]:
    yield Faults(send_retry_line=True, send_keepalives=True)
    yield Faults(omit_space_after_colon=True, use_crlf=True, end_data="legacy")
    yield Faults(split_writes_bytes=1)


@pytest.mark.parametrize("faults", list(variant_faults()))
async def test_variants_carry_the_same_traces(
    sim: Simulator, http: httpx.AsyncClient, faults: Faults
) -> None:
    await post_turn(http, {"type": "launch"})
    plain = traces_of((await post_turn(http, {"type": "text", "payload": "hi"})).text)
    sim.faults = faults
    body = {"action": {"type": "text", "payload": "hi"}}
    async with aconnect_sse(
        http, "POST", stream_path(), params=STREAM_QUERY, headers=AUTH, json=body
    ) as source:
        events = [sse async for sse in source.aiter_sse()]
    variant = [json.loads(e.data) for e in events if e.event == "trace"]
    assert [untimed(t) for t in variant] == [untimed(t) for t in plain]
    assert events[-1].event == "end"
    if faults.send_keepalives:
        assert any(e.event == "message" and not e.data for e in events)


def untimed(trace: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trace.items() if k != "time"}


async def test_variant_bytes(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.faults = Faults(send_retry_line=True, send_keepalives=True, end_data="empty_object")
    raw = (await post_turn(http, {"type": "launch"})).text
    assert raw.startswith("retry: 2000\n\nid: 1\n")
    assert "\n\n:\n\nid: 2\n" in raw and raw.endswith("event: end\ndata: {}\n\n")
    sim.faults = Faults(omit_space_after_colon=True, use_crlf=True, end_data="legacy")
    raw = (await post_turn(http, {"type": "launch"})).text
    assert raw.startswith("id:1\r\nevent:trace\r\ndata:{")
    assert raw.endswith('event:end\r\ndata:{"type":"end"}\r\n\r\n')


# --- concurrency, disconnects, serve ------------------------------------------------------------


async def test_overlapping_turns_are_recorded_per_user() -> None:
    async with (
        Simulator(token_delay_s=0.01) as slow,
        httpx.AsyncClient(base_url=slow.url, trust_env=False) as client,
    ):
        await asyncio.gather(*(post_turn(client, {"type": "launch"}, user=u) for u in "ab"))
        await post_turn(client, {"type": "launch"}, user="c")
        await post_turn(client, {"type": "launch"}, user="c")
        text = {"type": "text", "payload": "hello"}
        await asyncio.gather(post_turn(client, text, user="a"), post_turn(client, text, user="a"))
    assert slow.max_concurrent_turns == {"a": 2, "b": 1, "c": 1}
    assert sorted(slow.finished_turns) == ["a", "a", "a", "b", "c", "c"]


async def test_client_going_away_is_recorded() -> None:
    async with (
        Simulator(token_delay_s=0.05) as slow,
        httpx.AsyncClient(base_url=slow.url, trust_env=False) as client,
    ):
        await post_turn(client, {"type": "launch"})
        body = {"action": {"type": "text", "payload": "long"}}
        async with client.stream(
            "POST", stream_path(), params=STREAM_QUERY, headers=AUTH, json=body
        ) as response:
            async for _ in response.aiter_bytes():
                break
        await asyncio.wait_for(slow.wait_for_disconnects(1), 5)
    assert slow.disconnects == ["u1"]
    assert slow.finished_turns == ["u1"]  # only the launch


class _UrlCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"http://\S+", record.getMessage())
        if found and not self.url.done():
            self.url.set_result(found.group(0))


async def test_serve_simulator_until_cancelled() -> None:
    catcher = _UrlCatcher()
    logger = logging.getLogger("core.simulator.server")
    logger.addHandler(catcher)
    logger.setLevel(logging.INFO)
    task = asyncio.create_task(serve_simulator("127.0.0.1", 0, EXAMPLE_SCRIPT))
    try:
        url = await asyncio.wait_for(catcher.url, 5)
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            response = await post_turn(client, {"type": "launch"})
        assert "Bean There" in response.text
    finally:
        task.cancel()
        logger.removeHandler(catcher)
        logger.setLevel(logging.NOTSET)
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("use_crlf", ("use_crlf", True)),
        ("noise=off", ("noise", False)),
        ("end_data=legacy", ("end_data", "legacy")),
        ("close_after_events=3", ("close_after_events", 3)),
        ("stall_s=1.5", ("stall_s", 1.5)),
    ],
)
def test_a_fault_from_the_command_line_sets_its_field(spec: str, expected: object) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("use_crfl", "unknown fault 'use_crfl'; the faults are: end_data,"),
        ("pending_statuses=500", "unknown fault"),  # a queue, not a switch
        ("use_crlf=maybe", "use_crlf is a switch"),
        ("end_data=json", "end_data must be one of none, empty_object, legacy"),
        ("close_after_events", "close_after_events needs a whole number"),
        ("stall_s=-1", "stall_s must not be negative"),
    ],
)
def test_a_bad_fault_says_what_is_wrong(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_fault(spec)
