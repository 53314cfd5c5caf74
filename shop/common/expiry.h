/*
 * expiry.h (shop): documents that expire (sessions, Idempotency-Key
 * records), and the sweep that deletes them.
 *
 * An expiring document is an ordinary document plus an entry in the
 * collection's expiry index, <collection>_expiry/<expires_at, 20 digits>|<key>,
 * so the sweep reads expired entries only, oldest first, and stops at the
 * first that is still valid. Readers check expires_at themselves (the sweep
 * runs every minute), with shop_expired.
 */
#ifndef SHOP_COMMON_EXPIRY_H
#define SHOP_COMMON_EXPIRY_H

#include "shop.h"

#define SHOP_EXPIRY_KEY_MAX 96 /* the expiry index's keys */

/* Puts doc (borrowed, an object; it gains "expires_at") under key (at most
 * 70 bytes; TD_EINVAL otherwise), expiring
 * at expires_at, in the unit. A document put again under the same key
 * should be deleted first (shop_expiring_delete), or its old index entry
 * lingers until the sweep finds nothing under it. */
int shop_expiring_put(td_txn *txn, const char *collection, const char *key, json_t *doc,
                      td_time expires_at);
/* Deletes the document and its index entry (TD_ENOTFOUND if none). */
int shop_expiring_delete(td_txn *txn, const char *collection, const char *key);
/* Whether a document read from an expiring collection has expired. */
bool shop_expired(const json_t *doc, td_time now);
/* Deletes what has expired in collection, a page per unit; *deleted counts. */
int shop_expiring_sweep(td_store *store, const char *collection, size_t *deleted);

#endif
