/*
 * state.h: where subscriptions keep their durable state (internal).
 *
 * Everything is a JSON document in the store, so every backend carries it
 * without code of its own:
 *
 *   tidings_checkpoints   NAME                 {"position","inflight_to",
 *                                               "suspect_position","suspect_attempts",
 *                                               "recovering_to"}
 *   tidings_retries       NAME|POSITION(20)    {"attempts","next_at","last_error"}
 *   tidings_progress      NAME|STREAM          {"version"}   (transactional mode)
 *   tidings_dead_letters  ID                   the td_dead_letter fields
 *   tidings_dlq_requests  NAME|ID              {"action","who","at"}
 *   tidings_dlq_audit     UUIDv7               what was asked, by whom, when
 *   tidings_inbox         CONSUMER|EVENT_ID    {"at"}
 *   tidings_leases        NAME                 {"owner","pid","host","expires_at",
 *                                               "instance" (a balancer's label)}
 *   tidings_partitions    BASE NAME            {"count","by"}  (partition.c)
 *
 * Keys with NAME| sort together, so one subscription's entries are listed
 * with a prefix scan.
 */
#ifndef TD_BUS_STATE_H
#define TD_BUS_STATE_H

#include "tidings/dlq.h"
#include "tidings/subscription.h"

#define TD_COLL_CHECKPOINTS  "tidings_checkpoints"
#define TD_COLL_RETRIES      "tidings_retries"
#define TD_COLL_PROGRESS     "tidings_progress"
#define TD_COLL_DEAD_LETTERS "tidings_dead_letters"
#define TD_COLL_DLQ_REQUESTS "tidings_dlq_requests"
#define TD_COLL_DLQ_AUDIT    "tidings_dlq_audit"
#define TD_COLL_INBOX        "tidings_inbox"
#define TD_COLL_REPLAYS      "tidings_replays"
#define TD_COLL_LEASES       "tidings_leases"
#define TD_COLL_PARTITIONS   "tidings_partitions"

#define TD_STATE_KEY_MAX 512

typedef struct td_checkpoint {
    int64_t position;         /* every event up to here is done */
    int64_t inflight_to;      /* events up to here may have been handed over */
    int64_t suspect_position; /* the event being retried carefully after a crash */
    unsigned suspect_attempts;
    /* After a crash, the events up to here (past position) were handed over
     * again, in parallel; 0 once done. Still set at a start: a crash came
     * while they were, and they go one at a time (subscription.c). Absent
     * in checkpoints written before it existed: 0. */
    int64_t recovering_to;
} td_checkpoint;

int td_state__check_name(const char *name);

/* "NAME|rest" into buf. */
int td_state__key(char buf[TD_STATE_KEY_MAX + 1], const char *name, const char *rest);
int td_state__position_key(char buf[TD_STATE_KEY_MAX + 1], const char *name, int64_t position);

/* Lists documents of collection whose key starts with "NAME|". */
int td_state__list_prefix(td_store *store, const char *collection, const char *name, td_doc_fn fn,
                          void *payload);

int td_state__load_checkpoint(td_store *store, const char *name, td_checkpoint *out, bool *found);
int td_state__put_checkpoint(td_txn *txn, const char *name, const td_checkpoint *cp);
int td_state__save_checkpoint(td_store *store, const char *name, const td_checkpoint *cp);

int td_state__save_retry(td_store *store, const char *name, int64_t position, unsigned attempts,
                         td_time next_at, const char *error);
int td_state__delete_retry(td_store *store, const char *name, int64_t position);

int td_state__progress_get(td_txn *txn, const char *name, const char *stream, int64_t *version);
/* The same, outside a unit of work: the last committed mark, durable or
 * not yet (pipelined commits). A mark at or past a durable event's version
 * says that event was handled: its own unit, or an earlier one, did it. */
int td_state__progress_read(td_store *store, const char *name, const char *stream,
                            int64_t *version);
int td_state__progress_put(td_txn *txn, const char *name, const char *stream, int64_t version);

/* Dead letters as JSON documents, both ways. entry->id is the key. */
int td_state__dead_letter_to_json(char **out, const td_dead_letter *entry);
/* Parses a document; the entry's strings point into *json_holder, which the
 * caller releases with json_decref. */
int td_state__dead_letter_from_json(td_dead_letter *entry, json_t **json_holder, const char *id,
                                    const char *text, size_t len);
int td_state__put_dead_letter(td_txn *txn, const td_dead_letter *entry);

/* How many dead-letter entries (dead, parked or retrying) name belongs to. */
int td_state__count_dead_letters(td_store *store, const char *name, int64_t *out);

#endif
