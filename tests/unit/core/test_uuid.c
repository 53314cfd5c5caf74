/*
 * test_uuid.c: UUIDv7 generation, ordering, formatting and parsing.
 */
#include <pthread.h>
#include <string.h>

#include "support.h"

static void test_layout(void **state)
{
    (void)state;
    td_uuid id;
    char text[TD_UUID_STR_LEN + 1];
    td_time before = td_time_now() / 1000;
    assert_td_ok(td_uuid_v7(&id));
    td_time after = td_time_now() / 1000;
    assert_int_equal(id.bytes[6] >> 4, 7); /* version 7 */
    assert_int_equal(id.bytes[8] >> 6, 2); /* variant 10 */
    assert_in_range(td_uuid_v7_millis(&id), before, after);
    td_uuid_format(text, &id);
    assert_int_equal(strlen(text), 36);
    assert_int_equal(text[14], '7');
}

static void test_round_trip(void **state)
{
    (void)state;
    td_uuid a, b;
    char text[TD_UUID_STR_LEN + 1];
    assert_td_ok(td_uuid_parse(&a, "0190C3A0-1234-7abc-8def-0123456789AB"));
    td_uuid_format(text, &a);
    assert_string_equal(text, "0190c3a0-1234-7abc-8def-0123456789ab");
    assert_td_ok(td_uuid_parse(&b, text));
    assert_int_equal(td_uuid_compare(&a, &b), 0);
    assert_false(td_uuid_is_nil(&a));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    td_uuid id;
    const char *bad[] = {"",
                         "0190c3a0-1234-7abc-8def-0123456789a",
                         "0190c3a0-1234-7abc-8def-0123456789abc",
                         "0190c3a0x1234-7abc-8def-0123456789ab",
                         "0190c3a0-1234-7abc-8def-0123456789ag",
                         "{0190c3a0-1234-7abc-8def-0123456789ab}",
                         "0190c3a012347abc8def0123456789ab"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_td_code(td_uuid_parse(&id, bad[i]), TD_EINVAL);
    assert_td_code(td_uuid_parse(&id, NULL), TD_EINVAL);
}

static void test_monotonic_in_one_thread(void **state)
{
    (void)state;
    td_uuid prev, next;
    assert_td_ok(td_uuid_v7(&prev));
    for (int i = 0; i < 200000; i++) {
        assert_td_ok(td_uuid_v7(&next));
        if (td_uuid_compare(&prev, &next) >= 0)
            fail_msg("id %d is not above its predecessor", i);
        prev = next;
    }
}

#define THREADS    4
#define PER_THREAD 20000

static void *generate(void *arg)
{
    td_uuid *ids = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (td_uuid_v7(&ids[i]) < 0)
            return (void *)1;
    return NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return td_uuid_compare(a, b);
}

static void test_unique_and_ordered_across_threads(void **state)
{
    (void)state;
    static td_uuid ids[THREADS * PER_THREAD];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, generate, ids + t * PER_THREAD), 0);
    for (int t = 0; t < THREADS; t++) {
        void *rc;
        pthread_join(threads[t], &rc);
        assert_null(rc);
    }
    for (int t = 0; t < THREADS; t++)
        for (int i = 1; i < PER_THREAD; i++)
            assert_true(td_uuid_compare(&ids[t * PER_THREAD + i - 1], &ids[t * PER_THREAD + i]) <
                        0);
    qsort(ids, THREADS * PER_THREAD, sizeof ids[0], compare_ids);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        assert_int_not_equal(td_uuid_compare(&ids[i - 1], &ids[i]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_monotonic_in_one_thread),
        cmocka_unit_test(test_unique_and_ordered_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
