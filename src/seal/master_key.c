/*
 * master_key.c: the master key file (see tidings/seal.h).
 *
 * The key is 32 random bytes kept as 64 hexadecimal digits and a newline in
 * a file only its owner may read: like ssh with a private key, a file that
 * others may read or write is refused rather than used, because a key that
 * has been readable may have been read. A new file is written with
 * O_EXCL, so an existing key is never overwritten (that would make every
 * sealed field unreadable), and synced with its folder before the key is
 * used, so a crash cannot leave personal data sealed under a key that is
 * not on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "tidings/seal.h"

#define HEX_LEN (TD_MASTER_KEY_BYTES * 2)

static int read_all(int fd, char *buf, size_t size, size_t *len)
{
    *len = 0;
    while (*len < size) {
        ssize_t n = read(fd, buf + *len, size - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    return 0;
}

int td_master_key_read(unsigned char out[TD_MASTER_KEY_BYTES], const char *path)
{
    TD_REQUIRE(out && path);
    char text[HEX_LEN + 8];
    size_t len = 0, bin_len = 0;
    struct stat st;
    if (out == NULL || path == NULL)
        return td_error__set(TD_EINVAL, "td_master_key_read: out or path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return td_error__set(errno == ENOENT ? TD_ENOTFOUND : TD_EIO,
                             "cannot open the master key file %s: %s", path, strerror(errno));
    int error = 0, rc = fstat(fd, &st) < 0 ? -errno : read_all(fd, text, sizeof text - 1, &len);
    close(fd);
    if (rc < 0)
        error =
            td_error__set(TD_EIO, "cannot read the master key file %s: %s", path, strerror(-rc));
    else if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)
        error = td_error__set(TD_EINVAL,
                              "the master key file %s may be read or written by others "
                              "(mode 0%03o): make it 0600 (chmod 600), or replace a key that may "
                              "have been read",
                              path, (unsigned)(st.st_mode & 0777));
    else if (sodium_hex2bin(out, TD_MASTER_KEY_BYTES, text, len, "\r\n", &bin_len, NULL) != 0 ||
             bin_len != TD_MASTER_KEY_BYTES)
        error = td_error__set(TD_EINVAL, "the master key file %s must hold %d hexadecimal digits",
                              path, HEX_LEN);
    sodium_memzero(text, sizeof text);
    return error;
}

/* Syncs the folder that holds path, so a new file's name is durable. */
static int sync_folder(const char *path)
{
    char *copy = td_strdup(path);
    if (copy == NULL)
        return td_error__oom();
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int error = fd >= 0 && fsync(fd) == 0 ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    td_free(copy);
    return error < 0
               ? td_error__set(TD_EIO, "cannot sync the folder of %s: %s", path, strerror(-error))
               : 0;
}

static int write_key(int fd, const unsigned char key[TD_MASTER_KEY_BYTES])
{
    char text[HEX_LEN + 2];
    sodium_bin2hex(text, sizeof text, key, TD_MASTER_KEY_BYTES);
    text[HEX_LEN] = '\n';
    size_t off = 0;
    int rc = 0;
    while (off < HEX_LEN + 1 && rc == 0) {
        ssize_t n = write(fd, text + off, HEX_LEN + 1 - off);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    sodium_memzero(text, sizeof text);
    return rc == 0 && fsync(fd) < 0 ? -errno : rc;
}

int td_master_key_create(unsigned char out[TD_MASTER_KEY_BYTES], const char *path)
{
    if (out == NULL || path == NULL)
        return td_error__set(TD_EINVAL, "td_master_key_create: out or path is NULL");
    if (sodium_init() < 0)
        return td_error__set(TD_ERROR, "libsodium cannot start");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return td_error__set(errno == EEXIST ? TD_EEXISTS : TD_EIO,
                             "cannot create the master key file %s: %s", path, strerror(errno));
    randombytes_buf(out, TD_MASTER_KEY_BYTES);
    int rc = fchmod(fd, 0600) < 0 ? -errno : write_key(fd, out);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    int error = rc < 0 ? td_error__set(TD_EIO, "cannot write the master key file %s: %s", path,
                                       strerror(-rc))
                       : sync_folder(path);
    if (error < 0) {
        unlink(path);
        sodium_memzero(out, TD_MASTER_KEY_BYTES);
    }
    return error;
}
