/*
 * sagas.c (shop http): saga instances for administrators: GET /sagas (each
 * saga that has run, with its instances counted by state), GET
 * /sagas/{saga}/instances (by state, a page at a time) and GET
 * /sagas/{saga}/instances/{correlation id} (one instance, its history
 * included). Times are shown as RFC 3339 text; a card token that a saga
 * started before tokens left the log may still hold is never shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX     500

/* A time in microseconds as RFC 3339 text; anything else as null. */
static json_t *time_text(json_t *value)
{
    char text[TD_TIME_STR_LEN + 1];
    if (!json_is_integer(value) || td_time_format(text, json_integer_value(value)) < 0)
        return json_null();
    return json_string(text);
}

static void retime(json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    if (value)
        json_object_set_new(object, key, time_text(value));
}

/* The instance as the API shows it. */
static json_t *instance_json(const char *text, size_t len)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    if (doc == NULL)
        return NULL;
    static const char *const times[] = {"started_at", "updated_at", "deadline"};
    for (size_t i = 0; i < 3; i++)
        retime(doc, times[i]);
    static const char *const lists[] = {"history", "ignored"};
    for (size_t i = 0; i < 2; i++) {
        size_t at;
        json_t *entry;
        json_array_foreach(json_object_get(doc, lists[i]), at, entry)
        {
            retime(entry, "at");
        }
    }
    json_object_del(json_object_get(doc, "data"), "payment_token");
    return doc;
}

typedef struct counting {
    json_t *states;
    json_int_t total;
} counting;

static int add_state(const char *state, int64_t instances, void *payload)
{
    counting *c = payload;
    c->total += instances;
    json_t *entry = json_pack("{s:s,s:I}", "state", state, "instances", (json_int_t)instances);
    return entry && json_array_append_new(c->states, entry) == 0 ? 0 : TD_ENOMEM;
}

/* Each saga once: "saga.NAME", or its partitions "saga.NAME.pKofN". */
static int add_saga_name(const char *name, const td_subscription_status *st, void *payload)
{
    char whole[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition p;
    (void)st;
    if (strncmp(name, "saga.", 5) != 0 ||
        (td_partition_parse(name, whole, sizeof whole, &p) && p.index != 0))
        return 0;
    return json_array_append_new(payload, json_string(whole + 5)) == 0 ? 0 : TD_ENOMEM;
}

static int get_sagas(http_request *req, http_response *res)
{
    json_t *names = json_array(), *sagas = json_array();
    int error =
        names && sagas ? td_subscriptions_list(req->store, add_saga_name, names) : TD_ENOMEM;
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name)
    {
        counting c = {json_array(), 0};
        const char *saga = json_string_value(name);
        if (error == 0)
            error = c.states ? td_saga_states(req->store, saga, add_state, &c) : TD_ENOMEM;
        json_t *entry = error == 0
                            ? json_pack("{s:s,s:s+,s:I,s:O}", "name", saga, "subscription", "saga.",
                                        saga, "instances", c.total, "states", c.states)
                            : NULL;
        json_decref(c.states);
        if (error == 0 && (entry == NULL || json_array_append_new(sagas, entry) < 0))
            error = TD_ENOMEM;
        if (error < 0)
            break;
    }
    json_decref(names);
    if (error < 0) {
        json_decref(sagas);
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    }
    return http_json(res, 200, json_pack("{s:o}", "sagas", sagas));
}

typedef struct page {
    json_t *instances;
    char last[TD_REF_ID_MAX + 1];
} page;

static int add_instance(const char *correlation_id, const char *state, const char *json, size_t len,
                        void *payload)
{
    page *p = payload;
    json_t *doc = instance_json(json, len);
    json_t *entry =
        doc ? json_pack("{s:s,s:s?,s:O?,s:O?,s:O?,s:O?}", "correlation_id", correlation_id, "state",
                        state, "completed", json_object_get(doc, "completed"), "started_at",
                        json_object_get(doc, "started_at"), "updated_at",
                        json_object_get(doc, "updated_at"), "deadline",
                        json_object_get(doc, "deadline"))
            : NULL;
    json_decref(doc);
    snprintf(p->last, sizeof p->last, "%s", correlation_id);
    return entry && json_array_append_new(p->instances, entry) == 0 ? 0 : TD_ENOMEM;
}

/* A failed saga call: bad names are the client's. */
static int saga_failed(http_response *res, int error)
{
    if (error == TD_EINVAL)
        return http_problem(res, 400, "validation_failed", NULL, "%s", td_error_last());
    if (error == TD_ENOTFOUND)
        return http_problem(res, 404, "not_found", NULL, "%s", td_error_last());
    return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
}

static int get_instances(http_request *req, http_response *res)
{
    const char *limit_text = http_query(req, "limit");
    char *end = NULL;
    long limit = limit_text ? strtol(limit_text, &end, 10) : PAGE_DEFAULT;
    if (limit_text && (limit_text[0] == '\0' || *end != '\0' || limit < 1 || limit > PAGE_MAX))
        return http_problem(res, 400, "validation_failed", NULL,
                            "limit must be a whole number in 1..%d", PAGE_MAX);
    td_saga_query q = TD_SAGA_QUERY_INIT;
    q.saga = req->params[0];
    q.state = http_query(req, "state");
    q.after = http_query(req, "after");
    q.limit = (size_t)limit;
    page p = {json_array(), ""};
    int error = p.instances ? td_saga_list(req->store, &q, add_instance, &p) : TD_ENOMEM;
    if (error < 0) {
        json_decref(p.instances);
        return saga_failed(res, error);
    }
    bool full = json_array_size(p.instances) == q.limit;
    return http_json(res, 200,
                     json_pack("{s:s,s:o,s:s?}", "saga", q.saga, "instances", p.instances, "next",
                               full ? p.last : NULL));
}

static int get_instance(http_request *req, http_response *res)
{
    char *text = NULL;
    int error = td_saga_get(req->store, req->params[0], req->params[1], &text);
    if (error < 0)
        return saga_failed(res, error);
    json_t *doc = instance_json(text, strlen(text));
    td_free(text);
    if (doc == NULL)
        return http_problem(res, 500, "internal_error", NULL, "the instance is not JSON");
    return http_json(res, 200, doc);
}

const http_route http_saga_routes[] = {
    {"GET", "/sagas", "/sagas", SHOP_ROLE_ADMIN, get_sagas, 0, 0},
    {"GET", "/sagas/{}/instances", "/sagas/{saga}/instances", SHOP_ROLE_ADMIN, get_instances, 0, 0},
    {"GET", "/sagas/{}/instances/{}", "/sagas/{saga}/instances/{correlation_id}", SHOP_ROLE_ADMIN,
     get_instance, 0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
