/*
 * test_alloc.c: running out of memory is an error, not a crash. Each
 * allocation of an operation is failed in turn; the operation must report
 * TD_ENOMEM (or succeed once enough allocations are allowed) and leak
 * nothing (AddressSanitizer's leak check runs at exit).
 */
#include <string.h>

#include "core/alloc.h"
#include "support.h"

static void test_dup_fails_cleanly(void **state)
{
    (void)state;
    td_event ev, *copy = NULL;
    td_event_init(&ev);
    ev.stream = "order-1";
    ev.type = "T";
    ev.data = "{}";
    td_alloc__fail_after(0);
    int rc = td_event_dup(&copy, &ev);
    td_alloc__fail_after(-1);
    assert_td_code(rc, TD_ENOMEM);
    assert_null(copy);
}

static void test_store_open_under_memory_pressure(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "oom");
    int succeeded = 0;
    for (long n = 0; n < 64 && !succeeded; n++) {
        td_store *store = NULL;
        td_alloc__fail_after(n);
        int rc = td_store_open(&store, url, NULL);
        td_alloc__fail_after(-1);
        if (rc == 0) {
            succeeded = 1;
            tt_append(store, "order-1", "T", 1);
            td_store_free(store);
        } else {
            assert_td_code(rc, TD_ENOMEM);
            assert_null(store);
        }
    }
    assert_true(succeeded);
    td_store *store = tt_open(url);
    td_read_query all = TD_READ_QUERY_INIT;
    assert_int_equal(tt_count(store, &all), 1);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup_fails_cleanly),
        cmocka_unit_test(test_store_open_under_memory_pressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
