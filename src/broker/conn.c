/*
 * conn.c: one AMQP connection to the broker, as the relay and the consumer
 * use it, and the settings and backoff they share.
 *
 *   closed --connect: TCP, handshake, login, channel, exchanges--> open
 *     ^                                                            |
 *     +---- td_amqp__close (after any failure, or to stop) <--------+
 *
 * Every step is bounded: the TCP connect and the handshake by timeout_ms,
 * every request (declare, confirm.select, …) by the same, and an idle
 * broker by the heartbeat (librabbitmq reports a heartbeat timeout after
 * two missed beats). A td_amqp is never reused after a failure: the owner
 * closes it, backs off and connects afresh.
 *
 * The URL's password lives only in the parsed copy handed to the login; what
 * is shown anywhere is conf->redacted.
 *
 * The topic exchange names EXCHANGE.unrouted as its alternate exchange: a
 * message no queue is bound for lands in the durable queue of that name
 * instead of being dropped, where an operator sees and moves it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp_tcp_socket.h>

#include "broker/broker_int.h"
#include "core/alloc.h"
#include "core/error.h"

void td_broker_redact(char *buf, size_t size, const char *url)
{
    const char *scheme = url ? strstr(url, "://") : NULL;
    const char *at = scheme ? strrchr(scheme, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (size == 0)
        return;
    if (url == NULL)
        snprintf(buf, size, "(none)");
    else if (colon == NULL)
        snprintf(buf, size, "%s", url);
    else
        snprintf(buf, size, "%.*s:***%s", (int)(colon - url), url, at);
}

int td_broker__check_name(const char *what, const char *name, size_t max)
{
    size_t len = name ? strlen(name) : 0;
    bool ok = len >= 1 && len <= max &&
              ((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z'));
    for (size_t i = 0; ok && i < len; i++)
        ok = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", name[i]) &&
             name[i] != '\0';
    if (!ok)
        return td_error__set(TD_EINVAL,
                             "invalid %s name '%.64s': 1..%zu of [A-Za-z0-9_.-], a letter first",
                             what, name ? name : "", max);
    return 0;
}

int td_broker__conf_init(td_broker_conf *conf, const td_broker_options *opts)
{
    int error = 0;
    memset(conf, 0, sizeof *conf);
    td_broker_redact(conf->redacted, sizeof conf->redacted, opts->url);
    if (opts->url == NULL || strncmp(opts->url, "amqp://", 7) != 0)
        return td_error__set(TD_EINVAL, "broker URL '%s' is not amqp://…", conf->redacted);
    conf->url_copy = td_strdup(opts->url);
    conf->exchange = td_strdup(opts->exchange ? opts->exchange : "tidings");
    if (conf->url_copy == NULL || conf->exchange == NULL)
        error = td_error__oom();
    if (error == 0) {
        amqp_default_connection_info(&conf->info);
        if (amqp_parse_url(conf->url_copy, &conf->info) != AMQP_STATUS_OK)
            error = td_error__set(TD_EINVAL, "broker URL '%s' cannot be read", conf->redacted);
    }
    if (error == 0)
        error = td_broker__check_name("exchange", conf->exchange, TD_BROKER_EXCHANGE_MAX);
    if (error < 0) {
        td_broker__conf_dispose(conf);
        return error;
    }
    conf->heartbeat_s = opts->heartbeat_s ? opts->heartbeat_s : 5;
    conf->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 5000;
    conf->backoff_initial_ms = opts->backoff_initial_ms ? opts->backoff_initial_ms : 100;
    conf->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : 5000;
    conf->metrics = opts->metrics;
    return 0;
}

void td_broker__conf_dispose(td_broker_conf *conf)
{
    if (conf->url_copy) /* the password sat in it */
        memset(conf->url_copy, 0, strlen(conf->url_copy));
    td_free(conf->url_copy);
    td_free(conf->exchange);
    conf->url_copy = conf->exchange = NULL;
}

void td_amqp__describe(char *buf, size_t size, const amqp_rpc_reply_t *reply, int status)
{
    if (reply == NULL || reply->reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        snprintf(buf, size, "%s", amqp_error_string2(reply ? reply->library_error : status));
        return;
    }
    if (reply->reply_type == AMQP_RESPONSE_NORMAL) {
        snprintf(buf, size, "no error");
        return;
    }
    if (reply->reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
        reply->reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        bool conn = reply->reply.id == AMQP_CONNECTION_CLOSE_METHOD;
        const amqp_connection_close_t *c = reply->reply.decoded;
        const amqp_channel_close_t *ch = reply->reply.decoded;
        amqp_bytes_t text = conn ? c->reply_text : ch->reply_text;
        snprintf(buf, size, "broker closed the %s: %d %.*s", conn ? "connection" : "channel",
                 conn ? c->reply_code : ch->reply_code, (int)text.len, (const char *)text.bytes);
        return;
    }
    snprintf(buf, size, "unexpected broker method 0x%08x", (unsigned)reply->reply.id);
}

static bool reply_ok(amqp_rpc_reply_t reply, const char *step, char *err, size_t err_size)
{
    char why[200];
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    td_amqp__describe(why, sizeof why, &reply, 0);
    snprintf(err, err_size, "%s: %s", step, why);
    return false;
}

static bool open_socket(td_amqp *amqp, const td_broker_conf *conf, char *err, size_t err_size)
{
    struct timeval tv = {conf->timeout_ms / 1000, (conf->timeout_ms % 1000) * 1000};
    amqp_socket_t *socket = amqp_tcp_socket_new(amqp->conn);
    int status = socket ? amqp_socket_open_noblock(socket, conf->info.host, conf->info.port, &tv)
                        : AMQP_STATUS_NO_MEMORY;
    if (status == AMQP_STATUS_OK)
        status = amqp_set_handshake_timeout(amqp->conn, &tv);
    if (status == AMQP_STATUS_OK)
        status = amqp_set_rpc_timeout(amqp->conn, &tv);
    if (status != AMQP_STATUS_OK)
        snprintf(err, err_size, "connect to %s:%d: %s", conf->info.host, conf->info.port,
                 amqp_error_string2(status));
    return status == AMQP_STATUS_OK;
}

/* The exchange, its alternate exchange and the queue that keeps what no
 * one is bound for (every declaration idempotent). */
static bool declare_exchanges(amqp_connection_state_t c, const char *exchange, char *err,
                              size_t err_size)
{
    char unrouted[TD_BROKER_EXCHANGE_MAX + sizeof UNROUTED_SUFFIX];
    snprintf(unrouted, sizeof unrouted, "%s" UNROUTED_SUFFIX, exchange);
    amqp_table_entry_t quorum = {
        amqp_cstring_bytes("x-queue-type"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_entry_t alternate = {
        amqp_cstring_bytes("alternate-exchange"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(unrouted)}};
    bool ok = (amqp_exchange_declare(c, TD_BROKER_CHANNEL, amqp_cstring_bytes(unrouted),
                                     amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table),
               reply_ok(amqp_get_rpc_reply(c), "exchange.declare (unrouted)", err, err_size));
    ok = ok && (amqp_queue_declare(c, TD_BROKER_CHANNEL, amqp_cstring_bytes(unrouted), 0, 1, 0, 0,
                                   (amqp_table_t){1, &quorum}),
                reply_ok(amqp_get_rpc_reply(c), "queue.declare (unrouted)", err, err_size));
    ok = ok && (amqp_queue_bind(c, TD_BROKER_CHANNEL, amqp_cstring_bytes(unrouted),
                                amqp_cstring_bytes(unrouted), amqp_empty_bytes, amqp_empty_table),
                reply_ok(amqp_get_rpc_reply(c), "queue.bind (unrouted)", err, err_size));
    return ok && (amqp_exchange_declare(c, TD_BROKER_CHANNEL, amqp_cstring_bytes(exchange),
                                        amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                                        (amqp_table_t){1, &alternate}),
                  reply_ok(amqp_get_rpc_reply(c), "exchange.declare", err, err_size));
}

int td_amqp__connect(td_amqp *amqp, const td_broker_conf *conf, char *err, size_t err_size)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp->conn = c;
    amqp->open = false;
    if (c == NULL) {
        snprintf(err, err_size, "out of memory");
        return TD_EIO;
    }
    bool ok = open_socket(amqp, conf, err, err_size);
    ok = ok && reply_ok(amqp_login(c, conf->info.vhost, 0, 131072, (int)conf->heartbeat_s,
                                   AMQP_SASL_METHOD_PLAIN, conf->info.user, conf->info.password),
                        "login", err, err_size);
    ok = ok && (amqp_channel_open(c, TD_BROKER_CHANNEL),
                reply_ok(amqp_get_rpc_reply(c), "channel.open", err, err_size));
    ok = ok && declare_exchanges(c, conf->exchange, err, err_size);
    if (!ok) {
        td_amqp__close(amqp);
        return TD_EIO;
    }
    amqp->open = true;
    return 0;
}

void td_amqp__close(td_amqp *amqp)
{
    if (amqp->conn == NULL)
        return;
    if (amqp->open) {
        amqp_channel_close(amqp->conn, TD_BROKER_CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(amqp->conn, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(amqp->conn);
    amqp->conn = NULL;
    amqp->open = false;
}

unsigned td_broker__backoff_ms(const td_broker_conf *conf, unsigned attempt)
{
    unsigned long long ms = conf->backoff_initial_ms;
    for (unsigned i = 0; i < attempt && ms < conf->backoff_max_ms; i++)
        ms *= 2;
    if (ms > conf->backoff_max_ms)
        ms = conf->backoff_max_ms;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    return (unsigned)(ms / 2 + (ms / 2) * (unsigned long long)(rand_r(&seed) % 1000) / 1000);
}

bool td_broker__sleep(const atomic_bool *stop, unsigned ms)
{
    while (ms > 0 && !atomic_load(stop)) {
        unsigned step = ms < 20 ? ms : 20;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return atomic_load(stop);
}
