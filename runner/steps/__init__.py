"""The pipeline's steps: idempotent ensure_* operations, each taking the RunContext first."""
