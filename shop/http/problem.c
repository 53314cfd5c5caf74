/*
 * problem.c (shop http): problem details (RFC 9457), JSON bodies and typed
 * fields, and the mapping from shop errors to HTTP statuses:
 *
 *   validation_failed                 422 (400 for malformed or mistyped JSON)
 *   not_found       in the path       404; referenced in the body   422
 *   email_taken, conflict,
 *   insufficient_stock,
 *   illegal_transition                409
 *   invalid_credentials, invalid_token 401 (access.c)
 *   storage_full (the disk is full)   503, Retry-After: 5 (writes resume by
 *                                     themselves once there is space)
 *   store_unavailable, busy           503 (the store stopped writes, or its
 *                                     lock was not granted in time)
 *   anything else                     500
 *
 * A problem's type is "urn:tidings:problem:<code>": a name the project
 * gives itself, not a web address on a domain it does not own (docs/api.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"

static const char *title_of(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Seconds a client waits before it tries a write again on a full disk. */
#define STORAGE_FULL_RETRY_AFTER 5

int http_problem(http_response *res, unsigned status, const char *code, const char *field,
                 const char *fmt, ...)
{
    char detail[600], type[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(type, sizeof type, "urn:tidings:problem:%s", code); /* a name, never fetched */
    json_decref(res->json);
    res->status = status;
    res->content_type = "application/problem+json";
    res->json = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s?}", "type", type, "title", title_of(status),
                          "status", (int)status, "detail", detail, "code", code, "field", field);
    if (strcmp(code, "storage_full") == 0)
        res->retry_after = STORAGE_FULL_RETRY_AFTER;
    return 0;
}

int http_shop_problem(http_response *res, bool path_entity)
{
    shop_error_info e = shop_error();
    unsigned status = 500;
    if (strcmp(e.code, "validation_failed") == 0)
        status = 422;
    else if (strcmp(e.code, "not_found") == 0)
        status = path_entity && e.field == NULL ? 404 : 422;
    else if (e.status == TD_ECONFLICT || e.status == TD_EEXISTS)
        status = 409;
    else if (e.status == TD_EBUSY || e.status == TD_ENOSPC || e.status == TD_ECLOSED ||
             e.status == TD_EUNAVAILABLE)
        status = 503;
    return http_problem(res, status, status == 500 ? "internal_error" : e.code, e.field, "%s",
                        e.message);
}

int http_json(http_response *res, unsigned status, json_t *json)
{
    json_decref(res->json);
    res->json = json;
    res->status = json ? status : 500;
    return json ? 0 : http_problem(res, 500, "internal_error", NULL, "out of memory");
}

static bool is_json_type(const char *content_type)
{
    static const char want[] = "application/json";
    if (content_type == NULL || strncasecmp(content_type, want, sizeof want - 1) != 0)
        return false;
    char next = content_type[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

json_t *http_body(http_request *req, http_response *res)
{
    json_error_t err;
    const char *type =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(type)) {
        http_problem(res, 415, "unsupported_media_type", NULL, "send the body as application/json");
        return NULL;
    }
    json_t *body =
        json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (body == NULL) {
        http_problem(res, 400, "malformed_json", NULL,
                     "the body is not valid JSON: %s at offset %d", err.text, err.position);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        http_problem(res, 400, "malformed_json", "", "the body must be a JSON object");
        return NULL;
    }
    return body;
}

/* The problem of the field key of the object at pointer parent ("" for
 * the body itself): its JSON Pointer and name are parent/key. */
static int field_problem(http_response *res, const char *parent, const char *key,
                         const char *expected)
{
    char pointer[128];
    snprintf(pointer, sizeof pointer, "%s/%s", parent, key);
    http_problem(res, 400, "validation_failed", pointer, "%s must be %s", pointer + 1, expected);
    return -1;
}

int http_string_in(json_t *object, const char *parent, const char *key, bool required,
                   const char **out, http_response *res)
{
    json_t *v = json_object_get(object, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return required ? field_problem(res, parent, key, "given") : 0;
    if (!json_is_string(v))
        return field_problem(res, parent, key, "a string");
    *out = json_string_value(v);
    return 0;
}

int http_string(json_t *body, const char *key, bool required, const char **out, http_response *res)
{
    return http_string_in(body, "", key, required, out, res);
}

int http_integer(json_t *body, const char *key, bool required, int64_t *out, http_response *res)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return required ? field_problem(res, "", key, "given") : 0;
    if (!json_is_integer(v))
        return field_problem(res, "", key, "an integer");
    *out = json_integer_value(v);
    return 0;
}

const char *http_query(http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}
