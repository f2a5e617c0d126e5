"""The Docker launcher: `spec` (the hardened container and its `docker run` line, pure),
`files` (the attempt's host files: secrets, events copy, resume), `launcher` (the Docker SDK)."""
