"""Supabase Realtime's wire format (pure): Phoenix channel messages as `@supabase/realtime-js`
and supabase-py's `realtime` speak them, and the `postgres_changes` bindings of a join.

Facts (realtime-js 2.x `lib/serializer.js`, `RealtimeChannel.js`; realtime-py `message.py`;
supabase/realtime's channel tests):
- The socket's `vsn` query parameter picks the text frame: `1.0.0` a JSON object `{topic,
  event, payload, ref, join_ref}`, `2.0.0` a JSON array `[join_ref, ref, topic, event,
  payload]`. Binary frames carry only user broadcasts, which the sandbox does not serve.
- A join (`phx_join` on `realtime:<name>`) sends `{config: {broadcast, presence,
  postgres_changes: [{event, schema, table?, filter?}], private}, access_token?}`; the reply
  is `phx_reply {status: ok, response: {postgres_changes: [binding + id]}}` in the same order
  (the clients match them one by one), then `presence_state {}` and, once changes flow, a
  `system {channel, extension: postgres_changes, message: "Subscribed to PostgreSQL",
  status: ok}`; server pushes carry `ref: null`.
- A change is `postgres_changes {ids: [binding ids], data: {schema, table, commit_timestamp,
  type, columns: [{name, type}], record?, old_record?, errors: null}}`.
- Heartbeats are `heartbeat` on topic `phoenix`, answered `phx_reply {status: ok, response:
  {}}`; `access_token {access_token}` on a channel replaces its token; `phx_leave` is answered
  and followed by `phx_close`.
- A filter is `column=op.value` with op one of eq, neq, lt, lte, gt, gte, in (PostgREST's
  syntax, so `rest_query` turns it into SQL).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from sandbox.supabase import rest_query

VERSIONS = ("1.0.0", "2.0.0")
FILTER_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")
EVENTS = ("*", "INSERT", "UPDATE", "DELETE")


class WireError(ValueError):
    """A frame or a join the sandbox cannot read; the message says what."""


@dataclass(frozen=True)
class Frame:
    topic: str
    event: str
    payload: dict[str, Any]
    ref: str | None = None
    join_ref: str | None = None


def decode(text: str, vsn: str) -> Frame:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise WireError(f"not JSON: {e}") from e
    if vsn == "2.0.0":
        if not (isinstance(raw, list) and len(raw) == 5):
            raise WireError("a 2.0.0 frame is [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = raw
    else:
        if not isinstance(raw, dict):
            raise WireError("a 1.0.0 frame is {topic, event, payload, ref}")
        join_ref, ref = raw.get("join_ref"), raw.get("ref")
        topic, event, payload = raw.get("topic"), raw.get("event"), raw.get("payload")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise WireError("topic and event must be strings")
    return Frame(
        topic,
        event,
        payload if isinstance(payload, dict) else {},
        None if ref is None else str(ref),
        None if join_ref is None else str(join_ref),
    )


def encode(frame: Frame, vsn: str) -> str:
    if vsn == "2.0.0":
        return json.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload])
    return json.dumps(
        {
            "topic": frame.topic,
            "event": frame.event,
            "payload": frame.payload,
            "ref": frame.ref,
            "join_ref": frame.join_ref,
        }
    )


def reply(request: Frame, status: str, response: dict[str, Any]) -> Frame:
    return Frame(
        request.topic,
        "phx_reply",
        {"status": status, "response": response},
        request.ref,
        request.join_ref,
    )


def push(topic: str, event: str, payload: dict[str, Any], join_ref: str | None = None) -> Frame:
    """A server push (`ref: null`)."""
    return Frame(topic, event, payload, None, join_ref)


def system(topic: str, extension: str, message: str, ok: bool) -> Frame:
    return push(
        topic,
        "system",
        {
            "channel": topic.removeprefix("realtime:"),
            "extension": extension,
            "message": message,
            "status": "ok" if ok else "error",
        },
    )


@dataclass(frozen=True)
class Binding:
    """One `postgres_changes` entry of a join, with the id the reply gives it."""

    id: int
    event: str
    schema: str
    table: str | None
    filter: str | None
    raw: dict[str, Any]

    def reply_entry(self) -> dict[str, Any]:
        return {**self.raw, "id": self.id}

    def wants(self, schema: str, table: str, kind: str) -> bool:
        return (
            self.event in ("*", kind)
            and self.schema in ("*", schema)
            and self.table in (None, "*", table)
        )

    def condition(self) -> rest_query.Query | None:
        """The filter as PostgREST's grammar reads it (None without one)."""
        if not self.filter:
            return None
        return rest_query.parse([parse_filter(self.filter)])


def parse_filter(raw: str) -> tuple[str, str]:
    column, eq, expression = raw.partition("=")
    op = expression.partition(".")[0]
    if not eq or not column or op not in FILTER_OPS or "." not in expression:
        raise WireError(
            f"invalid filter {raw!r}: expected column=op.value with op one of "
            + ", ".join(FILTER_OPS)
        )
    return column, expression


def bindings(config: dict[str, Any]) -> list[Binding]:
    """The join's `postgres_changes`, checked, each with a stable id (the same binding always
    gets the same id, as the real server's hash of it does)."""
    found = config.get("postgres_changes") or []
    if not isinstance(found, list):
        raise WireError("config.postgres_changes must be a list")
    result = []
    for entry in found:
        if not isinstance(entry, dict):
            raise WireError("each postgres_changes entry must be an object")
        event = str(entry.get("event", "*")).upper()
        if event not in EVENTS:
            raise WireError(f"invalid event {entry.get('event')!r}: one of " + ", ".join(EVENTS))
        schema = str(entry.get("schema") or "public")
        table = entry.get("table")
        flt = entry.get("filter")
        if flt:
            parse_filter(str(flt))
            try:
                rest_query.parse([parse_filter(str(flt))])
            except rest_query.ParseError as e:
                raise WireError(f"invalid filter {flt!r}: {e.details or e.message}") from e
        ident = zlib.crc32(json.dumps(entry, sort_keys=True).encode()) & 0x7FFFFFF
        result.append(
            Binding(
                ident,
                event,
                schema,
                None if table is None else str(table),
                None if not flt else str(flt),
                entry,
            )
        )
    return result
