"""The Kubernetes launcher: `settings` (FORGE_K8S_*), `names` (names, labels, selectors),
`spec` (the Job and its Secret, pure), `status` (the API's answers read, its errors mapped),
`logs` (the pod's log followed), `launcher` (the official client)."""
