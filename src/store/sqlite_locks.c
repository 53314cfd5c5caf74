/*
 * sqlite_locks.c: locks that die with their process, for the SQLite
 * backend: each is a file beside the store (STORE-locks/NAME) on which the
 * holder keeps an flock(2). The kernel drops it when the holder's last
 * descriptor closes, which a process's death does before it is even a
 * zombie; so "is the lock free?" answers "is its holder gone?" exactly,
 * where kill(pid, 0) takes a zombie or a reused pid for alive. flock locks
 * belong to the open file, so two holders in one process exclude each
 * other as two processes do.
 *
 * The files stay: removing a lock file while another process is opening it
 * would let two holders lock two different files of one name. They are
 * empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/sqlite_int.h"

struct td_lock {
    int fd;
};

static int failed(const char *what, const char *path)
{
    int e = errno;
    return td_error__set(e == ENOSPC ? TD_ENOSPC : TD_EIO, "cannot %s %s: %s", what, path,
                         strerror(e));
}

int td_sqlite__lock(const char *target, const char *name, td_lock **out)
{
    char path[4096], file[4096 + 80];
    *out = NULL;
    if (td_sqlite__file_path(target, path, sizeof path) < 0)
        return 0; /* no file: no other process can share it */
    if (snprintf(file, sizeof file, "%s-locks", path) >= (int)sizeof file)
        return td_error__set(TD_EINVAL, "store path too long");
    if (mkdir(file, 0755) != 0 && errno != EEXIST)
        return failed("make the folder", file);
    if (snprintf(file, sizeof file, "%s-locks/%s", path, name) >= (int)sizeof file)
        return td_error__set(TD_EINVAL, "store path too long");
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return failed("open the lock file", file);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return e == EWOULDBLOCK ? td_error__set(TD_EBUSY, "a live process holds %s", file)
                                : failed("lock", file);
    }
    td_lock *lock = td_malloc(sizeof *lock);
    if (lock == NULL) {
        close(fd);
        return td_error__oom();
    }
    lock->fd = fd;
    *out = lock;
    return 0;
}

void td_sqlite__unlock(td_lock *lock)
{
    if (lock == NULL)
        return;
    close(lock->fd); /* drops the flock */
    td_free(lock);
}
