/*
 * test_read_fields.c: projected reads (td_store_read_fields). The values
 * picked equal what parsing the whole data gives, for every JSON type, with
 * absent and null fields left out; the query's filters and an early stop
 * hold; bad field lists are refused before anything is read; and an event
 * older than its schema is upcast before it is picked, or refused when it
 * cannot be read.
 */
#include <string.h>

#include "support.h"
#include "tidings/upcast.h"

static td_store *store;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("read_fields");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

typedef struct picked {
    json_t *values; /* an array of each event's values */
    json_t *whole;  /* an array of each event's whole data, parsed */
    int stop_after; /* 0: never */
} picked;

static int keep(const td_event *ev, json_t *values, void *payload)
{
    picked *p = payload;
    json_t *whole = NULL;
    assert_td_ok(td_event_data(&whole, ev));
    assert_int_equal(json_array_append(p->values, values), 0);
    assert_int_equal(json_array_append_new(p->whole, whole), 0);
    return p->stop_after && (int)json_array_size(p->values) == p->stop_after;
}

static picked read_picked(const td_read_query *q, const char *const *fields, int stop_after)
{
    picked p = {json_array(), json_array(), stop_after};
    assert_td_ok(td_store_read_fields(store, q, fields, keep, &p));
    return p;
}

static void picked_free(picked *p)
{
    json_decref(p->values);
    json_decref(p->whole);
}

static void append(const char *stream, const char *type, int schema, const char *data)
{
    td_event ev = tt_event(type, data);
    ev.schema_version = schema;
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
}

static void test_values_equal_the_parsed_data(void **state)
{
    (void)state;
    static const char *const fields[] = {"s", "n", "r", "b", "arr", "obj", "nul", "gone", NULL};
    append("thing-1", "Made", 1,
           "{\"s\":\"caf\\u00e9 \\\"q\\\" \\n\xe2\x82\xac\",\"n\":-9007199254740993,\"r\":1.5e3,"
           "\"b\":false,\"arr\":[1,{\"x\":[]},\"y\"],\"obj\":{\"k\":{\"deep\":true}},\"nul\":null,"
           "\"extra\":\"not asked for\"}");
    append("thing-2", "Made", 1, "{\"s\":\"\",\"other\":1}");
    td_read_query q = TD_READ_QUERY_INIT;
    picked p = read_picked(&q, fields, 0);
    assert_int_equal(json_array_size(p.values), 2);
    json_t *first = json_array_get(p.values, 0), *whole = json_array_get(p.whole, 0);
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(first, key, value)
    { /* in the order asked, each equal to the parsed data's */
        assert_string_equal(key, fields[i++]);
        assert_true(json_equal(value, json_object_get(whole, key)));
    }
    assert_int_equal(i, 6); /* nul, gone and extra are not there */
    assert_int_equal(json_integer_value(json_object_get(first, "n")), -9007199254740993LL);
    json_t *second = json_array_get(p.values, 1);
    assert_int_equal(json_object_size(second), 1);
    assert_string_equal(json_string_value(json_object_get(second, "s")), "");
    picked_free(&p);
}

static void test_one_field_and_the_query_filters(void **state)
{
    (void)state;
    static const char *const one[] = {"n", NULL};
    for (int i = 1; i <= 6; i++) {
        char data[128];
        snprintf(data, sizeof data, "{\"n\":%d,\"pad\":\"%0*d\"}", i, i * 10, 0);
        append(i % 2 ? "odd-1" : "even-1", i % 2 ? "Odd" : "Even", 1, data);
    }
    td_read_query q = TD_READ_QUERY_INIT;
    q.category = "odd";
    picked p = read_picked(&q, one, 0);
    assert_int_equal(json_array_size(p.values), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(p.values, i), "n")),
                         (json_int_t)(2 * i + 1));
    picked_free(&p);

    q = (td_read_query)TD_READ_QUERY_INIT;
    q.type = "Even";
    q.after_position = 2;
    q.limit = 1;
    p = read_picked(&q, one, 0);
    assert_int_equal(json_array_size(p.values), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(p.values, 0), "n")), 4);
    picked_free(&p);

    q = (td_read_query)TD_READ_QUERY_INIT;
    p = read_picked(&q, one, 2); /* a positive return stops the read */
    assert_int_equal(json_array_size(p.values), 2);
    picked_free(&p);
}

static int not_called(const td_event *ev, json_t *values, void *payload)
{
    (void)ev;
    (void)values;
    (void)payload;
    fail_msg("a refused read must not call back");
    return 0;
}

static void test_bad_field_lists_are_refused(void **state)
{
    (void)state;
    append("thing-1", "Made", 1, "{\"a\":1}");
    td_read_query q = TD_READ_QUERY_INIT;
    static const char *const empty[] = {NULL};
    static const char *const dotted[] = {"a.b", NULL};
    static const char *const quoted[] = {"a') FROM events; --", NULL};
    static const char *const digit[] = {"1a", NULL};
    static const char *const twice[] = {"a", "b", "a", NULL};
    static const char *const blank[] = {"", NULL};
    const char *const *bad[] = {NULL, empty, dotted, quoted, digit, twice, blank};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_td_code(td_store_read_fields(store, &q, bad[i], not_called, NULL), TD_EINVAL);
    const char *many[TD_READ_FIELDS_MAX + 2] = {0};
    char names[TD_READ_FIELDS_MAX + 1][8];
    for (int i = 0; i <= TD_READ_FIELDS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        many[i] = names[i];
    }
    assert_td_code(td_store_read_fields(store, &q, many, not_called, NULL), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "at most"));
    many[TD_READ_FIELDS_MAX] = NULL; /* exactly the most */
    picked p = read_picked(&q, many, 0);
    assert_int_equal(json_array_size(p.values), 1);
    assert_int_equal(json_object_size(json_array_get(p.values, 0)), 0);
    picked_free(&p);
    q.category = "bad category!";
    static const char *const fine[] = {"a", NULL};
    assert_td_code(td_store_read_fields(store, &q, fine, not_called, NULL), TD_EINVAL);
}

/* 1 → 2: the currency arrives, "USD" where it was not said. */
static int add_currency(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return json_object_set_new(data, "currency", json_string("USD")) == 0 ? 0 : TD_ENOMEM;
}

static void test_old_events_are_upcast_before_they_are_picked(void **state)
{
    (void)state;
    static const char *const fields[] = {"total", "currency", NULL};
    td_upcasters *ups = NULL;
    assert_td_ok(td_upcasters_new(&ups));
    assert_td_ok(td_upcasters_declare(ups, "OrderCreated", 2));
    assert_td_ok(td_upcasters_add(ups, "OrderCreated", 1, add_currency, NULL));
    td_store_set_upcasters(store, ups);
    append("order-1", "OrderCreated", 1, "{\"total\":5}");
    append("order-2", "OrderCreated", 2, "{\"total\":7,\"currency\":\"EUR\"}");
    td_read_query q = TD_READ_QUERY_INIT;
    picked p = read_picked(&q, fields, 0);
    assert_int_equal(json_array_size(p.values), 2);
    json_t *old = json_array_get(p.values, 0), *now = json_array_get(p.values, 1);
    assert_string_equal(json_string_value(json_object_get(old, "currency")), "USD");
    assert_int_equal(json_integer_value(json_object_get(old, "total")), 5);
    assert_string_equal(json_string_value(json_object_get(now, "currency")), "EUR");
    picked_free(&p);

    append("order-3", "OrderCreated", 3, "{\"total\":9}"); /* newer than this program */
    p = (picked){json_array(), json_array(), 0};
    assert_td_code(td_store_read_fields(store, &q, fields, keep, &p), TD_EVERSION);
    assert_non_null(strstr(td_error_last(), "OrderCreated schema 3"));
    assert_int_equal(json_array_size(p.values), 2); /* the readable ones came first */
    picked_free(&p);
    td_store_set_upcasters(store, NULL);
    td_upcasters_free(ups);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_values_equal_the_parsed_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_field_and_the_query_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_field_lists_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_events_are_upcast_before_they_are_picked, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
