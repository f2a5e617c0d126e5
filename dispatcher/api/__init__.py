"""The dispatcher's HTTP API: `dispatcher.api.app.create_app(store, control, settings)`."""
