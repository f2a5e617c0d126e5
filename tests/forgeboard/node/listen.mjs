// A supabase-js realtime subscriber for tests/forgeboard/test_realtime_clients.py: signs in
// as the user whose access token it is given (setAuth, as supabase-js does after a sign-in),
// joins one channel with one postgres_changes binding and prints, one JSON line each, its
// subscribe states, system messages, heartbeats (every second) and every change it receives,
// until stdin closes.
//   node listen.mjs <project url> <publishable key> <token> <table> <filter>
import { createClient } from "@supabase/supabase-js";

const [url, key, token, table, filter] = process.argv.slice(2);
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const client = createClient(url, key, {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: {
    heartbeatIntervalMs: 1000,
    heartbeatCallback: (status) => say({ kind: "heartbeat", status }),
  },
});
await client.realtime.setAuth(token);
const binding = { event: "*", schema: "public", table };
if (filter) binding.filter = filter;
const channel = client
  .channel(`listen-${table}`)
  .on("postgres_changes", binding, (change) => say({ kind: "change", change }))
  .on("system", {}, (message) => say({ kind: "system", message }))
  .subscribe((state, error) => say({ kind: "state", state, error: error ? String(error) : null }));
process.stdin.on("data", async (data) => {
  const token = data.toString().trim();
  if (token) await client.realtime.setAuth(token);
  say({ kind: "token", ok: true });
});
process.stdin.on("end", async () => {
  await client.removeChannel(channel);
  process.exit(0);
});
