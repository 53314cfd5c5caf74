/*
 * saga.c: the saga engine: checking a definition, applying events to
 * instances, and the saga's life.
 *
 * A saga runs as a transactional subscription ("saga.<name>") whose accept
 * filter lets through only the event types its transitions name, and its
 * own deadline events. The handler finds the instance, picks the transition,
 * runs compensations and the action, and saves the instance: all inside the
 * subscription's unit of work, so the whole transition commits once or not
 * at all.
 */
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "bus/partition.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log_int.h"
#include "saga/saga_int.h"

/* ---- the definition ---------------------------------------------------------- */

static bool is_final(const td_saga_definition *def, const char *state)
{
    for (const char *const *f = def->final_states; state && f && *f; f++)
        if (strcmp(*f, state) == 0)
            return true;
    return false;
}

static const td_saga_compensation *compensation(const td_saga_definition *def, const char *name)
{
    for (size_t i = 0; i < def->compensation_count; i++)
        if (strcmp(def->compensations[i].name, name) == 0)
            return &def->compensations[i];
    return NULL;
}

int td_saga__check_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= TD_SAGA_NAME_MAX && name[0] >= 'a' && name[0] <= 'z';
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_';
    return ok ? 0
              : td_error__set(TD_EINVAL, "invalid saga name '%.60s': expected 1..%d of [a-z0-9_]",
                              name ? name : "", TD_SAGA_NAME_MAX);
}

static int check_definition(const td_saga_definition *def)
{
    int error =
        def ? td_saga__check_name(def->name) : td_error__set(TD_EINVAL, "no saga definition");
    if (error == 0 &&
        (!def->transitions || !def->transition_count || !def->correlate || !def->final_states))
        error = td_error__set(TD_EINVAL,
                              "saga '%s' needs transitions, final states and a "
                              "correlate function",
                              def->name);
    for (size_t i = 0; error == 0 && i < def->transition_count; i++) {
        const td_saga_transition *t = &def->transitions[i];
        if (td_type_check(t->event_type) < 0 || t->next_state == NULL)
            error = td_error__set(TD_EINVAL,
                                  "saga '%s', transition %zu: needs an event type "
                                  "and a next state",
                                  def->name, i);
        else if (t->compensation && compensation(def, t->compensation) == NULL)
            error = td_error__set(TD_EINVAL,
                                  "saga '%s', transition %zu: unknown compensation "
                                  "'%s'",
                                  def->name, i, t->compensation);
    }
    return error;
}

/* The transition for an event in a state (NULL: no instance yet). */
static const td_saga_transition *find_transition(const td_saga *saga, const char *state,
                                                 const td_event *ev, json_t *data)
{
    const td_saga_definition *def = saga->def;
    const td_saga_transition *any = NULL;
    for (size_t i = 0; i < def->transition_count; i++) {
        const td_saga_transition *t = &def->transitions[i];
        if (strcmp(t->event_type, ev->type) != 0 || (t->when && !t->when(ev, data, saga->payload)))
            continue;
        if (state == NULL ? t->state == NULL : t->state && strcmp(t->state, state) == 0)
            return t;
        if (state && !any && t->state && strcmp(t->state, "*") == 0 && !is_final(def, state))
            any = t;
    }
    return any;
}

/* ---- the action context -------------------------------------------------------- */

const char *td_saga_state(const td_saga_ctx *ctx)
{
    return ctx->state;
}

const char *td_saga_correlation_id(const td_saga_ctx *ctx)
{
    return ctx->correlation_id;
}

json_t *td_saga_event_data(td_saga_ctx *ctx)
{
    return ctx->event_data;
}

json_t *td_saga_data(td_saga_ctx *ctx)
{
    return ctx->data;
}

td_txn *td_saga_txn(td_saga_ctx *ctx)
{
    return ctx->txn;
}

int td_saga_publish(td_saga_ctx *ctx, const char *stream, int64_t expected_version,
                    td_event *events, size_t count)
{
    TD_REQUIRE(ctx);
    return td_txn_append(ctx->txn, stream, expected_version, events, count);
}

int td_saga_set_deadline(td_saga_ctx *ctx, td_time at)
{
    TD_REQUIRE(ctx);
    if (at <= 0)
        return td_error__set(TD_EINVAL, "a deadline must be a time after 1970");
    ctx->deadline = at;
    return 0;
}

void td_saga_clear_deadline(td_saga_ctx *ctx)
{
    ctx->deadline = 0;
}

/* ---- applying an event --------------------------------------------------------------- */

static bool own_deadline(const td_saga *saga, const td_event *ev)
{
    size_t n = strlen(saga->def->name);
    return strcmp(ev->type, TD_SAGA_DEADLINE_EXPIRED) == 0 &&
           strncmp(ev->stream, "deadline-", 9) == 0 &&
           strncmp(ev->stream + 9, saga->def->name, n) == 0 && ev->stream[9 + n] == '.';
}

/* The correlation id: of a deadline event, from its stream name. */
static int correlation_of(const td_saga *saga, const td_event *ev, json_t *data, char *out,
                          size_t size)
{
    if (own_deadline(saga, ev)) {
        snprintf(out, size, "%s", ev->stream + 10 + strlen(saga->def->name));
        return 0;
    }
    char stream[TD_STREAM_MAX + 2];
    int error = saga->def->correlate(ev, data, out, size);
    if (error < 0)
        return error;
    /* It must be able to name the instance's deadline stream. */
    snprintf(stream, sizeof stream, "deadline-%s.%s", saga->def->name, out);
    return td_stream_check(stream);
}

static int run_compensations(td_saga_ctx *ctx, const td_event *ev)
{
    json_t *list = json_object_get(ctx->instance, "compensations");
    for (size_t i = json_array_size(list); i-- > 0;) {
        const char *name = json_string_value(json_array_get(list, i));
        const td_saga_compensation *c = name ? compensation(ctx->saga->def, name) : NULL;
        if (c == NULL)
            return td_error__set(TD_EPERMANENT, "saga '%s' has no compensation '%s' any more",
                                 ctx->saga->def->name, name ? name : "?");
        int error = c->fn(ctx, ev, ctx->saga->payload);
        if (error < 0)
            return error;
    }
    json_array_clear(list);
    return 0;
}

static int transition(td_saga_ctx *ctx, const td_saga_transition *t, const td_event *ev)
{
    int error = t->fail ? run_compensations(ctx, ev) : 0;
    if (error == 0 && t->action)
        error = t->action(ctx, ev, ctx->saga->payload);
    if (error < 0)
        return error;
    if (t->compensation)
        json_array_append_new(json_object_get(ctx->instance, "compensations"),
                              json_string(t->compensation));
    bool done = is_final(ctx->saga->def, t->next_state);
    if (done)
        ctx->deadline = 0;
    td_saga__record(ctx->instance, "history", ev, ctx->state, t->next_state);
    json_object_set_new(ctx->instance, "state", json_string(t->next_state));
    json_object_set_new(ctx->instance, "completed", json_boolean(done));
    return 0;
}

static bool routine(const td_saga_definition *def, const char *type)
{
    for (const char *const *r = def->routine; r && *r; r++)
        if (strcmp(*r, type) == 0)
            return true;
    return false;
}

static int apply(td_saga *saga, td_txn *txn, const td_event *ev, json_t *data,
                 const char *correlation_id)
{
    td_saga_ctx ctx = {saga, txn, ev, data, correlation_id, NULL, NULL, NULL, 0};
    td_saga_loaded loaded;
    int error = td_saga__load(txn, saga, correlation_id, &loaded);
    if (error < 0)
        return error;
    ctx.instance = loaded.instance;
    bool completed = ctx.instance && json_is_true(json_object_get(ctx.instance, "completed"));
    ctx.state = ctx.instance ? json_string_value(json_object_get(ctx.instance, "state")) : NULL;
    const td_saga_transition *t = completed ? NULL : find_transition(saga, ctx.state, ev, data);
    if (t == NULL && (ctx.instance == NULL || routine(saga->def, ev->type))) {
        /* for no instance, or routine: nothing to write */
        td_saga__loaded_done(saga, correlation_id, &loaded, true);
        return 0;
    }
    if (ctx.instance == NULL &&
        (ctx.instance = loaded.instance = td_saga__fresh(saga->def->name, correlation_id)) == NULL)
        return td_error__oom();
    ctx.data = json_object_get(ctx.instance, "data");
    ctx.deadline = json_integer_value(json_object_get(ctx.instance, "deadline"));
    td_time old_deadline = ctx.deadline;
    if (t)
        error = transition(&ctx, t, ev);
    else
        td_saga__record(ctx.instance, "ignored", ev, ctx.state, NULL);
    if (error == 0)
        error = td_saga__save(txn, &ctx, old_deadline);
    td_saga__loaded_done(saga, correlation_id, &loaded, false);
    return error;
}

static int handle(td_delivery *d, const td_event *ev, void *payload)
{
    td_saga *saga = payload;
    char correlation_id[TD_REF_ID_MAX + 1];
    json_t *data = NULL;
    if (td_event_data(&data, ev) < 0)
        return td_delivery_fail(d, TD_EPERMANENT, "%s: data is not JSON", ev->type);
    int error = 0;
    if (correlation_of(saga, ev, data, correlation_id, sizeof correlation_id) < 0)
        td_log__emit(TD_LOG_DEBUG, saga->subscription_name, ev, "no correlation id: ignored");
    else
        error = apply(saga, td_delivery_txn(d), ev, data, correlation_id);
    json_decref(data);
    return error;
}

static bool accept(const td_event *ev, void *payload)
{
    td_saga *saga = payload;
    if (own_deadline(saga, ev))
        return true;
    for (size_t i = 0; i < saga->def->transition_count; i++)
        if (strcmp(saga->def->transitions[i].event_type, ev->type) == 0)
            return strcmp(ev->type, TD_SAGA_DEADLINE_EXPIRED) != 0;
    return false;
}

/* The partition key of a partitioned saga: the event's correlation id, as
 * the handler will read it (the reader thread, once per event it reads). */
static int partition_key(const td_event *ev, void *payload, char *out, size_t size)
{
    td_saga *saga = payload;
    if (own_deadline(saga, ev))
        return correlation_of(saga, ev, NULL, out, size);
    json_t *data = ev->data ? json_loads(ev->data, 0, NULL) : NULL;
    int error = data ? correlation_of(saga, ev, data, out, size) : TD_EINVAL;
    json_decref(data);
    return error;
}

bool td_saga__owns(const td_saga *saga, const char *correlation_id)
{
    const td_partition *p = &saga->opts.partition;
    return p->count <= 1 || td_partition_of(correlation_id, p->count) == p->index;
}

/* ---- life ------------------------------------------------------------------------ */

/* Version 1 ended before eager, version 2 before partition: a caller built
 * against them passes a shorter struct, so only that much of it is read
 * (libgit2's rule: older option structs are accepted, unknown versions
 * refused). */
#define OPTIONS_V1_SIZE offsetof(td_saga_options, eager)
#define OPTIONS_V2_SIZE offsetof(td_saga_options, partition)

static int resolve_options(td_saga_options *out, const td_saga_options *in)
{
    static const td_saga_options defaults = TD_SAGA_OPTIONS_INIT;
    *out = defaults;
    if (in && (in->version == 1 || in->version == 2))
        memcpy(out, in, in->version == 1 ? OPTIONS_V1_SIZE : OPTIONS_V2_SIZE);
    else if (in && in->version == TD_SAGA_OPTIONS_VERSION)
        *out = *in;
    else if (in)
        return td_error__set(TD_EINVAL, "td_saga_options version %u is not %u (or 1, 2)",
                             in->version, TD_SAGA_OPTIONS_VERSION);
    out->version = TD_SAGA_OPTIONS_VERSION;
    out->partition.by = TD_PARTITION_BY_CORRELATION;
    return 0;
}

int td_saga_new(td_saga **out, td_store *store, const td_saga_definition *def, void *payload,
                const td_saga_options *opts)
{
    TD_REQUIRE(out && store && def);
    td_saga_options resolved;
    int error = resolve_options(&resolved, opts);
    if (error == 0)
        error = check_definition(def);
    if (error < 0)
        return error;
    td_saga *saga = td_calloc(1, sizeof *saga);
    if (saga == NULL)
        return td_error__oom();
    saga->store = store;
    saga->def = def;
    saga->payload = payload;
    saga->opts = resolved;
    if (saga->opts.timer_interval_ms <= 0)
        saga->opts.timer_interval_ms = 100;
    snprintf(saga->subscription_name, sizeof saga->subscription_name, "saga.%s", def->name);
    if (td_json_cache_new(&saga->instances, 0) < 0) {
        td_free(saga);
        return td_error__oom();
    }
    pthread_mutex_init(&saga->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&saga->wake, &attr);
    pthread_condattr_destroy(&attr);

    td_subscription_options sub = TD_SUBSCRIPTION_OPTIONS_INIT;
    sub.name = saga->subscription_name;
    sub.transactional = true;
    sub.max_attempts = saga->opts.max_attempts;
    sub.start_at_end = saga->opts.start_at_end;
    sub.metrics = saga->opts.metrics;
    sub.tracer = saga->opts.tracer;
    sub.accept = accept;
    sub.eager = saga->opts.eager;
    sub.partition = saga->opts.partition;
    if ((error = td_subscription_new(&saga->sub, store, &sub, handle, saga)) < 0) {
        td_saga_free(saga);
        return error;
    }
    if (sub.partition.count > 1)
        td_partition__set_key(saga->sub, partition_key);
    *out = saga;
    return 0;
}

static int start(td_saga *saga, bool wait_for_lock)
{
    int error =
        wait_for_lock ? td_subscription_start(saga->sub) : td_subscription_try_start(saga->sub);
    if (error < 0)
        return error;
    saga->stopping = false;
    if (pthread_create(&saga->timer, NULL, td_saga__timer_main, saga) != 0) {
        td_subscription_stop(saga->sub);
        return td_error__set(TD_ERROR, "cannot start the timer of saga '%s'", saga->def->name);
    }
    saga->timer_started = true;
    return 0;
}

int td_saga_start(td_saga *saga)
{
    TD_REQUIRE(saga);
    return start(saga, true);
}

int td_saga_try_start(td_saga *saga)
{
    TD_REQUIRE(saga);
    return start(saga, false);
}

const char *td_saga_subscription_name(const td_saga *saga)
{
    return saga ? td_subscription_name(saga->sub) : NULL;
}

td_backlog td_saga_backlog(td_saga *saga)
{
    return td_subscription_backlog(saga ? saga->sub : NULL);
}

int td_saga_stop(td_saga *saga)
{
    TD_REQUIRE(saga);
    if (saga->timer_started) {
        pthread_mutex_lock(&saga->lock);
        saga->stopping = true;
        pthread_cond_signal(&saga->wake);
        pthread_mutex_unlock(&saga->lock);
        pthread_join(saga->timer, NULL);
        saga->timer_started = false;
    }
    return td_subscription_stop(saga->sub);
}

int td_saga_check(td_saga *saga)
{
    TD_REQUIRE(saga);
    return saga->sub ? td_subscription_check(saga->sub) : 0;
}

void td_saga_free(td_saga *saga)
{
    if (saga == NULL)
        return;
    if (saga->sub)
        td_saga_stop(saga);
    td_subscription_free(saga->sub);
    td_json_cache_free(saga->instances);
    pthread_cond_destroy(&saga->wake);
    pthread_mutex_destroy(&saga->lock);
    td_free(saga);
}

int td_saga_get(td_store *store, const char *saga, const char *correlation_id, char **json)
{
    TD_REQUIRE(store && json);
    char key[TD_SAGA_KEY_MAX + 1];
    int error = td_saga__check_name(saga);
    if (error == 0 && (correlation_id == NULL || td_ref_id_check(correlation_id) < 0))
        error = td_error__set(TD_EINVAL, "invalid correlation id");
    if (error == 0)
        error = td_saga__key(key, saga, correlation_id);
    if (error == 0)
        error = td_store_doc_get(store, TD_COLL_SAGAS, key, json, NULL);
    if (error == TD_ENOTFOUND)
        error =
            td_error__set(TD_ENOTFOUND, "no instance of saga '%s' for '%s'", saga, correlation_id);
    return error;
}
