-- An exchange's two large payloads (the request as received and the
-- translated record) live in a row of their own, written once and never
-- updated. On SQLite an UPDATE rewrites the whole row, overflow pages
-- included, whenever a column changes length: setting the partner's case
-- number on a delivered exchange rewrote ~40 KiB of a 20 KiB case. The
-- outbox row of a delivery no longer copies the translated record either
-- (deliveries.payload is NULL): it is read from here, or from statuses,
-- when the row is read. Rows written before keep their payloads where
-- they are (exchanges.request/translated, deliveries.payload) and read the
-- same.
CREATE TABLE exchange_bodies (
	exchange_id TEXT PRIMARY KEY REFERENCES exchanges (id),
	request     BLOB,
	translated  BLOB
);
