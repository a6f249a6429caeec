-- The SM3 of a delivery's payload as the gateway computed it for the log
-- entry, so that the delivery worker signs without hashing the payload
-- again (NULL for rows queued before, or by callers that did not give it).
ALTER TABLE deliveries ADD COLUMN payload_sm3 BLOB;
