-- The store's schema at version 1, as an older exchanged wrote it: the
-- fixture for the migration test (tests/unit/test_store.c builds a database
-- from it with one task in each of two states).
CREATE TABLE tasks (
 id INTEGER PRIMARY KEY,
 request_id TEXT NOT NULL,
 payload TEXT NOT NULL,
 state INTEGER NOT NULL,
 attempts INTEGER NOT NULL DEFAULT 0,
 created_ms INTEGER NOT NULL,
 updated_ms INTEGER NOT NULL,
 next_attempt_ms INTEGER,
 last_error TEXT,
 breakdown TEXT,
 history TEXT NOT NULL);
CREATE INDEX tasks_active_request ON tasks(request_id) WHERE state < 4;
INSERT INTO tasks VALUES (1940000000000000001, '"old-1"',
 '{"request_id":"old-1","exchange_rate":2.0,"bills":[{"denomination_id":1,"denomination":10.0,"count":5}]}',
 2, 0, 1760000000000, 1760000000000, NULL, NULL, '[{"denomination_id":1,"subtotal_rub":100.0}]',
 'queued@1760000000000 running@1760000000000 delivering@1760000000000');
INSERT INTO tasks VALUES (1940000000000000002, '7',
 '{"request_id":7,"exchange_rate":2.0,"bills":[{"denomination_id":1,"denomination":10.0,"count":5}]}',
 4, 1, 1760000000000, 1760000000000, NULL, NULL, '[{"denomination_id":1,"subtotal_rub":100.0}]',
 'queued@1760000000000 running@1760000000000 delivering@1760000000000 succeeded@1760000000000');
PRAGMA user_version = 1;
