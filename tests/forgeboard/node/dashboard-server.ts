// A dashboard as the kit's README wires it, for tests/forgeboard/test_live_link.py: one page
// rendering the kit's DeployPanel (panel-page.tsx, bundled by esbuild), its two server actions
// (`deploy`, `liveLink`, run here with the hook secret, which the page never sees), and the
// dashboard project's API forwarded under /supabase (the sandbox answers no CORS; a real
// project does). The signed-in user is FORGEBOARD_TEST_ALICE_TOKEN. Prints "listening <port>".

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

import { createClient } from "@supabase/supabase-js";

import { deploy } from "../../../integrations/forgeboard/deploy";
import { liveLink } from "../../../integrations/forgeboard/live-link";

function env(name: string): string {
  const value = process.env[`FORGEBOARD_TEST_${name}`];
  if (!value) throw new Error(`FORGEBOARD_TEST_${name} is not set`);
  return value;
}

const dashboardUrl = env("DASHBOARD_URL");
const publishableKey = env("PUBLISHABLE_KEY");
const token = env("ALICE_TOKEN");
const hookSecret = env("HOOK_SECRET");
const dispatcherUrl = env("DISPATCHER_URL");
const bundle = readFileSync(env("BUNDLE"));
const asAlice = createClient(dashboardUrl, publishableKey, {
  global: { headers: { Authorization: `Bearer ${token}` } },
  auth: { persistSession: false, autoRefreshToken: false },
});

async function body(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function action(name: string, input: never): Promise<unknown> {
  if (name === "deploy") return deploy(asAlice, { url: dispatcherUrl, hookSecret }, input, token);
  if (name === "live-link") return liveLink(asAlice, { pageUrl: dispatcherUrl, hookSecret }, input, token);
  return null;
}

async function forward(request: IncomingMessage, response: ServerResponse, path: string) {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === "string" && !["host", "connection", "origin", "referer"].includes(name)) {
      headers[name] = value;
    }
  }
  const sent = request.method === "GET" || request.method === "HEAD" ? undefined : new Uint8Array(await body(request));
  const answer = await fetch(dashboardUrl + path, { method: request.method ?? "GET", headers, body: sent });
  const kept: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!["content-encoding", "content-length", "transfer-encoding", "connection"].includes(name)) kept[name] = value;
  });
  response.writeHead(answer.status, kept).end(Buffer.from(await answer.arrayBuffer()));
}

function page(url: URL): string {
  const config = {
    supabaseUrl: `${url.origin}/supabase`,
    publishableKey,
    token,
    projectId: env("PROJECT_ONE"),
    deploymentId: url.searchParams.get("deployment"),
  };
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  return `<!doctype html><html><head><meta charset="utf-8"><title>ForgeBoard</title></head>
<body><main id="root"></main><script>window.FORGEBOARD = ${json};</script>
<script src="/panel.js"></script></body></html>`;
}

const server = createServer((request, response) => {
  const url = new URL(request.url ?? "/", `http://${request.headers.host ?? "localhost"}`);
  const handle = async () => {
    if (request.headers.upgrade) {
      return response.writeHead(501).end(); // realtime's websocket: not forwarded
    }
    if (url.pathname.startsWith("/supabase/")) {
      return forward(request, response, url.pathname.slice("/supabase".length) + url.search);
    }
    if (request.method === "POST" && url.pathname.startsWith("/actions/")) {
      const input = JSON.parse((await body(request)).toString()) as never;
      const result = await action(url.pathname.slice("/actions/".length), input);
      if (result === null) return response.writeHead(404).end();
      return response.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(result));
    }
    if (url.pathname === "/panel.js") {
      return response.writeHead(200, { "Content-Type": "text/javascript" }).end(bundle);
    }
    if (url.pathname === "/") {
      return response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(page(url));
    }
    return response.writeHead(404).end();
  };
  handle().catch((e: unknown) => {
    console.error(e);
    if (!response.headersSent) response.writeHead(500);
    response.end();
  });
});

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address ? address.port : 0}`);
});
