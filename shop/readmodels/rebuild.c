/*
 * rebuild.c: building a fresh copy of a read model from the whole log while
 * the live copy keeps serving, then swapping it in atomically.
 *
 * 1. The new copy is generation N + 1 in its own collection, emptied first
 *    (a crashed rebuild may have left documents).
 * 2. The log is folded into it in pages of FOLD_PAGE events, one unit of
 *    work per page, until a page comes back short: the copy is near the head.
 * 3. One last unit reads the rest of the log (td_txn_read: nothing can be
 *    committed meanwhile), applies it, and makes the new copy live with
 *    built_through = the head. Live handlers check the generation in their
 *    own units, so each event lands in exactly one copy that stays live:
 *    events up to built_through are in the new copy, later ones are applied
 *    to it by the live handler.
 * 4. The old copy's documents are deleted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shop_int.h"

#define FOLD_PAGE 2000

typedef struct fold {
    const shop_read_model *m;
    char collection[SHOP_RM_COLLECTION_MAX];
    td_event **events;
    size_t count, cap;
    int64_t last; /* everything up to here is in the new copy */
    int64_t folded;
    shop_rm_generation from; /* the generation being replaced */
    int64_t through;         /* the head when the new copy went live */
    json_t *cache;           /* the read model's, for the whole rebuild */
} fold;

static int keep(const td_event *ev, void *payload)
{
    fold *f = payload;
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        td_event **grown = realloc(f->events, cap * sizeof *grown);
        if (grown == NULL)
            return TD_ENOMEM;
        f->events = grown;
        f->cap = cap;
    }
    int error = td_event_dup(&f->events[f->count], ev);
    f->count += error == 0;
    return error;
}

static void drop(fold *f)
{
    for (size_t i = 0; i < f->count; i++)
        td_event_free(f->events[i]);
    f->count = 0;
}

static int apply_kept(td_txn *txn, fold *f)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < f->count; i++) {
        json_t *data = NULL;
        error = td_event_data(&data, f->events[i]);
        if (error == 0)
            error = f->m->apply(txn, f->events[i], data, f->collection, f->cache);
        json_decref(data);
    }
    return error == 0 ? shop_rm_flush(txn, f->cache, f->collection) : error;
}

static int page_unit(td_txn *txn, void *payload)
{
    return apply_kept(txn, payload);
}

static int swap_unit(td_txn *txn, void *payload)
{
    fold *f = payload;
    shop_rm_generation now;
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = f->last;
    q.category = f->m->category;
    drop(f);
    int error = shop_rm_generation_txn(txn, f->m->base, &now);
    if (error == 0 && now.generation != f->from.generation)
        error = shop_fail(TD_ECONFLICT, "request_in_progress", NULL,
                          "another rebuild of %s finished first", f->m->base);
    if (error == 0)
        error = td_txn_read(txn, &q, keep, f);
    if (error == 0)
        error = apply_kept(txn, f);
    shop_rm_generation next = {f->from.generation + 1, td_txn_head(txn)};
    if (error == 0)
        error = shop_rm_generation_put(txn, f->m->base, &next);
    f->through = next.built_through;
    f->folded += error == 0 ? (int64_t)f->count : 0;
    drop(f);
    return error;
}

/* Folds pages until one comes back short. */
static int fold_log(td_store *store, fold *f)
{
    for (;;) {
        td_read_query q = TD_READ_QUERY_INIT;
        int64_t head = 0;
        q.after_position = f->last;
        q.category = f->m->category;
        q.limit = FOLD_PAGE;
        int error = td_store_head(store, &head);
        if (error == 0)
            error = td_store_read(store, &q, keep, f);
        if (error == 0 && f->count > 0)
            error = td_transact(store, page_unit, f);
        size_t got = f->count;
        if (error == 0) { /* a short page saw the whole log up to the head it read */
            int64_t seen = got ? f->events[got - 1]->position : f->last;
            f->folded += (int64_t)got;
            f->last = got == FOLD_PAGE || seen > head ? seen : head;
        }
        drop(f);
        if (error < 0 || got < FOLD_PAGE)
            return error;
    }
}

/* ---- emptying a collection ---------------------------------------------------- */

typedef struct keys {
    char *list[FOLD_PAGE];
    size_t count;
    const char *collection;
} keys;

static int keep_key(const char *key, const char *json, size_t len, void *payload)
{
    keys *k = payload;
    (void)json;
    (void)len;
    return (k->list[k->count++] = strdup(key)) ? 0 : TD_ENOMEM;
}

static int delete_unit(td_txn *txn, void *payload)
{
    keys *k = payload;
    int error = 0;
    for (size_t i = 0; error == 0 && i < k->count; i++)
        if ((error = td_txn_doc_delete(txn, k->collection, k->list[i])) == TD_ENOTFOUND)
            error = 0;
    return error;
}

static int empty_collection(td_store *store, const char *collection)
{
    keys *k = calloc(1, sizeof *k);
    int error = k ? 0 : TD_ENOMEM;
    size_t got = FOLD_PAGE;
    while (error == 0 && got == FOLD_PAGE) {
        k->collection = collection;
        error = td_store_doc_list(store, collection, NULL, FOLD_PAGE, keep_key, k);
        if (error == 0 && k->count > 0)
            error = td_transact(store, delete_unit, k);
        got = k->count;
        for (size_t i = 0; i < k->count; i++)
            free(k->list[i]);
        k->count = 0;
    }
    free(k);
    return error;
}

/* ---- the whole rebuild ---------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rebuild(td_store *store, const shop_read_model *m, shop_rebuild_report *out)
{
    fold f = {.m = m, .cache = json_object()};
    char old[SHOP_RM_COLLECTION_MAX];
    double start = now_s();
    int error = f.cache ? shop_rm_generation_get(store, m->base, &f.from) : TD_ENOMEM;
    if (error < 0) {
        json_decref(f.cache);
        return error;
    }
    shop_rm_collection(f.collection, m->base, f.from.generation + 1);
    shop_rm_collection(old, m->base, f.from.generation);
    if ((error = empty_collection(store, f.collection)) == 0 && (error = fold_log(store, &f)) == 0)
        error = td_transact(store, swap_unit, &f);
    drop(&f);
    free(f.events);
    json_decref(f.cache);
    if (error < 0)
        return error;
    out->events = f.folded;
    out->generation = f.from.generation + 1;
    out->built_through = f.through;
    out->seconds = now_s() - start;
    return empty_collection(store, old); /* the old copy serves nobody now */
}

int shop_rebuild_read_model(td_store *store, const char *name, shop_rebuild_report *out)
{
    const shop_read_model *m = NULL;
    td_upcasters *versions = NULL;
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        if (strcmp(name, shop_read_models[i].base) == 0)
            m = &shop_read_models[i];
    if (m == NULL)
        return shop_fail(TD_ENOTFOUND, "not_found", NULL,
                         "no read model %s (user_orders, product_sales, stock_levels)", name);
    shop_error_clear();
    int error = 0;
    if (td_store_upcasters(store) == NULL) { /* read as the shop reads */
        if ((error = shop_event_versions_new(&versions)) < 0)
            return shop_fail_td(error);
        td_store_set_upcasters(store, versions);
    }
    *out = (shop_rebuild_report){0};
    error = rebuild(store, m, out);
    if (versions) {
        td_store_set_upcasters(store, NULL);
        td_upcasters_free(versions);
    }
    if (error < 0 && shop_error().status == 0)
        shop_fail_td(error);
    return error;
}
