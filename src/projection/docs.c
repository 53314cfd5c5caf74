/*
 * docs.c: how a fold reaches its documents (td_projection_docs,
 * projection.h, projection_int.h).
 *
 * Live, every read and write goes through the handler's unit of work. A
 * rebuild folds outside the writer thread and writes back: the documents
 * it touches stay in its cache, and a changed ("dirty") one is written
 * only once it has not changed for PROJECTION_SETTLE positions, or at the
 * end. Until the swap nobody reads the new copy, so when it is written
 * does not matter, and an order's status changes usually land on its
 * document before it is first written.
 *
 * The cache is a JSON object the rebuild owns: "docs" (key → document,
 * bounded by d->cache_max clean ones), "dirty" (key → the position it
 * changed at) and "at" (that position, shared by the puts made there).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "projection/projection_int.h"

#define WRITE_UNIT   2000 /* documents per unit of work, so live work interleaves */
#define WRITES_AHEAD 4    /* batches queued for the writer before the fold waits */

static json_t *cache_part(json_t *cache, const char *name)
{
    json_t *part = json_object_get(cache, name);
    if (part == NULL && json_object_set_new(cache, name, json_object()) == 0)
        part = json_object_get(cache, name);
    return part;
}

/* Any collection's document, uncached. */
static int read_doc(td_projection_docs *d, const char *collection, const char *key, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    unsigned long failures = td_alloc__thread_failures();
    int error = d->txn ? td_txn_doc_get(d->txn, collection, key, &text, &len)
                       : td_store_doc_get(d->store, collection, key, &text, &len);
    *out = error == 0 ? json_loadb(text, len, 0, &err) : NULL;
    td_free(text);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error == 0 && *out == NULL) /* jansson tells a failed allocation as bad JSON */
        return td_alloc__thread_failures() != failures
                   ? td_error__oom()
                   : td_error__set(TD_ECORRUPT, "%s/%s is not JSON", collection, key);
    return error;
}

int td_projection_read(td_projection_docs *d, const char *collection, const char *key, json_t **out)
{
    TD_REQUIRE(d && collection && key && out);
    return read_doc(d, collection, key, out);
}

json_t *td_projection_memo(td_projection_docs *d, size_t *bound)
{
    if (bound)
        *bound = d ? d->cache_max : 0;
    return d ? d->memo : NULL;
}

int td_projection_get(td_projection_docs *d, const char *key, json_t **out)
{
    TD_REQUIRE(d && key && out);
    json_t *docs = d->cache ? cache_part(d->cache, "docs") : NULL;
    json_t *hit = docs ? json_object_get(docs, key) : NULL;
    if (hit) {
        *out = json_incref(hit);
        return 0;
    }
    int error = read_doc(d, d->collection, key, out);
    if (error == 0 && *out && docs && json_object_set(docs, key, *out) < 0)
        error = td_error__oom();
    return error;
}

int td_projection_get_mutable(td_projection_docs *d, const char *key, json_t **out)
{
    TD_REQUIRE(d && key && out);
    json_t *docs = d->cache ? cache_part(d->cache, "docs") : NULL;
    json_t *dirty = d->cache ? cache_part(d->cache, "dirty") : NULL;
    json_t *hit = docs ? json_object_get(docs, key) : NULL;
    if (hit == NULL || json_object_get(dirty, key)) /* fresh, or put since last written */
        return td_projection_get(d, key, out);
    *out = json_copy(hit); /* the writer may be reading this one */
    return *out ? 0 : td_error__oom();
}

int td_projection_put(td_projection_docs *d, const char *key, json_t *doc)
{
    TD_REQUIRE(d && key && doc);
    if (d->cache == NULL)
        return td_txn_doc_put_json(d->txn, d->collection, key, doc);
    json_t *docs = cache_part(d->cache, "docs"), *dirty = cache_part(d->cache, "dirty");
    json_t *at = json_object_get(d->cache, "at"); /* shared by the puts at one position */
    if (at == NULL || json_integer_value(at) != d->position) {
        if (json_object_set_new(d->cache, "at", json_integer(d->position)) < 0)
            return td_error__oom();
        at = json_object_get(d->cache, "at");
    }
    int ok = docs && dirty && json_object_set(docs, key, doc) == 0 &&
             json_object_set(dirty, key, at) == 0;
    return ok ? 0 : td_error__oom();
}

/* ---- writing back ------------------------------------------------------------------ */

/* Documents to write, sorted by key so the B-tree is written in order. */
typedef struct batch {
    char **keys;
    json_t **docs; /* references held; the fold copies one before changing it */
    size_t count, done;
    struct batch *next;
} batch;

/* The thread that writes a rebuild's settled documents while it folds on. */
struct td_projection_writer {
    td_store *store;
    const char *collection;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch *first, *last; /* queued */
    size_t queued;
    bool busy, stop;
    int error; /* the first failure, with its message */
    char message[512];
};

static void batch_free(batch *b)
{
    for (size_t i = 0; b && b->keys && i < b->count; i++) {
        td_free(b->keys[i]);
        json_decref(b->docs ? b->docs[i] : NULL);
    }
    if (b) {
        td_free(b->keys);
        td_free(b->docs);
    }
    td_free(b);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Takes the dirty documents that changed before position `before` (all:
 * INT64_MAX) out of the dirty set into a new batch (NULL: none). */
static int gather(const td_projection_docs *d, int64_t before, batch **out)
{
    json_t *docs = cache_part(d->cache, "docs"), *dirty = cache_part(d->cache, "dirty"), *at;
    const char *key;
    size_t n = json_object_size(dirty);
    batch *b = td_calloc(1, sizeof *b);
    *out = NULL;
    if (b == NULL || (b->keys = td_calloc(n + 1, sizeof *b->keys)) == NULL ||
        (b->docs = td_calloc(n + 1, sizeof *b->docs)) == NULL) {
        batch_free(b);
        return td_error__oom();
    }
    json_object_foreach(dirty, key, at)
    {
        if (json_integer_value(at) < before && (b->keys[b->count++] = td_strdup(key)) == NULL) {
            batch_free(b);
            return td_error__oom();
        }
    }
    qsort(b->keys, b->count, sizeof *b->keys, compare_keys);
    for (size_t i = 0; i < b->count; i++) {
        b->docs[i] = json_incref(json_object_get(docs, b->keys[i]));
        json_object_del(dirty, b->keys[i]);
    }
    if (b->count == 0) {
        batch_free(b);
        b = NULL;
    }
    *out = b;
    return 0;
}

/* Writes up to `limit` documents of b in the caller's unit. */
static int write_some(td_txn *txn, const char *collection, batch *b, size_t limit)
{
    int error = 0;
    for (size_t n = 0; error == 0 && n < limit && b->done < b->count; n++, b->done++)
        error = td_txn_doc_put_json(txn, collection, b->keys[b->done], b->docs[b->done]);
    return error;
}

typedef struct unit_arg {
    const char *collection;
    batch *b;
} unit_arg;

static int write_unit(td_txn *txn, void *payload)
{
    unit_arg *u = payload;
    size_t done = u->b->done;
    int error = write_some(txn, u->collection, u->b, WRITE_UNIT);
    if (error < 0)
        u->b->done = done; /* the unit rolled back */
    return error;
}

static void *writer_main(void *arg)
{
    td_projection_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->first == NULL && !w->stop)
            pthread_cond_wait(&w->changed, &w->lock);
        batch *b = w->first;
        if (b == NULL)
            break; /* stopped, and everything written */
        w->first = b->next;
        w->last = w->first ? w->last : NULL;
        w->queued--;
        w->busy = true;
        int error = w->error; /* after a failure, what is queued is dropped */
        pthread_mutex_unlock(&w->lock);
        unit_arg u = {w->collection, b};
        while (error == 0 && b->done < b->count)
            error = td_transact(w->store, write_unit, &u);
        batch_free(b);
        pthread_mutex_lock(&w->lock);
        if (error < 0 && w->error == 0) {
            w->error = error;
            td_error__copy(w->message, sizeof w->message);
        }
        w->busy = false;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int td_projection__writer_start(td_projection_docs *d, td_store *store)
{
    td_projection_writer *w = td_calloc(1, sizeof *w);
    if (w == NULL)
        return td_error__oom();
    w->store = store;
    w->collection = d->collection;
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        td_free(w);
        return td_error__oom();
    }
    if (pthread_cond_init(&w->changed, NULL) != 0 ||
        pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        td_free(w);
        return td_error__oom();
    }
    d->writer = w;
    return 0;
}

/* The writer's failure, told on this thread. */
static int writer_error(td_projection_writer *w)
{
    pthread_mutex_lock(&w->lock);
    int error = w->error;
    pthread_mutex_unlock(&w->lock);
    return error < 0 ? td_error__set(error, "%s", w->message) : 0;
}

/* Forgets clean documents once there are too many: only with nothing in
 * flight (a document read back from the store must be there), and waits
 * for that when far over. */
static void evict(const td_projection_docs *d)
{
    json_t *docs = cache_part(d->cache, "docs"), *dirty = cache_part(d->cache, "dirty"), *doc;
    const char *key;
    void *tmp;
    td_projection_writer *w = d->writer;
    size_t size = json_object_size(docs);
    if (size <= d->cache_max)
        return;
    pthread_mutex_lock(&w->lock);
    while (size > 2 * d->cache_max && (w->first || w->busy) && w->error == 0)
        pthread_cond_wait(&w->changed, &w->lock);
    bool idle = w->first == NULL && !w->busy;
    pthread_mutex_unlock(&w->lock);
    if (!idle)
        return;
    json_object_foreach_safe(docs, tmp, key, doc)
    {
        if (json_object_get(dirty, key) == NULL)
            json_object_del(docs, key);
    }
}

bool td_projection__over_budget(const td_projection_docs *d)
{
    return json_object_size(json_object_get(d->cache, "dirty")) > d->cache_max;
}

int td_projection__write_back(td_projection_docs *d, int64_t before)
{
    td_projection_writer *w = d->writer;
    batch *b = NULL;
    int error = writer_error(w);
    if (td_projection__over_budget(d)) /* the bound wins over waiting for them to settle */
        before = INT64_MAX;
    if (error == 0)
        error = gather(d, before, &b);
    if (error < 0 || b == NULL)
        return error;
    pthread_mutex_lock(&w->lock);
    while (w->queued >= WRITES_AHEAD && w->error == 0)
        pthread_cond_wait(&w->changed, &w->lock); /* the writer is behind: wait */
    if (w->last)
        w->last->next = b;
    else
        w->first = b;
    w->last = b;
    w->queued++;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    evict(d);
    return 0;
}

int td_projection__writer_finish(td_projection_docs *d, bool write_rest)
{
    td_projection_writer *w = d->writer;
    if (w == NULL)
        return 0;
    int error = write_rest ? td_projection__write_back(d, INT64_MAX) : 0;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    if (!write_rest || error < 0) /* give up what is queued */
        w->error = w->error ? w->error : TD_ECLOSED;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (error == 0 && write_rest)
        error = writer_error(w);
    for (batch *b = w->first, *next; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    td_free(w);
    d->writer = NULL;
    return error;
}

int td_projection__write_back_txn(td_txn *txn, td_projection_docs *d)
{
    batch *b = NULL;
    int error = gather(d, INT64_MAX, &b);
    if (error == 0 && b)
        error = write_some(txn, d->collection, b, b->count);
    batch_free(b);
    return error;
}
