// The notes page's data: the latest notes, read with supabase-js and the publishable key, as
// the browser reads them. forge-deploy sets the two variables on the Vercel project.
import { createClient } from "@supabase/supabase-js";

export function supabaseFromEnv(env = process.env) {
  return createClient(env.NEXT_PUBLIC_SUPABASE_URL, env.NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

export async function latestNotes(supabase, limit = 20) {
  const { data, error } = await supabase
    .from("notes")
    .select("id, body, created_at")
    .order("created_at", { ascending: false })
    .limit(limit);
  if (error) throw new Error(`reading notes failed: ${error.code} ${error.message}`);
  return data;
}
