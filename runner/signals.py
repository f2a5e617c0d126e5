"""SIGTERM, turned into a stop without deadlocking the runner.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: inside the event writer's lock, the masker's, a logging handler's, an Event's condition.
A handler that logs or takes a lock the interrupted code holds waits for itself forever; the
runner then writes nothing more and is killed at the end of the grace period, without its
`result` and `eof`. So the handler only writes a byte to a pipe, and a thread of its own reads
it and does the rest (`on_signal`) as ordinary code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


def on_sigterm(on_signal: Callable[[], None]) -> None:
    """From now on, for the process's life, each SIGTERM calls `on_signal()` from a thread
    named `sigterm`."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: a stop is already on its way
            os.write(write_end, b"T")

    def watch() -> None:
        while os.read(read_end, 1):
            on_signal()

    threading.Thread(target=watch, name="sigterm", daemon=True).start()
    signal.signal(signal.SIGTERM, handler)
