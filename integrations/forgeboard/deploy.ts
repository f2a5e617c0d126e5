// The ForgeBoard server action's core: check the signed-in user and their project, insert the
// `deployments` row with supabase-js, and call forge-deploy's hook, signed as the dispatcher
// checks it (dispatcher/core/signing.py):
//
//   X-Forge-Timestamp: <unix seconds, a fraction allowed>
//   X-Forge-Signature: sha256=<hex HMAC-SHA256(FORGE_HOOK_SECRET, "<timestamp>.<raw body>")>
//
// A double click deploys once: the button's `requestId` (made once per rendered button) finds
// the same row (unique per owner), and the row id is the hook's Idempotency-Key
// (`forgeboard:<row id>`), so the dispatcher answers the second call with the first
// deployment. The same key is how forge-deploy's status mirror finds the row to write.
//
// Runs on the server only (the hook secret must never reach a browser): call it from a
// `"use server"` action with the request's Supabase client (see README).

import { createHmac } from "node:crypto";

import type { SupabaseClient } from "@supabase/supabase-js";

import type { DeploymentStatus } from "./deployment";

export const TIMESTAMP_HEADER = "X-Forge-Timestamp";
export const SIGNATURE_HEADER = "X-Forge-Signature";
export const KEY_PREFIX = "forgeboard:";

const PROJECT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const REQUEST_ID = /^[A-Za-z0-9_-]{8,200}$/;

export interface DispatcherConfig {
  url: string; // forge-deploy's hook, e.g. https://deploy.internal:8080
  hookSecret: string; // FORGE_HOOK_SECRET
  fetch?: typeof fetch;
  now?: () => number; // milliseconds since the epoch
  timeoutMs?: number;
}

export interface DeployInput {
  projectId: string;
  requestId: string; // the click's id: crypto.randomUUID() once per rendered button
}

export type DeployFailure =
  | "bad_input"
  | "not_signed_in"
  | "no_such_project"
  | "dashboard_error"
  | "hook_refused"
  | "hook_unreachable";

export type DeployResult =
  | {
      ok: true;
      deploymentId: string; // the dashboard's row id
      dispatcherId: string; // forge-deploy's deployment id
      status: DeploymentStatus;
      replayed: boolean; // a repeated submit: the first deployment, not a new one
    }
  | {
      ok: false;
      code: DeployFailure;
      message: string;
      deploymentId?: string;
      httpStatus?: number;
    };

let lastStamp = 0;

/** Strictly rising timestamps (microseconds): two submits never share a signature. */
function timestamp(now: () => number): string {
  const stamp = Math.max(now() / 1000, lastStamp + 1e-6);
  lastStamp = stamp;
  return stamp.toFixed(6);
}

export function signHook(secret: string, body: string, stamp: string): Record<string, string> {
  const digest = createHmac("sha256", secret).update(`${stamp}.${body}`).digest("hex");
  return { [TIMESTAMP_HEADER]: stamp, [SIGNATURE_HEADER]: `sha256=${digest}` };
}

interface ProjectRow {
  id: string;
  name: string;
  build_dir: string;
}

function failure(
  code: DeployFailure,
  message: string,
  extra: { deploymentId?: string; httpStatus?: number } = {},
): DeployResult {
  return { ok: false, code, message, ...extra };
}

export async function deploy(
  supabase: SupabaseClient,
  dispatcher: DispatcherConfig,
  input: DeployInput,
  accessToken?: string, // without it, the client's session (cookies with @supabase/ssr)
): Promise<DeployResult> {
  if (!PROJECT_ID.test(input.projectId)) {
    return failure("bad_input", "projectId must be 1-128 of A-Z a-z 0-9 _ . : -");
  }
  if (!REQUEST_ID.test(input.requestId)) {
    return failure("bad_input", "requestId must be 8-200 of A-Z a-z 0-9 _ -");
  }
  const { data: auth, error: authError } = await supabase.auth.getUser(accessToken);
  if (authError || !auth.user) {
    return failure("not_signed_in", "sign in to deploy");
  }
  const user = auth.user;

  // RLS shows a user their own projects only: someone else's is "no such project".
  const project = await supabase
    .from("projects")
    .select("id, name, build_dir")
    .eq("id", input.projectId)
    .maybeSingle<ProjectRow>();
  if (project.error) {
    return failure("dashboard_error", project.error.message);
  }
  if (!project.data) {
    return failure("no_such_project", `no project ${input.projectId} of yours`);
  }

  const queued = await supabase.from("deployments").upsert(
    { request_id: input.requestId, project_id: input.projectId, owner_id: user.id },
    { onConflict: "owner_id,request_id", ignoreDuplicates: true },
  );
  if (queued.error) {
    return failure("dashboard_error", queued.error.message);
  }
  const row = await supabase
    .from("deployments")
    .select("id")
    .eq("owner_id", user.id)
    .eq("request_id", input.requestId)
    .single<{ id: string }>();
  if (row.error) {
    return failure("dashboard_error", row.error.message);
  }
  const deploymentId = row.data.id;

  const body = JSON.stringify({
    project_id: project.data.id,
    project_name: project.data.name,
    build_dir: project.data.build_dir,
  });
  const send = dispatcher.fetch ?? fetch;
  let response: Response;
  try {
    response = await send(`${dispatcher.url.replace(/\/+$/, "")}/v1/deployments`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Idempotency-Key": KEY_PREFIX + deploymentId,
        ...signHook(dispatcher.hookSecret, body, timestamp(dispatcher.now ?? Date.now)),
      },
      body,
      signal: AbortSignal.timeout(dispatcher.timeoutMs ?? 15_000),
    });
  } catch (e) {
    const reason = e instanceof Error ? e.name : "error";
    return failure("hook_unreachable", `forge-deploy did not answer (${reason})`, {
      deploymentId,
    });
  }
  const answer: unknown = await response.json().catch(() => null);
  if (response.status !== 200 && response.status !== 202) {
    return failure("hook_refused", errorMessage(answer, response.status), {
      deploymentId,
      httpStatus: response.status,
    });
  }
  const created = answer as { id: string; status: DeploymentStatus };
  return {
    ok: true,
    deploymentId,
    dispatcherId: created.id,
    status: created.status,
    replayed: response.status === 200,
  };
}

function errorMessage(answer: unknown, status: number): string {
  const error = (answer as { error?: { code?: string; message?: string } } | null)?.error;
  return error?.message
    ? `forge-deploy refused the deploy (${status} ${error.code ?? ""}): ${error.message}`
    : `forge-deploy answered ${status}`;
}
