/*
 * common.c (shop commands): the master key and secret files (common.h).
 */
#include "cmd/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const cmdline_option shop_cmd_store_options[] = {
    {"db", 'd', "URL", "the store (default TIDINGS_DB, else\nsqlite:DATA/tidings.db)"},
    {"data", 'D', "DIR", "the data folder: store, keys, mail (default ./data)"},
    {NULL, 0, NULL, NULL},
};

int shop_cmd_master_key(unsigned char out[TD_MASTER_KEY_BYTES], td_store *store, const char *path,
                        const char *data, bool create, const char *who, bool *created)
{
    char fallback[4200];
    bool in_use = false;
    snprintf(fallback, sizeof fallback, "%s/master.key", data ? data : "data");
    path = path ? path : fallback;
    *created = false;
    int error = td_master_key_read(out, path);
    if (error == TD_ENOTFOUND && (error = td_keyring_in_use(store, &in_use)) == 0) {
        if (in_use || !create) {
            fprintf(stderr,
                    "%s: no master key at %s%s; restore that file, or name it with "
                    "--master-key-file\n",
                    who, path, in_use ? ", and this store's personal data is sealed with one" : "");
            return TD_ENOTFOUND;
        }
        error = td_master_key_create(out, path);
        *created = error == 0;
    }
    if (error < 0)
        fprintf(stderr, "%s: %s\n", who, td_error_last());
    return error;
}

static int write_all(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            off += (size_t)n;
    }
    return 0;
}

int shop_cmd_write_secret(const char *path, const char *text, const char *who)
{
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.new", path);
    (void)unlink(temp);
    int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0)
        rc = write_all(fd, text);
    if (rc == 0)
        rc = write_all(fd, "\n");
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(temp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", who, path, strerror(-rc));
        (void)unlink(temp);
        return TD_EIO;
    }
    return 0;
}

int shop_cmd_read_line(int fd, char *out, size_t size)
{
    size_t len = 0;
    while (len + 1 < size) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n')
            break;
        out[len++] = c;
    }
    if (len > 0 && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    return (int)len;
}
