/*
 * test_open_check.c: corrupt stores are refused at open, and corruption met
 * while running stops writes.
 *
 * Each case damages a copy of a closed store the way a disk or a careless
 * hand would: bytes of one page overwritten (found by a marker in an
 * event's data), the file cut short, an event's bytes changed in place. The
 * bounded check at open refuses every damage it covers with TD_ECORRUPT and
 * a message naming it, leaving the file as it was; skip_check opens it
 * anyway; td_store_check finds what the bounded check leaves out (a page in
 * the middle), and a read that meets it stops writes (td_store_health).
 * An empty file is refused as not a store; a missing one is made, once,
 * even by several processes at the same moment.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "support.h"

#define EVENTS    600
#define PAGE_SIZE 4096

static const char *self;
static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = tt_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_rmdir(dir);
    return 0;
}

static void path_of(char *out, const char *name)
{
    snprintf(out, 4200, "%s/%s", dir, name);
}

static void url_of(char *out, const char *name)
{
    snprintf(out, 4300, "sqlite:%s/%s", dir, name);
}

/* A closed store of EVENTS events of about 300 bytes, so the events span
 * many pages; event n's data holds "marker-n-". */
static void make_store(const char *name)
{
    char url[4300], data[512];
    url_of(url, name);
    td_store *store = tt_open(url);
    for (int n = 1; n <= EVENTS; n++) {
        snprintf(data, sizeof data, "{\"text\":\"marker-%d-%0280d\"}", n, n);
        td_event ev = tt_event("Noted", data);
        assert_td_ok(td_store_append(store, "note-1", TD_EXPECT_ANY, &ev, 1));
    }
    td_store_free(store); /* the last connection: the log is checkpointed into the file */
}

static void copy_file(const char *from, const char *to)
{
    char a[4200], b[4200], buf[65536];
    path_of(a, from);
    path_of(b, to);
    FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
    assert_non_null(in);
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static char *slurp(const char *name, size_t *len)
{
    char path[4200];
    path_of(path, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    *len = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

/* The offset in the file of event n's marker. */
static long marker_offset(const char *name, int n)
{
    size_t len;
    char needle[32];
    char *buf = slurp(name, &len);
    snprintf(needle, sizeof needle, "marker-%d-", n);
    long at = -1;
    for (size_t i = 0; at < 0 && i + strlen(needle) <= len; i++)
        if (memcmp(buf + i, needle, strlen(needle)) == 0)
            at = (long)i;
    free(buf);
    assert_true(at >= 0);
    return at;
}

static void overwrite(const char *name, long offset, const char *bytes, size_t n)
{
    char path[4200];
    path_of(path, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, offset), (ssize_t)n);
    close(fd);
}

/* Overwrites the b-tree header of the page holding event n's marker. */
static void smash_page_of(const char *name, int n)
{
    static const char junk[12] = {'\x7f', '\x7f', '\x7f', '\x7f', '\x7f', '\x7f',
                                  '\x7f', '\x7f', '\x7f', '\x7f', '\x7f', '\x7f'};
    long page = marker_offset(name, n) / PAGE_SIZE;
    assert_true(page > 0);
    overwrite(name, page * PAGE_SIZE, junk, sizeof junk);
}

static time_t mtime_of(const char *name, off_t *size)
{
    char path[4200];
    struct stat st;
    path_of(path, name);
    assert_int_equal(stat(path, &st), 0);
    *size = st.st_size;
    return st.st_mtime;
}

/* Opening (for writing, and read-only) must fail with TD_ECORRUPT, say
 * `why`, and leave the file as it was. */
static void expect_refused(const char *name, const char *why)
{
    char url[4300];
    off_t size_before, size_after;
    url_of(url, name);
    size_t len_before;
    char *before = slurp(name, &len_before);
    (void)mtime_of(name, &size_before);
    for (int read_only = 0; read_only < 2; read_only++) {
        td_store *store = NULL;
        td_store_options opts = TD_STORE_OPTIONS_INIT;
        opts.read_only = read_only;
        assert_td_code(td_store_open(&store, url, &opts), TD_ECORRUPT);
        print_message("%s: %s\n", name, td_error_last());
        if (strstr(td_error_last(), why) == NULL)
            fail_msg("'%s' does not say '%s'", td_error_last(), why);
        assert_null(store);
    }
    (void)mtime_of(name, &size_after);
    assert_int_equal(size_after, size_before);
    size_t len_after;
    char *after = slurp(name, &len_after);
    assert_int_equal(len_after, len_before);
    assert_memory_equal(after, before, len_before); /* nothing written */
    free(before);
    free(after);
}

/* With skip_check it opens, failed (writes refused), and what lies before
 * the damage can be read. */
static void expect_opens_with_skip_check(const char *name)
{
    char url[4300];
    url_of(url, name);
    td_store *store = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.skip_check = true;
    assert_td_ok(td_store_open(&store, url, &opts));
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_FAILED);
    assert_int_equal(h.code, TD_ECORRUPT);
    td_read_query first = TD_READ_QUERY_INIT;
    first.limit = 10;
    assert_int_equal(tt_count(store, &first), 10);
    td_event ev = tt_event("More", "{}");
    assert_td_code(td_store_append(store, "note-1", TD_EXPECT_ANY, &ev, 1), TD_ECLOSED);
    td_store_free(store);
}

static void test_empty_file_is_not_a_store(void **state)
{
    (void)state;
    char path[4200];
    path_of(path, "empty.db");
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    expect_refused("empty.db", "empty file, not a tidings store");
}

static void test_damaged_header_is_refused(void **state)
{
    (void)state;
    make_store("good.db");
    copy_file("good.db", "header.db");
    overwrite("header.db", 0, "SQLite format 9", 15);
    expect_refused("header.db", "not a tidings store");
}

static void test_damaged_schema_is_refused(void **state)
{
    (void)state;
    make_store("good.db");
    copy_file("good.db", "schema.db");
    size_t len;
    char *buf = slurp("schema.db", &len);
    long at = -1;
    for (long i = 0; at < 0 && i + 18 <= PAGE_SIZE; i++) /* the schema lives on page 1 */
        if (memcmp(buf + i, "events_by_category", 18) == 0)
            at = i;
    assert_true(at > 0);
    overwrite("schema.db", at, "events_by_kategory", 18);
    free(buf);
    expect_refused("schema.db", "schema");
}

static void test_damaged_last_page_is_refused(void **state)
{
    (void)state;
    make_store("good.db");
    copy_file("good.db", "tail.db");
    smash_page_of("tail.db", EVENTS);
    expect_refused("tail.db", "malformed");
    expect_opens_with_skip_check("tail.db");
}

static void test_changed_recent_event_is_refused(void **state)
{
    (void)state;
    make_store("good.db");
    copy_file("good.db", "edited.db");
    long at = marker_offset("edited.db", EVENTS - 3);
    overwrite("edited.db", at, "MARKER", 6); /* same length: SQLite sees nothing wrong */
    char why[64];
    snprintf(why, sizeof why, "audit chain breaks at position %d", EVENTS - 3);
    expect_refused("edited.db", why);
}

static void test_file_cut_short_is_refused(void **state)
{
    (void)state;
    char path[4200];
    make_store("good.db");
    copy_file("good.db", "short.db");
    path_of(path, "short.db");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 4 * PAGE_SIZE), 0);
    expect_refused("short.db", "malformed"); /* SQLite's own header check */
}

static int count_events(const td_event *ev, void *payload)
{
    (void)ev;
    ++*(int *)payload;
    return 0;
}

/* A damaged page in the middle passes the bounded check; the full check
 * finds it, and a read that meets it stops writes at once. */
static void test_corruption_met_while_running_stops_writes(void **state)
{
    (void)state;
    char url[4300];
    make_store("good.db");
    copy_file("good.db", "middle.db");
    smash_page_of("middle.db", 40);
    url_of(url, "middle.db");
    td_store *store = tt_open(url);
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_OK);
    assert_td_code(td_store_check(store), TD_ECORRUPT);
    tt_append(store, "note-2", "Before", 1); /* writes still go: nothing met it yet */
    td_read_query all = TD_READ_QUERY_INIT;
    int seen = 0;
    assert_td_code(td_store_read(store, &all, count_events, &seen), TD_ECORRUPT);
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_FAILED);
    assert_int_equal(h.code, TD_ECORRUPT);
    assert_non_null(strstr(h.message, "malformed"));
    td_event ev = tt_event("After", "{}");
    assert_td_code(td_store_append(store, "note-2", TD_EXPECT_ANY, &ev, 1), TD_ECLOSED);
    assert_non_null(strstr(td_error_last(), "corrupt"));
    td_store_free(store);
}

/* Several processes making the same new store at once: one store, its
 * schema applied once, and every process uses it. */
static int child_main(const char *url)
{
    td_store *store = NULL;
    if (td_store_open(&store, url, NULL) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        return 2;
    }
    td_event ev = tt_event("Hello", "{}");
    int rc = td_store_append(store, "hello-1", TD_EXPECT_ANY, &ev, 1) < 0 ? 3 : 0;
    td_store_free(store);
    return rc;
}

static void test_concurrent_creation_makes_one_store(void **state)
{
    (void)state;
    char url[4300];
    url_of(url, "new.db");
    const char *args[] = {url, NULL};
    pid_t pids[6];
    for (int i = 0; i < 6; i++)
        pids[i] = tt_spawn(self, args, NULL);
    for (int i = 0; i < 6; i++)
        assert_int_equal(tt_wait(pids[i]), 0);
    td_store *store = tt_open(url);
    td_read_query all = TD_READ_QUERY_INIT;
    assert_int_equal(tt_count(store, &all), 6);
    assert_td_ok(td_store_check(store));
    td_store_free(store);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    self = argv[0];
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_file_is_not_a_store),
        T(test_damaged_header_is_refused),
        T(test_damaged_schema_is_refused),
        T(test_damaged_last_page_is_refused),
        T(test_changed_recent_event_is_refused),
        T(test_file_cut_short_is_refused),
        T(test_corruption_met_while_running_stops_writes),
        T(test_concurrent_creation_makes_one_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
