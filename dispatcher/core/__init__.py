"""The dispatcher's core: one front door (`deployments.Deployments`) through which every state
change of a deployment goes, this replica's workers (`workers`, one `attempts.Attempt` each),
the pure decisions (`status`: the fold of a runner's events, the one outcome of every ending;
`policy`: what may be done now), the live-event hub, the metrics and the hook signature.

It talks to the outside only through its ports (`ports`: the `Store` and the `Launcher`), in
its own errors (`errors`), and imports no adapter and no driver (`tests/test_layers.py`)."""
