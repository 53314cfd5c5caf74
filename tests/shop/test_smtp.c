/*
 * test_smtp.c: the shop mails through SMTP when given an smtp:// URL. The
 * test runs a small SMTP server on loopback (a free port) that speaks the
 * commands libcurl sends and keeps each message it accepts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shop.h"
#include "support.h"

/* ---- a minimal SMTP server ------------------------------------------------------ */

#define SINK_MESSAGES 16

typedef struct sink {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    char messages[SINK_MESSAGES][8192];
    int count;
} sink;

static int read_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        char c;
        if (recv(fd, &c, 1, 0) != 1)
            return -1;
        line[n++] = c;
        if (c == '\n')
            break;
    }
    line[n] = '\0';
    return (int)n;
}

static void say(int fd, const char *reply)
{
    if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
        return;
}

static void read_data(sink *s, int fd)
{
    char line[1024], message[8192] = "";
    while (read_line(fd, line, sizeof line) > 0 && strcmp(line, ".\r\n") != 0)
        if (strlen(message) + strlen(line) < sizeof message)
            strcat(message, line);
    pthread_mutex_lock(&s->lock);
    if (s->count < SINK_MESSAGES)
        strcpy(s->messages[s->count++], message);
    pthread_mutex_unlock(&s->lock);
    say(fd, "250 queued\r\n");
}

static void converse(sink *s, int fd)
{
    char line[1024];
    say(fd, "220 sink ESMTP\r\n");
    while (read_line(fd, line, sizeof line) > 0) {
        if (strncasecmp(line, "DATA", 4) == 0) {
            say(fd, "354 end with .\r\n");
            read_data(s, fd);
        } else if (strncasecmp(line, "QUIT", 4) == 0) {
            say(fd, "221 bye\r\n");
            break;
        } else {
            say(fd, "250 ok\r\n"); /* EHLO, MAIL FROM, RCPT TO, RSET, NOOP */
        }
    }
    close(fd);
}

static void *serve(void *arg)
{
    sink *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) == 1) {
            int client = accept(s->fd, NULL, NULL);
            if (client >= 0)
                converse(s, client);
        }
    }
    return NULL;
}

static void sink_start(sink *s)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof addr;
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&addr, &len), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void sink_stop(sink *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

static int sink_count(sink *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- the tests ---------------------------------------------------------------------- */

static void test_orders_are_mailed_through_smtp(void **state)
{
    (void)state;
    static sink s;
    char url[64], u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1], header[128];
    sink_start(&s);
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s.port);
    td_store *store = tt_fixture("smtp");
    shop *sh = NULL;
    shop_options opts = {
        .data_dir = "unused", .lanes = 1, .smtp_url = url, .master_key = tt_master_key()};
    assert_int_equal(shop_open(&sh, store, &opts), 0);
    assert_int_equal(shop_register_user(sh, "mail@example.com", "Mail \"Q\" Test", NULL, u), 0);
    shop_product_input in = {"Stamp", 100, "USD", NULL, 5};
    assert_int_equal(shop_create_product(sh, &in, p), 0);
    shop_order_item items[] = {{p, 1}};
    shop_order_input order = {u,      items,     1, {"1 Main St", "Springfield", "12345", "US"},
                              "card", "tok_visa"};
    assert_int_equal(shop_place_order(sh, &order, o), 0);
    for (int i = 0; i < 2000 && sink_count(&s) < 2; i++)
        usleep(5000);
    shop_close(sh);
    tt_fixture_free(store);
    sink_stop(&s);
    assert_int_equal(s.count, 2);
    snprintf(header, sizeof header, "X-Order-Id: %s\r\n", o);
    for (int i = 0; i < 2; i++) {
        assert_non_null(strstr(s.messages[i], header));
        assert_non_null(strstr(s.messages[i], "Message-ID: <"));
        assert_non_null(strstr(s.messages[i], "To: \"Mail \\\"Q\\\" Test\" <mail@example.com>"));
    }
    assert_true(strstr(s.messages[0], "X-Email-Kind: order_received") ||
                strstr(s.messages[1], "X-Email-Kind: order_received"));
    assert_true(strstr(s.messages[0], "X-Email-Kind: order_confirmed") ||
                strstr(s.messages[1], "X-Email-Kind: order_confirmed"));
}

static void test_bad_smtp_url_is_refused(void **state)
{
    (void)state;
    td_store *store = tt_fixture("smtp_bad");
    shop *sh = NULL;
    shop_options opts = {.data_dir = "unused",
                         .lanes = 1,
                         .smtp_url = "mailto:someone",
                         .master_key = tt_master_key()};
    assert_int_equal(shop_open(&sh, store, &opts), TD_EINVAL);
    assert_string_equal(shop_error().code, "validation_failed");
    assert_null(sh);
    tt_fixture_free(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders_are_mailed_through_smtp),
        cmocka_unit_test(test_bad_smtp_url_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
