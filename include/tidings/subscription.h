/*
 * subscription.h: named, durable consumers of the event log.
 *
 * A subscription reads every event after its checkpoint that fits its match,
 * and hands each to its handler on one of `lanes` threads. Events of one
 * stream are handled strictly in order, one at a time; different streams in
 * parallel. The checkpoint is durable and never passes an event that is not
 * done, so after a crash nothing is skipped (an event may be handed over
 * again: use transactional mode or the inbox to make effects happen once).
 *
 * A commit in this process wakes the subscription at once; commits of other
 * processes are noticed within the store's poll interval.
 *
 * Failures: a handler returns 0 (done), TD_EPERMANENT (park it in the
 * dead-letter queue now) or another negative code (transient: retry). A
 * transient failure is retried `immediate_retries` times at once, then after
 * exponential backoff with jitter, until `max_attempts`; the retry state is
 * durable. While an event waits, later events of its stream wait too; other
 * streams go on. After the last attempt the event is parked (dlq.h). In
 * TD_DLQ_SEQUENCED mode later events of that stream are parked behind it, in
 * order, until it is retried or dropped; in TD_DLQ_SKIP mode they go on.
 *
 * A handler that crashes the process counts too: events being handled when
 * the process died are, after restart, handed over one at a time with a
 * durable attempt count; one that has crashed the process max_attempts times
 * is parked without being handed over again. In normal operation this costs
 * one durable write per 1024 positions, not per event. A process cannot tell
 * a handler's crash from a kill from outside: an event that is in a handler
 * each time the process is killed max_attempts times counts as poison too.
 * Choose max_attempts with the expected restarts in mind.
 *
 * Transactional mode: the handler runs in a unit of work together with the
 * subscription's progress mark for its stream, so its document writes and
 * publishes happen exactly once.
 *
 * Eager mode (transactional only): while the subscription runs, an event
 * appended in this process is handed to the handler inside the appending
 * unit of work, once the unit's function has returned (in append order,
 * after any inline handlers; what handlers append is handed on after them,
 * breadth first), if it is the next event of its stream for this
 * subscription. Its effects then commit with the event, in the same fsync,
 * with no lane or extra unit in between. The reader catches up with
 * everything else: events of other processes, of streams with an earlier
 * event still waiting, past 256 events handed over in one unit, and those
 * whose eager attempt failed (rolled back alone, the unit goes on). The catch-up skips what the
 * progress marks show done without a unit of work. An eager attempt that
 * fails counts as the event's first attempt: the catch-up goes on with the
 * second, so max_attempts holds (a restart in between forgets it, and the
 * event may get one attempt more).
 * Eager handlers run on the store's writer thread: keep them short.
 *
 * Threads: a td_subscription is controlled (start, stop, free) from one
 * thread; handlers run on the subscription's lane threads. docs/threading.md.
 */
#ifndef TIDINGS_SUBSCRIPTION_H
#define TIDINGS_SUBSCRIPTION_H

#include "bus.h"
#include "metrics.h"
#include "partition.h"
#include "trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum td_dlq_mode {
    TD_DLQ_SEQUENCED = 0, /* later events of a parked event's stream park behind it */
    TD_DLQ_SKIP = 1,      /* later events of the stream go on */
} td_dlq_mode;

/* Version 2 added eager, version 3 partition; td_subscription_new reads
 * an older struct without them and refuses other versions (TD_EINVAL). */
#define TD_SUBSCRIPTION_OPTIONS_VERSION 3
#define TD_SUBSCRIPTION_NAME_MAX        64

typedef struct td_subscription_options {
    unsigned int version;        /* TD_SUBSCRIPTION_OPTIONS_VERSION */
    const char *name;            /* 1..64 of [A-Za-z0-9_.-], starting with a letter */
    td_match match;              /* which events; TD_MATCH_ALL: every event */
    unsigned lanes;              /* handler threads; 0: 1 */
    bool transactional;          /* handler runs in a unit with the progress mark */
    unsigned immediate_retries;  /* retries right after a transient failure */
    unsigned max_attempts;       /* attempts before parking; 0: 5 */
    unsigned backoff_initial_ms; /* first delayed retry; 0: 100 */
    unsigned backoff_max_ms;     /* longest delay; 0: 30000 */
    td_dlq_mode dlq_mode;
    bool start_at_end;   /* a new subscription starts at the head, not at 0 */
    size_t batch_size;   /* events read at a time; 0: 512 */
    td_metrics *metrics; /* where to count (metrics.h); NULL: nowhere. Borrowed: free the
                            subscription before the registry */
    td_tracer *tracer;   /* span per handler call (trace.h); NULL: none. Borrowed likewise */
    /* Finer filter than match, run by the reader before an event is queued
     * (with the handler's payload): false skips the event as if it did not
     * match. NULL: take everything match lets through. */
    bool (*accept)(const td_event *event, void *payload);
    bool eager; /* transactional only: also handle this process's appends in their unit */
    /* One partition of the name (partition.h): only the events whose key
     * hashes to it, with its state under "NAME.pKofN". {0}: the whole. */
    td_partition partition;
} td_subscription_options;

#define TD_SUBSCRIPTION_OPTIONS_INIT                                                               \
    {                                                                                              \
        TD_SUBSCRIPTION_OPTIONS_VERSION, NULL, TD_MATCH_ALL, 1, false, 2, 5, 100, 30000,           \
            TD_DLQ_SEQUENCED, false, 0, NULL, NULL, NULL, false,                                   \
        {                                                                                          \
            0, 0, TD_PARTITION_BY_STREAM                                                           \
        }                                                                                          \
    }

typedef struct td_subscription td_subscription;

/* What a handler gets besides the event. Borrowed for the call. */
typedef struct td_delivery td_delivery;

/* The handler: 0 when done, TD_EPERMANENT to park the event at once, any
 * other negative code to retry. Use td_delivery_fail to say why. */
typedef int (*td_handler_fn)(td_delivery *delivery, const td_event *event, void *payload);

/* The unit of work in transactional mode; NULL otherwise. */
td_txn *td_delivery_txn(td_delivery *delivery);
/* 1 for the first attempt. */
unsigned td_delivery_attempt(const td_delivery *delivery);
const char *td_delivery_subscription(const td_delivery *delivery);
/* The event id as text: the key for an external system's idempotency. */
const char *td_delivery_idempotency_key(const td_delivery *delivery);
/* Publishes events caused by this one: in the handler's unit when
 * transactional, else in a unit of its own. */
int td_delivery_publish(td_delivery *delivery, const char *stream, int64_t expected_version,
                        td_event *events, size_t count);
/* Records why the handler failed and returns code, for `return
 * td_delivery_fail(d, TD_EPERMANENT, "unknown version %d", v);`. */
int td_delivery_fail(td_delivery *delivery, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Makes a subscription; it does nothing until started. The name, match and
 * options are copied. Caller owns *out; free with td_subscription_free (before
 * the store). */
int td_subscription_new(td_subscription **out, td_store *store, const td_subscription_options *opts,
                        td_handler_fn fn, void *payload);

/* Starts the reader and lane threads. One process at a time runs a name:
 * TD_EBUSY, naming the holder, while another live process runs it (a lease
 * in the store, renewed while running, released by td_subscription_stop;
 * one left by a process that died, or expired, is taken over at once). A
 * stopped subscription can be started again: it carries on from its
 * durable checkpoint. */
int td_subscription_start(td_subscription *sub);

/* As td_subscription_start, but a lock another process holds answers
 * TD_EBUSY at once instead of being waited for (up to a second, for a
 * holder that was just killed): for a balancer that tries again anyway
 * (balance.h). */
int td_subscription_try_start(td_subscription *sub);

/* The name the subscription keeps its state and lease under: its name, or
 * "NAME.pKofN" for a partition (partition.h). Borrowed from sub. */
const char *td_subscription_name(const td_subscription *sub);

/* Stops gracefully: no new events are handed over, handlers in flight finish,
 * the checkpoint is persisted. Returns the first error the subscription met
 * while running, if any. */
int td_subscription_stop(td_subscription *sub);

/* 0, or the first error that stopped or impaired the current run (the one
 * td_subscription_stop will return; td_error_last() says what), such as
 * TD_EBUSY once another process took its lease over. For health checks;
 * safe from any thread. */
int td_subscription_check(td_subscription *sub);

/* Stops if running, then frees. Accepts NULL. */
void td_subscription_free(td_subscription *sub);

/* Waits until every event up to position is done (handled, parked or not
 * matching), or timeout_ms passes (TD_EBUSY). For tests and shutdown. */
int td_subscription_wait_until(td_subscription *sub, int64_t position, int timeout_ms);

/* How far behind the running subscription is just now, from its own memory
 * (no read of the store): age, how long ago the oldest event it has read
 * and not yet finished occurred, in microseconds; events, how many it has
 * read and not finished. Both 0 when it has nothing unfinished or sub is
 * NULL. Events not read yet (its window is full) are younger than those it
 * holds, so they do not change the age. Cheap (the subscription's lock and
 * two counters it keeps) and safe from any thread: for admission control, a
 * service refusing new work while its handlers fall behind. */
typedef struct td_backlog {
    td_time age;
    int64_t events;
} td_backlog;
td_backlog td_subscription_backlog(td_subscription *sub);

typedef struct td_subscription_status {
    int64_t position;     /* durable checkpoint */
    int64_t head;         /* the store's head */
    int64_t lag_events;   /* head - position */
    int64_t in_retry;     /* events waiting for a delayed retry */
    int64_t dead_letters; /* parked events, including those parked behind others */
    /* Who runs it now, from its unexpired lease: "PID@HOST", or "LABEL
     * (PID@HOST)" when a balancer runs it (balance.h); NULL: nobody
     * (stopped, or its lease expired). Borrowed for the call. */
    const char *holder;
} td_subscription_status;

/* The durable status of every subscription ever run on the store, by name. */
typedef int (*td_subscription_status_fn)(const char *name, const td_subscription_status *status,
                                         void *payload);
int td_subscriptions_list(td_store *store, td_subscription_status_fn fn, void *payload);

/* ---- replay -------------------------------------------------------------- */

/* Asks a subscription to hand past events to its handler again: positions
 * from..to (to 0: the head now) that fit its match and, if set, stream and
 * type. The request is durable; the subscription carries it out when it
 * runs (now, in whichever process runs it, or at its next start), a page at
 * a time, each replayed event after the live events of its stream already
 * queued, in stream order among themselves. A replay is not retried later
 * and not parked: an attempt that still fails after the immediate retries
 * is logged and the replay goes on. A page a crash interrupts is replayed
 * again on restart.
 *
 * Handlers see td_delivery_is_replay() true. Transactional handlers run
 * even where their progress mark says done (their writes are made again:
 * make them idempotent). Effects behind the inbox stay once unless
 * force_effects: td_delivery_forces_effects() tells the handler to act
 * even on an event its inbox has seen. */
typedef struct td_replay_request {
    const char *subscription;
    int64_t from, to;
    const char *stream; /* NULL: every stream */
    const char *type;   /* NULL: every type */
    bool force_effects;
    const char *who; /* for the log; NULL: "unknown" */
} td_replay_request;

#define TD_REPLAY_ID_LEN 36

/* Writes the request; TD_ENOTFOUND if no subscription of that name has run
 * on the store, TD_EINVAL for a bad range. id_out (may be NULL) gets its id.
 * For a partitioned name (partition.h), the request goes to each of its
 * partitions, under that one id. */
int td_replay_request_add(td_store *store, const td_replay_request *request,
                          char id_out[TD_REPLAY_ID_LEN + 1]);

/* Calls fn with the id, subscription and progress of each pending replay. */
typedef int (*td_replay_fn)(const char *id, const char *subscription, int64_t next, int64_t to,
                            void *payload);
int td_replay_list(td_store *store, td_replay_fn fn, void *payload);

bool td_delivery_is_replay(const td_delivery *delivery);
bool td_delivery_forces_effects(const td_delivery *delivery);

/* ---- the inbox: effects outside the store, once ----------------------- */

/* Records that consumer has handled event_id. Returns 0 the first time,
 * 1 if it was recorded before (skip the effect). In the caller's unit. */
int td_inbox_claim(td_txn *txn, const char *consumer, const td_uuid *event_id);

/* Whether consumer has recorded event_id (outside a unit of work). */
int td_inbox_seen(td_store *store, const char *consumer, const td_uuid *event_id, bool *seen);

#ifdef __cplusplus
}
#endif
#endif
