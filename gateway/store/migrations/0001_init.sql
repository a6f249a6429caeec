-- tongban store, version 1. Written once for both engines: the migration
-- runner replaces the word BLOB with BYTEA on PostgreSQL. Times are Unix
-- nanoseconds (0 = unset); flags are 0/1 integers.

-- The exchange log's size. Appends lock this one row until their transaction
-- commits, so indexes are assigned without gaps or duplicates across replicas.
CREATE TABLE log_head (
	id   BIGINT PRIMARY KEY CHECK (id = 0),
	size BIGINT NOT NULL
);
INSERT INTO log_head (id, size) VALUES (0, 0);

CREATE TABLE log_entries (
	idx          BIGINT PRIMARY KEY,
	time_ns      BIGINT NOT NULL,
	kind         TEXT NOT NULL,
	exchange_id  TEXT NOT NULL DEFAULT '',
	bytes        BLOB NOT NULL,
	leaf_hash    BLOB NOT NULL,
	has_decision BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX log_entries_exchange ON log_entries (exchange_id, idx);
CREATE INDEX log_entries_decision ON log_entries (idx) WHERE has_decision = 1;

CREATE TABLE exchanges (
	id             TEXT PRIMARY KEY,
	from_division  TEXT NOT NULL,
	to_division    TEXT NOT NULL,
	source_case_no TEXT NOT NULL,
	target_case_no TEXT NOT NULL DEFAULT '',
	item           TEXT NOT NULL DEFAULT '',
	mode           TEXT NOT NULL DEFAULT '',
	revision       TEXT NOT NULL DEFAULT '',
	request_digest TEXT NOT NULL DEFAULT '',
	content_type   TEXT NOT NULL DEFAULT '',
	request        BLOB,
	translated     BLOB,
	policy_input   BLOB,
	decision       BLOB,
	receipt        BLOB,
	log_index      BIGINT NOT NULL,
	leaf_hash      BLOB NOT NULL,
	created_ns     BIGINT NOT NULL,
	status_count   BIGINT NOT NULL DEFAULT 0,
	last_state     TEXT NOT NULL DEFAULT '',
	UNIQUE (from_division, source_case_no)
);
CREATE INDEX exchanges_source ON exchanges (source_case_no);
CREATE INDEX exchanges_target ON exchanges (target_case_no);

CREATE TABLE statuses (
	exchange_id    TEXT NOT NULL REFERENCES exchanges (id),
	seq            BIGINT NOT NULL,
	from_division  TEXT NOT NULL,
	to_division    TEXT NOT NULL,
	state          TEXT NOT NULL,
	at_ns          BIGINT NOT NULL,
	request_digest TEXT NOT NULL,
	request        BLOB,
	translated     BLOB,
	receipt        BLOB,
	log_index      BIGINT NOT NULL,
	leaf_hash      BLOB NOT NULL,
	created_ns     BIGINT NOT NULL,
	PRIMARY KEY (exchange_id, seq),
	UNIQUE (exchange_id, from_division, request_digest)
);

-- The outbox. A row in 'delivering' whose lease has expired is claimable
-- again: a crashed worker's rows resume.
CREATE TABLE deliveries (
	id              TEXT PRIMARY KEY,
	exchange_id     TEXT NOT NULL REFERENCES exchanges (id),
	seq             BIGINT NOT NULL,
	to_division     TEXT NOT NULL,
	kind            TEXT NOT NULL,
	payload         BLOB,
	event_index     BIGINT NOT NULL,
	state           TEXT NOT NULL,
	attempts        BIGINT NOT NULL DEFAULT 0,
	next_attempt_ns BIGINT NOT NULL DEFAULT 0,
	lease_until_ns  BIGINT NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	partner_case_no TEXT NOT NULL DEFAULT '',
	reason          TEXT NOT NULL DEFAULT '',
	created_ns      BIGINT NOT NULL,
	updated_ns      BIGINT NOT NULL,
	delivered_ns    BIGINT,
	UNIQUE (exchange_id, seq)
);
CREATE INDEX deliveries_active ON deliveries (event_index)
	WHERE state IN ('queued', 'retrying', 'delivering');
CREATE INDEX deliveries_state ON deliveries (state, event_index);

-- Signature nonces of the replay window, shared by every replica.
CREATE TABLE nonces (
	keyid    TEXT NOT NULL,
	nonce    TEXT NOT NULL,
	until_ns BIGINT NOT NULL,
	PRIMARY KEY (keyid, nonce)
);
CREATE INDEX nonces_until ON nonces (until_ns);

CREATE TABLE drafts (
	id          TEXT PRIMARY KEY,
	revision    TEXT NOT NULL DEFAULT '',
	bundle      BLOB,
	uploaded_by TEXT NOT NULL DEFAULT '',
	uploaded_ns BIGINT NOT NULL,
	validated   BIGINT NOT NULL DEFAULT 0,
	report      BLOB
);

CREATE TABLE activations (
	log_index BIGINT PRIMARY KEY,
	revision  TEXT NOT NULL,
	previous  TEXT NOT NULL DEFAULT '',
	bundle    BLOB,
	by_key    TEXT NOT NULL DEFAULT '',
	at_ns     BIGINT NOT NULL
);

CREATE TABLE checkpoints (
	size    BIGINT PRIMARY KEY,
	time_ns BIGINT NOT NULL,
	note    BLOB NOT NULL
);
CREATE INDEX checkpoints_time ON checkpoints (time_ns);
