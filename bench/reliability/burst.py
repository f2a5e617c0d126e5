"""Load, the burst: REQUESTS signed `POST /v1/deployments` (HMAC-signed as the dashboard signs
them) sent from 32 threads at once to one `forge-dispatcher serve` (process launcher, SQLite,
FORGE_MAX_CONCURRENT=4) on a zero-delay sandbox. Where tests/dispatcher/test_e2e_burst.py
repeats a request 50 requests later, here the copies of one Idempotency-Key are sent side by
side, so they race for the key; and some keys also carry a request with another body.

The rule the API documents (`Idempotency-Key`: the same key with the same body returns the
first deployment, 200; with another body, 409): per key, the body that won the race has
exactly one 202, every other copy of it a 200 with the same deployment, and every request with
the other body a 409. Nothing else is an answer (no 5xx, no 401, no 422). Then every accepted
deployment must end `live` (nothing here makes one fail), the store must hold no deployment
that no answer named, and the providers one repo, one Supabase project and one Vercel project
per project, one Vercel deployment per deploy of it.

Supabase's budget (120 calls a minute per token, as the real one) is NOT lifted: all the
runners share one token and pace themselves on its x-ratelimit-* headers (runner/pacing.py),
so the queue drains at about 15-20 deploys a minute instead of failing on 429s (the few 429s
that still come are retried after the window's reset; counted, by endpoint, in the figures).
Every deployment must end on its own; one still going after the drain bound is counted stuck
and then cancelled (so the world is clean for the next kind), never left running.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.reliability.served import Served, judge_ends, judge_resources, serving
from bench.reliability.table import Verdict
from bench.reliability.world import World, unique_name

FULL_REQUESTS = 500
SAMPLE_REQUESTS = 100
THREADS = 32
CONCURRENCY = 4
# Supabase's 120 calls a minute over 6-8 calls a deploy lets 15-20 deploys a minute through
# (3-4 s each): the bound gives each three times that, plus two minutes of slack.
DRAIN_S_PER_DEPLOY = 12.0
DRAIN_SLACK_S = 120.0


@dataclass(frozen=True)
class Request:
    key: str
    project: str
    build: str  # build_dir: the body field the conflicting copy changes

    def body(self) -> dict[str, str]:
        return {"project_id": self.project, "project_name": self.project, "build_dir": self.build}


def plan(requests_n: int, seed: int, tag: str) -> list[Request]:
    """The requests in sending order: keys over requests_n/10 projects, each key sent 1-4
    times side by side; every 12th key also once with another build dir (another body)."""
    rng = random.Random(f"{seed}:burst")  # noqa: S311 (a sample, not a secret)
    projects = [f"lb{tag}-{i}" for i in range(max(5, requests_n // 10))]
    groups: list[list[Request]] = []
    total = 0
    while total < requests_n:
        n = len(groups)
        project = projects[n % len(projects)]
        first = Request(f"{tag}-k{n}", project, project)
        group = [first] * min(rng.choice((1, 1, 2, 3, 4)), requests_n - total)
        if n % 12 == 11 and total + len(group) < requests_n:
            group.insert(rng.randrange(len(group) + 1), Request(first.key, project, f"{project}-b"))
        groups.append(group)
        total += len(group)
    rng.shuffle(groups)
    return [r for group in groups for r in group]


def run(w: World, requests_n: int, seed: int) -> list[Verdict]:
    """One verdict per Idempotency-Key, then one for the store and the providers."""
    w.reset()
    w.sandbox.set_time_scale(0)
    try:
        with serving(
            w, "burst", FORGE_MAX_CONCURRENT=str(CONCURRENCY), FORGE_BACKOFF_SCALE="1"
        ) as served:
            return _burst(w, served, plan(requests_n, seed, unique_name("")[1:7]))
    finally:
        w.sandbox.set_time_scale(w.sandbox.time_scale)


def _send(served: Served, r: Request) -> tuple[int, dict[str, Any] | str]:
    try:
        response = served.api.request(
            "POST", "/v1/deployments", r.body(), {"Idempotency-Key": r.key}
        )
    except requests.RequestException as e:  # no answer at all: lost
        return 0, f"{type(e).__name__}: {e}"
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text[:300]


def _burst(w: World, served: Served, sent: list[Request]) -> list[Verdict]:
    for build in {r.build for r in sent}:
        served.build(build)
    traffic_before = len(w.sandbox.traffic())
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda r: _send(served, r), sent))
    answered_s = time.monotonic() - started
    verdicts, accepted = _judge_answers(sent, answers)
    final = judge_ends(served, accepted, DRAIN_SLACK_S + DRAIN_S_PER_DEPLOY * len(accepted))
    drained_s = time.monotonic() - started
    whole = Verdict(f"the store and the providers after {len(sent)} requests")
    _judge_store(whole, served, final)
    live = Counter(dict.fromkeys({r.project for r in sent}, 0))
    live.update(d["project_id"] for d in final.values() if d["status"] == "live")
    judge_resources(whole, w, live)
    traffic = w.sandbox.traffic()[traffic_before:]
    codes = Counter(str(code) for code, _ in answers)
    lives = sum(d["status"] == "live" for d in final.values())
    whole.figures = {
        "requests": len(sent),
        "keys": len({r.key for r in sent}),
        "deployments": len(final),
        "answer_codes": dict(sorted(codes.items())),
        "answered_s": round(answered_s, 2),
        "requests_per_s": round(len(sent) / answered_s, 1),
        "drained_s": round(drained_s, 1),
        "deploys_per_min": round(lives / drained_s * 60, 1),
        "provider_429s": dict(
            Counter(
                f"{t['service']} {t['method']} {'/'.join(t['path'].split('/')[:3])}"
                for t in traffic
                if t["status"] == 429
            )
        ),
        "supabase_calls": sum(t["service"] == "supabase" for t in traffic),
    }
    print(f"load: burst: {whole.figures}", flush=True)
    return [*verdicts, whole]


def _judge_answers(
    sent: list[Request], answers: list[tuple[int, dict[str, Any] | str]]
) -> tuple[list[Verdict], dict[str, Verdict]]:
    """Per key, the answers against the rule; and each accepted deployment's key verdict."""
    by_key: dict[str, list[tuple[Request, int, Any]]] = defaultdict(list)
    for r, (code, body) in zip(sent, answers, strict=True):
        by_key[r.key].append((r, code, body))
    verdicts: list[Verdict] = []
    accepted: dict[str, Verdict] = {}
    for key, replies in by_key.items():
        bodies = {r.build for r, _, _ in replies}
        verdict = Verdict(f"{key}: {len(replies)} requests, {len(bodies)} bodies")
        verdicts.append(verdict)
        for _, code, body in replies:
            if code not in (200, 202, 409):
                verdict.lost.append(f"answered {code}: {str(body)[:300]}")
        ok = [(r, code, body) for r, code, body in replies if code in (200, 202)]
        if not ok:
            verdict.lost.append("no request of this key was accepted")
            continue
        ids = {body["id"] for _, _, body in ok}
        winners = {r.build for r, _, _ in ok}
        if len(ids) > 1 or len(winners) > 1:
            verdict.duplicated.append(f"{len(ids)} deployments for bodies {sorted(winners)}")
        creations = sum(code == 202 for _, code, _ in ok)
        if creations != 1:
            (verdict.duplicated if creations > 1 else verdict.lost).append(f"{creations} 202s")
        winner = sorted(winners)[0]
        for r, code, _ in replies:
            if r.build == winner and code == 409:
                verdict.lost.append("a copy of the winning body answered 409")
            if r.build != winner and code != 409:
                verdict.duplicated.append(f"the other body answered {code}, not 409")
        if Path(ok[0][2]["build_dir"]).name != winner:
            verdict.duplicated.append(f"the deployment builds {ok[0][2]['build_dir']}")
        for dep_id in ids:
            accepted[dep_id] = verdict
    return verdicts, accepted


def _judge_store(verdict: Verdict, served: Served, final: dict[str, dict[str, Any]]) -> None:
    stored = served.statuses()
    extra = sorted(set(stored) - set(final))
    if extra:
        verdict.duplicated.append(f"{len(extra)} deployments no answer named: {extra[:5]}")
    if len(stored) == 500:  # the API's most: a row past it would go unseen
        verdict.other.append("more deployments than the list shows: extras not checked")
