/*
 * broker_url.c: see broker_url.h. The rule is the one DESIGN.md sets for
 * every secret: never in argv, never in a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker_url.h"

static bool has_password(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strrchr(scheme, '@') : NULL;
    return at && memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) != NULL;
}

static int from_file(char *out, size_t size, const char *file, char *err, size_t err_size)
{
    struct stat st;
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, err_size, "cannot read the broker file %s: %s", file, strerror(errno));
        return -1;
    }
    int rc = 1;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
        snprintf(err, err_size,
                 "the broker file %s is readable by others (mode %03o): make it 0600", file,
                 (unsigned)(st.st_mode & 0777));
        rc = -1;
    } else if (fgets(out, (int)size, f) == NULL) {
        snprintf(err, err_size, "the broker file %s is empty", file);
        rc = -1;
    }
    fclose(f);
    if (rc == 1)
        out[strcspn(out, "\r\n")] = '\0';
    return rc;
}

int broker_url_resolve(char *out, size_t size, const char *arg, const char *file, char *err,
                       size_t err_size)
{
    const char *env = getenv("TIDINGS_BROKER");
    out[0] = '\0';
    if (arg && has_password(arg)) {
        snprintf(err, err_size,
                 "--broker: a password on the command line is visible to every user; put "
                 "the URL in a file (--broker-file, mode 0600) or in TIDINGS_BROKER");
        return -1;
    }
    if (arg) {
        snprintf(out, size, "%s", arg);
        return 1;
    }
    if (file)
        return from_file(out, size, file, err, err_size);
    if (env && env[0]) {
        snprintf(out, size, "%s", env);
        return 1;
    }
    return 0;
}
