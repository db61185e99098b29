-- Run once, when the volume is first initialised. pg_stat_statements is preloaded by the
-- server's command line in compose.yaml; the extensions themselves live in the database.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
