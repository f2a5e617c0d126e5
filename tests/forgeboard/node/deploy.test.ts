// deploy.ts against a real dispatcher and the sandbox's dashboard project, with supabase-js:
// run by tests/forgeboard/test_deploy_action.py (`node --test` on the tsc output), which sets
// FORGEBOARD_TEST_* and owns the dispatcher, the projects and the users' tokens.

import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient, type SupabaseClient } from "@supabase/supabase-js";

import { deploy, signHook, type DispatcherConfig } from "../../../integrations/forgeboard/deploy";
import { env } from "./env";

const dashboardUrl = env("DASHBOARD_URL");
const publishableKey = env("PUBLISHABLE_KEY");
const dispatcher: DispatcherConfig = { url: env("DISPATCHER_URL"), hookSecret: env("HOOK_SECRET") };

/** The server action's client: the publishable key and the signed-in user's access token. */
function asUser(token: string): SupabaseClient {
  return createClient(dashboardUrl, publishableKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

const alice = { token: env("ALICE_TOKEN"), client: asUser(env("ALICE_TOKEN")) };

async function dispatcherDeployments(projectId: string): Promise<Array<{ id: string }>> {
  const path = `/v1/deployments?project_id=${encodeURIComponent(projectId)}`;
  const stamp = (Date.now() / 1000 + Math.random() / 1000).toFixed(6);
  const response = await fetch(dispatcher.url + path, { headers: signHook(dispatcher.hookSecret, "", stamp) });
  assert.equal(response.status, 200, await response.clone().text());
  const body = (await response.json()) as { deployments: Array<{ id: string }> };
  return body.deployments;
}

async function rowsFor(requestId: string): Promise<Array<Record<string, unknown>>> {
  const { data, error } = await alice.client.from("deployments").select("*").eq("request_id", requestId);
  assert.equal(error, null);
  return data ?? [];
}

test("a deploy inserts the row, the hook accepts it, the mirror takes it live", async () => {
  const requestId = crypto.randomUUID();
  const result = await deploy(alice.client, dispatcher, { projectId: env("PROJECT_ONE"), requestId }, alice.token);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.replayed, false);
  assert.match(result.dispatcherId, /^dep_[0-9a-f]{24}$/);
  const rows = await rowsFor(requestId);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.id, result.deploymentId);
  assert.equal(rows[0]!.project_id, env("PROJECT_ONE"));
  for (let i = 0; i < 1200; i++) {
    // a bound on reads; the mirror writes the row as the deploy goes
    const [row] = await rowsFor(requestId);
    if (row && row.status === "live") {
      assert.equal(row.dispatcher_id, result.dispatcherId);
      assert.ok(String(row.app_url).startsWith("https://"));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail("the row never went live");
});

test("a double submit deploys once", async () => {
  const requestId = crypto.randomUUID();
  const input = { projectId: env("PROJECT_TWO"), requestId };
  const [first, second] = await Promise.all([
    deploy(alice.client, dispatcher, input, alice.token),
    deploy(alice.client, dispatcher, input, alice.token),
  ]);
  assert.ok(first.ok && second.ok, JSON.stringify([first, second]));
  assert.equal(first.deploymentId, second.deploymentId);
  assert.equal(first.dispatcherId, second.dispatcherId);
  const third = await deploy(alice.client, dispatcher, input, alice.token);
  assert.ok(third.ok && third.replayed && third.dispatcherId === first.dispatcherId);
  assert.equal((await rowsFor(requestId)).length, 1);
  assert.deepEqual(
    (await dispatcherDeployments(env("PROJECT_TWO"))).map((d) => d.id),
    [first.dispatcherId],
  );
});

test("a forged signature is refused with 401 and deploys nothing", async () => {
  const forged = { ...dispatcher, hookSecret: "not-the-hook-secret-at-all" };
  const result = await deploy(alice.client, forged, { projectId: env("PROJECT_THREE"), requestId: crypto.randomUUID() }, alice.token);
  assert.ok(!result.ok);
  assert.equal(result.code, "hook_refused");
  assert.equal(result.httpStatus, 401);
  assert.deepEqual(await dispatcherDeployments(env("PROJECT_THREE")), []);
});

test("someone else's project, no user, bad input: refused before any row", async () => {
  const requestId = crypto.randomUUID();
  const others = await deploy(alice.client, dispatcher, { projectId: env("BOBS_PROJECT"), requestId }, alice.token);
  assert.ok(!others.ok);
  assert.equal(others.code, "no_such_project");
  const stranger = await deploy(asUser(publishableKey), dispatcher, { projectId: env("PROJECT_THREE"), requestId }, publishableKey);
  assert.ok(!stranger.ok);
  assert.equal(stranger.code, "not_signed_in");
  const bad = await deploy(alice.client, dispatcher, { projectId: "no spaces allowed", requestId }, alice.token);
  assert.ok(!bad.ok);
  assert.equal(bad.code, "bad_input");
  assert.deepEqual(await rowsFor(requestId), []);
  assert.deepEqual(await dispatcherDeployments(env("BOBS_PROJECT")), []);
});
