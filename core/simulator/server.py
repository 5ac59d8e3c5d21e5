"""The Voiceflow Dialog Manager simulator: an aiohttp app on 127.0.0.1 (SPEC §7, api §10).

Routes (state is shared by all, per (projectID, userID)):

* ``POST /v2/project/{projectID}/user/{userID}/interact/stream`` — the SSE stream;
  ``environment`` query (default ``development``), ``completion_events=true``, ``state=true``.
* ``POST /state/user/{userID}/interact`` — the same turn as a JSON array (``versionID`` header).
* ``GET|PUT|DELETE /state/user/{userID}``, ``PATCH /state/user/{userID}/variables``.

Auth: the ``Authorization`` header (any case) must equal the key, raw — ``Bearer <key>`` is
refused like a wrong key. Every request is recorded in order (:attr:`Simulator.requests`)
before any check, so tests can assert what the client sent even when it was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from core.simulator.agent import (
    Agent,
    DefaultAgent,
    collapse_completions,
    expand_completions,
    load_script,
    text_trace,
)
from core.simulator.faults import Faults, backend_utils_body, error_response
from core.simulator.state import Conversation, StateStore
from core.simulator.stream import TurnStream, decorate

__all__ = [
    "SIMULATOR_API_KEY",
    "SIMULATOR_PROJECT_ID",
    "RecordedRequest",
    "Simulator",
    "serve_simulator",
]

log = logging.getLogger(__name__)

SIMULATOR_API_KEY = "VF.DM.000000000000000000000000.simulator"
SIMULATOR_PROJECT_ID = "000000000000000000000000"
ENDED_TEXT = "(conversation ended — send launch)"
SHUTDOWN_TIMEOUT_S = 1.0
#: Pending connections the listening socket holds (aiohttp defaults to 128): hundreds of
#: conversations opening streams at once must queue, not overflow into SYN retries.
LISTEN_BACKLOG = 1024
_ENVIRONMENT = re.compile(r"^(development|production|[0-9a-fA-F]{24})$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # decoded
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive
    json: Any  # the parsed body, or None
    time: float  # time.monotonic()
    raw_path: str = ""  # as sent, still percent-encoded


class Simulator:
    """The simulator as an async context manager; ``url`` is valid once entered."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = SIMULATOR_API_KEY,
        project_id: str = SIMULATOR_PROJECT_ID,
        token_delay_s: float = 0.02,
        script: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.project_id = project_id
        self.token_delay_s = token_delay_s
        self.agent: Agent = load_script(script) if script is not None else DefaultAgent()
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self.state = StateStore()
        self.disconnects: list[str] = []  # userIDs whose client went away mid-stream
        self.finished_turns: list[str] = []  # userIDs, in the order their turns completed
        self.max_concurrent_turns: dict[str, int] = {}
        self._active_turns: dict[str, int] = {}
        self._closing = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        # handler_cancellation: a client that goes away cancels its handler at once, which is
        # how the simulator notices a stopped stream (recorded in `disconnects`).
        self._runner = web.AppRunner(
            self._app(),
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=LISTEN_BACKLOG)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- waiting, for tests ----------------------------------------------------------------

    async def wait_for_requests(self, count: int, *, path_contains: str = "") -> None:
        """Return once ``count`` requests whose path contains ``path_contains`` were seen."""
        await self._wait(lambda: sum(path_contains in r.path for r in self.requests) >= count)

    async def wait_for_disconnects(self, count: int = 1) -> None:
        await self._wait(lambda: len(self.disconnects) >= count)

    async def wait_for_turns(self, count: int) -> None:
        await self._wait(lambda: len(self.finished_turns) >= count)

    async def _wait(self, is_done: Callable[[], bool]) -> None:
        if is_done():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((is_done, future))
        try:
            await future
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not future]

    def _notify(self) -> None:
        for is_done, future in self._waiters:
            if not future.done() and is_done():
                future.set_result(None)

    # --- app -------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        stream = "/v2/project/{project_id}/user/{user_id}/interact/stream"
        app.router.add_post(stream, self._interact_stream)
        app.router.add_post("/state/user/{user_id}/interact", self._interact)
        app.router.add_get("/state/user/{user_id}", self._get_state)
        app.router.add_put("/state/user/{user_id}", self._put_state)
        app.router.add_delete("/state/user/{user_id}", self._delete_state)
        app.router.add_patch("/state/user/{user_id}/variables", self._patch_variables)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self._record(request)
        if self.faults.pending_statuses:
            status = self.faults.pending_statuses.popleft()
            return error_response(status, retry_after_s=self.faults.retry_after_s)
        key = request.headers.get("Authorization")
        if key is None:
            return error_response(401, "Auth Key Required")
        if key != self.api_key:
            return error_response(401, "Unauthorized")
        return await handler(request)

    async def _record(self, request: web.Request) -> None:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                json=parsed,
                time=time.monotonic(),
                raw_path=request.rel_url.raw_path,
            )
        )
        log.debug("simulator: %s %s", request.method, request.path)
        self._notify()

    # --- turns -----------------------------------------------------------------------------

    async def _interact_stream(self, request: web.Request) -> web.StreamResponse:
        user_id = request.match_info["user_id"]
        if request.match_info["project_id"] != self.project_id:
            return error_response(401, "Unauthorized")  # the key belongs to another project
        refused = self._check_environment(request.query.get("environment", "development"))
        if refused is not None:
            return refused
        parsed = await _parse_turn(request, "action")
        if isinstance(parsed, web.Response):
            return parsed
        is_streaming = request.query.get("completion_events") == "true"
        events = decorate(self._run_turn(user_id, *parsed, is_streaming=is_streaming), self.faults)
        wants_state = request.query.get("state") == "true"
        state = self.state.get(self.project_id, user_id).to_json() if wants_state else None
        turn = TurnStream(request, self.faults, self.token_delay_s, self._closing, state)
        async with self._turn_scope(user_id):
            response = await turn.run(events)
        if turn.has_client_gone:
            self._client_gone(user_id)
        else:
            self._turn_finished(user_id)
        return response

    async def _interact(self, request: web.Request) -> web.StreamResponse:
        user_id = request.match_info["user_id"]
        refused = self._check_environment(request.headers.get("versionID", "development"))
        if refused is not None:
            return refused
        parsed = await _parse_turn(request, "action", "request")
        if isinstance(parsed, web.Response):
            return parsed
        async with self._turn_scope(user_id):
            traces = self._run_turn(user_id, *parsed, is_streaming=False)
        self._turn_finished(user_id)
        stamp = int(time.time() * 1000)
        return web.json_response([{**t, "time": t.get("time", stamp)} for t in traces])

    def _check_environment(self, environment: str) -> web.Response | None:
        if not _ENVIRONMENT.match(environment):
            return error_response(400, f"Cannot resolve version alias: {environment}")
        if environment == "production" and self.faults.production_unpublished:
            return error_response(404, "Voiceflow project was not published to production")
        return None

    def _run_turn(
        self,
        user_id: str,
        action: dict[str, Any],
        variables: dict[str, Any],
        *,
        is_streaming: bool,
    ) -> list[dict[str, Any]]:
        is_new = (self.project_id, user_id) not in self.state
        conversation = self.state.get(self.project_id, user_id)
        conversation.variables.update(variables)
        if action["type"] == "launch" or is_new:  # the runtime starts a user it has no state for
            conversation.launch()
        elif not conversation.is_running:
            return [text_trace(ENDED_TEXT)]
        traces = expand_completions(self.agent.respond(action))
        if any(t.get("type") == "end" for t in traces):
            conversation.finish()
        return traces if is_streaming else collapse_completions(traces)

    @contextlib.asynccontextmanager
    async def _turn_scope(self, user_id: str) -> AsyncIterator[None]:
        """Count overlapping turns per userID; a cancelled handler means the client left."""
        active = self._active_turns.get(user_id, 0) + 1
        self._active_turns[user_id] = active
        self.max_concurrent_turns[user_id] = max(active, self.max_concurrent_turns.get(user_id, 0))
        try:
            yield
        except asyncio.CancelledError:
            if not self._closing.is_set():
                self._client_gone(user_id)
            raise
        finally:
            self._active_turns[user_id] -= 1

    def _turn_finished(self, user_id: str) -> None:
        self.finished_turns.append(user_id)
        self._notify()

    def _client_gone(self, user_id: str) -> None:
        log.debug("simulator: client went away during the turn of %r", user_id)
        self.disconnects.append(user_id)
        self._notify()

    # --- state -----------------------------------------------------------------------------

    async def _get_state(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_environment(request.headers.get("versionID", "development"))
        if refused is not None:
            return refused
        return web.json_response(self._conversation(request).to_json())

    async def _put_state(self, request: web.Request) -> web.StreamResponse:
        try:
            conversation = Conversation.from_json(await _json_body(request))
        except ValueError as exc:  # the state stays as it was
            return _bad_request(str(exc))
        self.state.replace(self.project_id, request.match_info["user_id"], conversation)
        return web.json_response(conversation.to_json())

    async def _delete_state(self, request: web.Request) -> web.StreamResponse:
        self.state.delete(self.project_id, request.match_info["user_id"])
        return web.Response(status=200)

    async def _patch_variables(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object of variables")
        conversation = self._conversation(request)
        conversation.variables.update(body)
        return web.json_response(conversation.to_json())

    def _conversation(self, request: web.Request) -> Conversation:
        return self.state.get(self.project_id, request.match_info["user_id"])


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _bad_request(data: str) -> web.Response:
    return web.Response(
        status=400, text=backend_utils_body(400, data), content_type="application/json"
    )


async def _parse_turn(
    request: web.Request, *fields: str
) -> tuple[dict[str, Any], dict[str, Any]] | web.Response:
    """``(action, variables)`` from the body; ``fields`` are the accepted names of the action."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object")
    action = next((body[f] for f in fields if f in body), None)
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        return _bad_request("action.type is required")
    state = body.get("state") or {}
    if not isinstance(state, dict):
        return _bad_request("state must be an object")
    variables = body.get("variables") or state.get("variables") or {}
    if not isinstance(variables, dict):
        return _bad_request("variables must be an object")
    return action, variables


async def serve_simulator(
    host: str, port: int, script: Path | None, *, faults: Mapping[str, object] | None = None
) -> None:
    """Serve the simulator until cancelled (``vf-bridge simulator``); ``faults``: fields of
    :class:`Faults` to set for the whole run (``--fault``)."""
    async with Simulator(host=host, port=port, script=script) as simulator:
        for name, value in (faults or {}).items():
            setattr(simulator.faults, name, value)
        # The simulator key and project are public constants, not secrets: print them so an
        # operator can point another bridge at this simulator.
        log.info(
            "Voiceflow simulator on %s — VOICEFLOW_API_URL=%s VOICEFLOW_API_KEY=%s "
            "VOICEFLOW_PROJECT_ID=%s",
            simulator.url,
            simulator.url,
            SIMULATOR_API_KEY,
            SIMULATOR_PROJECT_ID,
        )
        if faults:
            log.info("faults on: %s", ", ".join(f"{n}={v}" for n, v in faults.items()))
        await asyncio.Event().wait()
