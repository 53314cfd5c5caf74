/*
 * broker_support.c: see broker_support.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_support.h"

const char *tb_dir(void)
{
    const char *dir = getenv("TD_TEST_RABBITMQ_DIR");
    if (dir == NULL || dir[0] == '\0')
        fail_msg("TD_TEST_RABBITMQ_DIR is not set: run through ctest, which starts the broker");
    return dir;
}

const char *tb_url(void)
{
    static char url[512];
    char path[1024];
    snprintf(path, sizeof path, "%s/url", tb_dir());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("no %s: the broker did not start", path);
    if (fgets(url, sizeof url, f) == NULL)
        url[0] = '\0';
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    return url;
}

void tb_name(char *buf, size_t size, const char *prefix)
{
    static int n;
    snprintf(buf, size, "%s-%ld-%d", prefix, (long)getpid(), ++n);
}

int64_t tb_wait_count(td_store *store, const td_read_query *q, int64_t n, int timeout_ms)
{
    int64_t have = 0;
    for (int waited = 0; (have = tt_count(store, q)) < n && waited < timeout_ms; waited += 50) {
        int64_t head = 0;
        td_store_wait(store, td_store_known_head(store), 50, &head);
    }
    return have;
}

typedef struct copy_check {
    td_store *to;
    int64_t checked;
    const td_event *want;
    bool found;
} copy_check;

static bool same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int compare(const td_event *got, void *payload)
{
    copy_check *c = payload;
    const td_event *w = c->want;
    c->found = true;
    assert_string_equal(got->type, w->type);
    assert_string_equal(got->stream, w->stream);
    assert_int_equal(got->schema_version, w->schema_version);
    assert_string_equal(got->source, w->source);
    assert_true(same_text(got->correlation_id, w->correlation_id));
    assert_true(same_text(got->causation_id, w->causation_id));
    assert_string_equal(got->traceparent, w->traceparent);
    assert_int_equal(got->occurred_at, w->occurred_at);
    assert_int_equal(got->kind, TD_KIND_INTEGRATION);
    assert_int_equal(got->data_len ? got->data_len : strlen(got->data),
                     w->data_len ? w->data_len : strlen(w->data));
    assert_memory_equal(got->data, w->data, w->data_len ? w->data_len : strlen(w->data));
    return 0;
}

/* Each integration event of `from`: in `to`, with the same fields, at a
 * stream version that grows with the sender's. */
static int check_one(const td_event *ev, void *payload)
{
    copy_check *c = payload;
    if (ev->kind != TD_KIND_INTEGRATION)
        return 0;
    c->want = ev;
    c->found = false;
    assert_td_ok(td_store_read_event(c->to, &ev->id, compare, c));
    assert_true(c->found);
    c->checked++;
    return 0;
}

typedef struct order_check {
    td_store *from;
    int64_t last_position[64];
    char streams[64][TD_STREAM_MAX + 1];
    int stream_count;
    int64_t events;
} order_check;

static int sender_position(const td_event *ev, void *payload)
{
    *(int64_t *)payload = ev->position;
    return 0;
}

/* The receiver's events in its position order: per stream, the sender's
 * positions must grow. */
static int check_order(const td_event *ev, void *payload)
{
    order_check *o = payload;
    int64_t sent = 0;
    int i = 0;
    if (strncmp(ev->stream, "rejected-", 9) == 0)
        return 0;
    assert_td_ok(td_store_read_event(o->from, &ev->id, sender_position, &sent));
    while (i < o->stream_count && strcmp(o->streams[i], ev->stream) != 0)
        i++;
    if (i == o->stream_count) {
        assert_true(o->stream_count < 64);
        snprintf(o->streams[o->stream_count++], TD_STREAM_MAX + 1, "%s", ev->stream);
        o->last_position[i] = 0;
    }
    if (sent <= o->last_position[i])
        fail_msg("stream %s: sender position %lld arrived after %lld", ev->stream, (long long)sent,
                 (long long)o->last_position[i]);
    o->last_position[i] = sent;
    o->events++;
    return 0;
}

int64_t tb_check_copy(td_store *from, td_store *to)
{
    copy_check c = {to, 0, NULL, false};
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read_stored(from, &all, check_one, &c));
    order_check *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->from = from;
    assert_td_ok(td_store_read_stored(to, &all, check_order, o));
    /* nothing twice: the receiver holds exactly the sender's integration events */
    assert_int_equal(o->events, c.checked);
    free(o);
    return c.checked;
}

int tb_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

int tb_broker_pid(void)
{
    char path[1024];
    int pid = 0;
    snprintf(path, sizeof path, "%s/rabbit.pid", tb_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return pid;
}
