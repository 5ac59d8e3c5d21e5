"""Simulated Voiceflow user state, keyed by (projectID, userID) and shared by every route.

Mirrors general-runtime (docs/voiceflow-api.md §2.3): ``launch`` resets stack and storage but
keeps variables; DELETE wipes everything; after an ``end`` trace the conversation is over until
the next ``launch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Conversation", "StateStore"]

_START_FRAME = {"programID": "simulator", "diagramID": "main", "nodeID": "start"}
#: The parts of a state body, with the JSON type each must have.
_PARTS = (
    ("variables", dict, "an object"),
    ("stack", list, "an array"),
    ("storage", dict, "an object"),
)


@dataclass
class Conversation:
    variables: dict[str, Any] = field(default_factory=dict)
    stack: list[Any] = field(default_factory=list)
    storage: dict[str, Any] = field(default_factory=dict)

    @property
    def is_running(self) -> bool:
        """A conversation runs between a ``launch`` and its ``end`` trace."""
        return bool(self.stack)

    def launch(self) -> None:
        self.stack = [dict(_START_FRAME)]
        self.storage = {}

    def finish(self) -> None:
        self.stack = []

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "storage": self.storage, "variables": self.variables}

    @classmethod
    def from_json(cls, raw: Any) -> Conversation:
        """A state as PUT sends it; parts left out are empty.

        Raises ValueError (a 400 for the client) for a body or part of the wrong type, which
        must neither crash the route nor wipe the state.
        """
        if not isinstance(raw, dict):
            raise ValueError("the body must be a JSON object")
        for name, kind, what in _PARTS:
            if raw.get(name) is not None and not isinstance(raw[name], kind):
                raise ValueError(f"{name} must be {what}")
        return cls(
            variables=dict(raw.get("variables") or {}),
            stack=list(raw.get("stack") or []),
            storage=dict(raw.get("storage") or {}),
        )


class StateStore:
    """In-memory state per (projectID, userID)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], Conversation] = {}

    def get(self, project_id: str, user_id: str) -> Conversation:
        return self._states.setdefault((project_id, user_id), Conversation())

    def replace(self, project_id: str, user_id: str, conversation: Conversation) -> None:
        self._states[(project_id, user_id)] = conversation

    def delete(self, project_id: str, user_id: str) -> None:
        self._states.pop((project_id, user_id), None)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._states
