"""Human logs: masked, to stderr, and mirrored as `log` events on the event stream."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from runner.events import EventType, EventWriter
from runner.masking import Masker


class MaskedHandler(logging.Handler):
    def __init__(self, masker: Masker, writer: EventWriter | None, stream: TextIO) -> None:
        super().__init__()
        self.masker = masker
        self.writer = writer
        self.stream = stream
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.masker.mask(self.format(record))
            self.stream.write(text + "\n")
            self.stream.flush()
            if self.writer is not None and record.levelno >= logging.INFO:
                message = self.masker.mask(record.getMessage())
                self.writer.emit(
                    EventType.LOG,
                    level=record.levelname.lower(),
                    message=message,
                    logger=record.name,
                )
        except (OSError, ValueError):  # a closed stream must not crash the run
            self.handleError(record)


def install(masker: Masker, writer: EventWriter | None, stream: TextIO = sys.stderr) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(MaskedHandler(masker, writer, stream))
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "requests", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
