/*
 * dead_letters.c (shop http): the dead-letter queue for administrators:
 * GET /dead-letters (with filters), GET /dead-letters/{id} (why, and the
 * event itself), POST /dead-letters/{id}/retry, POST /dead-letters/{id}/drop,
 * POST /dead-letters/retry (every dead entry that matches a filter) and GET
 * /dead-letters/audit (who asked for what, and when).
 *
 * Retries and drops are requests that the subscription carries out
 * (dlq.h); each is recorded in the store's audit trail as the `tidings dlq`
 * command records it, with `who` the caller's key as "http:<key name>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define AUDIT_DEFAULT 100
#define AUDIT_MAX     1000

static json_t *time_json(td_time t)
{
    char text[TD_TIME_STR_LEN + 1];
    return t && td_time_format(text, t) == 0 ? json_string(text) : json_null();
}

static json_t *entry_json(const td_dead_letter *e)
{
    char event_id[TD_UUID_STR_LEN + 1];
    td_uuid_format(event_id, &e->event_id);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:s,s:s?,s:s?,s:o,s:o}", "id", e->id,
                     "subscription", e->subscription, "status", e->status, "position",
                     (json_int_t)e->position, "event_id", event_id, "stream", e->stream, "type",
                     e->type, "attempts", (json_int_t)e->attempts, "last_error", e->last_error,
                     "behind", e->behind, "request", e->request, "first_failure",
                     time_json(e->first_failure), "last_failure", time_json(e->last_failure));
}

static int add_dead_letter(const td_dead_letter *e, void *payload)
{
    json_t *json = entry_json(e);
    return json && json_array_append_new(payload, json) == 0 ? 0 : TD_ENOMEM;
}

static int get_dead_letters(http_request *req, http_response *res)
{
    td_dlq_filter filter = {http_query(req, "subscription"), http_query(req, "type"),
                            http_query(req, "stream")};
    json_t *list = json_array();
    if (list == NULL || td_dlq_list(req->store, &filter, add_dead_letter, list) < 0) {
        json_decref(list);
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    }
    return http_json(res, 200, json_pack("{s:o}", "dead_letters", list));
}

typedef struct shown {
    http_request *req;
    json_t *entry;
} shown;

static int add_event(const td_event *ev, void *payload)
{
    shown *s = payload;
    json_t *json = NULL;
    int error = http_event_json(s->req->shop, ev, &json);
    if (error == 0 && json_object_set_new(s->entry, "event", json) < 0)
        error = TD_ENOMEM;
    return error;
}

static int show_entry(const td_dead_letter *e, void *payload)
{
    shown *s = payload;
    if ((s->entry = entry_json(e)) == NULL)
        return TD_ENOMEM;
    int error = td_store_read_event(s->req->store, &e->event_id, add_event, s);
    return error == TD_ENOTFOUND ? 0 : error; /* shown without it */
}

static int get_dead_letter(http_request *req, http_response *res)
{
    shown s = {req, NULL};
    int error = td_dlq_get(req->store, req->params[0], show_entry, &s);
    if (error == 0 && s.entry)
        return http_json(res, 200, s.entry);
    json_decref(s.entry);
    if (error == TD_ENOTFOUND || error == TD_EINVAL)
        return http_problem(res, 404, "not_found", NULL, "no dead letter %s", req->params[0]);
    return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
}

/* Who asks, for the audit trail. */
static void who(const http_request *req, char *out, size_t size)
{
    snprintf(out, size, "http:%s", req->who.name[0] ? req->who.name : "admin");
}

/* A retry or drop of one entry: 202, or why not. */
static int act(http_request *req, http_response *res, const char *request,
               int (*fn)(td_store *, const char *, const char *))
{
    char by[SHOP_KEY_NAME_MAX + 16];
    who(req, by, sizeof by);
    int error = fn(req->store, req->params[0], by);
    if (error == TD_ENOTFOUND)
        return http_problem(res, 404, "not_found", NULL, "%s", td_error_last());
    if (error == TD_EINVAL)
        return http_problem(res, 409, "conflict", NULL, "%s", td_error_last());
    if (error < 0)
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    return http_json(res, 202, json_pack("{s:s,s:s}", "id", req->params[0], "request", request));
}

static int retry_dead_letter(http_request *req, http_response *res)
{
    return act(req, res, "retry", td_dlq_retry);
}

static int drop_dead_letter(http_request *req, http_response *res)
{
    return act(req, res, "drop", td_dlq_drop);
}

/* Every dead entry matching the body's filter; with no filter, "all": true
 * must say so. */
static int retry_matching(http_request *req, http_response *res)
{
    json_t *body = http_body(req, res);
    td_dlq_filter filter = {NULL, NULL, NULL};
    json_t *all = body ? json_object_get(body, "all") : NULL;
    if (body == NULL || http_string(body, "subscription", false, &filter.subscription, res) < 0 ||
        http_string(body, "type", false, &filter.type, res) < 0 ||
        http_string(body, "stream", false, &filter.stream, res) < 0) {
        json_decref(body);
        return 0;
    }
    if (all && !json_is_boolean(all)) {
        json_decref(body);
        return http_problem(res, 400, "validation_failed", "/all", "all must be true or false");
    }
    if (!filter.subscription && !filter.type && !filter.stream && !json_is_true(all)) {
        json_decref(body);
        return http_problem(res, 400, "validation_failed", NULL,
                            "name a subscription, type or stream, or say \"all\": true");
    }
    char by[SHOP_KEY_NAME_MAX + 16];
    size_t count = 0;
    who(req, by, sizeof by);
    int error = td_dlq_retry_all(req->store, &filter, by, &count);
    json_decref(body);
    if (error < 0)
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    return http_json(res, 202,
                     json_pack("{s:s,s:I}", "request", "retry", "count", (json_int_t)count));
}

static int add_audit(const char *text, void *payload)
{
    json_error_t err;
    json_t *entry = json_loads(text, 0, &err), *at = json_object_get(entry, "at");
    if (entry == NULL)
        return TD_ECORRUPT;
    if (json_is_integer(at))
        json_object_set_new(entry, "at", time_json(json_integer_value(at)));
    return json_array_append_new(payload, entry) == 0 ? 0 : TD_ENOMEM;
}

/* The last `limit` requests, newest first. */
static int get_audit(http_request *req, http_response *res)
{
    const char *text = http_query(req, "limit");
    char *end = NULL;
    long limit = text ? strtol(text, &end, 10) : AUDIT_DEFAULT;
    if (text && (text[0] == '\0' || *end != '\0' || limit < 1 || limit > AUDIT_MAX))
        return http_problem(res, 400, "validation_failed", NULL,
                            "limit must be a whole number in 1..%d", AUDIT_MAX);
    json_t *all = json_array(), *newest = json_array();
    int error = all && newest ? td_dlq_audit(req->store, add_audit, all) : TD_ENOMEM;
    for (size_t i = json_array_size(all);
         error == 0 && i > 0 && json_array_size(newest) < (size_t)limit; i--)
        if (json_array_append(newest, json_array_get(all, i - 1)) < 0)
            error = TD_ENOMEM;
    json_decref(all);
    if (error < 0) {
        json_decref(newest);
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    }
    return http_json(res, 200, json_pack("{s:o}", "audit", newest));
}

const http_route http_dead_letter_routes[] = {
    {"GET", "/dead-letters", "/dead-letters", SHOP_ROLE_ADMIN, get_dead_letters, 0, 0},
    {"POST", "/dead-letters/retry", "/dead-letters/retry", SHOP_ROLE_ADMIN, retry_matching, 0, 0},
    {"GET", "/dead-letters/audit", "/dead-letters/audit", SHOP_ROLE_ADMIN, get_audit, 0, 0},
    {"GET", "/dead-letters/{}", "/dead-letters/{id}", SHOP_ROLE_ADMIN, get_dead_letter, 0, 0},
    {"POST", "/dead-letters/{}/retry", "/dead-letters/{id}/retry", SHOP_ROLE_ADMIN,
     retry_dead_letter, 0, 0},
    {"POST", "/dead-letters/{}/drop", "/dead-letters/{id}/drop", SHOP_ROLE_ADMIN, drop_dead_letter,
     0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
