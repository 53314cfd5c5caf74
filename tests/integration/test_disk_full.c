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
 * there, in an intact store. A subscription whose handler writes finds
 * the disk full too: it waits without counting attempts or failing, and
 * carries on once there is space, each event handled once, at its first
 * attempt. Opening a store on the full disk names the full disk, not "not
 * a tidings store". Registered for both commit modes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
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

static atomic_int gate_reached, gate_open;

/* Writes a document per event, with the attempt that wrote it. The first
 * call waits at a gate (on the writer thread: nothing commits meanwhile)
 * until the test has filled the disk. */
static int note_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    char key[32], body[4200];
    (void)payload;
    if (!atomic_load(&gate_open)) {
        atomic_store(&gate_reached, 1);
        while (!atomic_load(&gate_open))
            usleep(1000);
    }
    snprintf(key, sizeof key, "%lld", (long long)ev->position);
    snprintf(body, sizeof body, "{\"attempt\":%u,\"pad\":\"%0*d\"}", td_delivery_attempt(d), 4000,
             0);
    return td_txn_doc_put(td_delivery_txn(d), "handled", key, body, 0);
}

static int count_first(const char *key, const char *json, size_t len, void *payload)
{
    (void)key;
    (void)len;
    *(int *)payload += strncmp(json, "{\"attempt\":1,", 13) == 0;
    return 0;
}

static int any_dead(const td_dead_letter *e, void *payload)
{
    (void)e;
    ++*(int *)payload;
    return 0;
}

static void test_subscription_waits_for_space(void **state)
{
    (void)state;
    char url[4200], filler[4200];
    snprintf(url, sizeof url, "sqlite:%s/sub.db", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    td_store *store = tt_open(url);
    for (int i = 0; i < 40; i++)
        tt_append(store, "disk-3", "Noted", i);
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "writer";
    opts.transactional = true;
    opts.max_attempts = 2;
    atomic_store(&gate_reached, 0);
    atomic_store(&gate_open, 0);
    assert_td_ok(td_subscription_new(&sub, store, &opts, note_in_unit, NULL));
    assert_td_ok(td_subscription_start(sub));
    while (!atomic_load(&gate_reached))
        usleep(1000);
    fill(filler);
    atomic_store(&gate_open, 1);
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    /* well past max_attempts' worth of tries, and a lease renewal */
    assert_td_code(td_subscription_wait_until(sub, head, 3500), TD_EBUSY);
    assert_td_ok(td_subscription_check(sub)); /* waiting, not failed */
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_FULL);
    assert_int_equal(unlink(filler), 0);
    assert_td_ok(td_store_head(store, &head));
    assert_td_ok(td_subscription_wait_until(sub, head, 30000));
    assert_td_ok(td_subscription_check(sub));
    int first = 0;
    assert_td_ok(td_store_doc_list(store, "handled", NULL, 0, count_first, &first));
    assert_int_equal(first, 40); /* each once, at its first attempt */
    int dead = 0;
    assert_td_ok(td_dlq_list(store, NULL, any_dead, &dead));
    assert_int_equal(dead, 0);
    td_subscription_free(sub);
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
        cmocka_unit_test(test_subscription_waits_for_space),
        cmocka_unit_test(test_open_on_full_disk_names_it),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (umount(dir) != 0)
        rc = 1;
    tt_rmdir(dir);
    return rc;
}
