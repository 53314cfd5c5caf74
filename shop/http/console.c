/*
 * console.c (shop http): the operator console's files: GET /console (the
 * page) and GET /console/{file} (its scripts and style), compiled in from
 * shop/console/. They hold no data and are served to anyone; everything
 * the console shows it asks for from the admin-only JSON routes with the
 * administrator's key, which the page keeps in sessionStorage. Sent with
 * a strict Content-Security-Policy (server.c) and never with CORS headers.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static int serve_asset(http_response *res, const char *name)
{
    for (const http_asset *a = http_console_assets; a->name; a++) {
        if (strcmp(a->name, name) != 0)
            continue;
        char *copy = malloc(a->size + 1);
        if (copy == NULL)
            return http_problem(res, 500, "internal_error", NULL, "out of memory");
        memcpy(copy, a->bytes, a->size);
        copy[a->size] = '\0';
        res->status = 200;
        res->text = copy;
        res->content_type = a->type;
        res->page = true;
        return 0;
    }
    return http_problem(res, 404, "not_found", NULL, "the console has no file %.100s", name);
}

static int get_page(http_request *req, http_response *res)
{
    (void)req;
    return serve_asset(res, "index.html");
}

static int get_file(http_request *req, http_response *res)
{
    return serve_asset(res, req->params[0]);
}

const http_route http_console_routes[] = {
    {"GET", "/console", "/console", HTTP_ANYONE, get_page, 0, 0},
    {"GET", "/console/", "/console", HTTP_ANYONE, get_page, 0, 0},
    {"GET", "/console/{}", "/console/{file}", HTTP_ANYONE, get_file, 0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
