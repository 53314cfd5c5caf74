/*
 * pg_watch.c: wake-ups through LISTEN/NOTIFY for the PostgreSQL backend.
 *
 * Every commit that added events sends NOTIFY on the store's channel
 * (tidings_OID) with the head it reached, in the same transaction (pg.c):
 * PostgreSQL delivers it once the commit is visible, in commit order. A
 * watch connection LISTENs on the channel and waits on its socket, so a
 * store's td_store_wait learns of other processes' commits within a round
 * trip instead of a poll interval. The store starts one watch per handle
 * when something first waits (store.c), and polls only while it has none.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/pg_int.h"

int td_pg__watch_open(td_conn **out, const char *target, const td_store_options *opts)
{
    char sql[80];
    td_conn *conn = NULL;
    int error = td_pg__open(&conn, target, opts, false);
    if (error < 0)
        return error;
    snprintf(sql, sizeof sql, "LISTEN %s", conn->channel);
    if ((error = td_pg__exec(conn, sql, "listening for commits", td_pg__deadline_ms(conn), NULL)) <
        0) {
        td_pg__close(conn);
        return error;
    }
    *out = conn;
    return 0;
}

/* Takes the notifications libpq holds: 1 and the highest head, or 0. */
static int drain(td_conn *conn, int64_t *head)
{
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(conn->pg)) != NULL) {
        int64_t h = strtoll(n->extra, NULL, 10);
        if (!got || h > *head)
            *head = h;
        got = 1;
        PQfreemem(n);
    }
    return got;
}

int td_pg__watch_wait(td_conn *conn, int wake_fd, int timeout_ms, int64_t *head)
{
    if (conn->pg == NULL || PQstatus(conn->pg) != CONNECTION_OK)
        return td_error__set(TD_EUNAVAILABLE, "the watch connection is lost");
    int got = drain(conn, head);
    if (got)
        return got;
    struct pollfd p[2] = {{.fd = PQsocket(conn->pg), .events = POLLIN},
                          {.fd = wake_fd, .events = POLLIN}};
    int n = poll(p, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : td_error__set(TD_EIO, "poll: %s", strerror(errno));
    if (n == 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return 0;
    if (!PQconsumeInput(conn->pg) || PQstatus(conn->pg) != CONNECTION_OK)
        return td_error__set(TD_EUNAVAILABLE, "the watch connection is lost: %s",
                             PQerrorMessage(conn->pg));
    return drain(conn, head);
}
