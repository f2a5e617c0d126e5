// The dashboard's `deployments` row (migrations/*_forgeboard_deployments.sql), as the status
// mirror writes it. Shared by the server action and the panel; no secret is ever a field.

export const STATUSES = ["queued", "running", "live", "unhealthy", "failed", "cancelled"] as const;
export type DeploymentStatus = (typeof STATUSES)[number];
export const TERMINAL: ReadonlySet<DeploymentStatus> = new Set([
  "live",
  "unhealthy",
  "failed",
  "cancelled",
]);

export type StepState = "running" | "done" | "skipped" | "failed";

export interface StepRow {
  step: string;
  state: StepState;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
}

export interface DeploymentRow {
  id: string;
  request_id: string;
  project_id: string;
  owner_id: string;
  dispatcher_id: string | null;
  status: DeploymentStatus;
  step: string | null;
  steps: StepRow[];
  app_url: string | null;
  repo_url: string | null;
  database_url: string | null;
  health: Record<string, unknown> | null;
  error: string | null;
  log_tail: string[];
  version: number;
  created_at: string;
  updated_at: string;
}
