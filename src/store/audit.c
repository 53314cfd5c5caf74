/*
 * audit.c: verifying the audit chain (see tidings/audit.h).
 *
 * Walks the events of a range in position order, recomputing each link from
 * the previous event's stored link and the event's stored bytes. An edited
 * event fails at its own position; if its link was forged too, the next
 * event fails, since its link was made from the original.
 */
#include <string.h>

#include "core/error.h"
#include "store/store_int.h"
#include "tidings/audit.h"

typedef struct walk {
    uint8_t prev[TD_HASH_LEN];
    int64_t to;
    int64_t first_bad;
    int64_t checked;
} walk;

static int check_one(const td_event *ev, void *payload)
{
    walk *w = payload;
    uint8_t expected[TD_HASH_LEN];
    if (w->to && ev->position > w->to)
        return 1;
    td_event_hash(expected, w->prev, ev);
    w->checked++;
    if (memcmp(expected, ev->hash, TD_HASH_LEN) != 0) {
        w->first_bad = ev->position;
        return 1;
    }
    memcpy(w->prev, ev->hash, TD_HASH_LEN);
    return 0;
}

int td_store_audit_verify(td_store *store, int64_t from, int64_t to, int64_t *first_bad,
                          int64_t *checked)
{
    TD_REQUIRE(store);
    td_conn *conn;
    walk w = {{0}, to, 0, 0};
    td_read_query q = TD_READ_QUERY_INIT;
    if (from < 0 || to < 0 || (to && to < from))
        return td_error__set(TD_EINVAL, "invalid audit range %lld..%lld", (long long)from,
                             (long long)to);
    q.after_position = from > 0 ? from - 1 : 0;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->hash_before(conn, from > 0 ? from : 1, w.prev);
    if (error == 0)
        error = store->backend->read(conn, &q, check_one, &w);
    td_readers__release(store->readers, conn);
    *first_bad = w.first_bad;
    if (checked)
        *checked = w.checked;
    if (error == 0 && w.first_bad)
        error = td_error__set(TD_ECORRUPT, "the audit chain breaks at position %lld",
                              (long long)w.first_bad);
    return error;
}

int td_store__audit_tail(td_store *store, td_conn *conn, int64_t links)
{
    int64_t head = 0;
    td_read_query q = TD_READ_QUERY_INIT;
    int error = store->backend->head(conn, &head);
    if (error < 0 || head == 0)
        return error;
    int64_t from = head > links ? head - links + 1 : 1;
    walk w = {{0}, head, 0, 0};
    q.after_position = from - 1;
    if ((error = store->backend->hash_before(conn, from, w.prev)) == 0)
        error = store->backend->read(conn, &q, check_one, &w);
    if (error == 0 && w.first_bad)
        error = td_error__set(TD_ECORRUPT,
                              "the audit chain breaks at position %lld (its bytes or its link "
                              "were changed)",
                              (long long)w.first_bad);
    return error;
}

int td_store_hash_before(td_store *store, int64_t position, uint8_t out[TD_HASH_LEN])
{
    TD_REQUIRE(store);
    td_conn *conn;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->hash_before(conn, position, out);
    td_readers__release(store->readers, conn);
    return error;
}
