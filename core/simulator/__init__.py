"""The built-in Voiceflow Dialog Manager simulator (SPEC §7, docs/voiceflow-api.md §10).

``Simulator`` serves the v2 streaming endpoint and the state endpoints on 127.0.0.1 with a
deterministic default agent (``core.simulator.agent``) or a ``--script`` file, every wire
variant and failure of the real runtime switchable through ``Simulator.faults``.

Default agent, on ``launch``: a welcome ``text`` and a ``choice``. On text, by keyword
(case-insensitive, anywhere in the message): ``buttons``, ``image``, ``card``, ``carousel``,
``long`` (~6,000 chars with a long code block), ``huge`` (~100,000 chars), ``code``, ``end``,
``noreply``, ``mixed``, ``static``, ``empty``; anything else gets a markdown echo. Button and
intent requests are answered with a completion naming the label; ``no-reply`` with
"Are you still there?".
"""

from core.simulator.agent import DefaultAgent, ScriptedAgent, load_script
from core.simulator.faults import Faults
from core.simulator.server import (
    SIMULATOR_API_KEY,
    SIMULATOR_PROJECT_ID,
    RecordedRequest,
    Simulator,
    serve_simulator,
)
from core.simulator.wire import EndData

__all__ = [
    "SIMULATOR_API_KEY",
    "SIMULATOR_PROJECT_ID",
    "DefaultAgent",
    "EndData",
    "Faults",
    "RecordedRequest",
    "ScriptedAgent",
    "Simulator",
    "load_script",
    "serve_simulator",
]
