/*
 * test_pg_lost_commit.c: a COMMIT whose answer never reaches the store.
 *
 * The store talks to the server through a proxy in this test (a thread
 * relaying bytes on loopback) that, when armed, cuts the connection at the
 * first message holding "COMMIT":
 *
 *   - after the server committed (it has answered; the answer is dropped):
 *     the writer asks on a new connection what became of the transaction,
 *     hears "committed", and reports the append done: the event is there
 *     once, and the store takes writes as before;
 *   - before the server saw it (the message is dropped): the server aborts
 *     the transaction with its session, the writer hears "aborted" and
 *     reports TD_EUNAVAILABLE: nothing of it is stored, and the next
 *     append succeeds;
 *   - after the server committed, with the proxy then refusing every new
 *     connection: nobody can say, so the store stops writes (TD_EIO) rather
 *     than guess (trying again could apply it twice, giving up could lose
 *     an acknowledged one), also once the server is reachable again; a
 *     store opened anew finds the event there, once.
 */
#define _GNU_SOURCE /* memmem, accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

typedef enum mode {
    PASS,         /* relay everything */
    CUT_AFTER,    /* relay the COMMIT, swallow its answer, cut */
    CUT_BEFORE,   /* cut before the COMMIT reaches the server */
    CUT_AND_SHUT, /* as CUT_AFTER, then refuse every new connection */
} mode;

#define PAIRS_MAX 64

static struct {
    int listener;
    int port, server_port;
    atomic_int mode;
    atomic_int cuts; /* connections cut at a COMMIT */
    atomic_bool stopping;
    int client[PAIRS_MAX], server[PAIRS_MAX];
    pthread_t thread;
} proxy;

static int connect_server(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)proxy.server_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void cut(int i)
{
    close(proxy.client[i]);
    close(proxy.server[i]);
    proxy.client[i] = proxy.server[i] = -1;
}

/* Waits up to 2 s for the server's answer on fd, and drops it. */
static void swallow_answer(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[4096];
    if (poll(&p, 1, 2000) > 0)
        (void)!read(fd, buf, sizeof buf);
}

/* Relays one chunk from pair i's client to its server, or cuts. */
static void from_client(int i)
{
    char buf[65536];
    ssize_t n = read(proxy.client[i], buf, sizeof buf);
    if (n <= 0) {
        cut(i);
        return;
    }
    int m = atomic_load(&proxy.mode);
    bool commit = m != PASS && memmem(buf, (size_t)n, "COMMIT", 6) != NULL;
    if (commit && m == CUT_BEFORE) {
        atomic_fetch_add(&proxy.cuts, 1);
        atomic_store(&proxy.mode, PASS);
        cut(i);
        return;
    }
    if (write(proxy.server[i], buf, (size_t)n) != n) {
        cut(i);
        return;
    }
    if (commit) {
        swallow_answer(proxy.server[i]);
        atomic_fetch_add(&proxy.cuts, 1);
        if (m == CUT_AFTER)
            atomic_store(&proxy.mode, PASS);
        cut(i);
    }
}

static void from_server(int i)
{
    char buf[65536];
    ssize_t n = read(proxy.server[i], buf, sizeof buf);
    if (n <= 0 || write(proxy.client[i], buf, (size_t)n) != n)
        cut(i);
}

static void accept_one(void)
{
    int fd = accept4(proxy.listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (atomic_load(&proxy.mode) == CUT_AND_SHUT && atomic_load(&proxy.cuts) > 0) {
        close(fd); /* the server is away, as far as the store can tell */
        return;
    }
    for (int i = 0; i < PAIRS_MAX; i++)
        if (proxy.client[i] < 0) {
            proxy.server[i] = connect_server();
            proxy.client[i] = fd;
            if (proxy.server[i] < 0)
                cut(i);
            return;
        }
    close(fd);
}

static void *proxy_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&proxy.stopping)) {
        struct pollfd fds[1 + 2 * PAIRS_MAX];
        int at[1 + 2 * PAIRS_MAX], n = 0;
        fds[n] = (struct pollfd){proxy.listener, POLLIN, 0};
        at[n++] = -1;
        for (int i = 0; i < PAIRS_MAX; i++)
            if (proxy.client[i] >= 0) {
                fds[n] = (struct pollfd){proxy.client[i], POLLIN, 0};
                at[n++] = i;
                fds[n] = (struct pollfd){proxy.server[i], POLLIN, 0};
                at[n++] = PAIRS_MAX + i;
            }
        if (poll(fds, (nfds_t)n, 50) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (at[k] < 0)
                accept_one();
            else if (at[k] < PAIRS_MAX && proxy.client[at[k]] == fds[k].fd)
                from_client(at[k]);
            else if (at[k] >= PAIRS_MAX && proxy.server[at[k] - PAIRS_MAX] == fds[k].fd)
                from_server(at[k] - PAIRS_MAX);
        }
    }
    for (int i = 0; i < PAIRS_MAX; i++)
        if (proxy.client[i] >= 0)
            cut(i);
    return NULL;
}

/* The server's port, from its URL (postgres://USER@HOST:PORT/DB). */
static int server_port(void)
{
    const char *url = tt_pg_server_url();
    const char *at = strrchr(url, '@'), *colon = at ? strchr(at, ':') : NULL;
    assert_non_null(colon);
    return atoi(colon + 1);
}

static int setup(void **state)
{
    (void)state;
    memset(&proxy, 0, sizeof proxy);
    for (int i = 0; i < PAIRS_MAX; i++)
        proxy.client[i] = proxy.server[i] = -1;
    proxy.server_port = server_port();
    proxy.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (proxy.listener < 0 || bind(proxy.listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(proxy.listener, 64) != 0 ||
        getsockname(proxy.listener, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot listen on loopback: %s", strerror(errno));
    proxy.port = ntohs(a.sin_port);
    atomic_store(&proxy.mode, PASS);
    if (pthread_create(&proxy.thread, NULL, proxy_main, NULL) != 0)
        fail_msg("cannot start the proxy");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&proxy.stopping, true);
    pthread_join(proxy.thread, NULL);
    close(proxy.listener);
    return 0;
}

static char through[2200]; /* the last store's URL */

static td_store *open_url(int busy_timeout_ms)
{
    td_store_options o = TD_STORE_OPTIONS_INIT;
    o.busy_timeout_ms = busy_timeout_ms;
    td_store *store = NULL;
    assert_td_ok(td_store_open(&store, through, &o));
    return store;
}

/* A store of its own, reached through the proxy. */
static td_store *open_through_proxy(const char *name, int busy_timeout_ms)
{
    char *url = tt_pg_schema_url(name), port[16];
    snprintf(port, sizeof port, ":%d/", proxy.server_port);
    char *p = strstr(url, port);
    assert_non_null(p);
    snprintf(through, sizeof through, "%.*s:%d/%s&sslmode=disable", (int)(p - url), url, proxy.port,
             p + strlen(port));
    free(url);
    return open_url(busy_timeout_ms);
}

static int64_t count_stream(td_store *store, const char *stream)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = stream;
    return tt_count(store, &q);
}

static void test_an_answer_lost_after_the_commit(void **state)
{
    (void)state;
    td_store *store = open_through_proxy("lost_after", 1000);
    tt_append(store, "acct-1", "Opened", 1);
    atomic_store(&proxy.mode, CUT_AFTER);
    td_event ev = tt_event("Deposited", "{\"n\":2}");
    assert_td_ok(td_store_append(store, "acct-1", TD_EXPECT_ANY, &ev, 1));
    assert_int_equal(atomic_load(&proxy.cuts), 1);
    assert_int_equal(count_stream(store, "acct-1"), 2); /* there, once */
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_OK);
    tt_append(store, "acct-1", "Deposited", 3);
    assert_int_equal(count_stream(store, "acct-1"), 3);
    td_store_free(store);
}

static void test_a_commit_lost_before_the_server(void **state)
{
    (void)state;
    td_store *store = open_through_proxy("lost_before", 1000);
    tt_append(store, "acct-2", "Opened", 1);
    atomic_store(&proxy.mode, CUT_BEFORE);
    td_event ev = tt_event("Deposited", "{\"n\":2}");
    assert_td_code(td_store_append(store, "acct-2", TD_EXPECT_ANY, &ev, 1), TD_EUNAVAILABLE);
    assert_int_equal(atomic_load(&proxy.cuts), 1);
    assert_int_equal(count_stream(store, "acct-2"), 1); /* nothing of it */
    tt_append(store, "acct-2", "Deposited", 3);
    assert_int_equal(count_stream(store, "acct-2"), 2);
    td_store_free(store);
}

static void test_no_answer_at_all_stops_writes(void **state)
{
    (void)state;
    td_store *store = open_through_proxy("lost_unknown", 200);
    tt_append(store, "acct-3", "Opened", 1);
    atomic_store(&proxy.mode, CUT_AND_SHUT);
    td_event ev = tt_event("Deposited", "{\"n\":2}");
    assert_td_code(td_store_append(store, "acct-3", TD_EXPECT_ANY, &ev, 1), TD_EIO);
    assert_non_null(strstr(td_error_last(), "state is unknown"));
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_FAILED);
    atomic_store(&proxy.mode, PASS); /* the server is back: still no guessing */
    td_event again = tt_event("Deposited", "{\"n\":3}");
    assert_td_code(td_store_append(store, "acct-3", TD_EXPECT_ANY, &again, 1), TD_ECLOSED);
    td_store_free(store);
    store = open_url(1000); /* reopened: the server kept it, once */
    assert_int_equal(count_stream(store, "acct-3"), 2);
    tt_append(store, "acct-3", "Deposited", 4);
    td_store_free(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_answer_lost_after_the_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_commit_lost_before_the_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_at_all_stops_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
