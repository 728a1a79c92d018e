-- Nothing to change on PostgreSQL. SQLite's migration of the same name adds a trigger that moves
-- the chain's head with every appended event, so that its chainer appends in one statement;
-- here that statement moves the head itself, in a data-modifying common table expression
-- (`chain_by_compare_and_set` in crates/adapters/src/storage/postgres.rs), and a trigger would
-- only add a second write of the head per event.
SELECT 1;
