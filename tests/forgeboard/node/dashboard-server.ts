// A dashboard as the kit's README wires it, for tests/forgeboard/test_live_link.py: one page
// rendering the kit's DeployPanel (panel-page.tsx, bundled by esbuild), its two server actions
// (`deploy`, `liveLink`, run here with the hook secret, which the page never sees), and the
// dashboard project's API forwarded under /supabase (the sandbox answers no CORS; a real
// project does), Realtime's websocket included (the upgrade piped to the sandbox over TLS, so
// the page's supabase-js follows its row as on a real project). The signed-in user is
// FORGEBOARD_TEST_ALICE_TOKEN. Prints "listening <port>".

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { connect } from "node:tls";

import { createClient } from "@supabase/supabase-js";

import { deploy } from "../../../integrations/forgeboard/deploy";
import { liveLink } from "../../../integrations/forgeboard/live-link";
import { env } from "./env";

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

// The dashboard's own look for the kit's class names (the kit ships unstyled markup).
const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:44rem;padding:0 1rem;color:#1d2330}
.forge-deploy-panel button{font:inherit;padding:.45rem 1.1rem;border-radius:6px;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;cursor:pointer}
.forge-deploy-panel button:disabled{background:#9aa8cf;border-color:#9aa8cf;cursor:default}
.forge-deploy-panel button.forge-live-link{background:#fff;color:#2f5bd3}
.forge-deployment{margin-top:1rem;padding:1rem 1.2rem;border:1px solid #d5d9e2;border-radius:8px}
.forge-status{font-weight:600;font-size:1.1rem;margin:0 0 .6rem}
.forge-deployment[data-status=live] .forge-status{color:#17753a}
.forge-deployment[data-status=failed] .forge-status,.forge-error,.forge-step-error{color:#b3261e}
.forge-connection{background:#fff4d6;border-radius:6px;padding:.3rem .6rem;color:#6b4e00}
.forge-steps{padding-left:1.4rem}.forge-steps li{margin:.15rem 0}
.forge-steps li[data-state=done] .forge-step-state{color:#17753a}
.forge-steps li[data-state=running] .forge-step-state{color:#2f5bd3;font-weight:600}
.forge-steps li[data-state=failed] .forge-step-state{color:#b3261e;font-weight:600}
.forge-step-error{margin:.2rem 0;white-space:pre-wrap}
pre{white-space:pre-wrap;word-break:break-all;font-size:12px;background:#f5f6f8;padding:.6rem}`;

function page(url: URL): string {
  // ?user=bob: the same page signed in as FORGEBOARD_TEST_BOB_TOKEN (another dashboard user).
  const bob = url.searchParams.get("user") === "bob";
  const config = {
    supabaseUrl: `${url.origin}/supabase`,
    publishableKey,
    token: bob ? env("BOB_TOKEN") : token,
    projectId: env("PROJECT_ONE"),
    deploymentId: url.searchParams.get("deployment"),
  };
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  return `<!doctype html><html><head><meta charset="utf-8"><title>ForgeBoard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body><main id="root"></main><script>window.FORGEBOARD = ${json};</script>
<script src="/panel.js"></script></body></html>`;
}

const server = createServer((request, response) => {
  const url = new URL(request.url ?? "/", `http://${request.headers.host ?? "localhost"}`);
  const handle = async () => {
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

/** A websocket upgrade under /supabase/ piped to the project's API, headers as sent. */
function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
  const url = new URL(request.url ?? "/", "http://localhost");
  if (!url.pathname.startsWith("/supabase/")) {
    socket.destroy();
    return;
  }
  const target = new URL(dashboardUrl + url.pathname.slice("/supabase".length) + url.search);
  const upstream = connect({ host: target.hostname, port: Number(target.port) || 443 }, () => {
    const lines = [`${request.method ?? "GET"} ${target.pathname}${target.search} HTTP/1.1`];
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      const name = request.rawHeaders[i];
      if (!["host", "origin"].includes(name.toLowerCase())) lines.push(`${name}: ${request.rawHeaders[i + 1]}`);
    }
    lines.push(`Host: ${target.host}`);
    upstream.write(lines.join("\r\n") + "\r\n\r\n");
    upstream.write(head);
    socket.pipe(upstream).pipe(socket);
  });
  const end = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.on("error", end);
  socket.on("error", end);
  upstream.on("close", end);
  socket.on("close", end);
}
server.on("upgrade", upgrade);

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address ? address.port : 0}`);
});
