// supabase-js (postgrest-js) against the sandbox's PostgREST, run by
// tests/forgeboard/test_postgrest_writes.py: the calls a dashboard makes beyond the kit's, each
// answer checked against the shape real PostgREST gives it. Exits 0 when all hold.
//   node postgrest.mjs <project url> <secret key> <project id> <owner uuid>
import assert from "node:assert/strict";

import { createClient } from "@supabase/supabase-js";

const [url, key, project, owner] = process.argv.slice(2);
const db = createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false } });
const rows = ["a", "b"].map((n) => ({ request_id: `js-${n}-${project}`, project_id: project, owner_id: owner }));
rows[1].status = "running";

// defaultToNull: false sends Prefer: missing=default; count: 'exact' reads Content-Range.
const inserted = await db.from("deployments").insert(rows, { count: "exact", defaultToNull: false }).select();
assert.equal(inserted.error, null);
assert.equal(inserted.status, 201);
assert.equal(inserted.count, 2);
assert.deepEqual(inserted.data.map((r) => r.status).sort(), ["queued", "running"]);

const nulls = await db.from("deployments").insert(rows.map((r) => ({ ...r, request_id: r.request_id + "-2" })));
assert.equal(nulls.error?.code, "23502"); // without it, a missing status is NULL

const updated = await db.from("deployments").update({ step: "github" }, { count: "exact" }).eq("project_id", project);
assert.equal(updated.error, null);
assert.equal(updated.status, 204);
assert.equal(updated.count, 2);

const page = await db.from("deployments").select("id", { count: "exact" }).eq("project_id", project).range(0, 0);
assert.equal(page.error, null);
assert.equal(page.status, 206); // part of the rows, with a count
assert.equal(page.count, 2);
assert.equal(page.data.length, 1);

const either = await db.from("deployments").select("status").eq("project_id", project)
  .or("status.eq.running,and(status.eq.queued,version.eq.0)").order("status");
assert.equal(either.error, null);
assert.deepEqual(either.data, [{ status: "queued" }, { status: "running" }]);

const missing = await db.from("no_such_table").select("*");
assert.equal(missing.status, 404);
assert.equal(missing.error?.code, "PGRST205");
const column = await db.from("deployments").update({ no_such_column: 1 }).eq("project_id", project);
assert.equal(column.status, 400);
assert.equal(column.error?.code, "PGRST204");
console.log("ok");
