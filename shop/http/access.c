/*
 * access.c (shop http): who is asking, and whether they may.
 *
 *   Authorization: Bearer <token>  ──▶ shop_authenticate ──▶ req->who
 *   no header                      ──▶ anonymous
 *   route allows who's role?  yes ──▶ the handler (which checks ownership)
 *                              no ──▶ anonymous: 401 unauthenticated
 *                                     others:    403 forbidden
 *
 * A header that is there but wrong (not Bearer, or a token that is
 * malformed, unknown, revoked or expired) is 401 invalid_token on every
 * route, public ones included: a client that sends credentials learns at
 * once that they no longer work, rather than being served as anonymous.
 *
 * With open access (`shop serve --open-access`, for benchmarks) every
 * request is an administrator's, admitted to the routes administrators
 * may use and refused the others (403) like any administrator.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

#define CHALLENGE         "Bearer realm=\"shop\""
#define CHALLENGE_INVALID "Bearer realm=\"shop\", error=\"invalid_token\""

static int unauthorized(http_response *res, const char *challenge, const char *code,
                        const char *message)
{
    http_problem(res, 401, code, NULL, "%s", message);
    res->challenge = challenge;
    return TD_EINVAL;
}

/* The principal behind the Authorization header, if any. */
static int identify(http_request *req, http_response *res)
{
    const char *auth = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    memset(&req->who, 0, sizeof req->who);
    req->who.role = SHOP_ROLE_ANONYMOUS;
    if (auth == NULL)
        return 0;
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return unauthorized(res, CHALLENGE_INVALID, "invalid_token",
                            "send credentials as Authorization: Bearer <token>");
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    if (shop_authenticate(req->shop, token, &req->who) == 0)
        return 0;
    shop_error_info e = shop_error();
    if (strcmp(e.code, "invalid_token") == 0)
        return unauthorized(res, CHALLENGE_INVALID, "invalid_token", e.message);
    http_problem(res, 503, "unavailable", NULL, "cannot check credentials: %s", e.message);
    res->retry_after = 1;
    return TD_EIO;
}

/* Requests per credential: a customer's (all their sessions) or a key's. */
static int throttle_credential(http_request *req, http_response *res)
{
    char who[SHOP_KEY_NAME_MAX + SHOP_ID_LEN + 8];
    const shop_principal *p = &req->who;
    snprintf(who, sizeof who, "%s %s", p->role == SHOP_ROLE_CUSTOMER ? "user" : "key",
             p->role == SHOP_ROLE_CUSTOMER ? p->user_id : p->name);
    return http_throttled(req, res, HTTP_LIMIT_CREDENTIAL, who);
}

int http_admit(http_request *req, http_response *res, unsigned roles)
{
    int error = 0;
    if (http_server_open_access(req->server)) { /* an administrator, on admins' routes */
        memset(&req->who, 0, sizeof req->who);
        req->who.role = SHOP_ROLE_ADMIN;
        snprintf(req->who.name, sizeof req->who.name, "open-access");
    } else if ((error = identify(req, res)) == 0 && req->who.role != SHOP_ROLE_ANONYMOUS) {
        error = throttle_credential(req, res);
    }
    if (error < 0 || (roles & req->who.role) != 0)
        return error;
    if (req->who.role == SHOP_ROLE_ANONYMOUS)
        return unauthorized(res, CHALLENGE, "unauthenticated",
                            "this route needs credentials: Authorization: Bearer <token>");
    http_problem(res, 403, "forbidden", NULL, "a %s may not %s %s", shop_role_name(req->who.role),
                 req->method, req->path);
    return TD_EINVAL;
}

bool http_owns(const http_request *req, const char *user_id)
{
    return req->who.role != SHOP_ROLE_CUSTOMER ||
           (user_id && strcmp(user_id, req->who.user_id) == 0);
}

int http_throttled(http_request *req, http_response *res, http_limit limit, const char *key)
{
    double wait = http_throttle_take(http_server_throttle(req->server, limit), key);
    if (wait <= 0)
        return 0;
    http_server_count_limited(req->server, limit);
    res->retry_after = (unsigned)ceil(wait);
    http_problem(res, 429, "too_many_requests", NULL, "too many %s; try again in %u s",
                 limit == HTTP_LIMIT_AUTH_CLIENT || limit == HTTP_LIMIT_AUTH_ACCOUNT ? "attempts"
                                                                                     : "requests",
                 res->retry_after);
    return TD_EBUSY;
}
