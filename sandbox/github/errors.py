"""GitHub's REST error bodies: `basic-error` and `validation-error`, raised as one exception.

Handlers raise `GitHubError`; the API wrapper turns it into the JSON body GitHub sends,
`{"message", "documentation_url", "status"}` plus `errors` for validation failures.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

REST_DOCS = "https://docs.github.com/rest"
GRAPHQL_DOCS = "https://docs.github.com/graphql"


def _repos_doc(anchor: str) -> str:
    return f"{REST_DOCS}/repos/repos#{anchor}"


# Documentation URLs GitHub puts in error bodies, per operation.
DOCS = {
    "user": f"{REST_DOCS}/users/users#get-the-authenticated-user",
    "get-user": f"{REST_DOCS}/users/users#get-a-user",
    "get-org": f"{REST_DOCS}/orgs/orgs#get-an-organization",
    "list-org-repos": _repos_doc("list-organization-repositories"),
    "create-org-repo": _repos_doc("create-an-organization-repository"),
    "list-user-repos": _repos_doc("list-repositories-for-the-authenticated-user"),
    "create-user-repo": _repos_doc("create-a-repository-for-the-authenticated-user"),
    "get-repo": _repos_doc("get-a-repository"),
    "update-repo": _repos_doc("update-a-repository"),
    "delete-repo": _repos_doc("delete-a-repository"),
    "get-topics": _repos_doc("get-all-repository-topics"),
    "put-topics": _repos_doc("replace-all-repository-topics"),
    "get-branch": f"{REST_DOCS}/branches/branches#get-a-branch",
    "get-commit": f"{REST_DOCS}/commits/commits#get-a-commit",
    "rate-limit": (
        f"{REST_DOCS}/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user"
    ),
    "rate-limited": (
        f"{REST_DOCS}/overview/rate-limits-for-the-rest-api"
        "#about-the-primary-rate-limit-for-the-rest-api"
    ),
}


class GitHubError(Exception):
    """An error answer. `errors` makes it a validation-error; `doc` defaults to the route's."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[Any] | None = None,
        doc: str | None = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.doc = doc
        self.headers = headers or {}
        self.url = url

    def body(self, default_doc: str = REST_DOCS) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.doc or default_doc
        if self.url is not None:
            body["url"] = self.url
        body["status"] = str(self.status)
        return body

    def response(self, default_doc: str = REST_DOCS) -> JSONResponse:
        return JSONResponse(
            self.body(default_doc), status_code=self.status, headers=self.headers or None
        )


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body for an injected fault: GitHub's basic-error."""
    return GitHubError(status, message).body()


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def bad_json() -> GitHubError:
    return GitHubError(400, "Problems parsing JSON")


def invalid_request(detail: str) -> GitHubError:
    """A body that breaks the operation's JSON schema (GitHub's wording)."""
    return GitHubError(422, f"Invalid request.\n\n{detail}")


def name_taken(summary: str = "Repository creation failed.") -> GitHubError:
    return invalid_field("name", "name already exists on this account", "custom", summary)


def invalid_field(
    field: str, message: str, code: str = "invalid", summary: str = "Validation Failed"
) -> GitHubError:
    """A validation-error naming one field of a Repository."""
    return GitHubError(
        422,
        summary,
        errors=[{"resource": "Repository", "code": code, "field": field, "message": message}],
    )


def archived() -> GitHubError:
    return GitHubError(403, "Repository was archived so is read-only.")
