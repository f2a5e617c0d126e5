create table public.notes (
  id bigint generated always as identity primary key,
  body text not null check (length(body) <= 2000),
  created_at timestamptz not null default now()
);
