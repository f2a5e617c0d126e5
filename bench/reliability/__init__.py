"""The reliability suite: fault matrix, crash points, secret scan, hostile input — one table.

.venv/bin/python -m bench.reliability [--sample N --seed S] [--only KIND,...] [--out FILE]
"""
