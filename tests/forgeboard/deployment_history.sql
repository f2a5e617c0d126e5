-- The test's own: every write to a deployments row, as the database saw it (tests read it
-- to check the mirror's order). Applied after the kit's migration.
create table public.deployment_history (
  n bigserial primary key,
  deployment_id uuid not null,
  status text not null,
  step text,
  version bigint not null
);
revoke all on public.deployment_history from anon, authenticated;
create function public.record_deployment_change() returns trigger
  language plpgsql security definer set search_path = public as $$
begin
  insert into deployment_history (deployment_id, status, step, version)
    values (new.id, new.status, new.step, new.version);
  return new;
end $$;
create trigger deployments_history after insert or update on public.deployments
  for each row execute function public.record_deployment_change();
