"""Provider delays, scaled.

Every delay a provider imposes (Supabase provisioning, Vercel builds, ...) is declared here in
real-world seconds and multiplied by the time scale, so a `realistic` profile runs in test time.
The scale can change on a running sandbox; a resource's deadlines are fixed when it is created.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Real-world durations, in seconds, of the "realistic" profile.
REALISTIC_DELAYS: dict[str, float] = {
    "supabase.provision": 90.0,  # create -> ACTIVE_HEALTHY
    "supabase.api_keys": 2.0,  # create -> api keys readable (issued with the project)
    "vercel.upload": 0.1,  # one file's POST /v2/files round trip
    "vercel.queue": 5.0,  # QUEUED -> BUILDING
    "vercel.build": 120.0,  # BUILDING -> READY
    "vercel.alias": 3.0,  # READY -> aliasAssigned
    "vercel.promote": 2.0,  # promote -> domains switched
}


@dataclass
class Clock:
    scale: float = 0.02
    delays: dict[str, float] = field(default_factory=lambda: dict(REALISTIC_DELAYS))

    def now(self) -> float:
        return time.time()

    def delay(self, name: str) -> float:
        """Seconds that the named provider delay lasts now, after scaling."""
        return self.delays[name] * self.scale
