"use client";
// The deploy panel: a Deploy button (one click id per rendered button, so a double click
// deploys once) and the deployment's row, followed through Supabase realtime, rendered from
// its structured per-step state — never by parsing log text.

import { useCallback, useEffect, useState } from "react";

import type { SupabaseClient } from "@supabase/supabase-js";

import type { DeployResult } from "./deploy";
import { TERMINAL, type DeploymentRow, type StepRow } from "./deployment";
import type { LiveLinkResult } from "./live-link";

const STATE_LABEL: Record<StepRow["state"], string> = {
  running: "running",
  done: "done",
  skipped: "skipped",
  failed: "failed",
};

const STATUS_LABEL: Record<DeploymentRow["status"], string> = {
  queued: "Queued",
  running: "Deploying",
  live: "Live",
  unhealthy: "Live but failing its health check",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** The row, kept current: every realtime UPDATE with a higher version, and a fresh read each
 * time the channel (re)joins — on the first join and after a dropped connection comes back,
 * so what changed while it was down is shown. `live` is false while the channel is not
 * joined (realtime-js keeps trying). */
export function useDeployment(
  supabase: SupabaseClient,
  deploymentId: string | null,
): { row: DeploymentRow | null; live: boolean } {
  const [row, setRow] = useState<DeploymentRow | null>(null);
  const [live, setLive] = useState(true);
  useEffect(() => {
    if (!deploymentId) return;
    let alive = true;
    const newer = (next: DeploymentRow) =>
      setRow((current) => (current && current.version >= next.version ? current : next));
    const read = () =>
      void supabase
        .from("deployments")
        .select("*")
        .eq("id", deploymentId)
        .single<DeploymentRow>()
        .then(({ data }) => {
          if (alive && data) newer(data);
        });
    const channel = supabase
      .channel(`deployment:${deploymentId}`)
      .on(
        "postgres_changes",
        { event: "UPDATE", schema: "public", table: "deployments", filter: `id=eq.${deploymentId}` },
        (payload) => newer(payload.new as DeploymentRow),
      )
      .subscribe((state) => {
        if (!alive) return;
        setLive(state === "SUBSCRIBED");
        if (state === "SUBSCRIBED") read();
      });
    read(); // shown at once, before the socket is up
    return () => {
      alive = false;
      void supabase.removeChannel(channel);
    };
  }, [supabase, deploymentId]);
  return { row, live };
}

function duration(step: StepRow): string {
  if (!step.started_at || !step.finished_at) return "";
  const ms = Date.parse(step.finished_at) - Date.parse(step.started_at);
  return Number.isFinite(ms) && ms >= 0 ? ` (${(ms / 1000).toFixed(1)} s)` : "";
}

export function StepList({ steps }: { steps: StepRow[] }) {
  return (
    <ol className="forge-steps">
      {steps.map((step) => (
        <li key={step.step} data-state={step.state}>
          <span className="forge-step-name">{step.step}</span>{" "}
          <span className="forge-step-state">{STATE_LABEL[step.state]}</span>
          {duration(step)}
          {step.error ? <p className="forge-step-error">{step.error}</p> : null}
        </li>
      ))}
    </ol>
  );
}

export interface DeployPanelProps {
  supabase: SupabaseClient; // the browser client (publishable key + the user's session)
  projectId: string;
  deploy: (input: { projectId: string; requestId: string }) => Promise<DeployResult>;
  // the "open live page" server action (live-link.ts): a one-use link, minted at click time
  openLivePage?: (input: { deploymentId: string }) => Promise<LiveLinkResult>;
  initialDeploymentId?: string | null;
}

/** Opens forge-deploy's live page of the deployment in a new tab: the tab is opened by the
 * click itself (no popup blocker), then sent to the link the server action mints. */
export function LivePageLink({
  deploymentId,
  openLivePage,
}: {
  deploymentId: string;
  openLivePage: NonNullable<DeployPanelProps["openLivePage"]>;
}) {
  const [problem, setProblem] = useState<string | null>(null);
  const onOpen = useCallback(async () => {
    setProblem(null);
    const tab = window.open("about:blank", "_blank");
    if (tab) tab.opener = null;
    const result = await openLivePage({ deploymentId });
    if (!result.ok) {
      tab?.close();
      setProblem(result.message);
    } else if (tab) {
      tab.location.href = result.url;
    } else {
      window.location.assign(result.url);
    }
  }, [deploymentId, openLivePage]);
  return (
    <p>
      <button type="button" className="forge-live-link" onClick={onOpen}>
        Open the live page
      </button>
      {problem ? <span role="alert"> {problem}</span> : null}
    </p>
  );
}

export function DeployPanel({
  supabase,
  projectId,
  deploy,
  openLivePage,
  initialDeploymentId,
}: DeployPanelProps) {
  const [requestId, setRequestId] = useState(() => crypto.randomUUID());
  const [deploymentId, setDeploymentId] = useState<string | null>(initialDeploymentId ?? null);
  const [pending, setPending] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const { row, live } = useDeployment(supabase, deploymentId);
  const busy = pending || (row !== null && !TERMINAL.has(row.status));

  const onDeploy = useCallback(async () => {
    setPending(true);
    setProblem(null);
    try {
      const result = await deploy({ projectId, requestId });
      if (result.ok) {
        setDeploymentId(result.deploymentId);
        setRequestId(crypto.randomUUID()); // the next click is a new deploy
      } else {
        if (result.deploymentId) setDeploymentId(result.deploymentId);
        setProblem(result.message); // a retry click reuses requestId: the same row
      }
    } finally {
      setPending(false);
    }
  }, [deploy, projectId, requestId]);

  return (
    <section className="forge-deploy-panel" aria-busy={busy}>
      <button type="button" onClick={onDeploy} disabled={busy}>
        {busy ? "Deploying…" : "Deploy"}
      </button>
      {problem ? <p role="alert">{problem}</p> : null}
      {row ? (
        <div className="forge-deployment" data-status={row.status}>
          <p className="forge-status">
            {STATUS_LABEL[row.status]}
            {row.step && !TERMINAL.has(row.status) ? ` — ${row.step}` : null}
          </p>
          {live || TERMINAL.has(row.status) ? null : (
            <p className="forge-connection" role="status">
              Live updates paused: reconnecting…
            </p>
          )}
          <StepList steps={row.steps} />
          {openLivePage && row.dispatcher_id ? (
            <LivePageLink deploymentId={row.id} openLivePage={openLivePage} />
          ) : null}
          {row.app_url ? (
            <p>
              <a href={row.app_url} target="_blank" rel="noreferrer">
                Open the live app
              </a>
            </p>
          ) : null}
          {row.repo_url ? (
            <p>
              <a href={row.repo_url} target="_blank" rel="noreferrer">
                Repository
              </a>
            </p>
          ) : null}
          {row.error ? <p className="forge-error">{row.error}</p> : null}
          {row.log_tail.length > 0 ? (
            <details>
              <summary>Log</summary>
              <pre>{row.log_tail.join("\n")}</pre>
            </details>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
