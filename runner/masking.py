"""Secrets are values with a mask: every secret is registered before it can reach an output.

The masker replaces each registered value, and the forms it takes inside JSON strings and URLs,
by `***`. Values are matched longest first so a secret that contains another is masked whole.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words; no real secret is this short


class Masker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_LENGTH:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def __contains__(self, value: str) -> bool:
        return value in self._values
