"""Launchers start one isolated runner per deploy attempt: a process, a Docker container, or
(later) a Kubernetes Job, all behind `base.Launcher`."""
