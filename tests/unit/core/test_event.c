/*
 * test_event.c: names, the envelope's JSON form both ways, and owned copies.
 */
#include <string.h>

#include "support.h"

static void test_stream_names(void **state)
{
    (void)state;
    char cat[TD_CATEGORY_MAX + 1];
    const char *good[] = {"order-1", "order-0190c3a0-1234-7abc-8def-0123456789ab", "a-b",
                          "Order_2-x.y:z", "inventory-sku_1"};
    const char *bad[] = {"",         "order",     "-1",      "order-",    "1order-1",
                         "or der-1", "order-a b", "order-ü", "order-1\n", "_order-1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_td_ok(td_stream_check(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_td_code(td_stream_check(bad[i]), TD_EINVAL);
    assert_td_code(td_stream_check(NULL), TD_EINVAL);
    assert_td_ok(td_stream_category(cat, "order-0190c3a0-1234"));
    assert_string_equal(cat, "order");

    char longest[TD_STREAM_MAX + 2];
    memset(longest, 'a', TD_CATEGORY_MAX);
    longest[TD_CATEGORY_MAX] = '-';
    memset(longest + TD_CATEGORY_MAX + 1, 'b', TD_REF_ID_MAX);
    longest[TD_STREAM_MAX] = '\0';
    assert_td_ok(td_stream_check(longest));
    longest[TD_STREAM_MAX] = 'b';
    longest[TD_STREAM_MAX + 1] = '\0';
    assert_td_code(td_stream_check(longest), TD_EINVAL);
}

static void test_other_names(void **state)
{
    (void)state;
    assert_td_ok(td_type_check("OrderCreated"));
    assert_td_ok(td_type_check("orders.v2.OrderCreated"));
    assert_td_code(td_type_check("Order Created"), TD_EINVAL);
    assert_td_code(td_type_check("1Order"), TD_EINVAL);
    assert_td_code(td_type_check(""), TD_EINVAL);
    assert_td_ok(td_source_check("orders"));
    assert_td_code(td_source_check("orders/x"), TD_EINVAL);
    assert_td_ok(td_ref_id_check("req-42"));
    assert_td_code(td_ref_id_check("has space"), TD_EINVAL);
    assert_td_ok(td_traceparent_check("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_td_code(td_traceparent_check("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                   TD_EINVAL);
    assert_td_code(td_traceparent_check("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
                   TD_EINVAL);
    assert_td_code(td_traceparent_check("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
                   TD_EINVAL);
}

static td_event sample(void)
{
    td_event ev;
    td_event_init(&ev);
    assert_td_ok(td_uuid_parse(&ev.id, "0190c3a0-1234-7abc-8def-0123456789ab"));
    ev.position = 42;
    ev.stream = "order-7";
    ev.version = 3;
    ev.type = "OrderCreated";
    ev.schema_version = 2;
    ev.kind = TD_KIND_INTEGRATION;
    ev.source = "orders";
    ev.occurred_at = INT64_C(1795698000123456);
    ev.correlation_id = "corr-1";
    ev.causation_id = NULL;
    strcpy(ev.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ev.metadata = "{\"user\":\"u1\"}";
    ev.data = "{\"total\":1999,\"items\":[1,2]}";
    return ev;
}

static void test_json_round_trip(void **state)
{
    (void)state;
    td_event ev = sample();
    char *text = NULL;
    size_t len = 0;
    td_event *back = NULL;
    json_error_t err;

    assert_td_ok(td_event_to_text(&text, &len, &ev));
    assert_string_equal(
        text, "{\"position\":42,\"id\":\"0190c3a0-1234-7abc-8def-0123456789ab\","
              "\"stream\":\"order-7\",\"version\":3,\"type\":\"OrderCreated\","
              "\"schema_version\":2,\"kind\":\"integration\",\"source\":\"orders\","
              "\"occurred_at\":\"2026-11-26T13:00:00.123456Z\","
              "\"correlation_id\":\"corr-1\",\"causation_id\":null,"
              "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
              "\"metadata\":{\"user\":\"u1\"},\"data\":{\"total\":1999,\"items\":[1,2]}}");
    json_t *json = json_loadb(text, len, 0, &err);
    assert_non_null(json);
    assert_td_ok(td_event_from_json(&back, json));
    json_decref(json);
    assert_int_equal(back->position, 42);
    assert_int_equal(td_uuid_compare(&back->id, &ev.id), 0);
    assert_string_equal(back->stream, "order-7");
    assert_int_equal(back->version, 3);
    assert_int_equal(back->schema_version, 2);
    assert_int_equal(back->kind, TD_KIND_INTEGRATION);
    assert_string_equal(back->source, "orders");
    assert_int_equal(back->occurred_at, ev.occurred_at);
    assert_string_equal(back->correlation_id, "corr-1");
    assert_null(back->causation_id);
    assert_string_equal(back->traceparent, ev.traceparent);
    assert_string_equal(back->metadata, "{\"user\":\"u1\"}");
    assert_string_equal(back->data, "{\"total\":1999,\"items\":[1,2]}");
    td_event_free(back);
    td_free(text);
}

static void expect_rejected(const char *text, const char *fragment)
{
    json_error_t err;
    td_event *ev = NULL;
    json_t *json = json_loads(text, JSON_ALLOW_NUL, &err);
    assert_non_null(json);
    assert_td_code(td_event_from_json(&ev, json), TD_EINVAL);
    assert_null(ev);
    if (strstr(td_error_last(), fragment) == NULL)
        fail_msg("message '%s' lacks '%s'", td_error_last(), fragment);
    json_decref(json);
}

static void test_json_rejects(void **state)
{
    (void)state;
    expect_rejected("[]", "JSON object");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\"}", "data");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":[]}", "data");
    expect_rejected("{\"stream\":\"order\",\"type\":\"T\",\"data\":{}}", "stream");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"extra\":1}", "extra");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"version\":\"1\"}",
                    "version");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"position\":-1}",
                    "position");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"id\":\"x\"}", "UUID");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"kind\":\"other\"}",
                    "kind");
    expect_rejected("{\"stream\":\"order-1\",\"type\":\"T\",\"data\":{},\"occurred_at\":\"now\"}",
                    "timestamp");
    expect_rejected("{\"stream\":\"order-\\u0000x\",\"type\":\"T\",\"data\":{}}", "stream");
}

static void test_dup_is_independent(void **state)
{
    (void)state;
    char data[] = "{\"a\":1}";
    td_event ev = sample();
    td_event *copy = NULL;
    ev.data = data;
    ev.data_len = 0;
    assert_td_ok(td_event_dup(&copy, &ev));
    data[5] = '2';
    assert_string_equal(copy->data, "{\"a\":1}");
    assert_int_equal(copy->data_len, 7);
    assert_string_equal(copy->stream, "order-7");
    assert_ptr_not_equal(copy->stream, ev.stream);
    td_event_free(copy);
    td_event_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_names),       cmocka_unit_test(test_other_names),
        cmocka_unit_test(test_json_round_trip),    cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_dup_is_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
