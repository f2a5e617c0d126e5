"""The local-process launcher: `plan` (argv, environment and files of one runner, pure),
`_wrap` (the wrapper that keeps a runner's exit status on disk), `launcher` (the processes)."""
