-- 0015_search_plan.sql — the plans of a search (issue #17), kept from
-- flipping under load.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- Under a steady load (1,000 messages a second being stored and indexed),
-- chat_search_json() of a user with no hit took 0.5-1.8 s instead of a few
-- ms: the planner, costing chat_search_hits() at its default 1,000 rows
-- (databases that applied sql/0013 before it said ROWS 50) times the rows
-- it guesses for search_config (a one-row table never analyzed: 2,470),
-- joined the hits with all of messages by a merge join over a sort of
-- every row, and the huge cost switched JIT on (270 ms of compiling).
--
-- A page holds at most 50 hits, each looked up by its key: nested loops
-- only, no JIT (as chat_cleanup_messages, sql/0005), and the estimates
-- right.
ALTER FUNCTION chat_search_hits(bigint, tsquery, text[]) ROWS 50;

ALTER FUNCTION chat_search_json(bigint, text, text[], int, real, bigint,
                                text, bigint)
    SET jit = off
    SET enable_hashjoin = off
    SET enable_mergejoin = off;

ANALYZE search_config;
