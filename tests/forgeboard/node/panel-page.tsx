// The dashboard page of dashboard-server.ts: the kit's DeployPanel with the browser client
// (publishable key, the user's token) and the two server actions, called over HTTP as Next.js
// calls a "use server" function. Bundled for the browser by esbuild.

import { createClient } from "@supabase/supabase-js";
import { createRoot } from "react-dom/client";

import type { DeployResult } from "../../../integrations/forgeboard/deploy";
import { DeployPanel } from "../../../integrations/forgeboard/deploy-panel";
import type { LiveLinkResult } from "../../../integrations/forgeboard/live-link";

interface Config {
  supabaseUrl: string;
  publishableKey: string;
  token: string;
  projectId: string;
  deploymentId: string | null;
}

declare global {
  interface Window {
    FORGEBOARD: Config;
  }
}

async function call<T>(name: string, input: unknown): Promise<T> {
  const response = await fetch(`/actions/${name}`, { method: "POST", body: JSON.stringify(input) });
  return (await response.json()) as T;
}

const config = window.FORGEBOARD;
const supabase = createClient(config.supabaseUrl, config.publishableKey, {
  global: { headers: { Authorization: `Bearer ${config.token}` } },
  auth: { persistSession: false, autoRefreshToken: false },
});
// What supabase-js does for Realtime after a sign-in (the sandbox has none): the user's token
// is the channels' access_token, so RLS decides which changes reach the panel.
void supabase.realtime.setAuth(config.token);

createRoot(document.getElementById("root")!).render(
  <DeployPanel
    supabase={supabase}
    projectId={config.projectId}
    deploy={(input) => call<DeployResult>("deploy", input)}
    openLivePage={(input) => call<LiveLinkResult>("live-link", input)}
    initialDeploymentId={config.deploymentId}
  />,
);
