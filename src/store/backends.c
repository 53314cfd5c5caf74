/*
 * backends.c: the table of registered backends, and which one a store URL
 * names.
 *
 * Each backend says for itself whether a URL is its own (td_backend.claim);
 * they are asked in the order below, and the first that claims it serves
 * the store. SQLite comes last: it takes any plain path without a scheme.
 * Adding a backend is one line here and one table of functions.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "store/backend.h"

const td_backend *const td_backends[] = {
    &td_pg_backend,
    &td_sqlite_backend,
    NULL,
};

/* "sqlite:PATH (or a plain PATH), postgres://…" for messages. */
static void forms(char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; td_backends[i] && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? ", " : "", td_backends[i]->url_help);
}

int td_backend__find(const char *url, const td_backend **backend, const char **target)
{
    char known[400];
    if (url == NULL || url[0] == '\0')
        return td_error__set(TD_EINVAL, "missing store URL");
    for (size_t i = 0; td_backends[i]; i++) {
        int claimed = td_backends[i]->claim(url, target);
        if (claimed < 0)
            return claimed;
        if (claimed > 0) {
            *backend = td_backends[i];
            return 0;
        }
    }
    forms(known, sizeof known);
    size_t scheme =
        strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (scheme > 0 && url[scheme] == ':' && isalpha((unsigned char)url[0]))
        return td_error__set(TD_EINVAL, "unknown store scheme '%.*s' in '%s': this build knows %s",
                             (int)scheme, url, url, known);
    return td_error__set(TD_EINVAL, "'%s' names no store this build knows (%s)", url, known);
}
