/*
 * relay.c: publishes a store's integration events to the broker, with
 * streamed publisher confirms, and keeps a checkpoint that never passes an
 * event the broker has not confirmed.
 *
 *              connect ok                       publish error, nack,
 *   backoff ---------------> relaying <-----+   heartbeat timeout,
 *     ^                        |   |        |   channel closed
 *     |                        |   +--------+   (read, publish, confirm)
 *     +------------------------+
 *           any failure: close, forget the window, read again from
 *           the confirmed checkpoint
 *
 * One thread owns the connection. It reads events after read_pos in
 * position order (as stored: consumers upcast), publishes each integration
 * event (of the configured sources) and remembers it in the window (its position and time; the
 * delivery tag is implied: the window's first entry has first_tag, the next +1). Up to
 * max_in_flight entries wait for their confirm at once; the broker acks them one by one or many at
 * a time (multiple). The confirmed prefix of the window is dropped, and the checkpoint becomes:
 *
 *   window empty:  read_pos (events read and not published are domain
 *                  events: nothing to confirm)
 *   else:          the first unconfirmed entry's position - 1
 *
 * so it only ever passes confirmed events. It is saved (document
 * broker_relays/NAME, {"position":N}) at most every SAVE_EVERY_MS and at
 * stop. A nack, or any failure, drops the connection: the window is
 * forgotten and reading starts again at the checkpoint, so events published
 * but not confirmed are published again (consumers drop the duplicates by
 * id). Order: one channel, position order, so each queue gets a stream's
 * events in order; a republished run repeats a suffix, never reorders it.
 *
 * One process at a time runs a relay name: td_relay_start takes a lock
 * beside the store ("relay-NAME", td_store__lock: the kernel's flock on
 * SQLite, a server session's advisory lock on PostgreSQL), which goes with
 * its holder's death, and reads the checkpoint afresh under it. A lock a
 * server keeps can also go with its session while the holder lives on (a
 * restart, a cut connection): every LOCK_CHECK_MS the thread checks it,
 * takes it again if it is free, and stops with TD_EBUSY if another process
 * has it. A standby relay instead waits, trying the lock every
 * LOCK_CHECK_MS, and relays from the checkpoint once it has it.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "tidings/log.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"

#define CHECKPOINTS    "broker_relays"
#define SAVE_EVERY_MS  100
#define DRAIN_MS       3000
#define STORE_RETRY_MS 200 /* after a failed read of the store */
#define LOCK_CHECK_MS  3000
#define LOCK_WAIT_MS   1000 /* a killed holder's flock goes a little after its death */

typedef struct pending {
    int64_t position;
    td_time occurred_at;
    bool confirmed;
} pending;

struct td_relay {
    td_store *store;
    char name[TD_BROKER_NAME_MAX + 1];
    td_broker_conf conf;
    size_t max_in_flight, batch_size;
    char **sources; /* NULL-terminated, or NULL: every source */
    td_broker_counters counters;
    td_broker_metrics m;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    td_store_lock *name_lock;  /* the name's lock; NULL on a store without locks */
    bool named;                /* this relay runs the name: lock taken (or no locks) */
    bool standby;              /* wait for the name rather than fail */
    td_relay_encode_fn encode; /* or NULL */
    void *encode_payload;
    bool encode_failed;   /* publish_one stopped at an event encode could not send yet */
    char encode_why[256]; /* and why, as encode left it (td_error_last) */

    pthread_mutex_t lock; /* checkpoint, error; cond: checkpoint moved */
    pthread_cond_t cond;
    int64_t checkpoint;
    int error;

    /* the relay thread's own */
    td_amqp amqp;
    pending *window; /* ring of max_in_flight */
    size_t first, count;
    uint64_t first_tag, next_tag;
    int64_t read_pos, saved;
    td_time saved_at, lock_checked_at;
    int publish_status;
};

static void lock_name(const td_relay *r, char *out, size_t size)
{
    snprintf(out, size, "relay-%s", r->name);
}

/* Takes the name's lock, waiting up to wait_ms for a holder that just died. */
static int take_lock(td_relay *r, unsigned wait_ms)
{
    char name[8 + TD_BROKER_NAME_MAX];
    lock_name(r, name, sizeof name);
    td_time until = td_time_now() + (td_time)wait_ms * 1000;
    int error;
    while ((error = td_store__lock(r->store, name, &r->name_lock)) == TD_EBUSY &&
           td_time_now() < until)
        td_broker__sleep(&r->stop, 5);
    if (error == TD_EBUSY)
        return td_error__set(TD_EBUSY, "relay %s runs in another process (it holds %s)", r->name,
                             name);
    r->named = error == 0;
    return error;
}

static void let_go(td_relay *r)
{
    td_store__unlock(r->store, r->name_lock);
    r->name_lock = NULL;
    r->named = false;
}

/* The lock still ours, or taken again; TD_EBUSY when another process has it. */
static int keep_lock(td_relay *r)
{
    td_time now = td_time_now();
    if (now - r->lock_checked_at < LOCK_CHECK_MS * 1000)
        return 0;
    r->lock_checked_at = now;
    char name[8 + TD_BROKER_NAME_MAX];
    lock_name(r, name, sizeof name);
    int error = td_store__lock_keep(r->store, name, &r->name_lock);
    r->named = error == 0;
    if (error == TD_EBUSY)
        return td_error__set(TD_EBUSY,
                             "relay %s lost its lock with the database session that held it, and "
                             "another process has taken it; it stops",
                             r->name);
    return 0; /* taken again, or the server is away: checked again later */
}

static int read_checkpoint(td_store *store, const char *name, int64_t *position);

static int load_checkpoint(td_relay *r)
{
    int64_t position = 0;
    int error = read_checkpoint(r->store, r->name, &position);
    if (error == 0)
        r->checkpoint = r->saved = position;
    return error;
}

static int put_checkpoint(td_txn *txn, void *payload)
{
    td_relay *r = payload;
    char json[64];
    snprintf(json, sizeof json, "{\"position\":%lld}", (long long)r->saved);
    return td_txn_doc_put(txn, CHECKPOINTS, r->name, json, strlen(json));
}

static void save_checkpoint(td_relay *r, bool now)
{
    pthread_mutex_lock(&r->lock);
    int64_t checkpoint = r->checkpoint;
    pthread_mutex_unlock(&r->lock);
    td_time t = td_time_now();
    if (checkpoint <= r->saved || (!now && t - r->saved_at < SAVE_EVERY_MS * 1000))
        return;
    int64_t before = r->saved;
    r->saved = checkpoint;
    int error = td_transact(r->store, put_checkpoint, r);
    if (error == 0) {
        pthread_mutex_lock(&r->lock);
        r->error = 0; /* saved after all */
        pthread_mutex_unlock(&r->lock);
    } else { /* tried again at the next save; the broker has what it has */
        r->saved = before;
        td_broker__set_error(&r->counters, td_error_last());
        pthread_mutex_lock(&r->lock);
        if (r->error == 0)
            r->error = error;
        pthread_mutex_unlock(&r->lock);
    }
    r->saved_at = t;
}

/* The checkpoint after the window changed; wakes td_relay_wait_until. */
static void advance(td_relay *r)
{
    while (r->count > 0 && r->window[r->first].confirmed) {
        r->first = (r->first + 1) % r->max_in_flight;
        r->count--;
        r->first_tag++;
    }
    int64_t checkpoint = r->count ? r->window[r->first].position - 1 : r->read_pos;
    pthread_mutex_lock(&r->counters.lock);
    r->counters.stats.lag_seconds =
        r->count ? (double)(td_time_now() - r->window[r->first].occurred_at) / 1e6 : 0;
    pthread_mutex_unlock(&r->counters.lock);
    pthread_mutex_lock(&r->lock);
    if (checkpoint > r->checkpoint) {
        r->checkpoint = checkpoint;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
}

static bool from_source(const td_relay *r, const char *source)
{
    if (r->sources == NULL)
        return true;
    for (char **s = r->sources; *s; s++)
        if (source && strcmp(*s, source) == 0)
            return true;
    return false;
}

static int publish_one(const td_event *ev, void *payload)
{
    td_relay *r = payload;
    if (r->count == r->max_in_flight)
        return 1;
    if (ev->kind == TD_KIND_INTEGRATION && from_source(r, ev->source)) {
        amqp_basic_properties_t props;
        amqp_table_entry_t entries[TD_HDR_COUNT];
        char id[TD_UUID_STR_LEN + 1], *encoded = NULL;
        amqp_bytes_t body = {td_json__length(ev->data, ev->data_len), (void *)(uintptr_t)ev->data};
        if (r->encode)
            td_error_clear(); /* so that a reason left stale by an earlier call is not its */
        int chosen = r->encode ? r->encode(ev, &encoded, r->encode_payload) : 0;
        if (chosen < 0 || (chosen == 1 && encoded == NULL)) {
            /* not now: read it again after a pause, nothing after it */
            const char *why = td_error_last();
            if (chosen >= 0)
                why = "it gave no body";
            else if (why[0] == '\0')
                why = "it gave no reason";
            snprintf(r->encode_why, sizeof r->encode_why, "%s", why);
            free(encoded); /* in case it made one all the same */
            r->encode_failed = true;
            return 1;
        }
        if (chosen == 2) { /* not for the broker: passed over like a domain event */
            free(encoded);
            r->read_pos = ev->position;
            return 0;
        }
        if (chosen == 1)
            body = (amqp_bytes_t){strlen(encoded), encoded};
        td_broker__message_props(&props, entries, ev, id);
        int status = amqp_basic_publish(r->amqp.conn, TD_BROKER_CHANNEL,
                                        amqp_cstring_bytes(r->conf.exchange),
                                        amqp_cstring_bytes(ev->type), 0, 0, &props, body);
        free(encoded); /* malloc'd by encode */
        if (status != AMQP_STATUS_OK) {
            r->publish_status = status;
            return 1;
        }
        pending *p = &r->window[(r->first + r->count++) % r->max_in_flight];
        *p = (pending){ev->position, ev->occurred_at, false};
        r->next_tag++;
        pthread_mutex_lock(&r->counters.lock);
        r->counters.stats.published++;
        pthread_mutex_unlock(&r->counters.lock);
        td_broker__count(r->m.published, r->name, 1);
    }
    r->read_pos = ev->position;
    return 0;
}

static int fail(td_relay *r, const char *what, const amqp_rpc_reply_t *reply, int status)
{
    char why[200], message[320];
    td_amqp__describe(why, sizeof why, reply, status);
    snprintf(message, sizeof message, "relay %s: %.40s: %.190s", r->name, what, why);
    td_broker__set_error(&r->counters, message);
    td_log(TD_LOG_WARN, NULL, "%s", message);
    return TD_EIO;
}

/* Publishes what the store holds after read_pos, as far as the window
 * allows: TD_EIO when the broker failed (drop the connection). A failed
 * read of the store is waited out instead, and the connection kept. */
static int publish_batch(td_relay *r)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = r->read_pos;
    q.limit = r->batch_size;
    r->publish_status = AMQP_STATUS_OK;
    r->encode_failed = false;
    int error = td_store_read_stored(r->store, &q, publish_one, r);
    if (error < 0 || r->encode_failed) { /* not the broker's trouble: keep the connection */
        char message[400];
        if (error < 0)
            snprintf(message, sizeof message, "relay %s: reading the store: %.250s", r->name,
                     td_error_last());
        else
            snprintf(message, sizeof message,
                     "relay %s: its encode cannot send the event after %lld yet: %.250s", r->name,
                     (long long)r->read_pos, r->encode_why);
        td_broker__set_error(&r->counters, message);
        td_broker__sleep(&r->stop, STORE_RETRY_MS);
    }
    if (r->publish_status != AMQP_STATUS_OK)
        return fail(r, "publish", NULL, r->publish_status);
    advance(r);
    return 0;
}

/* Marks tag (and with multiple, every tag before it) confirmed. */
static void confirm(td_relay *r, uint64_t tag, bool multiple)
{
    int64_t n = 0;
    for (uint64_t t = multiple ? r->first_tag : tag; t <= tag && t < r->first_tag + r->count; t++) {
        pending *p = &r->window[(r->first + (t - r->first_tag)) % r->max_in_flight];
        n += !p->confirmed;
        p->confirmed = true;
    }
    pthread_mutex_lock(&r->counters.lock);
    r->counters.stats.confirmed += n;
    pthread_mutex_unlock(&r->counters.lock);
    td_broker__count(r->m.confirmed, r->name, (double)n);
}

static int on_frame(td_relay *r, const amqp_frame_t *frame)
{
    if (frame->frame_type != AMQP_FRAME_METHOD)
        return 0;
    const amqp_method_t *m = &frame->payload.method;
    if (m->id == AMQP_BASIC_ACK_METHOD) {
        const amqp_basic_ack_t *ack = m->decoded;
        confirm(r, ack->delivery_tag, ack->multiple);
        return 0;
    }
    if (m->id == AMQP_BASIC_NACK_METHOD) {
        const amqp_basic_nack_t *nack = m->decoded;
        pthread_mutex_lock(&r->counters.lock);
        r->counters.stats.nacked++;
        pthread_mutex_unlock(&r->counters.lock);
        td_broker__count(r->m.nacked, r->name, 1);
        char message[160];
        snprintf(message, sizeof message,
                 "relay %s: the broker refused message %llu; publishing again from the checkpoint",
                 r->name, (unsigned long long)nack->delivery_tag);
        td_broker__set_error(&r->counters, message);
        td_log(TD_LOG_WARN, NULL, "%s", message);
        return TD_EIO;
    }
    if (m->id == AMQP_CHANNEL_CLOSE_METHOD || m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_rpc_reply_t reply = {AMQP_RESPONSE_SERVER_EXCEPTION, *m, 0};
        return fail(r, "closed", &reply, 0);
    }
    return 0;
}

/* Reads what the broker sent: waits up to wait_ms for the first frame. */
static int read_confirms(td_relay *r, unsigned wait_ms)
{
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    int error = 0;
    while (error == 0) {
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(r->amqp.conn, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT)
            break;
        if (status != AMQP_STATUS_OK)
            return fail(r, "waiting for confirms", NULL, status);
        error = on_frame(r, &frame);
        tv = (struct timeval){0, 0};
    }
    amqp_maybe_release_buffers(r->amqp.conn);
    if (error == 0)
        advance(r);
    return error;
}

/* One round: publish what fits, take confirms, save the checkpoint. */
static int step(td_relay *r)
{
    int64_t head = td_store_known_head(r->store);
    int error = 0;
    if (r->count < r->max_in_flight && r->read_pos < head)
        error = publish_batch(r);
    bool more = r->count < r->max_in_flight && r->read_pos < td_store_known_head(r->store);
    if (error == 0 && r->count == 0 && !more) {
        td_store_wait(r->store, r->read_pos, 100, &head); /* idle */
        error = read_confirms(r, 0);                      /* heartbeats */
    } else if (error == 0) {
        error = read_confirms(r, more ? 0 : 50);
    }
    save_checkpoint(r, false);
    return error;
}

static int setup(td_relay *r, char *err, size_t size)
{
    int error = td_amqp__connect(&r->amqp, &r->conf, err, size);
    if (error < 0)
        return error;
    amqp_confirm_select(r->amqp.conn, TD_BROKER_CHANNEL);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(r->amqp.conn);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[200];
        td_amqp__describe(why, sizeof why, &reply, 0);
        snprintf(err, size, "confirm.select: %s", why);
        td_amqp__close(&r->amqp);
        return TD_EIO;
    }
    pthread_mutex_lock(&r->lock);
    r->read_pos = r->checkpoint;
    pthread_mutex_unlock(&r->lock);
    r->first = r->count = 0;
    r->first_tag = r->next_tag = 1;
    return 0;
}

static void disconnect(td_relay *r)
{
    td_amqp__close(&r->amqp);
    r->count = 0;
    td_broker__set_connected(&r->counters, false);
}

static void drain(td_relay *r)
{
    td_time until = td_time_now() + DRAIN_MS * 1000;
    while (r->amqp.open && r->count > 0 && td_time_now() < until)
        if (read_confirms(r, 50) < 0)
            break;
}

/* A standby relay's turn: tries the name's lock; once it has it, relays
 * from the checkpoint as saved by the last holder. < 0 while it waits. */
static int stand_by(td_relay *r)
{
    int error = take_lock(r, 0);
    if (error == 0)
        error = load_checkpoint(r);
    if (error == 0) {
        pthread_mutex_lock(&r->lock);
        r->read_pos = r->checkpoint;
        pthread_mutex_unlock(&r->lock);
        r->lock_checked_at = td_time_now();
        return 0;
    }
    char message[400];
    snprintf(message, sizeof message, "standing by: %.300s", td_error_last());
    td_broker__set_error(&r->counters, message);
    let_go(r);
    td_broker__sleep(&r->stop, LOCK_CHECK_MS);
    return error;
}

static void *relay_main(void *arg)
{
    td_relay *r = arg;
    unsigned attempt = 0;
    char err[256];
    td_thread__name("b/", r->name);
    while (!atomic_load(&r->stop)) {
        if (!r->named && r->standby && stand_by(r) < 0)
            continue;
        if (keep_lock(r) == TD_EBUSY) {
            td_broker__set_error(&r->counters, td_error_last());
            disconnect(r); /* publishes nothing more, and saves no checkpoint */
            if (r->standby)
                continue;
            pthread_mutex_lock(&r->lock);
            r->error = TD_EBUSY;
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        if (!r->amqp.open) {
            if (setup(r, err, sizeof err) < 0) {
                char message[600];
                snprintf(message, sizeof message, "relay %s: %.255s (%.255s)", r->name, err,
                         r->conf.redacted);
                td_broker__set_error(&r->counters, message);
                td_broker__sleep(&r->stop, td_broker__backoff_ms(&r->conf, attempt++));
                continue;
            }
            attempt = 0;
            td_broker__set_connected(&r->counters, true);
        }
        if (step(r) < 0)
            disconnect(r);
    }
    drain(r);
    if (r->named) /* a relay standing by has nothing of its own to save */
        save_checkpoint(r, true);
    disconnect(r);
    return NULL;
}

static void collect(td_metrics *registry, void *payload)
{
    td_relay *r = payload;
    td_broker_stats s;
    (void)registry;
    td_relay_stats(r, &s);
    const char *labels[1] = {r->name};
    td_metric_set(r->m.lag_events, labels, (double)s.lag_events);
    td_metric_set(r->m.lag_seconds, labels, s.lag_seconds);
    td_metric_set(r->m.connected, labels, s.connected);
}

static int copy_sources(td_relay *r, const char *const *sources)
{
    size_t n = 0;
    if (sources == NULL)
        return 0;
    while (sources[n])
        n++;
    if ((r->sources = td_calloc(n + 1, sizeof *r->sources)) == NULL)
        return td_error__oom();
    for (size_t i = 0; i < n; i++) {
        int error = td_source_check(sources[i]);
        if (error < 0)
            return error;
        if ((r->sources[i] = td_strdup(sources[i])) == NULL)
            return td_error__oom();
    }
    return 0;
}

int td_relay_new(td_relay **out, td_store *store, const td_relay_options *opts)
{
    TD_REQUIRE(out);
    *out = NULL;
    TD_REQUIRE(store && opts);
    if (store == NULL || opts == NULL || opts->version < 1 ||
        opts->version > TD_RELAY_OPTIONS_VERSION)
        return td_error__set(TD_EINVAL, "td_relay_new: no store, or options of another version");
    int error = td_broker__check_name("relay", opts->name, TD_BROKER_NAME_MAX);
    if (error < 0)
        return error;
    td_relay *r = td_calloc(1, sizeof *r);
    if (r == NULL)
        return td_error__oom();
    snprintf(r->name, sizeof r->name, "%s", opts->name);
    r->store = store;
    r->max_in_flight = opts->max_in_flight ? opts->max_in_flight : 1024;
    r->batch_size = opts->batch_size ? opts->batch_size : 512;
    r->standby = opts->version >= 2 && opts->standby; /* past a version 1 struct's end */
    if (opts->version >= 3) {
        r->encode = opts->encode;
        r->encode_payload = opts->encode_payload;
    }
    td_broker__counters_init(&r->counters);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    atomic_init(&r->stop, false);
    error = td_broker__conf_init(&r->conf, &opts->broker);
    if (error == 0)
        error = copy_sources(r, opts->sources);
    if (error == 0 && (r->window = td_calloc(r->max_in_flight, sizeof *r->window)) == NULL)
        error = td_error__oom();
    if (error == 0)
        error = load_checkpoint(r);
    if (error == 0)
        error = td_broker__metrics_relay(&r->m, r->conf.metrics, r->name);
    if (error == 0 && r->conf.metrics)
        error = td_metrics_on_collect(r->conf.metrics, collect, r);
    if (error < 0) {
        td_relay_free(r);
        return error;
    }
    *out = r;
    return 0;
}

/* The checkpoint document of relay `name`: its position, 0 without one. */
static int read_checkpoint(td_store *store, const char *name, int64_t *position)
{
    char *text = NULL;
    size_t len = 0;
    *position = 0;
    int error = td_store_doc_get(store, CHECKPOINTS, name, &text, &len);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    json_t *doc = json_loadb(text, len, 0, NULL);
    json_t *pos = json_object_get(doc, "position");
    if (json_is_integer(pos) && json_integer_value(pos) >= 0)
        *position = json_integer_value(pos);
    else
        error = td_error__set(TD_ECORRUPT, "relay '%s': its checkpoint is not readable", name);
    json_decref(doc);
    td_free(text);
    return error;
}

typedef struct rewind_args {
    const char *name;
    int64_t position;
} rewind_args;

static int put_position(td_txn *txn, void *payload)
{
    const rewind_args *a = payload;
    char json[64];
    snprintf(json, sizeof json, "{\"position\":%lld}", (long long)a->position);
    return td_txn_doc_put(txn, CHECKPOINTS, a->name, json, strlen(json));
}

int td_relay_rewind(td_store *store, const char *name, int64_t position, int64_t *was)
{
    TD_REQUIRE(store && name);
    int error = td_broker__check_name("relay", name, TD_BROKER_NAME_MAX);
    if (error < 0)
        return error;
    if (position < 0)
        return td_error__set(TD_EINVAL, "relay '%s': a position is 0 or more", name);
    char lock[8 + TD_BROKER_NAME_MAX];
    snprintf(lock, sizeof lock, "relay-%s", name);
    td_store_lock *held = NULL;
    error = td_store__lock(store, lock, &held);
    if (error == TD_EBUSY)
        return td_error__set(TD_EBUSY, "relay '%s' is running (it holds %s): stop it first", name,
                             lock);
    if (error < 0)
        return error;
    int64_t checkpoint = 0; /* read under the lock: no relay moves it meanwhile */
    error = read_checkpoint(store, name, &checkpoint);
    if (error == 0 && was)
        *was = checkpoint;
    if (error == 0 && position > checkpoint)
        error = td_error__set(TD_EINVAL,
                              "relay '%s': its checkpoint is at %lld; it may only be moved back "
                              "(forward would skip events the broker never confirmed)",
                              name, (long long)checkpoint);
    rewind_args a = {name, position};
    if (error == 0 && position < checkpoint && (error = td_transact(store, put_position, &a)) == 0)
        td_log__emit(TD_LOG_WARN, name, NULL,
                     "relay %s rewound from %lld to %lld: it publishes events %lld..%lld again",
                     name, (long long)checkpoint, (long long)position, (long long)position + 1,
                     (long long)checkpoint);
    td_store__unlock(store, held);
    return error;
}

int td_relay_start(td_relay *r)
{
    if (r == NULL)
        return td_error__set(TD_EINVAL, "td_relay_start: no relay");
    if (r->running)
        return 0;
    atomic_store(&r->stop, false);
    int error = take_lock(r, LOCK_WAIT_MS);
    if (error == 0) /* another process may have moved it while it ran */
        error = load_checkpoint(r);
    if (error == TD_EBUSY && r->standby)
        error = 0; /* the thread waits for the name */
    if (error < 0) {
        let_go(r);
        return error;
    }
    r->error = 0;
    r->lock_checked_at = td_time_now();
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        let_go(r);
        return td_error__set(TD_ERROR, "relay %s: cannot start its thread", r->name);
    }
    r->running = true;
    return 0;
}

int td_relay_stop(td_relay *r)
{
    if (r == NULL || !r->running)
        return 0;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    r->running = false;
    let_go(r); /* after the last checkpoint */
    pthread_mutex_lock(&r->lock);
    int error = r->error;
    pthread_mutex_unlock(&r->lock);
    if (error == TD_EBUSY)
        return td_error__set(error, "relay %s stopped: another process runs it", r->name);
    return error < 0 ? td_error__set(error, "relay %s: its checkpoint could not be saved", r->name)
                     : 0;
}

void td_relay_free(td_relay *r)
{
    if (r == NULL)
        return;
    td_relay_stop(r);
    if (r->conf.metrics)
        td_metrics_remove_collector(r->conf.metrics, collect, r);
    td_broker__conf_dispose(&r->conf);
    td_broker__counters_dispose(&r->counters);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    for (char **s = r->sources; s && *s; s++)
        td_free(*s);
    td_free(r->sources);
    td_free(r->window);
    td_free(r);
}

int td_relay_wait_until(td_relay *r, int64_t position, int timeout_ms)
{
    TD_REQUIRE(r);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    while (r->checkpoint < position && rc == 0)
        rc = pthread_cond_timedwait(&r->cond, &r->lock, &deadline);
    int64_t reached = r->checkpoint;
    pthread_mutex_unlock(&r->lock);
    if (reached >= position)
        return 0;
    return td_error__set(TD_EBUSY, "relay %s: confirmed up to %lld, not %lld within %d ms", r->name,
                         (long long)reached, (long long)position, timeout_ms);
}

void td_relay_stats(td_relay *r, td_broker_stats *out)
{
    td_broker__snapshot(&r->counters, out);
    pthread_mutex_lock(&r->lock);
    out->checkpoint = r->checkpoint;
    pthread_mutex_unlock(&r->lock);
    int64_t head = td_store_known_head(r->store);
    out->lag_events = head > out->checkpoint ? head - out->checkpoint : 0;
}
