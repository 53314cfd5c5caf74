/*
 * eager.c: a transactional subscription's eager mode (subscription.h).
 *
 * While the subscription runs it observes the store's appends (see
 * store/observers.h): on the writer thread, inside the appending unit, after
 * the append. For each event it matches, it decides whether the event is the
 * next one of its stream for this subscription:
 *
 *   progress mark ≥ version            done already: nothing to do
 *   mark = version - 1                 next: handle it now
 *   a gap of at most GAP_MAX versions  next if none of them matches (they are
 *                                      events the subscription never takes)
 *   otherwise                          not now: the reader's catch-up does it
 *
 * Handling it now is the transactional delivery (deliver.c) under a savepoint
 * of its own: its writes and the new mark commit with the event, and a
 * failure rolls back only the attempt. The catch-up still reads every event;
 * td_eager__done lets a lane drop the ones the mark shows done without a
 * unit of work. Per-stream order holds because an event is handled here only
 * when every earlier event of its stream that the subscription takes is done,
 * and the mark is read in the same transaction that writes it.
 */
#include <string.h>

#include "bus/eager.h"
#include "bus/deliver.h"
#include "bus/sub_int.h"
#include "core/error.h"
#include "core/log_int.h"
#include "core/lock.h"
#include "store/observers.h"

#define GAP_MAX 16

static bool takes(td_subscription *sub, const td_event *ev)
{
    return td_match_event(&sub->opts.match, ev) && td_sub__accepts(sub, ev);
}

typedef struct gap_scan {
    td_subscription *sub;
    int64_t before; /* versions below this one */
    bool taken;     /* one of them is an event the subscription takes */
} gap_scan;

static int scan_gap(const td_event *ev, void *payload)
{
    gap_scan *g = payload;
    if (ev->version < g->before && takes(g->sub, ev))
        g->taken = true;
    return g->taken || ev->version + 1 >= g->before ? 1 : 0; /* 1 stops the read */
}

static int observe(td_txn *txn, const td_event *events, size_t count, void *payload)
{
    td_subscription *sub = payload;
    int error = 0;
    for (size_t i = 0; i < count && error == 0; i++) {
        const td_event *ev = &events[i];
        int64_t mark = 0;
        if (!takes(sub, ev))
            continue;
        if (td_state__progress_get(txn, sub->name, ev->stream, &mark) < 0 || mark >= ev->version ||
            ev->version - 1 - mark > GAP_MAX)
            continue; /* the catch-up decides */
        if (mark < ev->version - 1) {
            gap_scan g = {sub, ev->version, false};
            int rc = td_txn_read_stream(txn, ev->stream, mark + 1, (size_t)(ev->version - 1 - mark),
                                        scan_gap, &g);
            if ((rc < 0 && rc != TD_ENOTFOUND) || g.taken)
                continue;
        }
        error = td_deliver__eager(txn, sub, ev, mark);
    }
    return error;
}

int td_eager__start(td_subscription *sub)
{
    int error = td_store__observe(sub->store, observe, sub);
    sub->eager.started = error == 0;
    return error;
}

int td_eager__stop(td_subscription *sub)
{
    if (!sub->eager.started)
        return 0;
    int error = td_store__unobserve(sub->store, observe, sub);
    if (error == 0)
        sub->eager.started = false;
    return error;
}

void td_eager__note_failure(td_subscription *sub, const td_uuid *id)
{
    pthread_mutex_lock(&sub->lock);
    sub->eager.failed[sub->eager.failed_next] = *id;
    sub->eager.failed_next = (sub->eager.failed_next + 1) % TD_EAGER_FAILED_MAX;
    if (sub->eager.failed_count < TD_EAGER_FAILED_MAX)
        sub->eager.failed_count++;
    pthread_mutex_unlock(&sub->lock);
}

/* Lock held by the caller (the reader queues events under it). */
bool td_eager__take_failure(td_subscription *sub, const td_uuid *id)
{
    TD_ASSERT_HELD(&sub->lock);
    if (sub->eager.failed_count == 0)
        return false;
    for (size_t i = 0; i < TD_EAGER_FAILED_MAX; i++)
        if (memcmp(&sub->eager.failed[i], id, sizeof *id) == 0 && !td_uuid_is_nil(id)) {
            memset(&sub->eager.failed[i], 0, sizeof sub->eager.failed[i]);
            return true;
        }
    return false;
}

bool td_eager__done(td_subscription *sub, const item *it)
{
    int64_t mark = 0;
    if (!sub->opts.eager || it->attempts > 0 || it->has_retry_doc || it->dead_letter[0] ||
        it->replay)
        return false;
    return td_state__progress_read(sub->store, sub->name, it->event->stream, &mark) == 0 &&
           mark >= it->event->version;
}
