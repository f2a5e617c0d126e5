"""The dispatcher's core: the queue's service, one attempt from launch to its end, the fold of
a runner's events into typed changes, the refusal policy, the live-event hub, the metrics and
the hook signature. It imports nothing from `dispatcher.api` (the HTTP adapter over it), and
talks to the outside only through the `Store` and `Launcher` interfaces."""
