"""Launchers start one isolated runner per deploy attempt, each behind the core's `Launcher`
interface (`dispatcher.core.ports`), one package per backend with the launcher and its pure
spec side by side: `process/` (a local process, the embedded default), `docker/` (a hardened
container), `kubernetes/` (a Job). `common` holds what their specs share. No package imports
its backend's client at import time: `dispatcher.embedded.make_launcher` picks one."""
