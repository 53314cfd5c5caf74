/*
 * test_fsync_failure.c: a failed fsync or write is fail-stop.
 *
 * A wrapping SQLite VFS ("faulty") forwards to the default one but can be
 * told to fail xSync or xWrite. When it does, the appends in that commit get
 * TD_EIO, every later write is refused with TD_ECLOSED (nothing is
 * acknowledged that may not be on disk), reads go on, and after reopening the
 * store works again with every acknowledged event present.
 */
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct faulty_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} faulty_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;
static atomic_int fail_sync, fail_write;

#define REAL(f) (((faulty_file *)(f))->real)

static int f_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (atomic_load(&fail_write))
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
    if (atomic_load(&fail_sync))
        return SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int f_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int f_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}
static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static const sqlite3_io_methods faulty_methods = {
    2,          f_close,       f_read,       f_write,   f_truncate, f_sync,   f_size,
    f_lock,     f_unlock,      f_check_lock, f_control, f_sector,   f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap,  NULL,      NULL,
};

static int faulty_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                       int *out_flags)
{
    (void)vfs;
    faulty_file *f = (faulty_file *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    file->pMethods = rc == SQLITE_OK && f->real->pMethods ? &faulty_methods : NULL;
    return rc;
}

static void register_faulty_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "faulty";
    faulty_vfs.szOsFile = (int)sizeof(faulty_file) + real_vfs->szOsFile;
    faulty_vfs.xOpen = faulty_open;
    assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 0), SQLITE_OK);
}

static int append_one(td_store *store, int n)
{
    char data[32];
    td_event ev;
    td_event_init(&ev);
    snprintf(data, sizeof data, "{\"n\":%d}", n);
    ev.type = "T";
    ev.data = data;
    return td_store_append(store, "order-1", TD_EXPECT_ANY, &ev, 1);
}

static void check_fail_stop(atomic_int *fault, const char *name)
{
    char *dir = tt_tmpdir();
    char url[4200], plain[4200];
    snprintf(url, sizeof url, "sqlite:file:%s/%s.db?vfs=faulty", dir, name);
    snprintf(plain, sizeof plain, "sqlite:%s/%s.db", dir, name);
    td_store *store = tt_open(url);
    assert_td_ok(append_one(store, 1));

    atomic_store(fault, 1);
    assert_td_code(append_one(store, 2), TD_EIO);
    atomic_store(fault, 0);
    /* The disk "works" again, but the store must not trust it until reopened. */
    assert_td_code(append_one(store, 3), TD_ECLOSED);
    assert_non_null(strstr(td_error_last(), "reopen"));
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head)); /* reads go on */
    assert_int_equal(head, 1);
    td_store_free(store);

    store = tt_open(plain);
    assert_td_ok(td_store_check(store));
    /* The acknowledged event is there. The failed one was never acknowledged;
     * whether its bytes reached the log before the fault is up to the disk. */
    td_read_query all = TD_READ_QUERY_INIT;
    int64_t count = tt_count(store, &all);
    assert_in_range(count, 1, 2);
    td_read_query first = TD_READ_QUERY_INIT;
    first.limit = 1;
    assert_int_equal(tt_count(store, &first), 1);
    assert_td_ok(append_one(store, 4));
    td_store_free(store);
    tt_rmdir(dir);
}

static void test_failed_fsync_is_fail_stop(void **state)
{
    (void)state;
    check_fail_stop(&fail_sync, "sync");
}

static void test_failed_write_is_fail_stop(void **state)
{
    (void)state;
    check_fail_stop(&fail_write, "write");
}

int main(void)
{
    register_faulty_vfs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_fsync_is_fail_stop),
        cmocka_unit_test(test_failed_write_is_fail_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
