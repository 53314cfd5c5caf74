/*
 * support.h: what the tests share: temporary directories, a store URL for
 * the backend under test (TD_TEST_STORE, default sqlite), and assertions on
 * libtidings return codes that print the library's message.
 */
#ifndef TD_TEST_SUPPORT_H
#define TD_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tidings/tidings.h"

/* Asserts that a libtidings call returned 0, printing its message if not. */
#define assert_td_ok(expr)                                                                         \
    do {                                                                                           \
        int td_rc_ = (expr);                                                                       \
        if (td_rc_ != 0)                                                                           \
            print_error("%s returned %d (%s): %s\n", #expr, td_rc_, td_error_name(td_rc_),         \
                        td_error_last());                                                          \
        assert_int_equal(td_rc_, 0);                                                               \
    } while (0)

/* Asserts that a call failed with exactly this code. */
#define assert_td_code(expr, code)                                                                 \
    do {                                                                                           \
        int td_rc_ = (expr);                                                                       \
        if (td_rc_ != (code))                                                                      \
            print_error("%s returned %d (%s), expected %s: %s\n", #expr, td_rc_,                   \
                        td_error_name(td_rc_), td_error_name(code), td_error_last());              \
        assert_int_equal(td_rc_, (code));                                                          \
    } while (0)

/* A fresh temporary directory; removed with everything in it by tt_rmdir. */
char *tt_tmpdir(void);
void tt_rmdir(char *dir); /* frees dir */

/* The URL of a new, empty store of the backend under test inside dir.
 * Caller frees. */
char *tt_store_url(const char *dir, const char *name);

/* The backend under test: "sqlite" unless TD_TEST_STORE says otherwise
 * ("sqlite-pipelined", "postgres"). */
const char *tt_backend(void);

/* Whether the backend under test is PostgreSQL. Its stores live each in a
 * schema of their own on the server scripts/start-postgres.sh started
 * (TD_TEST_PG_STATE names its state file; TD_TEST_PG_URL overrides it). */
bool tt_postgres(void);
const char *tt_pg_server_url(void);
/* The URL of a new store in a schema of its own named after name. Caller
 * frees. */
char *tt_pg_schema_url(const char *name);

/* A fresh store in a fresh temporary folder, for one test (one at a time);
 * tt_fixture_free frees the store and removes the folder. tt_fixture_url is
 * the store's URL until then. */
td_store *tt_fixture(const char *name);
const char *tt_fixture_url(void);
const char *tt_fixture_dir(void); /* the fixture's temporary folder */
void tt_fixture_free(td_store *store);

/* Opens a store at url with default options, failing the test on error. */
td_store *tt_open(const char *url);

/* An event of this type and data, every other field unset. */
td_event tt_event(const char *type, const char *data);

/* Appends one event with data {"n": n} to stream; returns its position. */
int64_t tt_append(td_store *store, const char *stream, const char *type, int n);

/* Entries of the mbox file at path that contain every string of the
 * NULL-terminated needles; 0 if there is no file. */
int tt_mbox_count(const char *path, const char *const *needles);

/* A fixed master key for tests that seal personal data (seal.h). */
const unsigned char *tt_master_key(void);

/* Counts events matching the query. */
int64_t tt_count(td_store *store, const td_read_query *q);

#endif
