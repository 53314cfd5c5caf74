/*
 * projection_int.h: the parts of projections (projection.h) and what they
 * share (internal to src/projection/).
 */
#ifndef TD_PROJECTION_INT_H
#define TD_PROJECTION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "tidings/projection.h"

/* docs.c: how a fold reaches its documents. Live, through the handler's
 * unit (txn; cache NULL). A rebuild folds outside any unit (store; txn
 * NULL) into a write-back cache it owns (cache, a JSON object), noting the
 * position it has reached; a writer thread of its own writes documents
 * once they have settled. memo is the fold's scratch object (rebuild only). */
typedef struct td_projection_writer td_projection_writer;
struct td_projection_docs {
    td_txn *txn;
    td_store *store;
    const char *collection; /* the copy being written */
    json_t *cache;
    json_t *memo;
    size_t cache_max; /* a rebuild's bound on clean documents and memo entries */
    int64_t position; /* a rebuild's: how far it has folded */
    td_projection_writer *writer;
};

/* A rebuild's write-back: start the writer; hand it the documents that last
 * changed before position `before` (it writes them in units of its own, in
 * key order, while the fold goes on); finish: with write_rest, hand it the
 * rest and wait until all is written; without, give up what is queued.
 * Each returns the writer's failure if it had one. The _txn form writes
 * what is left in the caller's unit. A document is written once it has
 * not changed for PROJECTION_SETTLE positions (an order's later events
 * usually come within that, and then its document is written once), or
 * at once when more have changed than cache_max. */
#define PROJECTION_SETTLE 32768
int td_projection__writer_start(td_projection_docs *d, td_store *store);
int td_projection__write_back(td_projection_docs *d, int64_t before);
/* More changed documents than the cache may hold: write back now. */
bool td_projection__over_budget(const td_projection_docs *d);
int td_projection__writer_finish(td_projection_docs *d, bool write_rest);
int td_projection__write_back_txn(td_txn *txn, td_projection_docs *d);

/* generations.c: which copy of a projection is live. A rebuild makes
 * generation N + 1 in collection <name>_gN+1 and swaps it in with
 * built_through, the last position it holds; the live handler then skips
 * events up to there. Generation 0 (no document) is collection <name>. */
typedef struct td_projection_gen {
    int64_t generation;
    int64_t built_through;
} td_projection_gen;
int td_projection__gen_txn(td_txn *txn, const char *name, td_projection_gen *out);
int td_projection__gen_get(td_store *store, const char *name, td_projection_gen *out);
int td_projection__gen_put(td_txn *txn, const char *name, const td_projection_gen *g);
void td_projection__collection(char out[TD_PROJECTION_COLLECTION_MAX], const char *name,
                               int64_t generation);
/* TD_EINVAL unless name is a projection name (projection.h). */
int td_projection__check_name(const char *name);

/* rebuild.c: positions per page of the rebuild's readers (2048). A test
 * seam: a test sets it small, before any rebuild, to fold many pages of a
 * small log. */
extern int64_t td_projection__page_span;

/* live.c: TD_EINVAL unless the projection is well formed. */
int td_projection__check(const td_projection *p);
/* Whether the fold wants an event of this type (its types list). */
bool td_projection__wants(const td_projection *p, const char *type);

#endif
