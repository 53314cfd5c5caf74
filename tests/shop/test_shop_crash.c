/*
 * test_shop_crash.c: the shop killed with SIGKILL in the middle of its work,
 * and restarted, again and again. Afterwards every order is final, stock
 * was never oversold, every order has exactly one order_received and
 * exactly one final e-mail, and every paid order one confirmation event and
 * one payment result.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "shop.h"
#include "support.h"

#define ORDERS 40
#define UNITS  30
#define KILLS  5

static const char *self;

/* Messages in the mail spool containing needle ("" for all). */
static int spooled(const char *dir, const char *needle)
{
    char path[4200];
    const char *needles[] = {needle, NULL};
    snprintf(path, sizeof path, "%s/mail/spool.mbox", dir);
    return tt_mbox_count(path, needles);
}

static int mail_files(const char *dir)
{
    return spooled(dir, "");
}

typedef struct tally {
    int pending, processing, cancelled;
} tally;

static int count_status(const char *key, const char *json, size_t len, void *payload)
{
    tally *t = payload;
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    const char *status =
        json_string_value(json_object_get(json_object_get(doc, "state"), "status"));
    (void)key;
    if (status == NULL) {
        json_decref(doc);
        return TD_ECORRUPT;
    }
    t->pending += strcmp(status, "Pending") == 0;
    t->processing += strcmp(status, "Processing") == 0;
    t->cancelled += strcmp(status, "Cancelled") == 0;
    json_decref(doc);
    return 0;
}

/* Child: runs the shop until every order is final and mailed (exit 0). */
static int child_main(const char *url, const char *dir)
{
    td_store *store = NULL;
    shop *s = NULL;
    shop_options opts = {
        .data_dir = dir, .payment_timeout_ms = 30000, .lanes = 2, .master_key = tt_master_key()};
    td_log_to_stderr("warn"); /* shows in the test's output if something goes wrong */
    if (td_store_open(&store, url, NULL) < 0 || shop_open(&s, store, &opts) < 0)
        return 2;
    for (int i = 0; i < 6000; i++) {
        tally t = {0, 0, 0};
        if (td_store_doc_list(store, "snap_order", NULL, 0, count_status, &t) < 0)
            return 4;
        if (t.pending == 0 && t.processing + t.cancelled == ORDERS && mail_files(dir) == 2 * ORDERS)
            break;
        usleep(10000);
        if (i == 5999) {
            fprintf(stderr, "child: pending %d processing %d cancelled %d mails %d\n", t.pending,
                    t.processing, t.cancelled, mail_files(dir));
            return 5;
        }
    }
    shop_close(s);
    td_store_free(store);
    return 0;
}

static void setup_orders(const char *url, const char *dir)
{
    td_store *store = tt_open(url);
    shop *s = NULL;
    shop_options passive = {.data_dir = dir, .passive = true, .master_key = tt_master_key()};
    char user[SHOP_ID_LEN + 1], product[SHOP_ID_LEN + 1], order[SHOP_ID_LEN + 1];
    assert_int_equal(shop_open(&s, store, &passive), 0);
    assert_int_equal(shop_register_user(s, "kill@example.com", "Kill Test", NULL, user), 0);
    shop_product_input in = {"Gadget", 999, "USD", NULL, UNITS};
    assert_int_equal(shop_create_product(s, &in, product), 0);
    for (int i = 0; i < ORDERS; i++) {
        shop_order_item items[] = {{product, 1}};
        shop_order_input o = {user,   items,
                              1,      {"1 Main St", "Springfield", "12345", "US"},
                              "card", i % 7 == 3 ? "tok_flaky" : "tok_visa"};
        assert_int_equal(shop_place_order(s, &o, order), 0);
    }
    shop_close(s);
    td_store_free(store);
}

static int64_t count(td_store *store, const char *type)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.type = type;
    return tt_count(store, &q);
}

static int kinds_per_order(const char *dir, const char *kind)
{
    char header[128];
    snprintf(header, sizeof header, "\nX-Email-Kind: %s\n", kind);
    return spooled(dir, header);
}

static void test_kill_and_restart(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "shop");
    setup_orders(url, dir);
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    const char *args[] = {url, dir, NULL};
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = tt_spawn(self, args, NULL);
        struct timespec delay = {0, (long)(30 + rand_r(&seed) % 300) * 1000000L};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        tt_wait(pid);
    }
    assert_int_equal(tt_wait(tt_spawn(self, args, NULL)), 0);

    td_store *store = tt_open(url);
    tally t = {0, 0, 0};
    assert_td_ok(td_store_doc_list(store, "snap_order", NULL, 0, count_status, &t));
    assert_int_equal(t.pending, 0);
    assert_int_equal(t.processing, UNITS); /* never oversold */
    assert_int_equal(t.cancelled, ORDERS - UNITS);
    assert_int_equal(kinds_per_order(dir, "order_received"), ORDERS); /* exactly once each: */
    assert_int_equal(kinds_per_order(dir, "order_confirmed"), UNITS); /* the spool knows */
    assert_int_equal(kinds_per_order(dir, "order_cancelled"), ORDERS - UNITS); /* its ids */
    assert_int_equal(mail_files(dir), 2 * ORDERS);
    assert_int_equal(count(store, "OrderConfirmationEmail"), UNITS);
    assert_int_equal(count(store, "PaymentProcessed"), UNITS);
    assert_int_equal(count(store, "OrderCreated"), ORDERS);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3]);
    self = argv[0];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_and_restart)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
