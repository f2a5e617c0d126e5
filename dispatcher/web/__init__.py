"""The web layer: the HTTP API (`dispatcher.api`) and the pages (`dispatcher.ui`) side by side
in one app (`app.create_app`), over the core's front door (`core.deployments.Deployments`).
Neither imports the other, and none of it imports the store: what both need lives here
(`settings`, `params`, `sse`, `metrics`)."""
