/*
 * dlq.h: the dead-letter queue: events a subscription gave up on, with why.
 *
 * An entry is "dead" (its handler failed max_attempts times, failed
 * permanently, or crashed the process too often) or "parked" behind a dead
 * one of the same stream (sequenced mode), or "retrying" once an operator
 * asked for a retry and the subscription has taken it back. Retry and drop
 * are requests that the running subscription carries out (at once if it is
 * running, else when it next starts): a retried entry, and every entry parked
 * behind it, is delivered again to that subscription only, in stream order;
 * a dropped entry is discarded and the ones parked behind it go on. Every
 * request is recorded in an audit trail (who, when, what).
 *
 * Threads: every function may be called from any thread and any process
 * that has the store open.
 */
#ifndef TIDINGS_DLQ_H
#define TIDINGS_DLQ_H

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_DEAD_LETTER_ID_LEN TD_UUID_STR_LEN

typedef struct td_dead_letter {
    char id[TD_DEAD_LETTER_ID_LEN + 1];
    const char *subscription;
    int64_t position; /* of the event */
    td_uuid event_id;
    const char *stream;
    const char *type;
    unsigned attempts;
    const char *last_error;
    td_time first_failure;
    td_time last_failure;
    const char *status;  /* "dead", "parked", "retrying" */
    const char *behind;  /* the id of the entry this one is parked behind, or NULL */
    const char *request; /* a pending operator request: "retry", "drop", or NULL */
} td_dead_letter;

typedef struct td_dlq_filter {
    const char *subscription; /* NULL: any; a partitioned name: all its partitions */
    const char *type;
    const char *stream;
} td_dlq_filter;

/* Entries are borrowed for the call. Return 0 to go on, > 0 to stop. */
typedef int (*td_dead_letter_fn)(const td_dead_letter *entry, void *payload);

/* Entries fitting filter (NULL: all), oldest first. */
int td_dlq_list(td_store *store, const td_dlq_filter *filter, td_dead_letter_fn fn, void *payload);

/* The entry with this id; TD_ENOTFOUND if none. */
int td_dlq_get(td_store *store, const char *id, td_dead_letter_fn fn, void *payload);

/* Asks for a retry of a dead entry (with those parked behind it); `who` is
 * recorded. TD_ENOTFOUND, or TD_EINVAL for an entry that is not dead. */
int td_dlq_retry(td_store *store, const char *id, const char *who);

/* td_dlq_retry for every dead entry fitting filter; *count says how many. */
int td_dlq_retry_all(td_store *store, const td_dlq_filter *filter, const char *who, size_t *count);

/* Asks for a dead entry to be discarded; those behind it go on. */
int td_dlq_drop(td_store *store, const char *id, const char *who);

/* The audit trail, oldest first: one JSON object per request
 * ({"at","who","action","dead_letter","subscription","position","event_id"}). */
typedef int (*td_dlq_audit_fn)(const char *json, void *payload);
int td_dlq_audit(td_store *store, td_dlq_audit_fn fn, void *payload);

#ifdef __cplusplus
}
#endif
#endif
