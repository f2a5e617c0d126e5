"""Server-Sent Events, as the API's event stream and the pages' live log both send them."""

from __future__ import annotations

from sse_starlette import ServerSentEvent

from dispatcher.model import StoredEvent

SEP = "\n"  # not CRLF: a client splitting lines per chunk would break a CR|LF across two


def sse_chunk(batch: list[StoredEvent]) -> bytes:
    """A batch of events as one write: their SSE frames (id = event id, event = type, data =
    the event's JSON, made once per event for every watcher)."""
    return b"".join(
        ServerSentEvent(data=e.json, id=str(e.id), event=e.type, sep=SEP).encode() for e in batch
    )
