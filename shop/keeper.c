/*
 * keeper.c (shop): looks after the running shop: it runs the balancer that
 * decides which event handlers this instance runs, and every
 * KEEPER_SWEEP_MS deletes what has expired (customers' sessions).
 *
 * Every KEEPER_TICK_MS the keeper thread calls td_balancer_tick
 * (libtidings' balance.h): alone on a store, the instance runs every
 * handler; with others on the same database, the handlers (or their
 * partitions, --partitions) are spread over the live instances, moved
 * from one that stops or dies, and one whose lease another process took
 * over (this one stalled past it) is stopped and later started again from
 * its durable checkpoint. shop_check (and so /health) reports handlers
 * that failed to start or while running here; one another instance runs
 * is not a failure.
 *
 * The keeper also watches the store: once it has stopped writes after a
 * failed sync or commit (td_store_health: failed, TD_EIO), it tells the
 * application (shop_options.on_store_failed), once; `shop serve` then
 * exits for its supervisor to restart it, which reopens the store.
 *
 * And it hands the memory malloc keeps free back to the system every
 * KEEPER_TRIM_MS (malloc_trim): glibc keeps what a thread freed in that
 * thread's arena, and under a steady load the shop's resident set crept up
 * (about 2.5 MB per 20,000 orders) while the memory in use stayed at about
 * 33-37 MB; see docs/benchmarks.md. Each trim walks the arenas' free
 * chunks, a few milliseconds.
 *
 * Threads: once the shop runs, the keeper alone starts and stops handlers
 * (through the balancer); `keeper_lock` guards the sweeps' list.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/expiry.h"
#include "shop_int.h"

#define KEEPER_TICK_MS  500
#define KEEPER_SWEEP_MS 60000
#define KEEPER_TRIM_MS  10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int shop_sweep_expiring(shop *s, const char *collection)
{
    if (!s->keeper_ready)
        return shop_fail(TD_EINVAL, "internal_error", NULL, "a passive shop sweeps nothing");
    if (s->sweep_count == SHOP_SWEEPS_MAX)
        return shop_fail(TD_ETOOBIG, "internal_error", NULL, "too many expiring collections");
    pthread_mutex_lock(&s->keeper_lock);
    s->sweeps[s->sweep_count++] = collection;
    pthread_mutex_unlock(&s->keeper_lock);
    return 0;
}

/* Deletes what has expired; a failure is logged and tried again later. */
static void sweep(shop *s)
{
    pthread_mutex_lock(&s->keeper_lock);
    size_t count = s->sweep_count;
    pthread_mutex_unlock(&s->keeper_lock);
    for (size_t i = 0; i < count; i++) {
        size_t deleted = 0;
        if (shop_expiring_sweep(s->store, s->sweeps[i], &deleted) < 0)
            td_log(TD_LOG_WARN, "shop", "cannot delete expired %s: %s", s->sweeps[i],
                   td_error_last());
        else if (deleted > 0)
            td_log(TD_LOG_INFO, "shop", "deleted %zu expired %s", deleted, s->sweeps[i]);
    }
}

/* A store that stopped writes after a failed sync or commit: tell the
 * application, once. */
static void watch_store(shop *s)
{
    td_store_health h;
    if (s->store_failure_told || s->opts.on_store_failed == NULL)
        return;
    td_store_health_get(s->store, &h);
    if (h.state != TD_STORE_FAILED || h.code != TD_EIO)
        return;
    s->store_failure_told = true;
    s->opts.on_store_failed(h.message, s->opts.on_store_failed_payload);
}

static void *keeper_main(void *arg)
{
    shop *s = arg;
    int64_t next_sweep = now_ms();
    int64_t trimmed = now_ms();
    (void)pthread_setname_np(pthread_self(), "shop-keeper");
    pthread_mutex_lock(&s->keeper_lock);
    while (!s->keeper_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += KEEPER_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&s->keeper_wake, &s->keeper_lock, &until);
        if (s->keeper_stopping)
            break;
        pthread_mutex_unlock(&s->keeper_lock);
        int64_t now = now_ms();
        watch_store(s);
        if (td_balancer_tick(s->balancer) < 0) /* tried again at the next tick */
            td_log(TD_LOG_DEBUG, "shop", "balancing the handlers: %s", td_error_last());
        if (now >= next_sweep) {
            sweep(s);
            next_sweep = now + KEEPER_SWEEP_MS;
        }
        if (now - trimmed >= KEEPER_TRIM_MS) {
            (void)malloc_trim(0); /* how much it gave back does not matter */
            trimmed = now;
        }
        pthread_mutex_lock(&s->keeper_lock);
    }
    pthread_mutex_unlock(&s->keeper_lock);
    return NULL;
}

int shop_keeper_start(shop *s)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->keeper_wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&s->keeper_lock, NULL);
    s->keeper_ready = true;
    s->sweeps[s->sweep_count++] = SHOP_AUTH_SESSIONS;
    if (pthread_create(&s->keeper, NULL, keeper_main, s) != 0)
        return shop_fail(TD_ERROR, "internal_error", NULL, "cannot start the handler keeper");
    s->keeper_started = true;
    return 0;
}

void shop_keeper_stop(shop *s)
{
    if (s->keeper_started) {
        pthread_mutex_lock(&s->keeper_lock);
        s->keeper_stopping = true;
        pthread_cond_signal(&s->keeper_wake);
        pthread_mutex_unlock(&s->keeper_lock);
        pthread_join(s->keeper, NULL);
        s->keeper_started = false;
    }
    if (s->keeper_ready) {
        pthread_cond_destroy(&s->keeper_wake);
        pthread_mutex_destroy(&s->keeper_lock);
        s->keeper_ready = false;
    }
}

typedef struct check_ctx {
    shop_failure_fn fn;
    void *payload;
    int failed;
} check_ctx;

static int check_part(const td_balanced_part *part, void *payload)
{
    check_ctx *ctx = payload;
    if (part->error < 0) {
        if (ctx->fn)
            ctx->fn(part->name, part->why, ctx->payload);
        ctx->failed++;
    }
    return 0;
}

int shop_check(shop *s, shop_failure_fn fn, void *payload)
{
    check_ctx ctx = {fn, payload, 0};
    if (s->balancer)
        (void)td_balancer_parts(s->balancer, check_part, &ctx);
    return ctx.failed;
}

static int add_running(const td_balanced_part *part, void *payload)
{
    return part->running ? json_array_append_new(payload, json_string(part->name)) : 0;
}

json_t *shop_instance_json(shop *s)
{
    if (s->balancer == NULL)
        return NULL;
    json_t *runs = json_array();
    if (runs == NULL || td_balancer_parts(s->balancer, add_running, runs) != 0) {
        json_decref(runs);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:I,s:I,s:o}", "id", td_balancer_id(s->balancer), "label",
                     td_balancer_label(s->balancer), "live_instances",
                     (json_int_t)td_balancer_live(s->balancer), "partitions",
                     (json_int_t)s->partitions, "runs", runs);
}
