/*
 * status.c: what `tidings subscriptions` shows: each subscription's durable
 * checkpoint, its lag behind the head, events waiting for a delayed retry,
 * its dead letters, and who runs it (its lease). Read from the state
 * documents, so it works from any process, whether the subscription is
 * running or not.
 */
#include <stdio.h>
#include <string.h>

#include "bus/state.h"
#include "core/alloc.h"
#include "core/error.h"

static int count_doc(const char *key, const char *json, size_t len, void *payload)
{
    (void)key;
    (void)json;
    (void)len;
    ++*(int64_t *)payload;
    return 0;
}

typedef struct status_ctx {
    td_store *store;
    int64_t head;
    td_subscription_status_fn fn;
    void *payload;
} status_ctx;

/* "PID@HOST" of name's unexpired lease into out, "LABEL (PID@HOST)" when
 * a balancer runs it, or "" (nobody). */
static int lease_holder(td_store *store, const char *name, char *out, size_t size)
{
    char *text = NULL;
    out[0] = '\0';
    int error = td_store_doc_get(store, TD_COLL_LEASES, name, &text, NULL);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    json_t *doc = json_loads(text, 0, NULL);
    td_free(text);
    const char *host = json_string_value(json_object_get(doc, "host"));
    const char *instance = json_string_value(json_object_get(doc, "instance"));
    json_int_t pid = json_integer_value(json_object_get(doc, "pid"));
    bool live = json_integer_value(json_object_get(doc, "expires_at")) > td_time_now();
    if (live && instance)
        snprintf(out, size, "%s (%lld@%s)", instance, (long long)pid, host ? host : "?");
    else if (live)
        snprintf(out, size, "%lld@%s", (long long)pid, host ? host : "?");
    json_decref(doc);
    return 0;
}

static int one_subscription(const char *name, const char *json, size_t len, void *payload)
{
    status_ctx *ctx = payload;
    td_checkpoint cp;
    bool found = false;
    td_subscription_status st = {0};
    char holder[300];
    (void)json;
    (void)len;
    int error = td_state__load_checkpoint(ctx->store, name, &cp, &found);
    if (error == 0)
        error = td_state__list_prefix(ctx->store, TD_COLL_RETRIES, name, count_doc, &st.in_retry);
    if (error == 0)
        error = td_state__count_dead_letters(ctx->store, name, &st.dead_letters);
    if (error == 0)
        error = lease_holder(ctx->store, name, holder, sizeof holder);
    if (error < 0)
        return error;
    st.position = cp.position;
    st.head = ctx->head;
    st.lag_events = ctx->head > cp.position ? ctx->head - cp.position : 0;
    st.holder = holder[0] ? holder : NULL;
    return ctx->fn(name, &st, ctx->payload);
}

int td_subscriptions_list(td_store *store, td_subscription_status_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    status_ctx ctx = {store, 0, fn, payload};
    int error = td_store_head(store, &ctx.head);
    return error < 0
               ? error
               : td_store_doc_list(store, TD_COLL_CHECKPOINTS, NULL, 0, one_subscription, &ctx);
}
