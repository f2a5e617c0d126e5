"""The dispatcher's pages (`/ui/`): watch, cancel, retry and tear down deploys in a browser."""
