"""One GraphQL request, run with graphql-core against gql_schema, answered in GitHub's shapes.

A document that does not parse or validate answers `{"errors": [...]}` with no `data` (so a
mutation with a bad selection never half-happens); a field that fails is null in `data` and
listed in `errors` with GitHub's `type` (e.g. NOT_FOUND, as gh expects from `repo view`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, execute_sync, parse, validate

from sandbox.github.gql_resolvers import RESOLVERS, Env, ResolveError, type_of
from sandbox.github.gql_schema import schema

log = logging.getLogger("forge-sandbox.github")
SCHEMA = schema()

# graphql-core's wording -> GitHub's (graphql-ruby) for the error gh users meet most.
_UNDEFINED_FIELD = re.compile(r"^Cannot query field '([^']+)' on type '([^']+)'\.")


def _resolve_field(source: Any, info: GraphQLResolveInfo[Env], **args: Any) -> Any:
    resolver = RESOLVERS.get(info.parent_type.name, {}).get(info.field_name)
    if resolver is not None:
        return resolver(source, args, info.context)
    return source.get(info.field_name) if isinstance(source, dict) else None


def _resolve_type(value: Any, info: GraphQLResolveInfo[Env], abstract_type: Any) -> str | None:
    return type_of(value)


def _format(error: GraphQLError) -> dict[str, Any]:
    body: dict[str, Any] = {}
    original = error.original_error
    message = error.message
    if isinstance(original, ResolveError):
        body["type"] = original.type
        message = original.message
    elif original is not None and not isinstance(original, GraphQLError):
        log.warning("github graphql resolver failed: %r", original)
    undefined = _UNDEFINED_FIELD.match(message)
    if undefined:
        field, type_name = undefined.groups()
        message = f"Field '{field}' doesn't exist on type '{type_name}'"
        body["extensions"] = {"code": "undefinedField", "typeName": type_name, "fieldName": field}
    if error.path is not None:
        body["path"] = list(error.path)
    if error.locations:
        body["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    body["message"] = message
    return body


def run(env: Env, query: str, variables: dict[str, Any], operation: str | None) -> dict[str, Any]:
    """The response document for one request (always answered with HTTP 200)."""
    try:
        document = parse(query)
    except GraphQLError as e:
        return {"errors": [_format(e)]}
    problems = validate(SCHEMA, document)
    if problems:
        return {"errors": [_format(e) for e in problems]}
    result = execute_sync(
        SCHEMA,
        document,
        context_value=env,
        variable_values=variables,
        operation_name=operation,
        field_resolver=_resolve_field,
        type_resolver=_resolve_type,
    )
    if result.errors and all(e.path is None for e in result.errors):
        # No field ran: the variables or the operation name were refused.
        return {"errors": [_format(e) for e in result.errors]}
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [_format(e) for e in result.errors]
    return response
