"""Interaction routes of the fake Discord: callbacks, webhook follow-ups, @original, command sync.

Rules modelled (docs/discord.md §3): the initial response must come within the deadline (3 s) or
the interaction is unknown (10062); a second response is 40060; follow-ups and @original need an
initial response first (else 10015 Unknown Webhook). After a type-5 deferral the first follow-up
replaces the loading message, as Discord does. For component interactions answered with type 6/7,
@original is the message the component is on.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.discord_limits import FormError, validate_message
from tests.fakes.discord_model import FLAG_EPHEMERAL, FLAG_LOADING, FakeMessage, InteractionState
from tests.fakes.discord_rest import Call, Reply, RestCore, unknown_message

CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE = 4, 5
CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE = 6, 7


def unknown_interaction() -> FormError:
    return FormError(404, 10062, "Unknown interaction")


class InteractionRoutes(RestCore):
    def __init__(self, *, interaction_deadline_s: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.interactions: dict[str, InteractionState] = {}
        self._commands: dict[str | None, list[dict[str, Any]]] = {}
        self._deadline_s = interaction_deadline_s

    @property
    def slash_commands(self) -> list[dict[str, Any]]:
        """Every registered command, global first, as returned to the client (with ids)."""
        return [cmd for scope in sorted(self._commands, key=str) for cmd in self._commands[scope]]

    def _put_commands(self, call: Call) -> Reply:
        guild_id = call.params.get("gid")
        known = {c["name"]: c["id"] for c in self._commands.get(guild_id, [])}
        registered = []
        for cmd in call.body or []:
            entry = {
                "type": 1,
                "description": "",
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                **cmd,
                "id": known.get(cmd["name"]) or self._ids.new(),
                "application_id": self.application_id,
                "version": "1",
            }
            if guild_id is not None:
                entry["guild_id"] = guild_id
            registered.append(entry)
        self._commands[guild_id] = registered
        return Reply(200, registered)

    # -- initial response -------------------------------------------------------------------------

    def _callback(self, call: Call) -> Reply:
        state = self.interactions.get(call.params["iid"])
        if state is None or state.token != call.params["token"]:
            raise unknown_interaction()
        elapsed = self._now() - state.dispatched_t
        if state.responded:
            raise FormError(400, 40060, "Interaction has already been acknowledged.")
        if elapsed > self._deadline_s:
            raise unknown_interaction()
        body = call.body or {}
        kind, data = int(body["type"]), body.get("data") or {}
        message = self._apply_callback(state, kind, data)
        state.responded, state.response_type = True, kind
        state.response_body, state.response_after_s = body, elapsed
        if not call.query.get("with_response"):
            return Reply(204)
        return Reply(200, self._callback_response(state, kind, message))

    def _apply_callback(
        self, state: InteractionState, kind: int, data: dict[str, Any]
    ) -> FakeMessage | None:
        if kind == CALLBACK_MESSAGE:
            validate_message(data)
            message = self.new_message(state.channel_id, data, webhook_id=self.application_id)
        elif kind == CALLBACK_DEFERRED_MESSAGE:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            body = {"content": "", "flags": flags}
            message = self.new_message(state.channel_id, body, webhook_id=self.application_id)
        elif kind in (CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE) and state.message_id:
            message = self.messages[state.message_id]
            if kind == CALLBACK_UPDATE:
                self.edit_message(message, data)
        else:
            return None
        state.original_message_id = message.id
        return message

    def _callback_response(
        self, state: InteractionState, kind: int, message: FakeMessage | None
    ) -> dict[str, Any]:
        interaction: dict[str, Any] = {
            "id": state.id,
            "type": state.type,
            "response_message_loading": kind == CALLBACK_DEFERRED_MESSAGE,
            "response_message_ephemeral": bool(message and message.flags & FLAG_EPHEMERAL),
        }
        response: dict[str, Any] = {"interaction": interaction}
        if message is not None and kind != CALLBACK_DEFERRED_UPDATE:
            interaction["response_message_id"] = message.id
        if message is not None and kind in (CALLBACK_MESSAGE, CALLBACK_UPDATE):
            response["resource"] = {"type": kind, "message": self.payload(message)}
        return response

    # -- follow-ups and @original -----------------------------------------------------------------

    def _hook_state(self, call: Call) -> InteractionState:
        token = call.params["token"]
        state = next((s for s in self.interactions.values() if s.token == token), None)
        if state is None or not state.responded or call.params["app"] != self.application_id:
            raise FormError(404, 10015, "Unknown Webhook")
        return state

    def _hook_message(self, call: Call) -> tuple[InteractionState, FakeMessage]:
        state = self._hook_state(call)
        mid = call.params["mid"]
        if mid == "@original":
            mid = state.original_message_id or ""
        elif mid not in state.followups and mid != state.original_message_id:
            raise unknown_message()
        msg = self.messages.get(mid)
        if msg is None or msg.deleted:
            raise unknown_message()
        return state, msg

    def _followup(self, call: Call) -> Reply:
        state = self._hook_state(call)
        body = call.body or {}
        validate_message(body)
        original = self.messages.get(state.original_message_id or "")
        if original is not None and original.flags & FLAG_LOADING and not original.deleted:
            self.edit_message(original, {**body, "flags": original.flags & ~FLAG_LOADING})
            message = original
        else:
            message = self.new_message(state.channel_id, body, webhook_id=self.application_id)
            state.followups.append(message.id)
        wait = call.query.get("wait", "").lower() in ("1", "true")
        return Reply(200, self.payload(message)) if wait else Reply(204)

    def _hook_get(self, call: Call) -> Reply:
        return Reply(200, self.payload(self._hook_message(call)[1]))

    def _hook_edit(self, call: Call) -> Reply:
        _, msg = self._hook_message(call)
        body = dict(call.body or {})
        if msg.flags & FLAG_LOADING:
            body["flags"] = msg.flags & ~FLAG_LOADING
        self.edit_message(msg, body)
        return Reply(200, self.payload(msg))

    def _hook_delete(self, call: Call) -> Reply:
        self.remove_message(self._hook_message(call)[1])
        return Reply(204)
