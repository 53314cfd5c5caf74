/*
 * txn_internal.h: what other parts of the library may do with the store
 * beyond the public calls (not public API).
 */
#ifndef TD_STORE_TXN_INTERNAL_H
#define TD_STORE_TXN_INTERNAL_H

#include "tidings/store.h"

/* Puts a document the library wrote itself (a JSON object by construction),
 * without parsing it again to check; the key and the size limit are still
 * checked. */
int td_txn__doc_put_trusted(td_txn *txn, const char *collection, const char *key, const char *json,
                            size_t len);

/* Runs fn(txn, payload) under a savepoint of its own. A failure of fn rolls
 * back what it did and is returned in *fn_rc, and the unit goes on; the
 * return value is negative only if the rollback itself failed. */
int td_txn__try_contained(td_txn *txn, td_unit_fn fn, void *payload, int *fn_rc);

/* td_store_doc_get without waiting, under pipelined commits, for what it
 * read to be durable: for a reader that only needs what is committed (a
 * progress mark for an event that is durable already). */
int td_store__doc_get_committed(td_store *store, const char *collection, const char *key,
                                char **json, size_t *len);

/* td_txn_read without the handle's upcasters: the events as stored, for a
 * reader that upcasts each itself and goes on past one it cannot read (a
 * projection's rebuild). */
int td_txn__read_stored(td_txn *txn, const td_read_query *query, td_event_fn fn, void *payload);

#endif
