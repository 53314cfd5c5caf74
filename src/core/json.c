/*
 * json.c: the JSON helpers the library shares (see core/internal.h).
 *
 * Checks parse with jansson, which also refuses NUL escapes, invalid UTF-8
 * and nesting deeper than its limit. Text that jansson allocates is handed
 * out as library-owned strings, so every caller frees with td_free.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

uint64_t td_hash__fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

size_t td_json__length(const char *text, size_t len)
{
    return text == NULL ? 0 : len ? len : strlen(text);
}

json_t *td_json__loadb(const char *text, size_t len, size_t flags, json_error_t *err, bool *oom)
{
    unsigned long before = td_alloc__thread_failures();
    json_t *json = json_loadb(text, len, flags, err);
    *oom = json == NULL && td_alloc__thread_failures() != before;
    return json;
}

void td_json__free(void *ptr)
{
    json_malloc_t ignored;
    json_free_t release;
    json_get_alloc_funcs(&ignored, &release);
    release(ptr);
}

int td_json__check_object(const char *what, const char *text, size_t len, size_t max)
{
    json_error_t err;
    if (len > max)
        return td_error__set(TD_ETOOBIG, "%s is %zu bytes, over the limit of %zu", what, len, max);
    bool oom;
    json_t *json = td_json__loadb(text, len, JSON_REJECT_DUPLICATES, &err, &oom);
    if (oom)
        return td_error__oom();
    if (json == NULL)
        return td_error__set(TD_EINVAL, "%s is not valid JSON: %s at offset %d", what, err.text,
                             err.position);
    int is_object = json_is_object(json);
    json_decref(json);
    if (!is_object)
        return td_error__set(TD_EINVAL, "%s must be a JSON object", what);
    return 0;
}

int td_json__dump_steal(char **out, size_t *len, json_t *json)
{
    if (json == NULL)
        return td_error__oom();
    char *text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (text == NULL)
        return td_error__oom();
    size_t n = strlen(text);
    *out = td_strndup(text, n);
    td_json__free(text);
    if (*out == NULL)
        return td_error__oom();
    if (len)
        *len = n;
    return 0;
}
