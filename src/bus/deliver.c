/*
 * deliver.c: handing one event to a subscription's handler on a lane.
 *
 *   item ─▶ stream blocked (sequenced DLQ)? ──yes──▶ park behind the blocker
 *            │ no
 *            ▼
 *   ┌──▶ attempt: handler (inside a unit with the progress mark when
 *   │    │        transactional; skipped if the mark says it is done)
 *   │    ├─ ok ─────────────────────────────▶ done (drop retry/DLQ records)
 *   │    ├─ TD_EPERMANENT or last attempt ──▶ park as dead
 *   └────┼─ within immediate_retries
 *        ├─ TD_ENOSPC (the disk is full), or TD_EUNAVAILABLE while the
 *        │  store cannot reach its server ─▶ not counted, delayed 0.5 s
 *        └─ else: durable retry record, back off (exponential, jitter) ─▶ delayed
 *
 * The lane that owns the stream runs this without the subscription lock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bus/deliver.h"
#include "bus/eager.h"
#include "bus/metrics.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"
#include "store/txn_internal.h"
#include "tidings/upcast.h"

/* Whether the store's last write could not reach its database server:
 * then a handler's TD_EUNAVAILABLE is the store's, not one of its own (a
 * handler may report its own provider as unavailable). */
static bool store_unreachable(td_store *store)
{
    td_store_health h;
    td_store_health_get(store, &h);
    return h.state == TD_STORE_UNAVAILABLE;
}

struct td_delivery {
    td_subscription *sub;
    const item *it;
    const td_event *event;
    unsigned attempt;
    td_txn *txn;
    bool skipped;    /* transactional: the progress mark says it was done */
    bool mark_known; /* eager: the caller read the stream's mark in this unit */
    int64_t mark;
    char key[TD_UUID_STR_LEN + 1];
    char trace[TD_TRACEPARENT_LEN + 1]; /* the handler's span, or "" */
    char message[256];
};

td_txn *td_delivery_txn(td_delivery *d)
{
    return d->txn;
}

bool td_delivery_is_replay(const td_delivery *d)
{
    return d->it->replay;
}

bool td_delivery_forces_effects(const td_delivery *d)
{
    return d->it->force_effects;
}

unsigned td_delivery_attempt(const td_delivery *d)
{
    return d->attempt;
}

const char *td_delivery_subscription(const td_delivery *d)
{
    return d->sub->name;
}

const char *td_delivery_idempotency_key(const td_delivery *d)
{
    return d->key;
}

int td_delivery_fail(td_delivery *d, int code, const char *fmt, ...)
{
    TD_REQUIRE(d);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    return code;
}

typedef struct publish_args {
    td_delivery *d;
    const char *stream;
    int64_t expected;
    td_event *events;
    size_t count;
} publish_args;

static int publish_unit(td_txn *txn, void *payload)
{
    publish_args *a = payload;
    td_txn_set_cause(txn, a->d->event);
    td_txn_set_trace(txn, a->d->trace[0] ? a->d->trace : NULL);
    return td_txn_append(txn, a->stream, a->expected, a->events, a->count);
}

int td_delivery_publish(td_delivery *d, const char *stream, int64_t expected_version,
                        td_event *events, size_t count)
{
    TD_REQUIRE(d);
    publish_args a = {d, stream, expected_version, events, count};
    if (d->txn)
        return td_txn_append(d->txn, stream, expected_version, events, count);
    return td_transact(d->sub->store, publish_unit, &a);
}

static int clear_records(td_txn *txn, td_subscription *sub, const item *it);

/* How long an event whose attempt found the disk full waits to be tried
 * again (td_deliver__item). */
#define FULL_DISK_DELAY_US 500000

/* The handler, its writes, the stream's progress mark and the removal of the
 * item's retry record or dead letter, all in one unit. A redelivery from the
 * dead-letter queue is handled even if the mark is past it (in skip mode the
 * stream went on); its dead letter goes in the same unit, so a crash cannot
 * make it happen twice. */
static int transactional_unit(td_txn *txn, void *payload)
{
    td_delivery *d = payload;
    td_subscription *sub = d->sub;
    bool redelivery = d->it->dead_letter[0] != '\0' || d->it->replay;
    int64_t done_version = d->mark;
    int error =
        d->mark_known ? 0 : td_state__progress_get(txn, sub->name, d->event->stream, &done_version);
    if (error < 0)
        return error;
    if (done_version >= d->event->version && !redelivery) {
        d->skipped = true; /* handled before a crash, checkpoint not yet saved */
        return 0;
    }
    d->txn = txn;
    td_txn_set_cause(txn, d->event);
    td_txn_set_trace(txn, d->trace[0] ? d->trace : NULL);
    error = sub->fn(d, d->event, sub->payload);
    d->txn = NULL;
    if (error == 0 && d->event->version > done_version)
        error = td_state__progress_put(txn, sub->name, d->event->stream, d->event->version);
    return error < 0 ? error : clear_records(txn, sub, d->it);
}

static bool start_span(td_subscription *sub, td_delivery *d, td_span *span, char *name,
                       size_t name_size)
{
    if (sub->opts.tracer == NULL || td_tracer_start(sub->opts.tracer, span, d->event, d->trace) < 0)
        return false;
    snprintf(name, name_size, "handle %s", d->event->type);
    span->name = name;
    span->subscription = sub->name;
    span->event_type = d->event->type;
    span->event_id = d->key;
    span->stream = d->event->stream;
    span->position = d->event->position;
    span->attempt = d->attempt;
    return true;
}

/* Ends a span start_span began (traced), failed if rc < 0, with why. */
static void end_span(td_subscription *sub, bool traced, td_span *span, int rc, const char *why)
{
    if (!traced)
        return;
    span->error = rc < 0;
    span->status_message = rc < 0 ? why : NULL;
    td_tracer_end(sub->opts.tracer, span);
}

/* Brings the item's event to the schema this program reads (upcast.h), once:
 * the item keeps the upcast copy for its retries. An event that cannot be
 * read is a permanent failure, with why; running out of memory is not. The
 * lane owns the item meanwhile. */
static int upcast_item(td_subscription *sub, item *it, char *why, size_t why_size)
{
    td_event *up;
    int error = td_upcast(td_store_upcasters(sub->store), it->event, &up);
    if (error < 0) {
        snprintf(why, why_size, "%s", td_error_last());
        return error == TD_ENOMEM ? error : TD_EPERMANENT; /* only memory may come back */
    }
    if (up) {
        td_event_free(it->event);
        it->event = up;
    }
    return 0;
}

/* Calls the handler once, in a span when tracing; on failure writes why
 * into `why`. */
static int attempt(td_subscription *sub, item *it, char *why, size_t why_size)
{
    td_delivery d = {.sub = sub, .it = it, .event = it->event, .attempt = it->attempts};
    td_span span;
    char span_name[TD_TYPE_MAX + 8];
    td_uuid_format(d.key, &it->event->id);
    bool traced = start_span(sub, &d, &span, span_name, sizeof span_name);
    td_error_clear();
    int rc = sub->opts.transactional ? td_transact(sub->store, transactional_unit, &d)
                                     : sub->fn(&d, it->event, sub->payload);
    if (rc < 0)
        snprintf(why, why_size, "%s",
                 d.message[0]         ? d.message
                 : td_error_last()[0] ? td_error_last()
                                      : td_error_name(rc));
    end_span(sub, traced, &span, rc, why);
    return rc;
}

int td_deliver__eager(td_txn *txn, td_subscription *sub, const td_event *ev, int64_t mark)
{
    item it = {.event = (td_event *)ev, .seq = NO_SEQ}; /* borrowed: never freed here */
    td_event *up = NULL;
    if (td_upcast(td_store_upcasters(sub->store), ev, &up) < 0)
        return 0; /* the catch-up parks it, with why */
    if (up)
        it.event = up;
    td_delivery d = {
        .sub = sub, .it = &it, .event = it.event, .attempt = 1, .mark_known = true, .mark = mark};
    td_span span;
    char span_name[TD_TYPE_MAX + 8];
    td_uuid_format(d.key, &ev->id);
    bool traced = start_span(sub, &d, &span, span_name, sizeof span_name);
    int rc = 0;
    int error = td_txn__try_contained(txn, transactional_unit, &d, &rc);
    if (rc < 0) {
        td_sub_metrics__failed(sub, it.event);
        td_eager__note_failure(sub, &ev->id); /* the catch-up's first is attempt 2 */
        td_log__emit(TD_LOG_DEBUG, sub->name, it.event,
                     "eager attempt at event %lld failed, left to the catch-up: %s",
                     (long long)ev->position, d.message[0] ? d.message : td_error_last());
    } else if (!d.skipped) {
        td_sub_metrics__handled(sub, it.event);
    }
    end_span(sub, traced, &span, rc, d.message[0] ? d.message : td_error_last());
    td_event_free(up);
    return error;
}

typedef struct park_args {
    td_subscription *sub;
    const td_dead_letter *entry;
    const item *it;
} park_args;

static int delete_quietly(td_txn *txn, const char *collection, const char *key)
{
    int error = td_txn_doc_delete(txn, collection, key);
    return error == TD_ENOTFOUND ? 0 : error;
}

/* Removes the retry record and the DLQ entry an item may carry. */
static int clear_records(td_txn *txn, td_subscription *sub, const item *it)
{
    char key[TD_STATE_KEY_MAX + 1];
    int error = 0;
    if (it->has_retry_doc &&
        (error = td_state__position_key(key, sub->name, it->event->position)) == 0)
        error = delete_quietly(txn, TD_COLL_RETRIES, key);
    if (error == 0 && it->dead_letter[0])
        error = delete_quietly(txn, TD_COLL_DEAD_LETTERS, it->dead_letter);
    return error;
}

static int park_unit(td_txn *txn, void *payload)
{
    park_args *a = payload;
    int error = clear_records(txn, a->sub, a->it);
    return error < 0 ? error : td_state__put_dead_letter(txn, a->entry);
}

int td_deliver__park(td_subscription *sub, item *it, const char *blocked_by, const char *reason,
                     char *dead_letter_out)
{
    td_uuid id;
    td_time now = td_time_now();
    int error = td_uuid_v7(&id);
    if (error < 0)
        return error;
    td_dead_letter entry = {
        .subscription = sub->name,
        .position = it->event->position,
        .event_id = it->event->id,
        .stream = it->event->stream,
        .type = it->event->type,
        .attempts = it->attempts,
        .last_error = reason,
        .first_failure = it->first_failure ? it->first_failure : now,
        .last_failure = now,
        .status = blocked_by ? "parked" : "dead",
        .behind = blocked_by,
    };
    td_uuid_format(entry.id, &id);
    park_args a = {sub, &entry, it};
    if ((error = td_transact(sub->store, park_unit, &a)) == 0)
        memcpy(dead_letter_out, entry.id, sizeof entry.id);
    return error;
}

static int clear_unit(td_txn *txn, void *payload)
{
    park_args *a = payload;
    return clear_records(txn, a->sub, a->it);
}

static int64_t backoff_us(const td_subscription *sub, unsigned delayed_attempt)
{
    uint64_t ms = sub->opts.backoff_initial_ms;
    for (unsigned i = 1; i < delayed_attempt && ms < sub->opts.backoff_max_ms; i++)
        ms *= 2;
    if (ms > sub->opts.backoff_max_ms)
        ms = sub->opts.backoff_max_ms;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)rand();
    /* "equal jitter": between half and all of the delay */
    return (int64_t)(ms * 1000 / 2 + (r % (ms * 1000 / 2 + 1)));
}

/* Transactional handlers cleared their records in their own unit. */
static td_outcome succeed(td_subscription *sub, item *it)
{
    park_args a = {sub, NULL, it};
    if (!sub->opts.transactional && (it->has_retry_doc || it->dead_letter[0]) &&
        td_transact(sub->store, clear_unit, &a) < 0)
        td_sub__fail(sub, td_error_last_code());
    return OUTCOME_DONE;
}

static td_outcome park_or_fail(td_subscription *sub, item *it, const char *blocked_by,
                               const char *why, char *dead_letter_out)
{
    int error = td_deliver__park(sub, it, blocked_by, why, dead_letter_out);
    if (error < 0) {
        td_log__emit(TD_LOG_ERROR, sub->name, it->event, "cannot park event %lld: %s",
                     (long long)it->event->position, td_error_last());
        td_sub__fail(sub, error);
        return OUTCOME_FAILED;
    }
    if (blocked_by)
        td_log__emit(TD_LOG_WARN, sub->name, it->event,
                     "event %lld of %s parked behind dead letter %s",
                     (long long)it->event->position, it->event->stream, blocked_by);
    else
        td_log__emit(TD_LOG_ERROR, sub->name, it->event,
                     "event %lld (%s) parked as dead letter %s after %u attempts: %s",
                     (long long)it->event->position, it->event->type, dead_letter_out, it->attempts,
                     why);
    return OUTCOME_PARKED;
}

bool td_deliver__batchable(td_subscription *sub, item *it, const char *blocked_by)
{
    char why[300];
    return sub->opts.transactional && it->attempts == 0 && !it->has_retry_doc &&
           !it->dead_letter[0] && !it->replay && !(blocked_by && blocked_by[0]) &&
           upcast_item(sub, it, why, sizeof why) == 0; /* here, on the lane, not in the unit */
}

typedef struct batch_args {
    td_subscription *sub;
    item **items;
    size_t count;
    bool *done;
} batch_args;

static int batch_unit(td_txn *txn, void *payload)
{
    batch_args *a = payload;
    for (size_t i = 0; i < a->count; i++) {
        item *it = a->items[i]; /* upcast by td_deliver__batchable */
        td_delivery d = {.sub = a->sub, .it = it, .event = it->event, .attempt = 1};
        td_span span;
        char span_name[TD_TYPE_MAX + 8];
        td_uuid_format(d.key, &it->event->id);
        bool traced = start_span(a->sub, &d, &span, span_name, sizeof span_name);
        int rc = td_txn_try(txn, transactional_unit, &d);
        a->done[i] = rc == 0;
        end_span(a->sub, traced, &span, rc, d.message[0] ? d.message : td_error_last());
    }
    return 0;
}

void td_deliver__batch(td_subscription *sub, item **items, size_t count, bool *done)
{
    batch_args a = {sub, items, count, done};
    memset(done, 0, count * sizeof *done);
    if (td_transact(sub->store, batch_unit, &a) < 0) {
        memset(done, 0, count * sizeof *done); /* nothing committed: each goes the long way */
        return;
    }
    for (size_t i = 0; i < count; i++)
        if (done[i]) {
            items[i]->attempts = 1;
            td_sub_metrics__handled(sub, items[i]->event);
        }
}

td_outcome td_deliver__item(td_subscription *sub, item *it, const char *blocked_by,
                            int64_t *delay_us, char *dead_letter_out)
{
    char why[300];
    if (blocked_by && blocked_by[0] && !it->replay) { /* a replay is not held back */
        snprintf(why, sizeof why, "parked behind dead letter %s", blocked_by);
        return park_or_fail(sub, it, blocked_by, why, dead_letter_out);
    }
    for (;;) {
        it->attempts++;
        if (it->attempts > 1)
            td_sub_metrics__retry(sub);
        int rc = upcast_item(sub, it, why, sizeof why);
        if (rc == 0)
            rc = attempt(sub, it, why, sizeof why);
        if (rc >= 0) {
            td_sub_metrics__handled(sub, it->event);
            return succeed(sub, it);
        }
        td_sub_metrics__failed(sub, it->event);
        if (rc == TD_ENOSPC || (rc == TD_EUNAVAILABLE && store_unreachable(sub->store))) {
            /* The disk is full, or the database server out of reach: not
             * the event's fault, and nothing of the attempt was written.
             * Not counted (a long outage must not park innocent events),
             * and no retry record (it could not be written either): tried
             * again a little later. */
            it->attempts--;
            *delay_us = FULL_DISK_DELAY_US;
            td_log__emit(TD_LOG_DEBUG, sub->name, it->event, "event %lld waits for the store: %s",
                         (long long)it->event->position, why);
            return OUTCOME_DELAYED;
        }
        if (it->replay && (rc == TD_EPERMANENT || it->attempts > sub->opts.immediate_retries)) {
            td_log__emit(TD_LOG_ERROR, sub->name, it->event,
                         "replay of event %lld (%s) failed after %u attempts: %s",
                         (long long)it->event->position, it->event->type, it->attempts, why);
            return OUTCOME_DONE; /* handled before; a replay is not parked or retried later */
        }
        if (it->first_failure == 0)
            it->first_failure = td_time_now();
        if (rc == TD_EPERMANENT || it->attempts >= sub->opts.max_attempts)
            return park_or_fail(sub, it, NULL, why, dead_letter_out);
        if (it->attempts <= sub->opts.immediate_retries)
            continue;
        *delay_us = backoff_us(sub, it->attempts - sub->opts.immediate_retries);
        if (td_state__save_retry(sub->store, sub->name, it->event->position, it->attempts,
                                 td_time_now() + *delay_us, why) < 0) {
            td_sub__fail(sub, td_error_last_code());
            return OUTCOME_FAILED;
        }
        it->has_retry_doc = true;
        td_log__emit(TD_LOG_WARN, sub->name, it->event,
                     "attempt %u at event %lld (%s) failed: %s; retrying in %lld ms", it->attempts,
                     (long long)it->event->position, it->event->type, why,
                     (long long)(*delay_us / 1000));
        return OUTCOME_DELAYED;
    }
}
