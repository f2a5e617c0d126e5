"""Workers of the start-race tests: separate processes (spawned, so nothing is shared but the
files) that open a brand-new store or state dir at the same instant as their siblings, and
report what went wrong instead of raising."""

from __future__ import annotations

import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path


def open_new_files(rounds: list[str], barrier: Barrier, failures: Queue[str], worker: int) -> None:
    from dispatcher.store.open import open_store

    for path in rounds:
        try:
            barrier.wait(timeout=60)
        except Exception:
            failures.put(f"worker {worker}: barrier broken at {path}")
            return
        try:
            store = open_store(f"sqlite:///{path}")
            try:
                store.migrate()
                store.submit(f"p{worker}", "app", str(Path(path).parent), None)
            finally:
                store.close()
        except Exception:
            failures.put(f"worker {worker} on {path}:\n{traceback.format_exc()}")


def load_settings(state_dir: str, builds_root: str, barrier: Barrier, keys: Queue[str]) -> None:
    from dispatcher import settings

    barrier.wait(timeout=60)
    try:
        loaded = settings.load(
            {"FORGE_STATE_DIR": state_dir, "FORGE_BUILDS_ROOT": builds_root},
            require_secret=False,
        )
        keys.put(f"{loaded.runner.seal_public_key} {loaded.runner.seal_private_key}")
    except Exception:
        keys.put(f"failed:\n{traceback.format_exc()}")
