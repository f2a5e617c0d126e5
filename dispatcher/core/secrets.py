"""Which of a runner's variables are secrets: the runner's own list of them
(`runner.providers.catalog.SECRET_NAMES`: the providers' tokens and the sealing key) and any
name that reads like one. A secret goes to a deploy in its secrets file, never in its
environment, an argv or a label, and the dispatcher masks it in everything it writes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from runner.masking import Masker
from runner.providers.catalog import SECRET_NAMES

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return name in SECRET_NAMES or bool(_SECRET_NAME.search(name))


def split_env(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret): what may go in a runner's environment, what goes in its file."""
    plain = {k: v for k, v in values.items() if not is_secret_name(k)}
    secret = {k: v for k, v in values.items() if is_secret_name(k)}
    return plain, secret


def masker_for(runner_env: Mapping[str, str], also: Iterable[str] = ()) -> Masker:
    """A masker that knows every secret of `runner_env` and the values `also` names."""
    masker = Masker()
    for name, value in runner_env.items():
        if is_secret_name(name):
            masker.register(value)
    for value in also:
        masker.register(value)
    return masker
