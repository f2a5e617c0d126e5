"""Request-body checks for the repository operations, with GitHub's own wording.

GitHub validates a body against the operation's JSON schema before anything else and answers
422 "Invalid request." naming the first offending property; unknown properties are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.github.errors import GitHubError, bad_json, invalid_field, invalid_request


@dataclass(frozen=True)
class Field:
    kind: str  # "string" | "boolean" | "integer" | "array" | "object"
    enum: tuple[str, ...] = ()
    nullable: bool = False


_S, _B, _I = Field("string"), Field("boolean"), Field("integer")
_MERGE_SETTINGS = {
    "allow_squash_merge": _B,
    "allow_merge_commit": _B,
    "allow_rebase_merge": _B,
    "allow_auto_merge": _B,
    "delete_branch_on_merge": _B,
    "use_squash_pr_title_as_default": _B,
    "squash_merge_commit_title": Field("string", ("PR_TITLE", "COMMIT_OR_PR_TITLE")),
    "squash_merge_commit_message": Field("string", ("PR_BODY", "COMMIT_MESSAGES", "BLANK")),
    "merge_commit_title": Field("string", ("PR_TITLE", "MERGE_MESSAGE")),
    "merge_commit_message": Field("string", ("PR_BODY", "PR_TITLE", "BLANK")),
}

CREATE = {
    "name": _S,
    "description": Field("string", nullable=True),
    "homepage": Field("string", nullable=True),
    "private": _B,
    "visibility": Field("string", ("public", "private")),
    "has_issues": _B,
    "has_projects": _B,
    "has_wiki": _B,
    "has_downloads": _B,
    "has_discussions": _B,
    "is_template": _B,
    "team_id": _I,
    "auto_init": _B,
    "gitignore_template": _S,
    "license_template": _S,
    **_MERGE_SETTINGS,
}

_CREATE_ONLY = ("team_id", "auto_init", "gitignore_template", "license_template")
UPDATE = {
    **{k: v for k, v in CREATE.items() if k not in _CREATE_ONLY},
    "default_branch": _S,
    "archived": _B,
    "allow_update_branch": _B,
    "allow_forking": _B,
    "web_commit_signoff_required": _B,
    "security_and_analysis": Field("object", nullable=True),
}

TOPICS = {"names": Field("array")}

_KIND_WORD = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "array": "an array",
    "object": "an object",
}


def _matches(value: Any, field: Field) -> bool:
    if value is None:
        return field.nullable
    if field.kind == "string":
        return isinstance(value, str)
    if field.kind == "boolean":
        return isinstance(value, bool)
    if field.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if field.kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def parse_json(raw: bytes) -> Any:
    """The decoded body, or GitHub's 400 "Problems parsing JSON". An empty body is `{}`."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_json() from e


def check(body: Any, fields: dict[str, Field], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The known properties of a valid body; GitHub's 422 for the first one that is wrong."""
    if not isinstance(body, dict):
        raise invalid_request(f"For 'links/0/schema', {json.dumps(body)} is not an object.")
    for name in required:
        if name not in body:
            raise invalid_request(f'"{name}" wasn\'t supplied.')
    clean: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in body:
            continue
        value = body[name]
        if not _matches(value, field):
            raise invalid_request(
                f"For 'properties/{name}', {json.dumps(value)} is not {_KIND_WORD[field.kind]}."
            )
        if field.enum and value not in field.enum:
            raise invalid_request(
                f"For 'properties/{name}', {json.dumps(value)} is not a member of "
                f"{json.dumps(list(field.enum))}."
            )
        clean[name] = value
    return clean


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def repo_name(raw: str) -> str:
    """GitHub's rewrite of a requested name: other characters become '-', `.git` is dropped."""
    name = _NAME_CHARS.sub("-", raw.strip())
    if name.lower().endswith(".git"):
        name = name[:-4]
    if not name or name in (".", ".."):
        raise invalid_field("name", "name is invalid", "custom", "Repository creation failed.")
    if len(name) > 100:
        raise invalid_field(
            "name",
            "name is too long (maximum is 100 characters)",
            "custom",
            "Repository creation failed.",
        )
    return name


_TOPIC = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
TOPIC_RULE = (
    "Topics must start with a lowercase letter or number, consist of 50 characters or less, "
    "and can include hyphens."
)


def topics(names: list[Any]) -> list[str]:
    """Lower-cased, de-duplicated topics; 422 (validation-error-simple) when one is invalid."""
    result: list[str] = []
    for item in names:
        if not isinstance(item, str):
            raise invalid_request(f"For 'items', {json.dumps(item)} is not a string.")
        topic = item.strip().lower()
        if not _TOPIC.match(topic):
            raise GitHubError(
                422, "Validation Failed", errors=[f"{item} is not a valid topic. {TOPIC_RULE}"]
            )
        if topic not in result:
            result.append(topic)
    if len(result) > 20:
        raise GitHubError(
            422, "Validation Failed", errors=["A repository cannot have more than 20 topics."]
        )
    return result
