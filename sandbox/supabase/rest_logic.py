"""PostgREST's logic trees (pure): `or=(a.eq.1,b.gt.2)`, `and=(...)`, their `not.` forms and
nesting (`or=(a.eq.1,and(b.gt.2,c.is.null))`), as supabase-py's `.or_()` and supabase-js's
`.or()` send them. Each leaf is `column.operator.value`, read by `rest_query`'s filter grammar
(values in double quotes may hold commas and parentheses)."""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql

Condition = Callable[[str, str], tuple[sql.Composable, list[object]]]
KEYS = ("or", "and", "not.or", "not.and")


class LogicError(ValueError):
    """The tree does not parse; the message says where."""


def _split(body: str) -> list[str]:
    """`body`'s items at top-level commas (not inside parentheses or double quotes)."""
    items, current, depth, quoted = [], "", 0, False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise LogicError(f"unbalanced ')' in {body!r}")
        if ch == "," and depth == 0 and not quoted:
            items.append(current)
            current = ""
        else:
            current += ch
    if depth or quoted:
        raise LogicError(f"unbalanced parentheses or quotes in {body!r}")
    items.append(current)
    return items


def tree(key: str, value: str, condition: Condition) -> tuple[sql.Composable, list[object]]:
    """The SQL of `key=value` (key one of KEYS) and its parameters."""
    negate = key.startswith("not.")
    joiner = " OR " if key.removeprefix("not.") == "or" else " AND "
    if not (value.startswith("(") and value.endswith(")")):
        raise LogicError(f"{key} expects (filter,filter,...), got {value!r}")
    clauses: list[sql.Composable] = []
    params: list[object] = []
    for item in _split(value[1:-1]):
        item = item.strip()
        head = item.split("(", 1)[0]
        if head in KEYS and "(" in item:
            clause, more = tree(head, item[len(head) :], condition)
        else:
            column, dot, expression = item.partition(".")
            if not dot:
                raise LogicError(f"expected column.operator.value, got {item!r}")
            clause, more = condition(column, _unquote(expression))
        clauses.append(sql.SQL("({})").format(clause))
        params.extend(more)
    if not clauses:
        raise LogicError(f"{key} has no filter")
    joined = sql.SQL(joiner).join(clauses)
    wrapped = sql.SQL("NOT ({})" if negate else "({})").format(joined)
    return wrapped, params


def _unquote(expression: str) -> str:
    """`eq."a, b"` -> `eq.a, b` (an `in.(...)` list keeps its own quotes)."""
    head, _, rest = expression.partition(".")
    if head == "not":
        inner_op, _, rest = rest.partition(".")
        head = f"not.{inner_op}"
    if len(rest) >= 2 and rest[0] == rest[-1] == '"' and not head.endswith("in"):
        rest = rest[1:-1]
    return f"{head}.{rest}"
