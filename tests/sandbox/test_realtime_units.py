"""The sandbox Realtime's pure parts: Phoenix frames in both serializations the clients use,
a join's bindings (ids, filters checked as Realtime checks them), and wal2json's actions turned
into changes with their transaction's commit time."""

from __future__ import annotations

import json

import pytest

from sandbox.supabase import realtime_wire as wire
from sandbox.supabase.realtime_feed import _timestamp, changes


def test_frames_in_both_serializations() -> None:
    v1 = '{"topic":"realtime:x","event":"phx_join","payload":{"a":1},"ref":"1","join_ref":"1"}'
    v2 = '["1","1","realtime:x","phx_join",{"a":1}]'
    assert wire.decode(v1, "1.0.0") == wire.decode(v2, "2.0.0")
    frame = wire.decode(v2, "2.0.0")
    assert json.loads(wire.encode(wire.reply(frame, "ok", {}), "2.0.0")) == [
        "1",
        "1",
        "realtime:x",
        "phx_reply",
        {"status": "ok", "response": {}},
    ]
    pushed = json.loads(wire.encode(wire.system("realtime:x", "system", "bye", False), "1.0.0"))
    assert pushed == {
        "topic": "realtime:x",
        "event": "system",
        "payload": {"channel": "x", "extension": "system", "message": "bye", "status": "error"},
        "ref": None,
        "join_ref": None,
    }
    with pytest.raises(wire.WireError):
        wire.decode(v1, "2.0.0")
    with pytest.raises(wire.WireError):
        wire.decode("not json", "1.0.0")


def test_bindings_get_stable_ids_and_checked_filters() -> None:
    config = {
        "postgres_changes": [
            {"event": "UPDATE", "schema": "public", "table": "deployments", "filter": "id=eq.7"},
            {"event": "*", "schema": "public"},
        ]
    }
    first, again = wire.bindings(config), wire.bindings(json.loads(json.dumps(config)))
    assert [b.id for b in first] == [b.id for b in again] and first[0].id != first[1].id
    assert first[0].reply_entry() == {**config["postgres_changes"][0], "id": first[0].id}
    assert first[0].wants("public", "deployments", "UPDATE")
    assert not first[0].wants("public", "deployments", "INSERT")
    assert first[1].wants("public", "anything", "DELETE")
    query = first[0].condition()
    assert query is not None and query.params == ["7"]
    for bad in ("id", "id=like.x*", "id=eq", "=eq.1", 'a"b=eq.1'):
        with pytest.raises(wire.WireError):
            wire.bindings({"postgres_changes": [{"event": "*", "schema": "public", "filter": bad}]})
    with pytest.raises(wire.WireError):
        wire.bindings({"postgres_changes": [{"event": "TRUNCATE", "schema": "public"}]})


def test_wal2json_actions_become_changes_with_their_commit_time() -> None:
    rows = [
        {"action": "B", "timestamp": "2026-12-08 05:00:00.123456+00"},
        {"action": "I", "schema": "public", "table": "t", "columns": [{"name": "id", "value": 1}]},
        {
            "action": "U",
            "schema": "public",
            "table": "t",
            "columns": [{"name": "id", "value": 1}, {"name": "n", "value": "x"}],
            "identity": [{"name": "id", "value": 1}],
        },
        {"action": "C", "timestamp": "2026-12-08 05:00:01.5+01"},
        {"action": "B"},
        {"action": "D", "schema": "public", "table": "t", "identity": [{"name": "id", "value": 1}]},
        {"action": "C", "timestamp": "2026-12-08 05:00:02+00"},
    ]
    found = changes(rows)
    assert [(c.kind, c.new, c.old) for c in found] == [
        ("INSERT", {"id": 1}, None),
        ("UPDATE", {"id": 1, "n": "x"}, {"id": 1}),
        ("DELETE", None, {"id": 1}),
    ]
    assert [c.commit_timestamp for c in found] == [
        "2026-12-08T04:00:01.500Z",
        "2026-12-08T04:00:01.500Z",
        "2026-12-08T05:00:02.000Z",
    ]
    assert _timestamp(None) == ""
