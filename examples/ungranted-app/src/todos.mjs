// The app's data, read and written with supabase-js and the publishable key.
import { createClient } from "@supabase/supabase-js";

export const supabase = createClient(
  process.env.NEXT_PUBLIC_SUPABASE_URL,
  process.env.NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY,
);

export async function todos() {
  const { data, error } = await supabase.from("todos").select("id, title, done").order("id");
  if (error) throw error;
  return data;
}

export async function addTodo(title) {
  const { error } = await supabase.from("todos").insert({ title });
  if (error) throw error;
}

export async function sign(name, message) {
  const { error } = await supabase.from("guestbook").insert({ name, message });
  if (error) throw error;
}

export async function guestbook() {
  const { data, error } = await supabase.from("guestbook").select("name, message");
  if (error) throw error;
  return data;
}

// A Storage bucket, not a table: the exposure check leaves it alone.
export async function avatar(path) {
  return supabase.storage.from("avatars").download(path);
}
