"""Run one job — one scenario with one strategy in a fresh world — and collect its figures.

Jobs run in worker processes (``bench.__main__``): discord.py's endpoints are class-level, and
a process of its own gives each strategy clean CPU and memory figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import AnswerResult, MessageLog, answer_result, merge
from bench.servers import Collected
from bench.streams import make_timeline
from bench.worlds import World, open_world, rss_bytes

__all__ = ["AnswerSpec", "Job", "JobResult", "run_job"]

RSS_SAMPLE_S = 0.05


@dataclass(frozen=True)
class AnswerSpec:
    key: str
    seed: int
    chars: int
    channel: str
    author: str
    at_s: float = 0.0  # when the user's message is sent, from the job's start


@dataclass(frozen=True)
class Job:
    scenario: str
    platform: str
    strategy: str
    answers: tuple[AnswerSpec, ...]
    fake_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 240.0


@dataclass
class JobResult:
    scenario: str
    platform: str
    strategy: str
    answers: list[AnswerResult] = field(default_factory=list)
    count_429: int = 0
    bridge_cpu_s: float = 0.0
    chars: int = 0
    rss_per_stream: float = 0.0
    peak_live: int = 0
    wall_s: float = 0.0
    error: str | None = None


def run_job(job: Job) -> JobResult:
    logging.basicConfig(level=logging.CRITICAL)
    try:
        return asyncio.run(_run(job))
    except Exception:
        return JobResult(job.scenario, job.platform, job.strategy, error=traceback.format_exc())


async def _run(job: Job) -> JobResult:
    texts = {a.key: make_timeline(a.seed, a.chars, key=a.key).text for a in job.answers}
    seeds = [(a.key, a.seed, a.chars) for a in job.answers]
    result = JobResult(job.scenario, job.platform, job.strategy)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_world(job.platform, job.strategy, seeds, Path(tmp), job.fake_options) as w:
            places = await _drive(job, w, result)
            collected: Collected = await w.servers.call("collect")
            result.answers = _answers(job, texts, collected, places)
            result.count_429 = collected.count_429
            result.peak_live = w.peak_live
    result.chars = sum(a.chars for a in result.answers)
    return result


async def _drive(job: Job, world: World, result: JobResult) -> dict[str, Any]:
    places: dict[str, Any] = {}
    rss0, peak = rss_bytes(), [rss_bytes()]
    cpu0, began = time.process_time(), time.monotonic()

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_bytes())
            await asyncio.sleep(RSS_SAMPLE_S)

    async def fire(spec: AnswerSpec) -> None:
        await asyncio.sleep(spec.at_s)
        places[spec.key] = await world.send(spec.key, spec.channel, spec.author)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(*(fire(a) for a in job.answers))
        await world.wait_finished(len(job.answers), job.timeout_s)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    result.wall_s = time.monotonic() - began
    result.bridge_cpu_s = time.process_time() - cpu0  # the fakes run in another process
    result.rss_per_stream = (peak[0] - rss0) / max(1, world.peak_live)
    return places


_DECORATION = re.compile(r"^(```|~~~)[^\n]*\n|(\n```)?( ▌| ⚪| \.\.\. ✍️)?$")


def _discord_answers(logs: dict[str, MessageLog], texts: dict[str, str]) -> dict[str, MessageLog]:
    """Each bot message goes to the answer whose text contains its final body, in order.

    Content, not object identity: any strategy (and any wrapper the renderer puts around its
    stream) is attributed the same way. Answers are unique (each opens with its own title).
    """
    found: dict[str, list[tuple[int, MessageLog]]] = {}
    for log in logs.values():
        body = _DECORATION.sub("", log.events[-1][2])[:400]
        if len(body) < 2:
            continue
        for key, text in texts.items():
            at = text.find(body)
            if at >= 0:
                found.setdefault(key, []).append((at, log))
                break
    return {key: merge([log for _, log in sorted(logs, key=lambda x: x[0])])
            for key, logs in found.items()}  # fmt: skip


def _answers(
    job: Job, texts: dict[str, str], collected: Collected, places: dict[str, Any]
) -> list[AnswerResult]:
    if job.platform == "discord":
        per_answer = _discord_answers(collected.logs, texts)
    else:
        per_answer = {key: collected.logs.get(tuple(place)) for key, place in places.items()}
    results = []
    for spec in job.answers:
        recorded = collected.recorded.get(spec.key)
        log = per_answer.get(spec.key)
        if recorded is None or log is None:
            raise RuntimeError(f"answer {spec.key}: nothing recorded ({job.strategy})")
        results.append(
            answer_result(spec.key, texts[spec.key], recorded.start, recorded.chunks, log)
        )
    return results
