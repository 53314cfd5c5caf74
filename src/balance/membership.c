/*
 * membership.c: the instances sharing a store's work (balance.h): each
 * renews a document in tidings_instances under its id, {"label","host",
 * "pid","started_at","expires_at"}; the live ones are those not expired.
 * A member also holds a lock beside the store ("instance-ID": an flock on
 * SQLite, a session's advisory lock on PostgreSQL), which the kernel or
 * the database drops when it dies: an unexpired document whose lock can be
 * taken is an instance that died, not counted and swept away at once, so
 * a restart after a crash counts right away. A renewal also sweeps away
 * documents long expired, so the collection stays as small as the fleet.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "balance/balance_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define SWEEP_AFTER_US (60 * 1000000LL) /* expired this long: swept away */

typedef struct beat_ctx {
    const td_balancer *b;
    td_time now;
    char stale[8][TD_INSTANCE_ID_LEN + 1];
    size_t stale_count;
} beat_ctx;

static int beat_unit(td_txn *txn, void *payload)
{
    beat_ctx *ctx = payload;
    const td_balancer *b = ctx->b;
    json_t *doc = json_pack("{s:s,s:s,s:I,s:I,s:I}", "label", b->label, "host", b->host, "pid",
                            (json_int_t)getpid(), "started_at", (json_int_t)b->started_at,
                            "expires_at", (json_int_t)(ctx->now + TD_MEMBERSHIP_TTL_US));
    int error = doc ? td_txn_doc_put_json(txn, TD_COLL_INSTANCES, b->id, doc) : td_error__oom();
    json_decref(doc);
    for (size_t i = 0; error == 0 && i < ctx->stale_count; i++)
        if ((error = td_txn_doc_delete(txn, TD_COLL_INSTANCES, ctx->stale[i])) == TD_ENOTFOUND)
            error = 0;
    return error;
}

static int leave_unit(td_txn *txn, void *payload)
{
    const td_balancer *b = payload;
    int error = td_txn_doc_delete(txn, TD_COLL_INSTANCES, b->id);
    return error == TD_ENOTFOUND ? 0 : error;
}

/* One instance document, parsed; its strings borrowed from doc. */
static bool parse(const char *key, const char *json, size_t len, td_instance *out, json_t **doc)
{
    json_error_t err;
    *doc = json_loadb(json, len, 0, &err);
    if (*doc == NULL)
        return false;
    out->id = key;
    out->label = json_string_value(json_object_get(*doc, "label"));
    out->host = json_string_value(json_object_get(*doc, "host"));
    out->pid = (long long)json_integer_value(json_object_get(*doc, "pid"));
    out->started_at = json_integer_value(json_object_get(*doc, "started_at"));
    out->expires_at = json_integer_value(json_object_get(*doc, "expires_at"));
    out->live = out->expires_at > td_time_now();
    if (out->label == NULL)
        out->label = "?";
    if (out->host == NULL)
        out->host = "?";
    return true;
}

typedef struct list_ctx {
    td_instance_fn fn;
    void *payload;
} list_ctx;

static int list_one(const char *key, const char *json, size_t len, void *payload)
{
    list_ctx *ctx = payload;
    td_instance in;
    json_t *doc;
    if (!parse(key, json, len, &in, &doc))
        return 0; /* unreadable: not an instance anyone can name */
    int rc = ctx->fn(&in, ctx->payload);
    json_decref(doc);
    return rc;
}

int td_instances_list(td_store *store, td_instance_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    list_ctx ctx = {fn, payload};
    return td_store_doc_list(store, TD_COLL_INSTANCES, NULL, 0, list_one, &ctx);
}

#define CANDIDATES_MAX 64

typedef struct count_ctx {
    beat_ctx *beat;
    const char *self;
    /* other unexpired instances, whose locks tell whether they live */
    char others[CANDIDATES_MAX][TD_INSTANCE_ID_LEN + 1];
    size_t other_count;
    unsigned unchecked; /* unexpired beyond CANDIDATES_MAX: taken as live */
} count_ctx;

static int count_one(const td_instance *in, void *payload)
{
    count_ctx *ctx = payload;
    if (strcmp(in->id, ctx->self) == 0)
        return 0;
    if (in->live && ctx->other_count < CANDIDATES_MAX)
        snprintf(ctx->others[ctx->other_count++], TD_INSTANCE_ID_LEN + 1, "%s", in->id);
    else if (in->live)
        ctx->unchecked++;
    else if (in->expires_at < ctx->beat->now - SWEEP_AFTER_US &&
             ctx->beat->stale_count < sizeof ctx->beat->stale / sizeof ctx->beat->stale[0])
        snprintf(ctx->beat->stale[ctx->beat->stale_count++], TD_INSTANCE_ID_LEN + 1, "%s", in->id);
    return 0;
}

static void lock_name(char *out, size_t size, const char *id)
{
    snprintf(out, size, "instance-%s", id);
}

/* Whether the instance of this id is alive: it holds its lock. A lock that
 * can be taken belongs to an instance that died (the kernel or the
 * database dropped it). When it cannot be told, alive. */
static bool alive(td_store *store, const char *id)
{
    char name[16 + TD_INSTANCE_ID_LEN];
    td_store_lock *lock = NULL;
    lock_name(name, sizeof name, id);
    if (td_store__lock(store, name, &lock) < 0)
        return true; /* TD_EBUSY: held; anything else: cannot tell */
    td_store__unlock(store, lock);
    return false;
}

int td_membership__count(td_balancer *b, bool renew)
{
    static _Thread_local beat_ctx beat;
    static _Thread_local count_ctx count;
    char name[16 + TD_INSTANCE_ID_LEN];
    int error = 0;
    if (b->instance_lock == NULL) {
        lock_name(name, sizeof name, b->id);
        if ((error = td_store__lock(b->store, name, &b->instance_lock)) < 0)
            return error;
    }
    memset(&beat, 0, sizeof beat);
    memset(&count, 0, sizeof count);
    beat.b = b;
    beat.now = td_time_now();
    count.beat = &beat;
    count.self = b->id;
    if ((error = td_instances_list(b->store, count_one, &count)) < 0)
        return error;
    unsigned live = 1 + count.unchecked, rank = 0;
    for (size_t i = 0; i < count.other_count; i++) {
        if (alive(b->store, count.others[i])) {
            live++;
            rank += strcmp(count.others[i], b->id) < 0; /* ids sort by key */
        } else if (beat.stale_count < sizeof beat.stale / sizeof beat.stale[0]) {
            snprintf(beat.stale[beat.stale_count++], TD_INSTANCE_ID_LEN + 1, "%s", count.others[i]);
        }
    }
    if ((renew || beat.stale_count > 0) && (error = td_transact(b->store, beat_unit, &beat)) < 0)
        return error;
    pthread_mutex_lock(&b->lock);
    b->live = live;
    b->rank = rank < live ? rank : 0;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int td_membership__leave(td_balancer *b)
{
    int error = td_transact(b->store, leave_unit, b);
    td_store__unlock(b->store, b->instance_lock); /* after: nobody takes it for dead first */
    b->instance_lock = NULL;
    return error;
}
