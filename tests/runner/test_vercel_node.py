"""Which Node.js the app's Vercel project builds on (pure: package.json bytes in, `N.x` out)."""

from __future__ import annotations

import json

import pytest

from runner.errors import BadInput
from runner.steps.vercel_node import node_version


def package(node: object = None, **extra: object) -> bytes:
    body: dict[str, object] = {"name": "app", **extra}
    if node is not None:
        body["engines"] = {"node": node}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("engines", "wanted"),
    [
        (None, "24.x"),
        ("24.x", "24.x"),
        ("22.x", "22.x"),
        ("22", "22.x"),
        ("^22.11.0", "22.x"),
        ("~24.1", "24.x"),
        (">=18", "24.x"),
        (">=22 <24", "22.x"),
        ("^20 || ^22", "22.x"),
        ("18.x || 24.x", "24.x"),
        ("*", "24.x"),
    ],
)
def test_the_app_gets_the_newest_supported_major_it_allows(
    engines: str | None, wanted: str
) -> None:
    assert node_version(package(engines)) == wanted


def test_no_package_json_or_no_engines_is_24() -> None:
    assert node_version(None) == "24.x"
    assert node_version(json.dumps({"name": "x", "engines": {"npm": ">=10"}}).encode()) == "24.x"


@pytest.mark.parametrize("engines", ["18.x", "20", "^20.18.1", "16 || 18", "21.x", ">=26"])
def test_an_unsupported_node_is_refused_naming_the_field_and_the_fix(engines: str) -> None:
    with pytest.raises(BadInput) as refused:
        node_version(package(engines))
    message = str(refused.value)
    assert f"engines.node {json.dumps(engines)}" in message
    assert '"engines": {"node": "24.x"}' in message


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (package("lts/hydrogen"), "is not a Node.js version range"),
        (package(24), '"engines" must be an object'),
        (json.dumps({"engines": "24.x"}).encode(), '"engines" must be an object'),
        (b"{not json", "not valid UTF-8 JSON"),
    ],
)
def test_a_malformed_engines_field_is_refused_saying_what_is_wrong(raw: bytes, named: str) -> None:
    with pytest.raises(BadInput) as refused:
        node_version(raw)
    assert named in str(refused.value)
