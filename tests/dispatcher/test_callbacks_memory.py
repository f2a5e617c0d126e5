"""The callback sender remembers the last status it sent for the newest deployments only: a
repeat is not sent twice, and the memory does not grow with every deployment ever run."""

from __future__ import annotations

from dispatcher import callbacks
from dispatcher.model import Deployment, Status


def dep(n: int, status: Status) -> Deployment:
    at = "2026-01-01T00:00:00Z"
    return Deployment(f"dep_{n:024x}", "p", "p", "/b", status, 1, at, at)


def test_repeats_are_dropped_and_the_memory_is_bounded() -> None:
    sender = callbacks.Callbacks("http://127.0.0.1:9/hook", b"secret")  # never started: no I/O
    for n in range(callbacks.REMEMBERED + 50):
        sender.status_changed(dep(n, Status.RUNNING))
    assert len(sender._last) == callbacks.REMEMBERED
    queued = sender._queue.qsize()
    newest = callbacks.REMEMBERED + 49
    sender.status_changed(dep(newest, Status.RUNNING))  # a repeat: not sent again
    assert sender._queue.qsize() == queued
    sender.status_changed(dep(newest, Status.LIVE))  # a change: sent
    assert sender._queue.qsize() == queued + 1
    sender.status_changed(dep(0, Status.RUNNING))  # forgotten long ago: sent again, harmless
    assert sender._queue.qsize() == queued + 2
