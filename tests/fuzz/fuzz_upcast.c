/*
 * fuzz_upcast.c: the upcast chain (td_upcast), with the shop's own
 * upcasters (shop/domain/event_versions.c) and with a made-up chain whose
 * steps the input chooses.
 *
 * Input: byte 0 picks the chain and the type, byte 1 the event's schema
 * version (-2..), byte 2 which steps of the made-up chain exist (bit v-1:
 * the step from v to v+1), the rest is the event's data. The oracle: an
 * event is upcast iff its schema is in 1..current-1, its data is a JSON
 * object and every step from its schema on exists (else TD_EVERSION, or
 * the data's own error when it is not an object); the result is at the
 * current schema, its data an object that each made-up step marked; an
 * event already current or of an undeclared type is left alone.
 */
#include <string.h>

#include "fuzz.h"
#include "shop_int.h"
#include "tidings/tidings.h"

#define MADE_UP_CURRENT 6

static td_upcasters *shop_chain, *made_up[256];

/* A made-up step: records that it ran, as "vN": true. */
static int mark(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    char key[16];
    snprintf(key, sizeof key, "v%d", (int)(intptr_t)payload);
    return json_object_set_new(data, key, json_true()) == 0 ? 0 : TD_ENOMEM;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(shop_event_versions_new(&shop_chain) == 0);
    for (int steps = 0; steps < 256; steps++) {
        FUZZ_CHECK(td_upcasters_new(&made_up[steps]) == 0);
        FUZZ_CHECK(td_upcasters_declare(made_up[steps], "Thing", MADE_UP_CURRENT) == 0);
        for (int v = 1; v < MADE_UP_CURRENT; v++)
            if (steps & (1 << (v - 1)))
                FUZZ_CHECK(
                    td_upcasters_add(made_up[steps], "Thing", v, mark, (void *)(intptr_t)v) == 0);
    }
    return 0;
}

static int data_is_object(const char *text, size_t len)
{
    json_error_t err;
    json_t *data = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    int object = json_is_object(data);
    json_decref(data);
    return object;
}

static void check_made_up(const td_event *ev, int steps, int rc, const td_event *out)
{
    int readable = ev->schema_version >= 1 && ev->schema_version <= MADE_UP_CURRENT;
    for (int v = ev->schema_version; readable && v < MADE_UP_CURRENT; v++)
        readable = (steps & (1 << (v - 1))) != 0;
    if (ev->schema_version == MADE_UP_CURRENT) {
        FUZZ_CHECK(rc == 0 && out == NULL);
        return;
    }
    if (!readable) { /* data that is not JSON may be refused as such first */
        FUZZ_CHECK(rc < 0 && out == NULL);
        FUZZ_CHECK(rc == TD_EVERSION || !data_is_object(ev->data, ev->data_len));
        return;
    }
    FUZZ_CHECK(rc == 0 || !data_is_object(ev->data, ev->data_len));
    if (rc < 0)
        return;
    json_error_t err;
    json_t *data = json_loadb(out->data, out->data_len, JSON_REJECT_DUPLICATES, &err);
    FUZZ_CHECK(json_is_object(data));
    for (int v = ev->schema_version; v < MADE_UP_CURRENT; v++) {
        char key[16];
        snprintf(key, sizeof key, "v%d", v);
        FUZZ_CHECK(json_is_true(json_object_get(data, key)));
    }
    json_decref(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const shop_types[] = {"OrderCreated", "ProcessPayment", "OrderShipped"};
    if (size < 4) /* data_len 0 would mean "up to a NUL" */
        return 0;
    td_event ev, *out = NULL;
    td_event_init(&ev);
    ev.position = 1;
    ev.stream = "order-1";
    ev.occurred_at = 1700000000000000LL;
    ev.schema_version = (int32_t)data[1] - 2;
    ev.data = (const char *)data + 3;
    ev.data_len = size - 3;
    int made = data[0] & 1, steps = data[2];
    ev.type = made ? "Thing" : shop_types[(data[0] >> 1) % 3];
    const td_upcasters *chain = made ? made_up[steps] : shop_chain;
    int32_t current = td_upcasters_current(chain, ev.type);
    int rc = td_upcast(chain, &ev, &out);
    if (made)
        check_made_up(&ev, steps, rc, out);
    else if (current == 0 || ev.schema_version == current)
        FUZZ_CHECK(rc == 0 && out == NULL);
    else if (rc == 0)
        FUZZ_CHECK(out && out->schema_version == current &&
                   data_is_object(out->data, out->data_len));
    else
        FUZZ_CHECK(out == NULL && (ev.schema_version < 1 || ev.schema_version > current ||
                                   !data_is_object(ev.data, ev.data_len)));
    td_event_free(out);
    return 0;
}
