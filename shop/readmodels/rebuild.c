/*
 * rebuild.c: building a fresh copy of a read model from the whole log while
 * the live copy keeps serving, then swapping it in atomically.
 *
 * 1. The new copy is generation N + 1 in its own collection, emptied first
 *    (a crashed rebuild may have left documents).
 * 2. The log up to the head is cut into pages of PAGE_SPAN positions.
 *    READERS threads each read a page's events and parse their data, up
 *    to PAGES_AHEAD pages ahead; the calling thread folds the pages in
 *    order into the new copy, outside any unit of work, through a
 *    write-back cache (docs.c) whose settled documents are written in small
 *    units between pages. Parsing JSON is most of the work, and this way
 *    both cores share it; the live shop's writer is held only for the
 *    writes. Rounds go on until the head is near; then every document
 *    still unwritten is written.
 * 3. One last unit reads the rest of the log (td_txn_read: nothing can be
 *    committed meanwhile), applies and writes it, and makes the new copy
 *    live with built_through = the head. Live handlers check the generation
 *    in their own units, so each event lands in exactly one copy that stays
 *    live: events up to built_through are in the new copy, later ones are
 *    applied to it by the live handler.
 * 4. The old copy's documents are deleted.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shop_int.h"

#define PAGE_SPAN   2048 /* positions per page */
#define READERS     2
#define PAGES_AHEAD 16
#define WRITE_EVERY 8192 /* positions folded between hand-overs to the writer */
#define FOLD_PAGE   2000 /* documents listed at a time when emptying a copy */

/* A page's events with their data parsed; owned by whoever holds it. */
typedef struct page {
    td_event **events;
    json_t **data;
    size_t count, cap;
    int64_t end;       /* the page's last position */
    int reader;        /* the thread that made it, and frees it */
    struct page *next; /* on that thread's list of spent pages */
} page;

/* Adds ev to the page with its data: `values` (a reference taken), else
 * parsed from ev. */
static int add(page *p, const td_event *ev, json_t *values)
{
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        td_event **events = realloc(p->events, cap * sizeof *events);
        if (events)
            p->events = events;
        json_t **data = events ? realloc(p->data, cap * sizeof *data) : NULL;
        if (data == NULL)
            return TD_ENOMEM;
        p->data = data;
        p->cap = cap;
    }
    int error = td_event_dup(&p->events[p->count], ev);
    if (error == 0 && values)
        p->data[p->count] = json_incref(values);
    else if (error == 0 && (error = td_event_data(&p->data[p->count], ev)) < 0)
        td_event_free(p->events[p->count]);
    p->count += error == 0;
    return error;
}

static int keep(const td_event *ev, void *payload)
{
    return add(payload, ev, NULL);
}

static int keep_picked(const td_event *ev, json_t *values, void *payload)
{
    page *p = payload;
    return ev->position > p->end ? 1 /* past the page */ : add(p, ev, values);
}

static void page_clear(page *p)
{
    for (size_t i = 0; i < p->count; i++) {
        td_event_free(p->events[i]);
        json_decref(p->data[i]);
    }
    p->count = 0;
}

/* Frees p and the pages chained after it. */
static void page_free(page *p)
{
    while (p) {
        page *next = p->next;
        page_clear(p);
        free(p->events);
        free(p->data);
        free(p);
        p = next;
    }
}

/* ---- the reader threads ---------------------------------------------------------- */

/* One round: the pages of positions (from, to]; page k is
 * (from + k * PAGE_SPAN, from + (k + 1) * PAGE_SPAN]. */
typedef struct readers {
    td_store *store;
    const shop_read_model *m;
    int64_t from, to, pages;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t claimed;          /* pages handed to a reader so far */
    int64_t folded;           /* pages the fold has taken */
    page *ready[PAGES_AHEAD]; /* page k at k % PAGES_AHEAD */
    page *spent[READERS];     /* given back, for the thread that made them: its
                               * memory goes back to its own malloc arena */
    bool cancel;
    int error; /* the first reader failure, with its shop error copied */
    const char *code;
    char message[512];
} readers;

typedef struct reader_arg {
    readers *r;
    int me;
} reader_arg;

static void fail_readers(readers *r, int error)
{
    shop_error_info why = shop_error();
    pthread_mutex_lock(&r->lock);
    if (r->error == 0) {
        r->error = error;
        r->code = why.status ? why.code : NULL;
        snprintf(r->message, sizeof r->message, "%s", why.status ? why.message : td_error_last());
    }
    r->cancel = true;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static int read_page(readers *r, int me, int64_t k, page **out)
{
    page *p = calloc(1, sizeof *p);
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = r->from + k * PAGE_SPAN;
    q.category = r->m->category;
    q.limit = PAGE_SPAN;
    int error = p ? 0 : TD_ENOMEM;
    if (p) {
        p->reader = me;
        p->end = q.after_position + PAGE_SPAN < r->to ? q.after_position + PAGE_SPAN : r->to;
        error = td_store_read_fields(r->store, &q, r->m->fields, keep_picked, p);
    }
    if (error < 0) {
        page_free(p);
        return error;
    }
    *out = p;
    return 0;
}

/* Claims pages in turn, reads them and leaves them for the fold. */
static void *reader_main(void *arg)
{
    readers *r = ((reader_arg *)arg)->r;
    int me = ((reader_arg *)arg)->me;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (!r->cancel && r->claimed < r->pages && r->claimed >= r->folded + PAGES_AHEAD)
            pthread_cond_wait(&r->changed, &r->lock);
        page *spent = r->spent[me];
        r->spent[me] = NULL;
        int64_t k = r->cancel || r->claimed == r->pages ? -1 : r->claimed++;
        pthread_mutex_unlock(&r->lock);
        page_free(spent);
        if (k < 0)
            return NULL;
        page *p = NULL;
        int error = read_page(r, me, k, &p);
        if (error < 0) {
            fail_readers(r, error);
            return NULL;
        }
        pthread_mutex_lock(&r->lock);
        r->ready[k % PAGES_AHEAD] = p;
        pthread_cond_broadcast(&r->changed);
        pthread_mutex_unlock(&r->lock);
    }
}

/* The fold's next page, in order; NULL if the readers failed. */
static page *next_page(readers *r)
{
    pthread_mutex_lock(&r->lock);
    page **slot = &r->ready[r->folded % PAGES_AHEAD];
    while (*slot == NULL && !r->cancel)
        pthread_cond_wait(&r->changed, &r->lock);
    page *p = *slot;
    *slot = NULL;
    r->folded += p != NULL;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return p;
}

/* The fold is done with p. */
static void give_back(readers *r, page *p)
{
    pthread_mutex_lock(&r->lock);
    p->next = r->spent[p->reader];
    r->spent[p->reader] = p;
    pthread_mutex_unlock(&r->lock);
}

/* ---- folding --------------------------------------------------------------------- */

typedef struct fold {
    const shop_read_model *m;
    char collection[SHOP_RM_COLLECTION_MAX];
    shop_rm_docs docs;       /* the new copy, with the rebuild's cache */
    int64_t last;            /* everything up to here is in the new copy */
    int64_t folded;          /* events applied */
    int64_t handed;          /* f->last when documents last went to the writer */
    shop_rm_generation from; /* the generation being replaced */
    int64_t through;         /* the head when the new copy went live */
} fold;

static int apply_page(const shop_rm_docs *docs, const shop_read_model *m, const page *p)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < p->count; i++)
        error = m->apply(docs, p->events[i], p->data[i]);
    return error;
}

static int fold_pages(fold *f, readers *r)
{
    int error = 0;
    for (int64_t k = 0; error == 0 && k < r->pages; k++) {
        page *p = next_page(r);
        if (p == NULL) /* the readers' failure, told on this thread */
            return shop_fail(r->error < 0 ? r->error : TD_ERROR,
                             r->code ? r->code : "internal_error", NULL, "%s", r->message);
        f->docs.position = p->end;
        error = apply_page(&f->docs, f->m, p);
        if (error == 0) {
            f->last = p->end;
            f->folded += (int64_t)p->count;
        }
        if (error == 0 && (f->last - f->handed >= WRITE_EVERY || shop_rm_over_budget(&f->docs))) {
            error = shop_rm_write_back(&f->docs, f->last - SHOP_RM_SETTLE);
            f->handed = f->last;
        }
        give_back(r, p);
    }
    return error;
}

/* Folds the log from f->last up to `to` with the reader threads. */
static int fold_round(td_store *store, fold *f, int64_t to)
{
    readers r = {.store = store, .m = f->m, .from = f->last, .to = to};
    pthread_t threads[READERS];
    reader_arg args[READERS];
    int started = 0;
    r.pages = (to - f->last + PAGE_SPAN - 1) / PAGE_SPAN;
    if (pthread_mutex_init(&r.lock, NULL) != 0)
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "cannot make a lock");
    if (pthread_cond_init(&r.changed, NULL) != 0) {
        pthread_mutex_destroy(&r.lock);
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "cannot make a condition");
    }
    for (; started < READERS; started++) {
        args[started] = (reader_arg){&r, started};
        if (pthread_create(&threads[started], NULL, reader_main, &args[started]) != 0)
            break;
    }
    if (started == 0)
        fail_readers(&r, shop_fail(TD_ENOMEM, "internal_error", NULL, "cannot start a reader"));
    int error = fold_pages(f, &r);
    pthread_mutex_lock(&r.lock);
    r.cancel = true; /* if the fold failed first: the readers stop */
    pthread_cond_broadcast(&r.changed);
    pthread_mutex_unlock(&r.lock);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < PAGES_AHEAD; i++)
        page_free(r.ready[i]);
    for (int i = 0; i < READERS; i++)
        page_free(r.spent[i]);
    pthread_cond_destroy(&r.changed);
    pthread_mutex_destroy(&r.lock);
    return error;
}

/* Folds rounds up to the head until it is near, and writes everything
 * folded. */
static int fold_log(td_store *store, fold *f)
{
    int64_t head = 0;
    int error = shop_rm_writer_start(&f->docs, store);
    if (error < 0)
        return shop_fail(error, "internal_error", NULL, "cannot start the rebuild's writer");
    error = td_store_head(store, &head);
    while (error == 0 && head - f->last > PAGE_SPAN) {
        if ((error = fold_round(store, f, head)) == 0)
            error = td_store_head(store, &head);
    }
    int finished = shop_rm_writer_finish(&f->docs, error == 0);
    return error < 0 ? error : finished;
}

/* The tail of the log and the swap, in one unit. */
static int swap_unit(td_txn *txn, void *payload)
{
    fold *f = payload;
    shop_rm_generation now;
    page tail = {.end = INT64_MAX};
    td_read_query q = TD_READ_QUERY_INIT;
    shop_rm_docs docs = f->docs;
    docs.txn = txn;
    q.after_position = f->last;
    q.category = f->m->category;
    int error = shop_rm_generation_txn(txn, f->m->base, &now);
    if (error == 0 && now.generation != f->from.generation)
        error = shop_fail(TD_ECONFLICT, "request_in_progress", NULL,
                          "another rebuild of %s finished first", f->m->base);
    if (error == 0)
        error = td_txn_read(txn, &q, keep, &tail);
    if (error == 0)
        error = apply_page(&docs, f->m, &tail);
    if (error == 0)
        error = shop_rm_write_back_txn(txn, &docs);
    shop_rm_generation next = {f->from.generation + 1, td_txn_head(txn)};
    if (error == 0)
        error = shop_rm_generation_put(txn, f->m->base, &next);
    f->through = next.built_through;
    f->folded += error == 0 ? (int64_t)tail.count : 0;
    page_clear(&tail);
    free(tail.events);
    free(tail.data);
    return error;
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

static int rebuild(td_store *store, const shop_read_model *m, size_t cache,
                   shop_rebuild_report *out)
{
    fold f = {.m = m};
    char old[SHOP_RM_COLLECTION_MAX];
    double start = now_s();
    f.docs = (shop_rm_docs){.store = store,
                            .collection = f.collection,
                            .cache = json_object(),
                            .cache_max = cache ? cache : 50000};
    int error = f.docs.cache ? shop_rm_generation_get(store, m->base, &f.from) : TD_ENOMEM;
    if (error < 0) {
        json_decref(f.docs.cache);
        return error;
    }
    shop_rm_collection(f.collection, m->base, f.from.generation + 1);
    shop_rm_collection(old, m->base, f.from.generation);
    if ((error = empty_collection(store, f.collection)) == 0 && (error = fold_log(store, &f)) == 0)
        error = td_transact(store, swap_unit, &f);
    out->seconds = now_s() - start; /* until the new copy is live */
    json_decref(f.docs.cache);
    if (error < 0)
        return error;
    out->events = f.folded;
    out->generation = f.from.generation + 1;
    out->built_through = f.through;
    return empty_collection(store, old); /* the old copy serves nobody now */
}

int shop_rebuild_read_model(td_store *store, const char *name, const shop_rebuild_options *opts,
                            shop_rebuild_report *out)
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
    error = rebuild(store, m, opts ? opts->cache : 0, out);
    if (versions) {
        td_store_set_upcasters(store, NULL);
        td_upcasters_free(versions);
    }
    if (error < 0 && shop_error().status == 0)
        shop_fail_td(error);
    return error;
}
