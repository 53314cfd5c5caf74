/*
 * test_cli_dlq.c: the `tidings subscriptions` and `tidings dlq` commands
 * against a dead-letter queue made by a real subscription, run as the
 * operator would: a separate process on the same store.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "recorder.h"
#include "support.h"

static const char *cli;
static td_store *store;
static recorder rec;
static atomic_int broken = 1;

static int handler(td_delivery *d, const td_event *ev, void *payload)
{
    if (strstr(ev->data, "poison") && atomic_load(&broken))
        return td_delivery_fail(d, TD_EPERMANENT, "unreadable payload");
    recorder_add(payload, ev, 1);
    return 0;
}

static td_subscription *start(void)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "mailer";
    assert_td_ok(td_subscription_new(&sub, store, &opts, handler, &rec));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

/* Runs `tidings --db URL args`; returns its exit code, stdout and stderr in
 * out. */
static int run(char *out, size_t size, const char *args)
{
    char command[8192];
    snprintf(command, sizeof command, "'%s' --db '%s' %s 2>&1", cli, tt_fixture_url(), args);
    FILE *p = popen(command, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Copies the "id" of the line that contains `needle` into id. */
static void id_of(const char *out, const char *needle, char id[TD_UUID_STR_LEN + 1])
{
    const char *line = strstr(out, needle);
    assert_non_null(line);
    while (line > out && line[-1] != '\n')
        line--;
    const char *p = strstr(line, "\"id\":\"");
    assert_non_null(p);
    memcpy(id, p + 6, TD_UUID_STR_LEN);
    id[TD_UUID_STR_LEN] = '\0';
}

static void test_operator_commands(void **state)
{
    (void)state;
    char out[16384], dead[TD_UUID_STR_LEN + 1], parked[TD_UUID_STR_LEN + 1], args[256];
    td_subscription *sub = start();
    td_event a = tt_event("MailRequested", "{\"poison\":true}");
    td_event b = tt_event("MailRequested", "{\"fine\":true}");
    assert_td_ok(td_store_append(store, "mail-1", TD_EXPECT_ANY, &a, 1));
    assert_td_ok(td_store_append(store, "mail-1", TD_EXPECT_ANY, &b, 1));
    assert_td_ok(td_subscription_wait_until(sub, 2, 10000));
    td_subscription_free(sub);

    assert_int_equal(run(out, sizeof out, "subscriptions"), 0);
    assert_non_null(strstr(out, "mailer"));
    assert_non_null(strstr(out, "DEAD_LETTERS"));
    assert_int_equal(run(out, sizeof out, "dlq list --subscription mailer"), 0);
    assert_int_equal(lines(out), 2);
    id_of(out, "\"status\":\"dead\"", dead);
    id_of(out, "\"status\":\"parked\"", parked);
    assert_non_null(strstr(out, "unreadable payload"));
    assert_int_equal(run(out, sizeof out, "dlq list --type Other"), 0);
    assert_int_equal(lines(out), 1); /* an empty list says so (on stderr) */
    assert_non_null(strstr(out, "no dead letters match"));
    assert_int_equal(run(out, sizeof out, "dlq list --subscription mailman"), 1);
    assert_non_null(strstr(out, "no subscription 'mailman'"));
    assert_int_equal(run(out, sizeof out, "replay --subscription mailman --from 1"), 1);

    snprintf(args, sizeof args, "dlq show %s", dead);
    assert_int_equal(run(out, sizeof out, args), 0);
    assert_non_null(strstr(out, "\"data\":{\"poison\":true}"));

    snprintf(args, sizeof args, "dlq retry %s", parked);
    assert_int_equal(run(out, sizeof out, args), 4); /* only dead entries */
    assert_int_equal(run(out, sizeof out, "dlq retry not-an-id"), 4);
    assert_int_equal(run(out, sizeof out, "dlq drop 0190c3a0-1234-7abc-8def-0123456789ab"), 1);
    assert_int_equal(run(out, sizeof out, "dlq retry"), 2);
    assert_int_equal(run(out, sizeof out, "dlq frobnicate"), 2);
    assert_int_equal(run(out, sizeof out, "dlq history"), 0);
    assert_int_equal(lines(out), 1); /* refused requests leave no trace */
    assert_non_null(strstr(out, "no retries or drops"));

    snprintf(args, sizeof args, "dlq retry %s --by ops-oncall", dead);
    assert_int_equal(run(out, sizeof out, args), 0);
    assert_int_equal(run(out, sizeof out, "dlq history"), 0);
    assert_non_null(strstr(out, "\"who\":\"ops-oncall\""));

    atomic_store(&broken, 0); /* fixed, redeployed */
    sub = start();
    recorder_wait(&rec, 2, 10000);
    td_subscription_free(sub);
    assert_int_equal(run(out, sizeof out, "dlq list"), 0);
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "no dead letters\n"));
}

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("ops");
    recorder_init(&rec);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: %s PATH_TO_TIDINGS\n", argv[0]), 2;
    cli = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operator_commands, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
