/*
 * audit.h: the tamper-evident event log.
 *
 * Every event stores a SHA-256 hash chained over the previous event's hash
 * and the event's canonical bytes, so changing, removing or inserting an
 * event anywhere (even with SQL around the append-only triggers) breaks the
 * chain from there on. The canonical bytes are netstrings ("<length>:<bytes>,"
 * with the length in decimal) of, in this order: position, id, stream,
 * version, type, schema_version, kind, source, occurred_at (microseconds),
 * correlation_id, causation_id, traceparent (absent ones as empty strings),
 * metadata and data exactly as stored. The first event's previous hash is
 * 32 zero bytes. docs/audit.md shows how to check an export with no tidings
 * code at all.
 */
#ifndef TIDINGS_AUDIT_H
#define TIDINGS_AUDIT_H

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_HASH_LEN 32

/* out = SHA-256(prev || canonical bytes of event). */
void td_event_hash(uint8_t out[TD_HASH_LEN], const uint8_t prev[TD_HASH_LEN],
                   const td_event *event);

/* The stored link of the last event before position (zeros if none): where
 * a partial export's chain starts. */
int td_store_hash_before(td_store *store, int64_t position, uint8_t out[TD_HASH_LEN]);

/* Checks the chain over positions from..to (0 for either: the start or the
 * end of the log). Returns 0 with *first_bad 0 when every event verifies;
 * TD_ECORRUPT with *first_bad the first position that does not; or another
 * code if the store cannot be read. *checked counts the events checked. */
int td_store_audit_verify(td_store *store, int64_t from, int64_t to, int64_t *first_bad,
                          int64_t *checked);

#ifdef __cplusplus
}
#endif
#endif
