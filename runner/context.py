"""What every step gets: settings, the event writer, checkpoints, one HTTP client per provider,
the injected sleep and clock, and the cancel flag."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.checkpoints import Checkpoints
from runner.ensure import Settle
from runner.errors import Cancelled
from runner.events import EventType, EventWriter
from runner.http import ProviderHttp, RetryPolicy, Sleep, new_session
from runner.masking import Masker
from runner.pacing import Pacer
from runner.settings import Settings


@dataclass
class RunContext:
    settings: Settings
    events: EventWriter
    masker: Masker
    checkpoints: Checkpoints
    sleep: Sleep | None = None  # None: real time, cut short by `stop`
    clock: Callable[[], float] = time.monotonic
    cancel: threading.Event = field(default_factory=threading.Event)
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self.stop_reason = "cancelled"
        s = self.settings
        # A create the client gave up on may land up to about one more timeout later; a look
        # every quarter timeout stays far inside the providers' rate limits.
        timeout = s.run.http_timeout_s
        self.settle = Settle(2 * timeout, max(s.run.poll_interval_s, timeout / 4), self.clock)
        github_headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        # GitHub and Supabase count one budget per token; Vercel one per token and endpoint.
        self.github = self._client(
            "github", s.github.api_url, s.github.token, Pacer(shared=True), github_headers
        )
        self.supabase = self._client(
            "supabase", s.supabase.api_url, s.supabase.token, Pacer(shared=True)
        )
        self.vercel = self._client(
            "vercel",
            s.vercel.api_url,
            s.vercel.token,
            Pacer(shared=False),
            params={"teamId": s.vercel.org_id},
        )

    def _client(
        self,
        provider: str,
        base_url: str,
        token: str,
        pacer: Pacer,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> ProviderHttp:
        run = self.settings.run
        return ProviderHttp(
            provider,
            base_url,
            new_session(token, run.ca_file, headers),
            self.policy,
            self.wait,
            run.http_timeout_s,
            default_params=params,
            pacer=pacer,
            pace_sleep=self.wait_real,
        )

    def _sleep(self, seconds: float) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.cancel.wait(seconds)

    def wait(self, seconds: float) -> None:
        """Sleep (injected sleeper, or real time that `stop` cuts short), then check for a stop."""
        self.check_cancelled()
        if seconds > 0:
            self._sleep(seconds)
        self.check_cancelled()

    def wait_real(self, seconds: float) -> None:
        """`wait` in real time whatever sleep was injected: a provider's request budget comes
        back in real time, so pacing (`runner.pacing`) is never cut short, in tests either."""
        self.check_cancelled()
        if seconds > 0:
            self.cancel.wait(seconds)
        self.check_cancelled()

    def stop(self, reason: str) -> None:
        """Every step stops at its next wait or check (SIGTERM, or another branch failed)."""
        if not self.cancel.is_set():
            self.stop_reason = reason
            self.cancel.set()

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(self.stop_reason)

    def progress(self, step: str, message: str, **extra: Any) -> None:
        self.events.emit(EventType.STEP_PROGRESS, step=step, message=message, **extra)

    def poll(
        self,
        step: str,
        what: str,
        probe: Callable[[], Any],
        deadline_s: float,
    ) -> Any:
        """Call `probe` until it returns something not None, backing off from the poll interval
        up to twice it (a late poll adds its interval to the critical path); past the
        deadline raise TimeoutError naming `what`."""
        start = self.clock()
        interval = self.settings.run.poll_interval_s
        while True:
            self.check_cancelled()
            value = probe()
            if value is not None:
                return value
            if self.clock() - start > deadline_s:
                raise TimeoutError(f"{what}: still not ready after {deadline_s:.0f} s")
            self._sleep(interval)
            self.check_cancelled()
            interval = min(interval * 1.5, 2 * self.settings.run.poll_interval_s)
