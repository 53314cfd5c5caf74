/*
 * test_timestamp.c: RFC 3339 timestamps with microseconds, both ways.
 */
#include "support.h"

static void test_format_known_points(void **state)
{
    (void)state;
    char buf[TD_TIME_STR_LEN + 1];
    assert_td_ok(td_time_format(buf, 0));
    assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
    assert_td_ok(td_time_format(buf, INT64_C(1795698000123456)));
    assert_string_equal(buf, "2026-11-26T13:00:00.123456Z");
    assert_td_ok(td_time_format(buf, -1));
    assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
    assert_td_ok(td_time_format(buf, INT64_C(951782400000000))); /* leap day 2000 */
    assert_string_equal(buf, "2000-02-29T00:00:00.000000Z");
    assert_td_code(td_time_format(buf, INT64_MAX / 2), TD_EINVAL);
}

static void test_parse_forms(void **state)
{
    (void)state;
    td_time t;
    assert_td_ok(td_time_parse(&t, "2026-11-26T13:00:00.123456Z"));
    assert_int_equal(t, INT64_C(1795698000123456));
    assert_td_ok(td_time_parse(&t, "2026-11-26T13:00:00Z"));
    assert_int_equal(t, INT64_C(1795698000000000));
    assert_td_ok(td_time_parse(&t, "2026-11-26T13:00:00.5Z"));
    assert_int_equal(t, INT64_C(1795698000500000));
    assert_td_ok(td_time_parse(&t, "2026-11-26T14:30:00+01:30"));
    assert_int_equal(t, INT64_C(1795698000000000));
    assert_td_ok(td_time_parse(&t, "2026-11-26"));
    assert_int_equal(t, INT64_C(1795651200000000));
    assert_td_ok(td_time_parse(&t, "2026-11-26T13:00:00.1234567Z")); /* extra digits cut */
    assert_int_equal(t, INT64_C(1795698000123456));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    td_time t = 42;
    const char *bad[] = {"",
                         "2026",
                         "2026-13-01",
                         "2026-02-30",
                         "2026-11-26T25:00:00Z",
                         "2026-11-26T13:00Z",
                         "2026-11-26T13:00:00",
                         "2026-11-26T13:00:00.Z",
                         "2026-11-26T13:00:00Zjunk",
                         "26-11-2026",
                         "2026-11-26T13:00:00+0100"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_td_code(td_time_parse(&t, bad[i]), TD_EINVAL);
    assert_int_equal(t, 42); /* untouched on error */
}

static void test_round_trip(void **state)
{
    (void)state;
    char buf[TD_TIME_STR_LEN + 1];
    td_time now = td_time_now(), back;
    for (td_time t = now - INT64_C(86400000000) * 800; t < now; t += INT64_C(3600000000) * 7 + 13) {
        assert_td_ok(td_time_format(buf, t));
        assert_td_ok(td_time_parse(&back, buf));
        assert_int_equal(back, t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_points),
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
