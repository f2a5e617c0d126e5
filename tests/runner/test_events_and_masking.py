"""The event schema and the masker, without I/O: every event parses back, secrets never leave."""

from __future__ import annotations

import io
import json

import pytest

from runner.events import EventFormatError, EventType, EventWriter, Outcome, parse_event
from runner.masking import MASK, Masker


def test_events_round_trip_with_rising_seq_and_a_final_eof() -> None:
    stream = io.StringIO()
    writer = EventWriter(stream, "dep-1", Masker(), now=lambda: "2026-01-01T00:00:00.000Z")
    writer.emit(EventType.STEP_STARTED, step="prepare")
    writer.emit(EventType.CHECKPOINT, key="github.repo", value="org/app")
    writer.eof(Outcome.LIVE)
    writer.emit(EventType.LOG, level="info", message="after eof")  # dropped: the stream ended
    events = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.type for e in events] == [EventType.STEP_STARTED, EventType.CHECKPOINT, EventType.EOF]
    assert events[-1].payload == {"outcome": "live", "exit_code": 0}
    assert all(e.deploy_id == "dep-1" and e.v == 1 for e in events)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 2}', "unsupported event version"),
        ('{"v":1,"type":"nope"}', "unknown event type"),
        ('{"v":1,"type":"eof","seq":0,"ts":"x","deploy_id":"d","payload":{}}', "seq"),
        ('{"v":1,"type":"eof","seq":1,"ts":"2026","deploy_id":"d","payload":{}}', "ts"),
        ('{"v":1,"type":"eof","seq":1,"ts":"2026Z","deploy_id":"d","payload":{}}', "lacks outcome"),
    ],
)
def test_parse_event_names_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(EventFormatError, match=problem):
        parse_event(line)


def test_masker_hides_secrets_in_plain_json_and_url_forms() -> None:
    masker = Masker()
    secret = 'p@ss/w"rd:1234'
    masker.register(secret)
    masker.register("abc")  # too short to be a secret: ignored rather than masking words
    assert masker.mask(f"password={secret}") == f"password={MASK}"
    assert secret not in masker.mask(json.dumps({"pw": secret}))
    assert (
        masker.mask("postgresql://u:p%40ss%2Fw%22rd%3A1234@host/db")
        == f"postgresql://u:{MASK}@host/db"
    )
    assert masker.mask("abc") == "abc"


def test_writer_masks_every_string_in_the_payload_and_ids() -> None:
    masker = Masker()
    masker.register("tok_supersecret_value")
    stream = io.StringIO()
    writer = EventWriter(stream, "dep", masker)
    writer.emit(
        EventType.LOG,
        level="info",
        message="calling https://x/?token=tok_supersecret_value",
        nested={"list": ["tok_supersecret_value", 3]},
    )
    text = stream.getvalue()
    assert "tok_supersecret_value" not in text
    event = parse_event(text.strip())
    assert event.payload["nested"] == {"list": [MASK, 3]}


class FullFile(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_the_events_copy_gets_every_line_first_and_a_failing_copy_is_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, copy = io.StringIO(), io.StringIO()
    writer = EventWriter(out, "d1", Masker(), copy=copy)
    writer.emit(EventType.LOG, level="info", message="one")
    writer.eof(Outcome.LIVE)
    assert copy.getvalue() == out.getvalue() and len(out.getvalue().splitlines()) == 2

    out = io.StringIO()
    writer = EventWriter(out, "d2", Masker(), copy=FullFile())
    writer.emit(EventType.LOG, level="info", message="one")
    writer.eof(Outcome.LIVE)
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 2]
    assert "events copy stopped taking lines" in capsys.readouterr().err
