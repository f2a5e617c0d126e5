// The "open live page" server action's core: a one-use link to forge-deploy's live page of one
// deployment, minted at click time for the signed-in user's own row. The link is signed as the
// dispatcher checks it (dispatcher/ui/links.py), with FORGE_HOOK_SECRET, so it is minted here
// without a call to the dispatcher and the secret stays on the server:
//
//   <page url>/ui/login?scope=deployment:<id>&exp=<unix s>&nonce=<32 hex>&sig=sha256=<hex>
//   sig = HMAC-SHA256(FORGE_HOOK_SECRET, "<exp>.forge-ui-link deployment:<id> <nonce>")
//
// The link opens that deployment only (its page, log, events and actions), is good once, for
// `validS` seconds (at most an hour), and two are never equal (the nonce).

import { createHmac, randomBytes } from "node:crypto";

import type { SupabaseClient } from "@supabase/supabase-js";

const ROW_ID = /^[0-9a-f-]{36}$/;
const LINK_S = 300;

export interface LivePageConfig {
  pageUrl: string; // the dispatcher as the user's browser reaches it, e.g. https://deploy.example
  hookSecret: string; // FORGE_HOOK_SECRET
  now?: () => number; // milliseconds since the epoch
  validS?: number;
}

export type LiveLinkFailure =
  | "bad_input"
  | "not_signed_in"
  | "no_such_deployment"
  | "not_started"
  | "dashboard_error";

export type LiveLinkResult =
  | { ok: true; url: string }
  | { ok: false; code: LiveLinkFailure; message: string };

export function mintLiveLink(config: LivePageConfig, dispatcherId: string): string {
  const scope = `deployment:${dispatcherId}`;
  const expires = Math.floor((config.now ?? Date.now)() / 1000 + (config.validS ?? LINK_S));
  const nonce = randomBytes(16).toString("hex");
  const digest = createHmac("sha256", config.hookSecret)
    .update(`${expires}.forge-ui-link ${scope} ${nonce}`)
    .digest("hex");
  const query = new URLSearchParams({ scope, exp: String(expires), nonce, sig: `sha256=${digest}` });
  return `${config.pageUrl.replace(/\/+$/, "")}/ui/login?${query.toString()}`;
}

/** A link to the live page of the user's deployment `deploymentId` (the dashboard's row id). */
export async function liveLink(
  supabase: SupabaseClient,
  config: LivePageConfig,
  input: { deploymentId: string },
  accessToken?: string, // without it, the client's session (cookies with @supabase/ssr)
): Promise<LiveLinkResult> {
  if (!ROW_ID.test(input.deploymentId)) {
    return { ok: false, code: "bad_input", message: "deploymentId must be a row id (uuid)" };
  }
  const { data: auth, error: authError } = await supabase.auth.getUser(accessToken);
  if (authError || !auth.user) {
    return { ok: false, code: "not_signed_in", message: "sign in to open the live page" };
  }
  // RLS shows a user their own rows only: someone else's is "no such deployment".
  const row = await supabase
    .from("deployments")
    .select("dispatcher_id")
    .eq("id", input.deploymentId)
    .maybeSingle<{ dispatcher_id: string | null }>();
  if (row.error) {
    return { ok: false, code: "dashboard_error", message: row.error.message };
  }
  if (!row.data) {
    const message = `no deployment ${input.deploymentId} of yours`;
    return { ok: false, code: "no_such_deployment", message };
  }
  if (!row.data.dispatcher_id) {
    return { ok: false, code: "not_started", message: "forge-deploy has not taken it yet" };
  }
  return { ok: true, url: mintLiveLink(config, row.data.dispatcher_id) };
}
