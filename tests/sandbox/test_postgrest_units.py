"""The sandbox PostgREST's URL grammar (pure): what it turns into SQL, and what it refuses with
PostgREST's PGRST100 instead of passing along (embedding, broken logic trees, names that are not
names)."""

from __future__ import annotations

import pytest
from psycopg import sql

from sandbox.supabase import rest_query
from sandbox.supabase.rest import Prefer


def _text(composable: sql.Composable) -> str:
    return composable.as_string(None)


def test_filters_become_parameters_and_names_identifiers() -> None:
    query = rest_query.parse(
        [
            ("select", "id,state:status"),
            ("id", "eq.a'b"),
            ("version", "lt.5"),
            ("status", 'in.(live,"failed, badly")'),
            ("error", "is.null"),
            ("step", "not.ilike.*git*"),
            ("order", "created_at.desc.nullslast"),
            ("limit", "10"),
        ]
    )
    text = _text(rest_query.read(sql.Identifier("deployments"), query))
    assert "a'b" not in text  # values are parameters, never SQL
    assert query.params == ["a'b", "5", "live", "failed, badly", "%git%"]
    assert '"status" AS "state"' in text
    assert 'ORDER BY "created_at" DESC NULLS LAST LIMIT 10' in text


@pytest.mark.parametrize(
    "items",
    [
        [("select", "*,projects(*,owners(*))")],
        [("select", "*,projects(id")],
        [("or", "a.eq.1,b.eq.2")],
        [("or", "(a.eq.1,b)")],
        [("or", "(a.eq.1,and(b.eq.2)")],
        [("and", '(a.eq."1)')],
        [('id"; drop table x; --', "eq.1")],
        [("id", "between.1")],
        [("id", "eq")],
        [("limit", "ten")],
        [("order", "id.sideways")],
        [("status", "in.live")],
        [("payload->>x", "eq.1")],
    ],
)
def test_what_is_not_in_the_grammar_is_a_parse_error(items: list[tuple[str, str]]) -> None:
    with pytest.raises(rest_query.ParseError):
        rest_query.parse(items)


def test_logic_trees_nest_and_keep_values_as_parameters() -> None:
    query = rest_query.parse(
        [
            ("or", '(status.eq.live,and(version.gt.3,step.not.is.null),error.eq."a, b (c)")'),
            ("not.and", "(id.in.(1,2),status.neq.failed)"),
        ]
    )
    text = _text(query.where)
    assert text == (
        '(("status" = %s) OR ((("version" > %s) AND (NOT ("step" IS NULL)))) OR ("error" = %s))'
        ' AND NOT (("id" IN (%s, %s)) AND ("status" <> %s))'
    )
    assert query.params == ["live", "3", "a, b (c)", "1", "2", "failed"]


def test_select_embeds_one_level() -> None:
    query = rest_query.parse([("select", "*,project:projects(*),steps(name,state)")])
    assert query.select is None
    assert query.embeds == [
        rest_query.Embed("project", "projects", None),
        rest_query.Embed("steps", "steps", ["name", "state"]),
    ]
    picked = rest_query.parse([("select", "id,state:status,projects(id)")])
    assert picked.select == [("id", "id"), ("state", "status")]
    assert picked.embeds == [rest_query.Embed("projects", "projects", ["id"])]


def test_prefer_headers() -> None:
    both = Prefer.parse(["return=representation,resolution=merge-duplicates", "count=exact"])
    assert both == Prefer(True, "merge", True)
    assert Prefer.parse(["missing=default"]).missing_default
    assert Prefer.parse(["resolution=ignore-duplicates"]) == Prefer(False, "ignore", False)
    assert Prefer.parse([]) == Prefer(False, None, False)
