/*
 * balancer.c: which parts (partitions of subscriptions and sagas, or whole
 * ones) this instance runs, so that each runs in one live instance and
 * each instance runs about its share. The rules are in balance.h; the
 * membership they count with is membership.c's.
 *
 * Invariant: a part is started and stopped only here, on the controlling
 * thread, and `running` says whether this instance runs it (its reader
 * holds the lease), except between a lease lost and the next tick, which
 * stops it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "balance/balance_int.h"
#include "bus/lease.h"
#include "bus/sub_int.h"
#include "saga/saga_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"

#define SHED_EVERY_US   (1000000LL)      /* a group gives up a part a second at most */
#define GIVEN_UP_US     (10 * 1000000LL) /* nor swept up by the one that gave it up */
#define SWEEP_EVERY_US  (3 * 1000000LL)  /* looking for parts nobody runs */
#define RETRY_FAILED_US (10 * 1000000LL) /* a part that failed to start, tried again */

static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- making one -------------------------------------------------------------------- */

int td_balancer_new(td_balancer **out, td_store *store, const char *label)
{
    TD_REQUIRE(out && store);
    if (label && (label[0] == '\0' || strlen(label) > 64))
        return td_error__set(TD_EINVAL, "an instance label has 1 to 64 characters");
    for (const char *c = label; c && *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return td_error__set(TD_EINVAL, "an instance label is printable");
    td_balancer *b = td_calloc(1, sizeof *b);
    if (b == NULL)
        return td_error__oom();
    td_uuid id;
    int error = td_uuid_v7(&id);
    if (error < 0) {
        td_free(b);
        return error;
    }
    td_uuid_format(b->id, &id);
    if (gethostname(b->host, sizeof b->host - 1) != 0)
        snprintf(b->host, sizeof b->host, "?");
    if (label)
        snprintf(b->label, sizeof b->label, "%s", label);
    else
        snprintf(b->label, sizeof b->label, "%ld@%.50s", (long)getpid(), b->host);
    b->store = store;
    b->started_at = td_time_now();
    b->live = 1;
    b->slot = -1;
    pthread_mutex_init(&b->lock, NULL);
    *out = b;
    return 0;
}

static int add(td_balancer *b, td_subscription *sub, td_saga *saga)
{
    td_subscription *s = sub ? sub : saga->sub;
    if (td_reader__running(s))
        return td_error__set(TD_EINVAL, "'%s' runs already: add it to the balancer stopped",
                             s->name);
    if (b->count == b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 16;
        pthread_mutex_lock(&b->lock); /* td_balancer_parts may be reading them */
        td_bal_part *parts = td_realloc(b->parts, capacity * sizeof *parts);
        if (parts)
            b->parts = parts;
        pthread_mutex_unlock(&b->lock);
        if (parts == NULL)
            return td_error__oom();
        b->capacity = capacity;
    }
    /* beside the other parts of its group: a group is a run of parts */
    size_t at = b->count;
    for (size_t i = 0; i < b->count; i++)
        if (strcmp(b->parts[i].group, s->base_name) == 0)
            at = i + 1;
    pthread_mutex_lock(&b->lock);
    memmove(&b->parts[at + 1], &b->parts[at], (b->count - at) * sizeof *b->parts);
    td_bal_part *p = &b->parts[at];
    memset(p, 0, sizeof *p);
    p->sub = sub;
    p->saga = saga;
    s->lease.instance = b->label; /* its leases name this instance */
    snprintf(p->group, sizeof p->group, "%s", s->base_name);
    snprintf(p->name, sizeof p->name, "%s", s->name);
    p->count = s->opts.partition.count > 1 ? s->opts.partition.count : 1;
    p->index = s->opts.partition.count > 1 ? s->opts.partition.index : 0;
    b->count++;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int td_balancer_add_subscription(td_balancer *b, td_subscription *sub)
{
    TD_REQUIRE(b && sub);
    return add(b, sub, NULL);
}

int td_balancer_add_saga(td_balancer *b, td_saga *saga)
{
    TD_REQUIRE(b && saga);
    return add(b, NULL, saga);
}

/* ---- one part ---------------------------------------------------------------------- */

static void set_state(td_balancer *b, td_bal_part *p, bool running, int error)
{
    pthread_mutex_lock(&b->lock);
    p->running = running;
    p->error = error;
    if (error < 0)
        snprintf(p->why, sizeof p->why, "%s", td_error_last());
    else
        p->why[0] = '\0';
    pthread_mutex_unlock(&b->lock);
}

/* Tries to run p: 0 (running), TD_EBUSY (another instance does), or
 * another error (recorded; tried again after RETRY_FAILED_US). */
static int try_start(td_balancer *b, td_bal_part *p, int64_t now)
{
    if (now < p->retry_at_us)
        return TD_EBUSY;
    /* The first round of an instance alone waits for a lock a moment, as
     * td_subscription_start does: the holder is most likely this
     * instance's previous process, killed and not quite gone. */
    bool wait = !b->joined && td_balancer_live(b) == 1;
    int error = p->sub ? (wait ? td_subscription_start(p->sub) : td_subscription_try_start(p->sub))
                       : (wait ? td_saga_start(p->saga) : td_saga_try_start(p->saga));
    if (error == TD_EBUSY)
        return error;
    if (error < 0) {
        td_log__emit(TD_LOG_ERROR, p->name, NULL, "cannot start: %s", td_error_last());
        p->retry_at_us = now + RETRY_FAILED_US;
    } else {
        td_log__emit(TD_LOG_INFO, p->name, NULL, "running here (instance %s)", b->label);
    }
    set_state(b, p, error == 0, error);
    return error;
}

static void stop(td_balancer *b, td_bal_part *p, const char *why)
{
    int error = p->sub ? td_subscription_stop(p->sub) : td_saga_stop(p->saga);
    if (error < 0 && error != TD_EBUSY)
        td_log__emit(TD_LOG_WARN, p->name, NULL, "stopped (%s) after an error: %s", why,
                     td_error_last());
    else
        td_log__emit(TD_LOG_INFO, p->name, NULL, "stopped here: %s", why);
    set_state(b, p, false, 0);
}

static int check(td_bal_part *p)
{
    return p->sub ? td_subscription_check(p->sub) : td_saga_check(p->saga);
}

/* ---- the rules ----------------------------------------------------------------------- */

/* Whether part index i of count is in this instance's slice. */
static bool in_slice(unsigned i, unsigned count, unsigned live, unsigned rank)
{
    unsigned from = rank * count / live, to = (rank + 1) * count / live;
    return i >= from && i < to;
}

/* The parts of the group starting at parts[first] are parts[first..end). */
static size_t group_end(const td_balancer *b, size_t first)
{
    size_t end = first + 1;
    while (end < b->count && strcmp(b->parts[end].group, b->parts[first].group) == 0)
        end++;
    return end;
}

static int balance_group(td_balancer *b, size_t first, size_t end, unsigned live, unsigned rank,
                         int64_t now, bool sweep)
{
    size_t n = end - first, held = 0;
    int first_error = 0;
    for (size_t i = first; i < end; i++)
        held += b->parts[i].running;
    /* n / live each, and one more for n % live of them: which ones turns
     * with the group, so that no instance gets every group's extra part */
    size_t extra = (rank + td_partition_of(b->parts[first].group, live)) % live < n % live;
    size_t share = n / live + extra;
    if (held > share && now - b->parts[first].shed_us >= SHED_EVERY_US) {
        /* give one up, outside this instance's slice first */
        td_bal_part *victim = NULL;
        for (size_t i = first; i < end; i++) {
            td_bal_part *p = &b->parts[i];
            if (p->running && (victim == NULL || !in_slice(p->index, p->count, live, rank)))
                victim = p;
        }
        stop(b, victim, "another instance's share");
        victim->given_up_us = now;
        b->parts[first].shed_us = now;
        return 0;
    }
    for (size_t k = 0; k < n && held < share; k++) {
        /* from this instance's slice on, so that newcomers do not all try
         * the same parts */
        td_bal_part *p = &b->parts[first + (rank * n / live + k) % n];
        if (p->running)
            continue;
        int error = try_start(b, p, now);
        if (error == 0)
            held++;
        else if (error != TD_EBUSY && first_error == 0)
            first_error = error;
    }
    if (!sweep || held < share)
        return first_error;
    for (size_t i = first; i < end; i++) {
        td_bal_part *p = &b->parts[i];
        bool vacant = false;
        if (p->running || (p->given_up_us && now - p->given_up_us < GIVEN_UP_US))
            continue;
        if (td_lease__vacant(b->store, p->name, &vacant) < 0)
            return first_error ? first_error : td_error_last_code();
        if (vacant && p->vacant_seen) { /* nobody took it since the last sweep */
            int error = try_start(b, p, now);
            if (error < 0 && error != TD_EBUSY && first_error == 0)
                first_error = error;
        }
        p->vacant_seen = vacant;
    }
    return first_error;
}

int td_balancer_tick(td_balancer *b)
{
    TD_REQUIRE(b);
    int64_t now = monotonic_us();
    int first_error = 0;
    bool renew = b->renewed_us == 0 || now - b->renewed_us >= TD_MEMBERSHIP_RENEW_US;
    bool first_round = !b->joined;
    if ((first_error = td_membership__count(b, renew)) == 0 && renew)
        b->renewed_us = now;
    for (size_t i = 0; i < b->count; i++) {
        td_bal_part *p = &b->parts[i];
        int error = p->running ? check(p) : 0;
        if (error == TD_EBUSY) { /* its lease was taken over: it is not ours any more */
            char why[256];
            snprintf(why, sizeof why, "%s", td_error_last());
            stop(b, p, why);
        } else if (error < 0)
            set_state(b, p, true, error); /* left running, for an operator to see */
    }
    pthread_mutex_lock(&b->lock);
    unsigned live = b->live, rank = b->rank;
    pthread_mutex_unlock(&b->lock);
    bool sweep = now - b->swept_us >= SWEEP_EVERY_US;
    if (sweep)
        b->swept_us = now;
    for (size_t first = 0; first < b->count;) {
        size_t end = group_end(b, first);
        int error = balance_group(b, first, end, live, rank, now, sweep);
        if (error < 0 && first_error == 0)
            first_error = error;
        first = end;
    }
    if (first_round && b->renewed_us != 0)
        b->joined = true; /* from now on, starts do not wait */
    return first_error;
}

/* ---- stopping, and what others read ------------------------------------------------ */

void td_balancer_stop(td_balancer *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->count; i++)
        if (b->parts[i].running)
            stop(b, &b->parts[i], "this instance stops");
    if (b->joined && td_membership__leave(b) < 0)
        td_log__emit(TD_LOG_WARN, "balancer", NULL, "cannot leave the membership: %s",
                     td_error_last());
    td_store__unlock(b->store, b->instance_lock); /* not joined: only taken */
    b->instance_lock = NULL;
    b->slot = -1;
    b->joined = false;
    b->renewed_us = 0;
}

void td_balancer_free(td_balancer *b)
{
    if (b == NULL)
        return;
    td_balancer_stop(b);
    pthread_mutex_destroy(&b->lock);
    td_free(b->parts);
    td_free(b);
}

const char *td_balancer_id(const td_balancer *b)
{
    return b ? b->id : NULL;
}

const char *td_balancer_label(const td_balancer *b)
{
    return b ? b->label : NULL;
}

unsigned td_balancer_live(td_balancer *b)
{
    if (b == NULL)
        return 0;
    pthread_mutex_lock(&b->lock);
    unsigned live = b->live;
    pthread_mutex_unlock(&b->lock);
    return live;
}

int td_balancer_parts(td_balancer *b, td_balanced_part_fn fn, void *payload)
{
    TD_REQUIRE(b && fn);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        const td_bal_part *p = &b->parts[i];
        td_balanced_part out = {p->group,   p->name,  p->index, p->count,
                                p->running, p->error, p->why};
        rc = fn(&out, payload);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}
