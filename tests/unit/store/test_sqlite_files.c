/*
 * test_sqlite_files.c: what only the SQLite backend has: recognising files
 * that are not tidings stores without touching them, schema versions,
 * durability settings, and the append-only triggers. Uses SQLite directly
 * to look beneath the store API.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"

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

static char *path_in(const char *name)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void sql(const char *path, const char *statements)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, statements, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", statements, err);
    sqlite3_close(db);
}

/* Opening path must fail with code and leave the file byte for byte as it was. */
static void expect_refused_untouched(const char *path, int code)
{
    size_t before_len, after_len;
    char *before = read_all(path, &before_len);
    td_store *store = NULL;
    assert_td_code(td_store_open(&store, path, NULL), code);
    assert_null(store);
    char *after = read_all(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
}

static void test_garbage_file_is_not_a_store(void **state)
{
    (void)state;
    char *path = path_in("garbage.db");
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    expect_refused_untouched(path, TD_ECORRUPT);
    assert_non_null(strstr(td_error_last(), "not a tidings store"));
    free(path);
}

static void test_other_sqlite_database_is_not_a_store(void **state)
{
    (void)state;
    char *path = path_in("other.db");
    sql(path, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    expect_refused_untouched(path, TD_ECORRUPT);
    free(path);
}

static void test_newer_schema_is_refused(void **state)
{
    (void)state;
    char *path = path_in("newer.db");
    td_store *store = tt_open(path);
    td_store_free(store);
    sql(path, "PRAGMA user_version = 99;");
    expect_refused_untouched(path, TD_EVERSION);
    assert_non_null(strstr(td_error_last(), "99"));
    free(path);
}

static void test_missing_file_without_create(void **state)
{
    (void)state;
    char *path = path_in("absent.db");
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.create = false;
    td_store *store = NULL;
    assert_td_code(td_store_open(&store, path, &opts), TD_ENOTFOUND);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    assert_td_code(td_store_open(&store, "", NULL), TD_EINVAL);
    assert_td_code(td_store_open(&store, "sqlite:", NULL), TD_EINVAL);
    free(path);
}

static int64_t pragma(sqlite3 *db, const char *sql_text)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql_text, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static void test_schema_and_durability(void **state)
{
    (void)state;
    char *path = path_in("fresh.db");
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", path);
    td_store *store = tt_open(url);
    tt_append(store, "order-1", "T", 1);
    td_store_stats stats;
    assert_td_ok(td_store_stats_get(store, &stats));
    assert_int_equal(stats.schema_version, 1);
    assert_int_equal(stats.events, 1);
    assert_true(stats.bytes > 0);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(pragma(db, "PRAGMA application_id"), 0x54444E47);
    assert_int_equal(pragma(db, "SELECT count(*) FROM schema_migrations"), 1);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);

    /* Append-only: SQL cannot change or remove an event. */
    assert_int_not_equal(sqlite3_exec(db, "UPDATE events SET data = '{}'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pragma(db, "SELECT count(*) FROM events"), 1);
    sqlite3_close(db);
    td_store_free(store);
    free(path);
}

/* A new store and the files SQLite makes beside it are the owner's alone,
 * whatever the umask. */
static void test_new_store_is_private(void **state)
{
    (void)state;
    char *path = path_in("private.db"), url[4200], side[4200];
    snprintf(url, sizeof url, "sqlite:%s", path);
    mode_t old = umask(022);
    td_store *store = tt_open(url);
    umask(old);
    tt_append(store, "order-1", "T", 1);
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        snprintf(side, sizeof side, "%s%s", path, suffixes[i]);
        assert_int_equal(stat(side, &st), 0);
        if ((st.st_mode & 0777) != 0600)
            fail_msg("%s has mode %03o, expected 600", side, (unsigned)(st.st_mode & 0777));
    }
    td_store_free(store);
    free(path);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_garbage_file_is_not_a_store), T(test_other_sqlite_database_is_not_a_store),
        T(test_newer_schema_is_refused),     T(test_missing_file_without_create),
        T(test_schema_and_durability),       T(test_new_store_is_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
