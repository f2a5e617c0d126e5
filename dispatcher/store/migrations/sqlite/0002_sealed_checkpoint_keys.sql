-- Sealed values are kept under the runner's own checkpoint key, the one format they travel in
-- (runner.checkpoints): the database password was kept as 'db_password' before.
UPDATE sealed_secrets SET key = 'supabase.db_password_sealed' WHERE key = 'db_password';
