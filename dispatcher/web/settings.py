"""What the web layer is configured with (beside the front door it serves)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.core import signing
from dispatcher.core.metrics import METRICS, Metrics


@dataclass(frozen=True)
class WebSettings:
    hook_secret: bytes = field(repr=False)  # signs the hook's requests and the pages' links
    max_body_bytes: int = 64 * 1024
    clock: Callable[[], float] = time.time  # unix seconds, for the signature window
    window_s: float = signing.WINDOW_S
    sse_tick_s: float = 1.0  # how often a quiet event stream looks at the deployment's status
    sse_ping_s: float = 15.0  # SSE keep-alive comments
    metrics: Metrics = field(default_factory=lambda: METRICS)
    bundle_secret: bytes | None = field(default=None, repr=False)  # serves /v1/bundles/{token}
