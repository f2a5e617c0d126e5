"""SIGTERM, turned into a stop without deadlocking the runner.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: inside the event writer's lock, the masker's, a logging handler's, an Event's condition.
A handler that logs or takes a lock the interrupted code holds waits for itself forever; the
runner then writes nothing more and is killed at the end of the grace period, without its
`result` and `eof`. And the kernel gives a process's signal to any of its threads that can take
it (a main thread stopped for a moment passes it on): the main thread, blocked with no timeout
(the pipeline waiting for its branches), then never runs the handler at all.

So no Python handler does the work. CPython's C-level handler writes the signal's number to
the wakeup fd (`signal.set_wakeup_fd`) at once, in whichever thread took the signal; a thread
of its own reads that pipe and does the rest (`on_signal`) as ordinary code.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


def on_sigterm(on_signal: Callable[[], None]) -> None:
    """From now on, for the process's life, each SIGTERM calls `on_signal()` from a thread
    named `sigterm`. Call it from the main thread (the wakeup fd is the main thread's)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        while numbers := os.read(read_end, 64):
            for number in numbers:  # every signal with a Python handler writes its number
                if number == signal.SIGTERM:
                    on_signal()

    threading.Thread(target=watch, name="sigterm", daemon=True).start()
    signal.signal(signal.SIGTERM, _nothing)  # a Python handler: the C handler then writes
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)


def _nothing(signum: int, frame: FrameType | None) -> None:
    """The Python-level SIGTERM handler: the wakeup fd has told the `sigterm` thread already."""
