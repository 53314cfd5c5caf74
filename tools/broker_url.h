/*
 * broker_url.h: where the `tidings` and `shop` commands take a broker URL
 * from, keeping its password off the command line (not part of libtidings).
 *
 *   --broker URL        a URL without a password (argv is visible to every
 *                       user of the machine: one with a password is refused)
 *   --broker-file FILE  the URL on the file's first line; the file must not
 *                       be readable by group or others
 *   TIDINGS_BROKER      the URL, from the environment
 *
 * The first that is given wins, in that order.
 */
#ifndef TD_TOOLS_BROKER_URL_H
#define TD_TOOLS_BROKER_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Fills out (size bytes) with the URL to use. Returns 1 when there is one,
 * 0 when none was given (no broker), -1 with why in err (never the
 * password) for one that cannot be used. */
int broker_url_resolve(char *out, size_t size, const char *arg, const char *file, char *err,
                       size_t err_size);

#endif
