/*
 * test_disk_full.c: a full disk is recoverable.
 *
 * The store lives on a small tmpfs of its own (mounted here; the test is
 * skipped, exit 77, where mounting is not allowed), and a file fills what
 * is left of it: a real full disk, nothing mocked. Appends then fail with
 * TD_ENOSPC and write nothing, td_store_health says TD_STORE_FULL and why,
 * reads of what was acknowledged go on, and later appends are tried again
 * (no fail-stop). Once the file is removed, appends succeed again on the
 * same handle, the health is back to ok, and every acknowledged event is
 * there, in an intact store. Opening a store on the full disk names the
 * full disk, not "not a tidings store". Registered for both commit modes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define TMPFS_SIZE "3m"
#define MAX_ACKED  4000

static char *mnt;

/* Fills the file system holding dir to the last byte; returns the fd of the
 * filler, which the caller removes to give the space back. */
static void fill(const char *path)
{
    static char block[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(block, 'x', sizeof block);
    for (size_t size = sizeof block; size >= 1; size /= 2)
        while (write(fd, block, size) == (ssize_t)size)
            ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

static int64_t positions[MAX_ACKED];
static int acked;

/* Appends one event of about 4 KiB; records it when acknowledged. */
static int append_big(td_store *store, int n)
{
    char data[4200];
    int len = snprintf(data, sizeof data, "{\"n\":%d,\"pad\":\"", n);
    memset(data + len, 'p', 4000);
    snprintf(data + len + 4000, sizeof data - (size_t)len - 4000, "\"}");
    td_event ev = tt_event("Filled", data);
    int rc = td_store_append(store, "disk-1", TD_EXPECT_ANY, &ev, 1);
    if (rc == 0 && acked < MAX_ACKED)
        positions[acked++] = ev.position;
    return rc;
}

static int collect(const td_event *ev, void *payload)
{
    int *i = payload;
    if (*i >= acked || ev->position != positions[*i])
        return TD_ECORRUPT;
    ++*i;
    return 0;
}

/* Every acknowledged event, in order, and nothing else. */
static void check_acknowledged(td_store *store)
{
    td_read_query all = TD_READ_QUERY_INIT;
    int seen = 0;
    assert_td_ok(td_store_read(store, &all, collect, &seen));
    assert_int_equal(seen, acked);
}

static int put_doc(td_txn *txn, void *payload)
{
    (void)payload;
    return td_txn_doc_put(txn, "notes", "before", "{\"kept\":true}", 0);
}

static void test_full_disk_is_recoverable(void **state)
{
    (void)state;
    char url[4200], filler[4200];
    snprintf(url, sizeof url, "sqlite:%s/full.db", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    acked = 0;
    td_store *store = tt_open(url);
    for (int i = 0; i < 5; i++)
        assert_td_ok(append_big(store, i));
    assert_td_ok(td_transact(store, put_doc, NULL));

    fill(filler);
    int rc = 0, n = 5;
    while (rc == 0 && n < MAX_ACKED)
        rc = append_big(store, n++);
    print_message("%d appends acknowledged before the disk was full\n", acked);
    assert_td_code(rc, TD_ENOSPC);
    assert_non_null(strstr(td_error_last(), "full"));
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_FULL);
    assert_int_equal(h.code, TD_ENOSPC);
    assert_true(h.since > 0);
    assert_non_null(strstr(h.message, "full"));

    /* no fail-stop: later writes are tried, and fail the same way */
    for (int i = 0; i < 3; i++)
        assert_td_code(append_big(store, n++), TD_ENOSPC);
    /* reads go on: the acknowledged events, the document */
    check_acknowledged(store);
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, positions[acked - 1]); /* the failed ones left no gap */
    char *doc = NULL;
    assert_td_ok(td_store_doc_get(store, "notes", "before", &doc, NULL));
    td_free(doc);

    assert_int_equal(unlink(filler), 0); /* space returns */
    assert_td_ok(append_big(store, n++));
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_OK);
    for (int i = 0; i < 20; i++)
        assert_td_ok(append_big(store, n++));
    check_acknowledged(store);
    td_store_free(store);

    store = tt_open(url); /* reopened: intact, everything acknowledged there */
    assert_td_ok(td_store_check(store));
    check_acknowledged(store);
    td_store_free(store);
}

/* Opening on a full disk fails and says why. */
static void test_open_on_full_disk_names_it(void **state)
{
    (void)state;
    char url[4200], filler[4200], path[4200];
    snprintf(url, sizeof url, "sqlite:%s/closed.db", mnt);
    snprintf(path, sizeof path, "%s/closed.db", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    td_store *store = tt_open(url);
    tt_append(store, "disk-2", "Kept", 1);
    td_store_free(store); /* the last connection: -wal and -shm go */
    fill(filler);
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    int rc = td_store_open(&store, url, &opts);
    if (rc == 0) { /* SQLite found room for its -shm: then a write names it */
        td_event ev = tt_event("More", "{}");
        assert_td_code(td_store_append(store, "disk-2", TD_EXPECT_ANY, &ev, 1), TD_ENOSPC);
        td_store_free(store);
    } else {
        print_message("open on a full disk: %s\n", td_error_last());
        assert_int_equal(rc, TD_ENOSPC);
        assert_non_null(strstr(td_error_last(), "full"));
        assert_null(strstr(td_error_last(), "not a tidings store"));
    }
    assert_int_equal(unlink(filler), 0);
    store = tt_open(url);
    assert_td_ok(td_store_check(store));
    td_store_free(store);
}

int main(void)
{
    char *dir = tt_tmpdir();
    if (mount("tidings-test", dir, "tmpfs", 0, "size=" TMPFS_SIZE) != 0) {
        printf("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
        tt_rmdir(dir);
        return 77;
    }
    mnt = dir;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_is_recoverable),
        cmocka_unit_test(test_open_on_full_disk_names_it),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (umount(dir) != 0)
        rc = 1;
    tt_rmdir(dir);
    return rc;
}
