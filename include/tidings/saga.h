/*
 * saga.h: long-running processes as persistent state machines.
 *
 * A saga is declared as data: its transitions, (state, event type) → (next
 * state, action), and the compensations steps may register. An instance is
 * keyed by the saga's name and a correlation id that the definition reads
 * out of each event (an order id, say); it has a state, a JSON data object,
 * an optional deadline, the compensations registered so far, and a history.
 *
 *   no instance ──start transition (state NULL)──▶ first state
 *   state S, event E ──transition (S, E)──▶ action, maybe register a
 *                                           compensation, next state
 *   a transition marked `fail` ──▶ run the registered compensations, newest
 *                                  first, then its action, next state
 *   a final state ──▶ the instance is complete, kept and queryable
 *   no transition fits ──▶ the event is recorded on the instance and ignored
 *
 * Transitions are tried in table order; one fits when its state and event
 * type match and its guard, if any, accepts the event.
 *
 * Each event is applied in one unit of work together with the instance's
 * document, every command the actions and compensations publish, and the
 * saga subscription's progress mark: a transition happens exactly once, and
 * a crash can never leave one (or a run of compensations) half done. Units
 * run one after another, so an instance never sees two events at once, even
 * from different streams.
 *
 * Deadlines are durable. When one passes, the saga's timer appends a
 * `DeadlineExpired` event (data: saga, correlation_id, deadline) to the
 * stream `deadline-<saga>.<correlation id>`, which the saga handles like any
 * other event: give it transitions like any other type.
 *
 * Threads: a td_saga is controlled from one thread; actions run inside units
 * of work on the store's writer thread (see docs/threading.md).
 */
#ifndef TIDINGS_SAGA_H
#define TIDINGS_SAGA_H

#include "subscription.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_SAGA_DEADLINE_EXPIRED "DeadlineExpired"

typedef struct td_saga td_saga;
typedef struct td_saga_ctx td_saga_ctx; /* what an action may do; valid during the call */

/* An action or compensation. Return 0, or a negative code: the event is then
 * retried (or, TD_EPERMANENT, parked) like any handler failure, and nothing
 * of the transition is written. */
typedef int (*td_saga_action)(td_saga_ctx *ctx, const td_event *event, void *payload);

/* A guard: whether a transition applies to this event. data is the event's
 * data, parsed once for the whole transition (borrowed). */
typedef bool (*td_saga_guard)(const td_event *event, json_t *data, void *payload);

typedef struct td_saga_transition {
    const char *state; /* NULL: starts an instance; "*": any state not final */
    const char *event_type;
    const char *next_state;
    td_saga_action action;    /* or NULL */
    const char *compensation; /* registered once this step is done, or NULL */
    bool fail;                /* run the registered compensations first */
    td_saga_guard when;       /* NULL: always; tried in table order, the first fit wins */
} td_saga_transition;

typedef struct td_saga_compensation {
    const char *name;
    td_saga_action fn;
} td_saga_compensation;

typedef struct td_saga_definition {
    const char *name; /* 1..40 of [a-z0-9_], starting with a letter */
    const td_saga_transition *transitions;
    size_t transition_count;
    const td_saga_compensation *compensations;
    size_t compensation_count;
    const char *const *final_states; /* NULL-terminated */
    /* Writes the correlation id of event into out (size bytes); returns 0, or
     * a negative code when the event carries none (it is then not for us). */
    int (*correlate)(const td_event *event, json_t *data, char *out, size_t size);
    /* Event types that routinely arrive when no transition fits (one event
     * per line item after the first moved the saga on, the saga's own status
     * changes): they are passed over without being recorded in "ignored",
     * so without writing the instance. NULL-terminated; NULL: none (every
     * event that fits no transition is recorded). */
    const char *const *routine;
} td_saga_definition;

/* Version 2 added eager, version 3 partition; td_saga_new reads an older
 * struct without them and refuses other versions (TD_EINVAL). */
#define TD_SAGA_OPTIONS_VERSION 3

typedef struct td_saga_options {
    unsigned int version;
    unsigned max_attempts; /* of the saga subscription; 0: 5 */
    int timer_interval_ms; /* how often deadlines are checked; 0: 100 */
    bool start_at_end;     /* a new saga ignores events from before it first ran */
    td_metrics *metrics;   /* optional, as for subscriptions */
    td_tracer *tracer;     /* optional */
    bool eager;            /* the subscription's eager mode (subscription.h) */
    /* One partition of the saga (partition.h): the instances whose
     * correlation id (as def->correlate reads it) hashes to it, their
     * events and their deadlines; its subscription is then
     * "saga.<name>.pKofN". by is ignored: a saga goes by correlation. {0}:
     * the whole. */
    td_partition partition;
} td_saga_options;

#define TD_SAGA_OPTIONS_INIT                                                                       \
    {                                                                                              \
        TD_SAGA_OPTIONS_VERSION, 0, 0, false, NULL, NULL, false,                                   \
        {                                                                                          \
            0, 0, TD_PARTITION_BY_STREAM                                                           \
        }                                                                                          \
    }

/* Makes a saga from def (which, with its strings and tables, must outlive
 * the saga), checking it: TD_EINVAL names the first problem. The saga's
 * subscription is named "saga.<name>". Caller owns *out; free with
 * td_saga_free. payload goes to every action. opts may be NULL. */
int td_saga_new(td_saga **out, td_store *store, const td_saga_definition *def, void *payload,
                const td_saga_options *opts);
int td_saga_start(td_saga *saga);
/* td_subscription_try_start for the saga's subscription, then its timer. */
int td_saga_try_start(td_saga *saga);
/* td_subscription_name of the saga's subscription. Borrowed. */
const char *td_saga_subscription_name(const td_saga *saga);
int td_saga_stop(td_saga *saga);
/* td_subscription_check for the saga's subscription. */
int td_saga_check(td_saga *saga);
/* td_subscription_backlog of the saga's subscription. */
td_backlog td_saga_backlog(td_saga *saga);
void td_saga_free(td_saga *saga);

/* Inside an action. */
json_t *td_saga_event_data(td_saga_ctx *ctx);      /* the event's data, parsed once; borrowed */
const char *td_saga_state(const td_saga_ctx *ctx); /* before the transition */
const char *td_saga_correlation_id(const td_saga_ctx *ctx);
json_t *td_saga_data(td_saga_ctx *ctx); /* the instance's data: borrowed, change it freely */
td_txn *td_saga_txn(td_saga_ctx *ctx);
/* Publishes events (commands) in the transition's unit; they carry the
 * event being applied as cause. */
int td_saga_publish(td_saga_ctx *ctx, const char *stream, int64_t expected_version,
                    td_event *events, size_t count);
int td_saga_set_deadline(td_saga_ctx *ctx, td_time at);
void td_saga_clear_deadline(td_saga_ctx *ctx);

/* The instance as JSON ({"saga","correlation_id","state","completed","data",
 * "deadline","compensations","history","ignored","started_at","updated_at"}).
 * Caller owns *json; free with td_free. TD_ENOTFOUND if there is none. */
int td_saga_get(td_store *store, const char *saga, const char *correlation_id, char **json);

/* ---- browsing instances (for operators) ----------------------------------------- */

typedef struct td_saga_query {
    const char *saga;  /* required */
    const char *state; /* NULL: any */
    const char *after; /* a correlation id: start after it (paging); NULL: from the first */
    size_t limit;      /* instances handed over at most; 0: no limit */
} td_saga_query;
#define TD_SAGA_QUERY_INIT                                                                         \
    {                                                                                              \
        NULL, NULL, NULL, 0                                                                        \
    }
/* An instance: its correlation id, state (NULL for one that has none) and
 * whole document (as td_saga_get gives it), borrowed for the call. Return
 * 0 to go on, > 0 to stop. */
typedef int (*td_saga_instance_fn)(const char *correlation_id, const char *state, const char *json,
                                   size_t len, void *payload);
/* The saga's instances in the state asked for, by correlation id (byte
 * order), read a page at a time (not one snapshot). The state is read from each
 * document, so a query for one state reads every instance after `after`
 * until it has `limit`: O(instances) at worst. To page, pass the last
 * correlation id handed over as the next query's `after`. */
int td_saga_list(td_store *store, const td_saga_query *query, td_saga_instance_fn fn,
                 void *payload);
/* How many instances of the saga are in each state (in byte order of the
 * states; an instance without a state is counted under ""). Reads every
 * instance. */
typedef int (*td_saga_state_fn)(const char *state, int64_t instances, void *payload);
int td_saga_states(td_store *store, const char *saga, td_saga_state_fn fn, void *payload);

#ifdef __cplusplus
}
#endif
#endif
