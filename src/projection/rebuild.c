/*
 * rebuild.c: building a fresh copy of a projection from the whole log
 * while the live copy keeps serving, then swapping it in atomically
 * (projection.h).
 *
 * 1. The new copy is generation N + 1 in its own collection. Every copy
 *    but the live one is emptied first: a crashed rebuild may have left
 *    documents in N + 1, or, killed after its swap, in the copy it
 *    replaced.
 * 2. The log up to the head is cut into pages of PAGE_SPAN positions.
 *    READERS threads each read a page's events and parse their data (only
 *    the fields the fold reads, when it lists them), up to PAGES_AHEAD
 *    pages ahead; the calling thread folds the pages in order into the new
 *    copy, outside any unit of work, through a write-back cache (docs.c)
 *    whose settled documents are written in small units between pages.
 *    Parsing JSON is most of the work, and this way both cores share it;
 *    the store's writer is held only for the writes. Rounds go on until the
 *    head is near; then every document still unwritten is written.
 * 3. One last unit reads the rest of the log (as this unit sees it:
 *    nothing can be committed meanwhile), applies and writes it, and makes
 *    the new copy live with built_through = the head. Live handlers check
 *    the generation in their own units, so each event lands in exactly one
 *    copy that stays live: events up to built_through are in the new copy,
 *    later ones are applied to it by the live handler.
 * 4. The old copy's documents are deleted.
 *
 * An event the store cannot read (upcast.h: a schema too new, a missing
 * step) fails a read at that event. A page reader then reads that one event
 * as stored, checks that it is indeed unreadable, notes it in the page and
 * reads on after it; the tail reads as stored and upcasts each event
 * itself. The fold takes the notes into the report in position order. Any
 * other failure (out of memory, the database) ends the rebuild.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "projection/projection_int.h"
#include "store/txn_internal.h"
#include "tidings/upcast.h"

#define READERS       2
#define PAGES_AHEAD   16
#define WRITE_EVERY   8192  /* positions folded between hand-overs to the writer */
#define EMPTY_BATCH   2000  /* documents listed at a time when emptying a copy */
#define DEFAULT_CACHE 50000 /* td_projection_rebuild_options.cache's default */

int64_t td_projection__page_span = 2048; /* positions per page (projection_int.h) */
#define PAGE_SPAN td_projection__page_span

/* A page's events with their data parsed, and the events it could not
 * read; owned by whoever holds it. */
typedef struct page {
    td_event **events;
    json_t **data;
    size_t count, cap;
    td_projection_skipped *skipped;
    size_t skipped_count, skipped_cap;
    const td_projection *m;
    int64_t end;       /* the page's last position */
    int64_t seen;      /* the last position read so far */
    int failed;        /* the callback's own failure (not the read's) */
    int reader;        /* the thread that made it, and frees it */
    struct page *next; /* on that thread's list of spent pages */
} page;

/* Adds ev to the page with its data: `values` (a reference taken), else
 * parsed from ev. */
static int add(page *p, const td_event *ev, json_t *values)
{
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        td_event **events = td_realloc(p->events, cap * sizeof *events);
        if (events)
            p->events = events;
        json_t **data = events ? td_realloc(p->data, cap * sizeof *data) : NULL;
        if (data == NULL)
            return td_error__oom();
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

/* Notes an event the page could not read. */
static int note_skipped(page *p, const td_event *ev)
{
    if (p->skipped_count == p->skipped_cap) {
        size_t cap = p->skipped_cap ? p->skipped_cap * 2 : 4;
        td_projection_skipped *s = td_realloc(p->skipped, cap * sizeof *s);
        if (s == NULL)
            return td_error__oom();
        p->skipped = s;
        p->skipped_cap = cap;
    }
    p->skipped[p->skipped_count++] = (td_projection_skipped){ev->position, ev->id};
    return 0;
}

static int keep_whole(const td_event *ev, void *payload)
{
    page *p = payload;
    if (ev->position > p->end)
        return 1; /* past the page */
    p->seen = ev->position;
    int error = td_projection__wants(p->m, ev->type) ? add(p, ev, NULL) : 0;
    p->failed = error;
    return error;
}

static int keep_picked(const td_event *ev, json_t *values, void *payload)
{
    page *p = payload;
    if (ev->position > p->end)
        return 1; /* past the page */
    p->seen = ev->position;
    int error = td_projection__wants(p->m, ev->type) ? add(p, ev, values) : 0;
    p->failed = error;
    return error;
}

static void page_clear(page *p)
{
    for (size_t i = 0; i < p->count; i++) {
        td_event_free(p->events[i]);
        json_decref(p->data[i]);
    }
    p->count = 0;
    p->skipped_count = 0;
}

/* Frees p and the pages chained after it. */
static void page_free(page *p)
{
    while (p) {
        page *next = p->next;
        page_clear(p);
        td_free(p->events);
        td_free(p->data);
        td_free(p->skipped);
        td_free(p);
        p = next;
    }
}

/* ---- going on past an unreadable event ------------------------------------------- */

static int take_first(const td_event *ev, void *payload)
{
    int error = td_event_dup(payload, ev);
    return error < 0 ? error : 1;
}

/* The event after position `after` in the category is unreadable: 1, and
 * *out its stored copy (owned); readable, or none: 0; the probe failed: a
 * negative code. */
static int probe(td_store *store, const char *category, int64_t after, td_event **out)
{
    td_read_query q = TD_READ_QUERY_INIT;
    td_event *up = NULL;
    *out = NULL;
    q.after_position = after;
    q.category = category;
    q.limit = 1;
    int error = td_store_read_stored(store, &q, take_first, out);
    if (error >= 0 && *out)
        error = td_upcast(td_store_upcasters(store), *out, &up);
    td_event_free(up);
    if (error == 0 || error == TD_ENOMEM || *out == NULL) {
        td_event_free(*out);
        *out = NULL;
        return error < 0 ? error : 0;
    }
    return 1; /* td_upcast refused it */
}

/* The page's read failed with `error` and not in its callback: if the
 * event after p->seen is unreadable, notes it and moves p->seen to it (0:
 * read on), or, if it lies past the page, the page is complete (1: the
 * next page notes it); else the failure stands. */
static int skip_unreadable(td_store *store, page *p, int error)
{
    char why[512];
    td_event *ev = NULL;
    if (error == TD_ENOMEM)
        return error;
    td_error__copy(why, sizeof why);
    int found = probe(store, p->m->category, p->seen, &ev);
    if (found == 1 && ev->position <= p->end) { /* else 1: past the page */
        found = note_skipped(p, ev);
        p->seen = ev->position;
    } else if (found == 0) {
        found = td_error__set(error, "%s", why); /* something else failed */
    }
    td_event_free(ev);
    return found;
}

/* ---- the reader threads ---------------------------------------------------------- */

/* One round: the pages of positions (from, to]; page k is
 * (from + k * PAGE_SPAN, from + (k + 1) * PAGE_SPAN]. */
typedef struct readers {
    td_store *store;
    const td_projection *m;
    int64_t from, to, pages;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t claimed;          /* pages handed to a reader so far */
    int64_t folded;           /* pages the fold has taken */
    page *ready[PAGES_AHEAD]; /* page k at k % PAGES_AHEAD */
    page *spent[READERS];     /* given back, for the thread that made them: its
                               * memory goes back to its own malloc arena */
    bool cancel;
    int error; /* the first reader failure, with its message copied */
    char message[512];
} readers;

typedef struct reader_arg {
    readers *r;
    int me;
} reader_arg;

static void fail_readers(readers *r, int error)
{
    pthread_mutex_lock(&r->lock);
    if (r->error == 0) {
        r->error = error;
        td_error__copy(r->message, sizeof r->message);
    }
    r->cancel = true;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static int read_page(readers *r, int me, int64_t k, page **out)
{
    page *p = td_calloc(1, sizeof *p);
    if (p == NULL)
        return td_error__oom();
    int64_t from = r->from + k * PAGE_SPAN;
    p->reader = me;
    p->m = r->m;
    p->seen = from;
    p->end = from + PAGE_SPAN < r->to ? from + PAGE_SPAN : r->to;
    int error;
    for (;;) {
        td_read_query q = TD_READ_QUERY_INIT;
        q.after_position = p->seen;
        q.category = r->m->category;
        q.limit = (size_t)PAGE_SPAN;
        p->failed = 0;
        error = r->m->fields ? td_store_read_fields(r->store, &q, r->m->fields, keep_picked, p)
                             : td_store_read(r->store, &q, keep_whole, p);
        if (error >= 0 || p->failed)
            break;
        if ((error = skip_unreadable(r->store, p, error)) != 0)
            break; /* 0: skipped one, read on after it */
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
    const td_projection *m;
    char collection[TD_PROJECTION_COLLECTION_MAX];
    td_projection_docs docs; /* the new copy, with the rebuild's cache */
    int64_t last;            /* everything up to here is in the new copy */
    int64_t folded;          /* events applied */
    int64_t handed;          /* f->last when documents last went to the writer */
    td_projection_gen from;  /* the generation being replaced */
    int64_t through;         /* the head when the new copy went live */
    page tail;               /* the swap unit's events (and skips) */
    td_projection_report *report;
} fold;

static void report_skipped(td_projection_report *out, const page *p)
{
    for (size_t i = 0; i < p->skipped_count; i++) {
        if (out->skipped_listed < TD_PROJECTION_SKIPPED_MAX)
            out->skipped_events[out->skipped_listed++] = p->skipped[i];
        out->skipped++;
    }
}

static int apply_page(td_projection_docs *docs, const td_projection *m, const page *p)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < p->count; i++)
        error = m->fold(docs, p->events[i], p->data[i], m->payload);
    return error;
}

static int fold_pages(fold *f, readers *r)
{
    int error = 0;
    for (int64_t k = 0; error == 0 && k < r->pages; k++) {
        page *p = next_page(r);
        if (p == NULL) /* the readers' failure, told on this thread */
            return td_error__set(r->error < 0 ? r->error : TD_ERROR, "%s", r->message);
        f->docs.position = p->end;
        error = apply_page(&f->docs, f->m, p);
        if (error == 0) {
            f->last = p->end;
            f->folded += (int64_t)p->count;
            report_skipped(f->report, p);
        }
        if (error == 0 &&
            (f->last - f->handed >= WRITE_EVERY || td_projection__over_budget(&f->docs))) {
            error = td_projection__write_back(&f->docs, f->last - PROJECTION_SETTLE);
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
        return td_error__set(TD_ENOMEM, "cannot make a lock");
    if (pthread_cond_init(&r.changed, NULL) != 0) {
        pthread_mutex_destroy(&r.lock);
        return td_error__set(TD_ENOMEM, "cannot make a condition");
    }
    for (; started < READERS; started++) {
        args[started] = (reader_arg){&r, started};
        if (pthread_create(&threads[started], NULL, reader_main, &args[started]) != 0)
            break;
    }
    if (started == 0)
        fail_readers(&r, td_error__set(TD_ENOMEM, "cannot start a reader"));
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
    int error = td_projection__writer_start(&f->docs, store);
    if (error < 0)
        return td_error__set(error, "cannot start the rebuild's writer");
    error = td_store_head(store, &head);
    while (error == 0 && head - f->last > PAGE_SPAN) {
        if ((error = fold_round(store, f, head)) == 0)
            error = td_store_head(store, &head);
    }
    int finished = td_projection__writer_finish(&f->docs, error == 0);
    return error < 0 ? error : finished;
}

/* The tail's events as stored: each upcast here, an unreadable one noted. */
typedef struct tail_arg {
    page *p;
    const td_upcasters *upcasters;
} tail_arg;

static int keep_tail(const td_event *ev, void *payload)
{
    tail_arg *t = payload;
    td_event *up = NULL;
    int error = td_upcast(t->upcasters, ev, &up);
    if (error < 0)
        return error == TD_ENOMEM ? error : note_skipped(t->p, ev);
    if (td_projection__wants(t->p->m, ev->type))
        error = add(t->p, up ? up : ev, NULL);
    td_event_free(up);
    return error;
}

/* The tail of the log and the swap, in one unit. */
static int swap_unit(td_txn *txn, void *payload)
{
    fold *f = payload;
    td_projection_gen now;
    td_read_query q = TD_READ_QUERY_INIT;
    td_projection_docs docs = f->docs;
    tail_arg t = {&f->tail, td_store_upcasters(f->docs.store)};
    docs.txn = txn;
    q.after_position = f->last;
    q.category = f->m->category;
    page_clear(&f->tail); /* a unit tried again starts over */
    f->tail.m = f->m;
    f->tail.end = INT64_MAX;
    int error = td_projection__gen_txn(txn, f->m->name, &now);
    if (error == 0 && now.generation != f->from.generation)
        error = td_error__set(TD_ECONFLICT, "another rebuild of %s finished first", f->m->name);
    if (error == 0)
        error = td_txn__read_stored(txn, &q, keep_tail, &t);
    if (error == 0)
        error = apply_page(&docs, f->m, &f->tail);
    if (error == 0)
        error = td_projection__write_back_txn(txn, &docs);
    td_projection_gen next = {f->from.generation + 1, td_txn_head(txn)};
    if (error == 0)
        error = td_projection__gen_put(txn, f->m->name, &next);
    f->through = next.built_through;
    return error;
}

/* ---- emptying a collection ---------------------------------------------------- */

typedef struct keys {
    char *list[EMPTY_BATCH];
    size_t count;
    const char *collection;
} keys;

static int keep_key(const char *key, const char *json, size_t len, void *payload)
{
    keys *k = payload;
    (void)json;
    (void)len;
    return (k->list[k->count++] = td_strdup(key)) ? 0 : td_error__oom();
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
    keys *k = td_calloc(1, sizeof *k);
    int error = k ? 0 : td_error__oom();
    size_t got = EMPTY_BATCH;
    while (error == 0 && got == EMPTY_BATCH) {
        k->collection = collection;
        error = td_store_doc_list(store, collection, NULL, EMPTY_BATCH, keep_key, k);
        if (error == 0 && k->count > 0)
            error = td_transact(store, delete_unit, k);
        got = k->count;
        for (size_t i = 0; i < k->count; i++)
            td_free(k->list[i]);
        k->count = 0;
    }
    td_free(k);
    return error;
}

/* Whether collection is a copy of projection `name`: <name> or <name>_g<digits>. */
static bool is_copy(const char *collection, const char *name)
{
    size_t len = strlen(name);
    if (strncmp(collection, name, len) != 0)
        return false;
    const char *rest = collection + len;
    if (*rest == '\0')
        return true;
    if (strncmp(rest, "_g", 2) != 0 || rest[2] == '\0')
        return false;
    for (rest += 2; *rest; rest++)
        if (*rest < '0' || *rest > '9')
            return false;
    return true;
}

typedef struct stale {
    const char *name;
    const char *live; /* the live copy's collection: kept */
    char **list;
    size_t count, cap;
} stale;

static int keep_stale(const char *collection, void *payload)
{
    stale *st = payload;
    if (!is_copy(collection, st->name) || strcmp(collection, st->live) == 0)
        return 0;
    if (st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4;
        char **list = td_realloc(st->list, cap * sizeof *list);
        if (list == NULL)
            return td_error__oom();
        st->list = list;
        st->cap = cap;
    }
    return (st->list[st->count++] = td_strdup(collection)) ? 0 : td_error__oom();
}

/* Empties every copy of the projection but the live one: the next one to
 * build, and any a rebuild killed after its swap left behind. */
static int empty_stale(td_store *store, const char *name, const char *live)
{
    stale st = {.name = name, .live = live};
    int error = td_store_doc_collections(store, keep_stale, &st);
    for (size_t i = 0; i < st.count; i++) {
        if (error == 0 && st.list[i])
            error = empty_collection(store, st.list[i]);
        td_free(st.list[i]);
    }
    td_free(st.list);
    return error;
}

/* ---- the whole rebuild ---------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rebuild(td_store *store, const td_projection *m, size_t cache, td_projection_report *out)
{
    fold f = {.m = m, .report = out};
    char old[TD_PROJECTION_COLLECTION_MAX];
    double start = now_s();
    f.docs = (td_projection_docs){.store = store,
                                  .collection = f.collection,
                                  .cache = json_object(),
                                  .memo = json_object(),
                                  .cache_max = cache};
    int error = f.docs.cache && f.docs.memo ? td_projection__gen_get(store, m->name, &f.from)
                                            : td_error__oom();
    if (error == 0) {
        td_projection__collection(f.collection, m->name, f.from.generation + 1);
        td_projection__collection(old, m->name, f.from.generation);
        if ((error = empty_stale(store, m->name, old)) == 0 && (error = fold_log(store, &f)) == 0)
            error = td_transact(store, swap_unit, &f);
    }
    out->seconds = now_s() - start; /* until the new copy is live */
    json_decref(f.docs.cache);
    json_decref(f.docs.memo);
    if (error == 0) {
        out->events = f.folded + (int64_t)f.tail.count;
        out->generation = f.from.generation + 1;
        out->built_through = f.through;
        report_skipped(out, &f.tail);
    }
    page_clear(&f.tail);
    td_free(f.tail.events);
    td_free(f.tail.data);
    td_free(f.tail.skipped);
    if (error < 0)
        return error;
    return empty_collection(store, old); /* the old copy serves nobody now */
}

int td_projection_rebuild(td_store *store, const td_projection *projection,
                          const td_projection_rebuild_options *opts, td_projection_report *out)
{
    TD_REQUIRE(store && out);
    int error = td_projection__check(projection);
    if (error < 0)
        return error;
    if (opts && opts->version != TD_PROJECTION_REBUILD_OPTIONS_VERSION)
        return td_error__set(TD_EINVAL, "td_projection_rebuild: unknown options version %u",
                             opts->version);
    *out = (td_projection_report){0};
    return rebuild(store, projection, opts && opts->cache ? opts->cache : DEFAULT_CACHE, out);
}
