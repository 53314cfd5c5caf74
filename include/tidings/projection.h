/*
 * projection.h: rebuildable read models. A service writes only the fold;
 * the library keeps the read model live from a subscription, rebuilds it
 * from the whole log while the live copy keeps serving, and swaps the new
 * copy in atomically. The design: docs/internals/projection.md.
 *
 * A projection is a name, the events it wants (a category and, optionally,
 * a list of types) and a fold: a function that applies one event (its data
 * parsed) to the projection's documents through td_projection_get / _put.
 * Its documents live in a collection of the store; each copy is a
 * "generation": generation 0 is the collection <name>, generation N the
 * collection <name>_gN. Which generation is live, and the last position
 * its copy was built through, is a document of its own
 * (readmodel_generations/<name>).
 *
 *   live      td_projection_subscription_new makes a transactional
 *             subscription whose handler folds each event into the live
 *             copy in the handler's unit of work (the documents and the
 *             subscription's progress commit together: each event counts
 *             once). An event the store cannot read (a schema too new, a
 *             missing upcast step) is parked in its dead-letter queue by
 *             the subscription, and the handler goes on.
 *   rebuild   td_projection_rebuild folds the whole log into generation
 *             N + 1 outside any unit (reader threads read pages of the log,
 *             a writer thread writes settled documents), then one unit reads
 *             the rest of the log, folds it, and makes the new copy live.
 *             The live handler checks the generation in its own unit, so
 *             each event lands in exactly one copy that stays live. An event
 *             the store cannot read is skipped, as the live handler skips
 *             it, and reported (td_projection_report).
 *
 * Threads: a td_projection is read-only once made and may be shared. The
 * fold runs on the subscription's lanes (live) or on the thread that
 * called td_projection_rebuild (rebuild), one event at a time per copy; a
 * td_projection_docs is valid only during the fold's call. Queries may run
 * on any thread.
 *
 * Errors: as errors.h. A fold returns 0 or a negative TD_E… code; live, a
 * failure is retried by the subscription (TD_EPERMANENT parks the event),
 * in a rebuild it ends the rebuild with that code and the live copy stays
 * live.
 */
#ifndef TIDINGS_PROJECTION_H
#define TIDINGS_PROJECTION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "store.h"
#include "subscription.h"
#include "uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest projection name (1..TD_PROJECTION_NAME_MAX of [a-z0-9_],
 * starting with a letter), and the size of a collection name buffer. */
#define TD_PROJECTION_NAME_MAX       48
#define TD_PROJECTION_COLLECTION_MAX 80

/* The collection of read-model generations (one document per projection). */
#define TD_PROJECTION_GENERATIONS "readmodel_generations"

/* How a fold reaches its documents; borrowed for the fold's call. */
typedef struct td_projection_docs td_projection_docs;

/* The fold: applies `event` to the projection's documents. `data` is the
 * event's data at the current schema (upcast if needed), borrowed for the
 * call; in a rebuild, when the projection lists `fields`, only those fields
 * of it. `payload` is the projection's. */
typedef int (*td_projection_fold_fn)(td_projection_docs *docs, const td_event *event, json_t *data,
                                     void *payload);

#define TD_PROJECTION_VERSION 1
typedef struct td_projection {
    unsigned int version;     /* TD_PROJECTION_VERSION */
    const char *name;         /* the name; generation 0's collection */
    const char *category;     /* the events it reads: this category; NULL: every event */
    const char *const *types; /* NULL-terminated: only these types reach the fold; NULL: all */
    /* NULL-terminated: every top-level data field the fold reads. A rebuild
     * then reads only these (td_store_read_fields, much cheaper than parsing
     * whole events), so a field the fold uses must be listed. NULL: the
     * whole data. At most TD_READ_FIELDS_MAX. */
    const char *const *fields;
    td_projection_fold_fn fold;
    void *payload; /* handed to the fold */
} td_projection;

#define TD_PROJECTION_INIT                                                                         \
    {                                                                                              \
        TD_PROJECTION_VERSION, NULL, NULL, NULL, NULL, NULL, NULL                                  \
    }

/* ---- the fold's document API ------------------------------------------ */

/* The projection's document `key` in the copy being built: *out is a new
 * reference (json_decref) or NULL when there is none. Not to be changed:
 * during a rebuild the writer thread may be reading it. */
int td_projection_get(td_projection_docs *docs, const char *key, json_t **out);

/* The same, as a document the fold may change and then put back (a copy
 * when the rebuild's writer may be reading the cached one). */
int td_projection_get_mutable(td_projection_docs *docs, const char *key, json_t **out);

/* Sets document `key` to doc (borrowed; the library keeps a reference, so
 * the fold must not change doc afterwards except through a fresh
 * td_projection_get_mutable). */
int td_projection_put(td_projection_docs *docs, const char *key, json_t *doc);

/* Any collection's document (another projection's, a snapshot), uncached,
 * as of the fold's unit when live: *out a new reference or NULL. */
int td_projection_read(td_projection_docs *docs, const char *collection, const char *key,
                       json_t **out);

/* A rebuild's scratch object, for what the fold learns of earlier events
 * (e.g. an order's items from its creation, needed by a later event): a
 * JSON object the rebuild owns and frees, borrowed; NULL when live. The
 * fold should keep it under *bound members (the rebuild's cache size). */
json_t *td_projection_memo(td_projection_docs *docs, size_t *bound);

/* ---- live --------------------------------------------------------------- */

/* Makes the subscription that keeps the projection live: opts as for
 * td_subscription_new (name, lanes, metrics, …); its match is set to the
 * projection's category and it is made transactional. The projection is
 * borrowed and must outlive the subscription. A replayed event is left
 * alone (the fold counted it once already; rebuild to recompute). Caller
 * owns *out (td_subscription_free). */
int td_projection_subscription_new(td_subscription **out, td_store *store,
                                   const td_subscription_options *opts,
                                   const td_projection *projection);

/* The handler behind it, for a caller that makes the subscription itself
 * (transactional; payload: the td_projection). */
int td_projection_handle(td_delivery *delivery, const td_event *event, void *projection);

/* ---- queries ------------------------------------------------------------ */

/* The collection of the live copy of projection `name`. */
int td_projection_live_collection(td_store *store, const char *name,
                                  char out[TD_PROJECTION_COLLECTION_MAX]);

/* The live generation and the position its copy was built through
 * (0, 0 before any rebuild). */
int td_projection_generation(td_store *store, const char *name, int64_t *generation,
                             int64_t *built_through);

/* ---- rebuild ------------------------------------------------------------ */

#define TD_PROJECTION_REBUILD_OPTIONS_VERSION 1
typedef struct td_projection_rebuild_options {
    unsigned int version; /* TD_PROJECTION_REBUILD_OPTIONS_VERSION */
    size_t cache;         /* documents (and memo entries) kept in memory; 0: 50,000 */
} td_projection_rebuild_options;

#define TD_PROJECTION_REBUILD_OPTIONS_INIT                                                         \
    {                                                                                              \
        TD_PROJECTION_REBUILD_OPTIONS_VERSION, 0                                                   \
    }

/* An event the rebuild could not read and skipped. */
typedef struct td_projection_skipped {
    int64_t position;
    td_uuid id;
} td_projection_skipped;

/* The first TD_PROJECTION_SKIPPED_MAX skipped events are listed. */
#define TD_PROJECTION_SKIPPED_MAX 32

typedef struct td_projection_report {
    int64_t events;        /* folded into the new copy */
    int64_t generation;    /* the copy now live */
    int64_t built_through; /* the position it was built up to */
    double seconds;        /* until the new copy went live */
    int64_t skipped;       /* events in the projection's category it could not read */
    size_t skipped_listed; /* how many of them `skipped_events` holds, in position order */
    td_projection_skipped skipped_events[TD_PROJECTION_SKIPPED_MAX];
} td_projection_report;

/* Rebuilds the projection from the whole log into a fresh copy while the
 * live one keeps serving, swaps the copy in atomically and deletes the old
 * one. Safe beside a running subscription, in this process or another.
 * Reads through the store's upcasters (td_store_set_upcasters), as the live
 * subscription does. opts may be NULL (defaults). TD_ECONFLICT when another
 * rebuild of the same projection swapped first; on any failure the live
 * copy stays live. *out is filled on success. */
int td_projection_rebuild(td_store *store, const td_projection *projection,
                          const td_projection_rebuild_options *opts, td_projection_report *out);

#ifdef __cplusplus
}
#endif
#endif
