/*
 * test_json_cache.c: the parsed-document cache answers only for the exact
 * text it kept an object with, moves objects instead of sharing them, and
 * survives collisions, bad text, threads and running out of memory.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json_cache.h"
#include "support.h"

static json_t *take(td_json_cache *c, const char *key, const char *text)
{
    json_error_t err;
    return td_json_cache_take(c, key, text, strlen(text), 0, &err);
}

static void keep(td_json_cache *c, const char *key, const char *text, json_t *obj)
{
    td_json_cache_keep(c, key, text, strlen(text), obj);
}

static void give_back(td_json_cache *c, const char *key, const char *text, json_t *obj)
{
    td_json_cache_give_back(c, key, text, strlen(text), obj);
}

static void assert_stats(td_json_cache *c, unsigned long long hits, unsigned long long takes)
{
    unsigned long long h = 0, t = 0;
    td_json_cache_stats(c, &h, &t);
    assert_int_equal(h, hits);
    assert_int_equal(t, takes);
}

static void test_kept_object_comes_back_for_its_text(void **state)
{
    (void)state;
    td_json_cache *c = NULL;
    assert_int_equal(td_json_cache_new(&c, 8), 0);
    json_t *first = take(c, "a", "{\"n\":1}"); /* nothing kept: parsed */
    assert_int_equal(json_integer_value(json_object_get(first, "n")), 1);
    assert_stats(c, 0, 1);
    json_object_set_new(first, "n", json_integer(2)); /* changed, and written as: */
    keep(c, "a", "{\"n\":2}", first);
    json_t *again = take(c, "a", "{\"n\":2}");
    assert_ptr_equal(again, first); /* the very object, no parse */
    assert_stats(c, 1, 2);
    /* it moved to the caller: while it is out, a take parses its own */
    json_t *other = take(c, "a", "{\"n\":2}");
    assert_ptr_not_equal(other, again);
    assert_true(json_equal(other, again));
    assert_stats(c, 1, 3);
    json_decref(other);
    /* taken and not changed: given back, and found again */
    give_back(c, "a", "{\"n\":2}", again);
    json_t *third = take(c, "a", "{\"n\":2}");
    assert_ptr_equal(third, first);
    assert_stats(c, 2, 4);
    json_decref(third);
    td_json_cache_free(c);
}

static void test_other_text_is_parsed(void **state)
{
    (void)state;
    td_json_cache *c = NULL;
    assert_int_equal(td_json_cache_new(&c, 8), 0);
    json_t *obj = json_pack("{s:i}", "n", 1);
    keep(c, "a", "{\"n\":1}", obj);
    /* the store holds other text now (a rollback, another writer): parsed */
    json_t *got = take(c, "a", "{\"n\":7}");
    assert_ptr_not_equal(got, obj);
    assert_int_equal(json_integer_value(json_object_get(got, "n")), 7);
    json_decref(got);
    /* same length, one byte different */
    keep(c, "b", "{\"n\":1}", json_pack("{s:i}", "n", 1));
    got = take(c, "b", "{\"n\":3}");
    assert_int_equal(json_integer_value(json_object_get(got, "n")), 3);
    json_decref(got);
    /* another key with the same text is not answered with a's object */
    keep(c, "a", "{}", json_pack("{s:b}", "a", 1));
    got = take(c, "c", "{}");
    assert_null(json_object_get(got, "a"));
    json_decref(got);
    assert_stats(c, 0, 3);
    td_json_cache_free(c); /* frees what it still holds (ASan's leak check) */
}

static void test_collisions_and_bad_text(void **state)
{
    (void)state;
    td_json_cache *c = NULL;
    assert_int_equal(td_json_cache_new(&c, 1), 0); /* every key shares the slot */
    keep(c, "a", "[1]", json_pack("[i]", 1));
    keep(c, "b", "[2]", json_pack("[i]", 2)); /* pushes a out */
    json_t *a = take(c, "a", "[1]");
    assert_int_equal(json_integer_value(json_array_get(a, 0)), 1);
    assert_stats(c, 0, 1);
    give_back(c, "a", "[1]", a); /* the slot moved on (b): kept as new */
    json_t *b = take(c, "b", "[2]");
    assert_int_equal(json_integer_value(json_array_get(b, 0)), 2);
    assert_stats(c, 0, 2);
    json_decref(b);
    a = take(c, "a", "[1]");
    assert_stats(c, 1, 3);
    json_decref(a);
    json_error_t err;
    assert_null(td_json_cache_take(c, "a", "{nope", 5, 0, &err));
    assert_true(strlen(err.text) > 0);
    td_json_cache_free(c);
    td_json_cache_free(NULL);
}

static void test_out_of_memory_keeps_nothing(void **state)
{
    (void)state;
    td_json_cache *c = NULL;
    td_alloc__fail_after(0);
    assert_td_code(td_json_cache_new(&c, 4), TD_ENOMEM);
    td_alloc__fail_after(-1);
    assert_int_equal(td_json_cache_new(&c, 4), 0);
    td_alloc__fail_after(1); /* the key's copy succeeds, the text's fails */
    keep(c, "a", "{}", json_object());
    td_alloc__fail_after(-1);
    json_t *got = take(c, "a", "{}");
    assert_non_null(got);
    assert_stats(c, 0, 1);
    json_decref(got);
    td_json_cache_free(c);
}

/* Threads take, change, keep and give back the same few keys at once; each
 * take must return exactly what its text says. */
typedef struct worker {
    td_json_cache *cache;
    int id;
    int wrong;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char text[64], key[8];
    for (int i = 0; i < 4000; i++) {
        int n = (i * 7 + w->id) % 5;
        snprintf(key, sizeof key, "k%d", i % 3);
        snprintf(text, sizeof text, "{\"n\":%d,\"list\":[%d,{\"x\":%d}]}", n, n, n);
        json_t *got = take(w->cache, key, text);
        json_t *inner = json_array_get(json_object_get(got, "list"), 1);
        if (json_integer_value(json_object_get(got, "n")) != n ||
            json_integer_value(json_object_get(inner, "x")) != n)
            w->wrong++;
        if (i % 3 == 0) {
            give_back(w->cache, key, text, got);
        } else { /* changed and "written" as the next value */
            int m = (n + 1) % 5;
            json_object_set_new(got, "n", json_integer(m));
            json_object_set_new(inner, "x", json_integer(m));
            json_array_set_new(json_object_get(got, "list"), 0, json_integer(m));
            snprintf(text, sizeof text, "{\"n\":%d,\"list\":[%d,{\"x\":%d}]}", m, m, m);
            keep(w->cache, key, text, got);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    td_json_cache *c = NULL;
    assert_int_equal(td_json_cache_new(&c, 2), 0);
    pthread_t threads[4];
    worker workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (worker){c, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].wrong, 0);
    }
    unsigned long long hits = 0, takes = 0;
    td_json_cache_stats(c, &hits, &takes);
    assert_int_equal(takes, 16000);
    assert_true(hits > 0);
    td_json_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_object_comes_back_for_its_text),
        cmocka_unit_test(test_other_text_is_parsed),
        cmocka_unit_test(test_collisions_and_bad_text),
        cmocka_unit_test(test_out_of_memory_keeps_nothing),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
