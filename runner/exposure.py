"""What the Data API lets the app's users do, table by table: the grants of the API roles, RLS,
and the tables the app's code queries (`app_tables`). Pure: rows in, findings and a table out.

Two layers decide whether a request with the publishable key (role `anon`) or a signed-in
user's token (role `authenticated`) reaches a table. **Grants** decide whether the role may
touch the table at all: since 2026-05-30 new Supabase projects (since 2026-10-30 every project)
grant a new `public` table to no API role, so a migration without `GRANT` applies cleanly and
every query then fails with `42501 permission denied`. **RLS** decides which rows: a table
granted to `anon` with RLS off is readable and writable by anyone holding the publishable key,
which every visitor's browser does. A view runs as its owner unless it is `security_invoker`,
so the RLS of its tables does not apply either.

Findings:
- `unreachable` — a table the code queries that neither `anon` nor `authenticated` may use as
  the code does: an error, with the exact `GRANT` to add in a migration. It stops the deploy
  before production moves (the previous production deployment keeps serving).
- `open` — a table or view reachable by `anon` or `authenticated` with no RLS in the way: a
  warning, fatal under the policy `fail` (`FORGE_EXPOSURE_POLICY`).
- `missing` — a table the code queries that is not in an exposed schema: a warning (the name
  may be dynamic, or the call dead code).
forge-deploy never grants or revokes anything itself: the migrations are the app's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runner.app_tables import AppTable

API_ROLES = ("anon", "authenticated")
ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE")
_LETTER = {"SELECT": "S", "INSERT": "I", "UPDATE": "U", "DELETE": "D"}

# One row per table and view of the exposed schemas: what each API role may do there.
CATALOG_SQL = """
select n.nspname as schema, c.relname as name,
  case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
    when 'f' then 'foreign table' else 'table' end as kind,
  c.relrowsecurity as rls,
  coalesce('security_invoker=true' = any(c.reloptions), false) as invoker,
  (select count(*) from pg_policy p where p.polrelid = c.oid)::int as policies,
  r.rolname as role,
  has_schema_privilege(r.oid, n.oid, 'USAGE') as usage,
  has_any_column_privilege(r.oid, c.oid, 'SELECT') as "SELECT",
  has_any_column_privilege(r.oid, c.oid, 'INSERT') as "INSERT",
  has_any_column_privilege(r.oid, c.oid, 'UPDATE') as "UPDATE",
  has_table_privilege(r.oid, c.oid, 'DELETE') as "DELETE"
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join pg_roles r
where n.nspname = any(string_to_array($1, ','))
  and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and r.rolname in ('anon', 'authenticated')
order by 1, 2, r.rolname
"""


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # table | view | materialized view | foreign table
    rls: bool
    invoker: bool  # a view with security_invoker (RLS of its tables applies)
    policies: int
    grants: dict[str, tuple[str, ...]]  # API role -> privileges it holds (schema usage counted)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def reachable(self, privilege: str) -> bool:
        return any(privilege in self.grants.get(role, ()) for role in API_ROLES)

    @property
    def open(self) -> bool:
        """Reachable by an API role with nothing limiting the rows."""
        granted = any(self.grants.get(role) for role in API_ROLES)
        unguarded = not self.rls if self.kind == "table" else not self.invoker
        return granted and unguarded


@dataclass(frozen=True)
class Finding:
    kind: str  # unreachable | open | missing
    table: str
    message: str
    fix: str | None = None  # the SQL to add in a migration


@dataclass
class Report:
    schemas: tuple[str, ...]
    relations: list[Relation]
    app_tables: list[AppTable]
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The structured event's payload: no secret, only names and flags."""
        used = {t.qualified: sorted(t.privileges, key=ORDER.index) for t in self.app_tables}
        return {
            "schemas": list(self.schemas),
            "tables": [
                {
                    "table": r.qualified,
                    "kind": r.kind,
                    "rls": r.rls,
                    "policies": r.policies,
                    "grants": {role: list(r.grants.get(role, ())) for role in API_ROLES},
                    "app_uses": used.get(r.qualified, []),
                }
                for r in self.relations
            ],
            "app_tables": sorted(used),
            "errors": [asdict(f) for f in self.errors],
            "warnings": [asdict(f) for f in self.warnings],
        }


def relations(rows: list[dict[str, Any]]) -> list[Relation]:
    """The catalog query's rows (one per relation and API role) folded per relation."""
    by_name: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row["schema"]), str(row["name"]))
        entry = by_name.setdefault(key, {**row, "grants": {}})
        usage = bool(row.get("usage"))
        entry["grants"][str(row["role"])] = tuple(p for p in ORDER if usage and row.get(p))
    return [
        Relation(
            schema=schema,
            name=name,
            kind=str(entry["kind"]),
            rls=bool(entry["rls"]),
            invoker=bool(entry["invoker"]),
            policies=int(entry["policies"] or 0),
            grants=entry["grants"],
        )
        for (schema, name), entry in sorted(by_name.items())
    ]


def grant_sql(table: str, privileges: list[str]) -> str:
    """The GRANT a migration needs: to the publishable key's role, signed-in users, and the
    secret key's role (server code), as Supabase's own guidance writes it."""
    listed = ", ".join(p.lower() for p in privileges)
    return f"grant {listed} on table {table} to anon, authenticated, service_role;"


def analyse(schemas: tuple[str, ...], rels: list[Relation], used: list[AppTable]) -> Report:
    report = Report(schemas, rels, used)
    by_name = {r.qualified: r for r in rels}
    for table in used:
        relation = by_name.get(table.qualified)
        if relation is None:
            where = ", ".join(table.files[:3])
            exposed = table.schema in schemas
            why = "does not exist" if exposed else f"is in schema {table.schema}, not exposed"
            report.warnings.append(
                Finding(
                    "missing",
                    table.qualified,
                    f"the app queries {table.qualified} ({where}), which {why} in the Data API",
                )
            )
            continue
        lacking = [p for p in ORDER if p in table.privileges and not relation.reachable(p)]
        if lacking:
            fix = grant_sql(table.qualified, lacking)
            if relation.kind == "table" and not relation.rls:
                fix += f"\nalter table {table.qualified} enable row level security;"
            words = [p.lower() for p in lacking]
            verbs = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
            report.errors.append(
                Finding(
                    "unreachable",
                    table.qualified,
                    f"the app queries {table.qualified} ({', '.join(table.files[:3])}) but "
                    f"neither anon nor authenticated may {verbs} it: every such query answers "
                    f"42501 permission denied. Add to a migration: {fix}",
                    fix,
                )
            )
    for relation in rels:
        if relation.open:
            report.warnings.append(_open(relation))
    return report


def _open(relation: Relation) -> Finding:
    who = " and ".join(role for role in API_ROLES if relation.grants.get(role))
    reads = relation.reachable("SELECT")
    writes = any(relation.reachable(p) for p in ORDER[1:])
    can = " and ".join(w for w, yes in (("readable", reads), ("writable", writes)) if yes)
    if relation.kind == "table":
        why = "RLS is off"
        fix = f"alter table {relation.qualified} enable row level security;"
        advice = f"{fix} and add policies for who may see and change which rows"
    else:
        why = "it runs as its owner, so the RLS of its tables does not apply"
        fix = f"alter view {relation.qualified} set (security_invoker = true);"
        advice = fix
    return Finding(
        "open",
        relation.qualified,
        f"{relation.qualified} is {can} by anyone holding the publishable key ({who} granted, "
        f"{why}): {advice}",
        fix,
    )


def _letters(privileges: tuple[str, ...]) -> str:
    return "".join(_LETTER[p] if p in privileges else "-" for p in ORDER)


def render(report: Report) -> str:
    """The human table: one line per table and view, then the findings."""
    used = {t.qualified: t for t in report.app_tables}
    rows = [("table", "anon", "authenticated", "RLS", "policies", "app uses", "verdict")]
    flagged = {f.table: f.kind for f in [*report.errors, *report.warnings]}
    for r in report.relations:
        uses = used.get(r.qualified)
        rows.append(
            (
                r.qualified + ("" if r.kind == "table" else f" ({r.kind})"),
                _letters(r.grants.get("anon", ())),
                _letters(r.grants.get("authenticated", ())),
                ("on" if r.rls else "off") if r.kind == "table" else "n/a",
                str(r.policies),
                _letters(tuple(uses.privileges)) if uses else "",
                flagged.get(r.qualified, "ok"),
            )
        )
    for name, table in sorted(used.items()):
        if name not in {r.qualified for r in report.relations}:
            rows.append((name, "", "", "", "", _letters(tuple(table.privileges)), "missing"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = (
        f"Data API exposure (schemas {', '.join(report.schemas)}; "
        "S I U D = select insert update delete)"
    )
    findings = [f"ERROR {f.message}" for f in report.errors] + [
        f"WARNING {f.message}" for f in report.warnings
    ]
    return "\n".join([title, *lines, *findings])
