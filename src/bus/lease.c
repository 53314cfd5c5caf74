/*
 * lease.c: one process at a time runs a subscription name.
 *
 * A running subscription holds a lease, a document in tidings_leases under
 * its name: {"owner","pid","host","expires_at"}, and, on its host, a lock
 * beside the store (td_store__lock, "lease-NAME") that the kernel releases
 * when the process dies. Starting takes the lock first, then the lease:
 *
 *   lock held by another ───────────────────────────▶ TD_EBUSY (a live
 *     │ got it                                          holder on this host)
 *     ▼
 *   lease: none, ours, or its holder on this host ──▶ taken (that holder is
 *     │ held on another host                          dead: it lost the lock)
 *     ├── expired ──────────────────────────────────▶ taken
 *     └── not expired ──────────────────────────────▶ TD_EBUSY, lock let go
 *
 * So a restart right after a crash takes over at once (within LOCK_WAIT_US
 * of the kill), even while the dead process is a zombie not yet reaped or
 * its pid is in use again, and a
 * holder on this host that is alive, however slow, keeps its lease. Across
 * hosts (a store several hosts share) only the expiry tells: the reader
 * thread renews the lease every LEASE_RENEW_US, and a holder that finds it
 * taken by another (it was stalled past LEASE_TTL_US) stops handing out
 * events and reports TD_EBUSY. A lock a server keeps (PostgreSQL's advisory
 * locks) can also go while its holder lives on, with the server session
 * that held it (a restart, a cut connection): there a free lock proves a
 * holder on this host dead only when its process is gone as well (or a
 * zombie), so a live holder's lease is not taken before it expires; each
 * renewal checks the lock first and takes it again, and a holder that
 * finds it taken by another (it was stalled past its lease) stops as one
 * whose lease was taken would. Stopping releases the lease, then the lock.
 * Transactional handlers are exactly-once even without the lease (progress
 * marks); the lease is what keeps other handlers from running twice in two
 * processes.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/lease.h"
#include "bus/scheduler.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define LEASE_TTL_US   (15 * 1000000LL)
#define LEASE_RENEW_US (3 * 1000000LL)
#define LEASE_RETRY_US (1000000LL) /* after a renewal failed (a full disk, say) */
/* A killed process lets go of its files only once all its threads have
 * died, a little after its main thread shows as a zombie (and before its
 * parent hears of its death): a start waits this long for a lock held by
 * another process before it calls that holder alive. */
#define LOCK_WAIT_US (1000 * 1000LL)
#define LOCK_POLL_US (5 * 1000)

typedef struct lease_op {
    td_subscription *sub;
    bool release;
    bool lost;      /* renewing: another process holds it */
    bool lock_busy; /* taking: a live holder on this host has the lock */
} lease_op;

/* Whether process pid on this host runs (a zombie does not). */
static bool process_lives(pid_t pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (f == NULL)
        return false;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* the name may hold spaces and parentheses */
    return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

/* Whether the holder named in doc may keep the lease against us. A holder
 * on this host is alive when it has the lock (and, with a server's locks,
 * while its process runs); elsewhere, while its lease has not expired. */
static bool held_by_other(const lease_op *op, json_t *doc, char *why, size_t why_size)
{
    const char *owner = json_string_value(json_object_get(doc, "owner"));
    const char *host = json_string_value(json_object_get(doc, "host"));
    json_int_t pid = json_integer_value(json_object_get(doc, "pid"));
    json_int_t expires = json_integer_value(json_object_get(doc, "expires_at"));
    char here[256] = "", until[TD_TIME_STR_LEN + 1] = "?";
    bool ours = owner && strcmp(owner, op->sub->lease.owner) == 0;
    bool this_host = host && gethostname(here, sizeof here - 1) == 0 && strcmp(host, here) == 0;
    if (op->lock_busy) {
        if (owner && !ours && this_host)
            snprintf(why, why_size, "process %lld on this host holds it", (long long)pid);
        else
            snprintf(why, why_size, "a live process on this host holds its lock");
        return true;
    }
    /* A holder here whose lock we got is dead, where a lock goes only with
     * its holder (the kernel's); a server's goes with a cut session too,
     * so there the holder must also be gone from this host. One in this
     * process is not running it (a lease left by a release that failed);
     * were it, it would find its lock taken at its next renewal. */
    bool dead_here = this_host && (!td_store__locks_by_session(op->sub->store) || pid == getpid() ||
                                   !process_lives((pid_t)pid));
    if (owner == NULL || ours || dead_here || expires < td_time_now())
        return false; /* none, ours, its holder here is dead, expired */
    (void)td_time_format(until, expires);
    snprintf(why, why_size, "process %lld on %s holds it (lease until %s)", (long long)pid,
             host ? host : "?", until);
    return true;
}

static int lease_unit(td_txn *txn, void *payload)
{
    lease_op *op = payload;
    td_subscription *sub = op->sub;
    char *text = NULL, why[300], host[256] = "";
    json_error_t err;
    int error = td_txn_doc_get(txn, TD_COLL_LEASES, sub->name, &text, NULL);
    if (error < 0 && error != TD_ENOTFOUND)
        return error;
    bool oom = false;
    json_t *doc = text ? td_json__loadb(text, strlen(text), 0, &err, &oom) : NULL;
    td_free(text);
    if (oom) /* not "no lease": another holder's lease must not be taken for want of memory */
        return td_error__oom();
    bool other = (doc || op->lock_busy) && held_by_other(op, doc, why, sizeof why);
    json_decref(doc);
    if (op->release)
        return other || error == TD_ENOTFOUND ? 0
                                              : td_txn_doc_delete(txn, TD_COLL_LEASES, sub->name);
    if (other && sub->lease.held) {
        op->lost = true;
        return 0;
    }
    if (other)
        return td_error__set(TD_EBUSY, "subscription '%s' runs in another process: %s", sub->name,
                             why);
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    json_t *lease =
        json_pack("{s:s,s:I,s:s,s:I,s:s*}", "owner", sub->lease.owner, "pid", (json_int_t)getpid(),
                  "host", host, "expires_at", (json_int_t)(td_time_now() + LEASE_TTL_US),
                  "instance", sub->lease.instance);
    error = lease ? td_txn_doc_put_json(txn, TD_COLL_LEASES, sub->name, lease) : td_error__oom();
    json_decref(lease);
    return error;
}

static void lease_lock_name(const td_subscription *sub, char *out, size_t size)
{
    snprintf(out, size, "lease-%s", sub->name);
}

int td_lease__take(td_subscription *sub, bool wait_for_lock)
{
    td_uuid id;
    char lock_name[8 + TD_SUBSCRIPTION_NAME_MAX];
    td_store_lock *lock = NULL;
    int error = td_uuid_v7(&id);
    if (error < 0)
        return error;
    td_uuid_format(sub->lease.owner, &id);
    lease_lock_name(sub, lock_name, sizeof lock_name);
    lease_op op = {sub, false, false, false};
    int64_t until = td_sched__monotonic_us() + (wait_for_lock ? LOCK_WAIT_US : 0);
    while ((error = td_store__lock(sub->store, lock_name, &lock)) == TD_EBUSY &&
           td_sched__monotonic_us() < until)
        usleep(LOCK_POLL_US);
    if (error == TD_EBUSY && !wait_for_lock) /* a live holder here: no need to ask who */
        return td_error__set(TD_EBUSY, "subscription '%s' runs in another process (its lock)",
                             sub->name);
    if (error == TD_EBUSY)
        op.lock_busy = true;
    else if (error < 0)
        return error;
    if ((error = td_transact(sub->store, lease_unit, &op)) == 0) {
        sub->lease.held = true;
        sub->lease.lock = lock;
        sub->lease.renewed_us = td_sched__monotonic_us();
    } else {
        td_store__unlock(sub->store, lock);
    }
    return error;
}

/* The lease's lock still ours, or taken again if the server let it go with
 * the session that held it. TD_EBUSY (the lease is lost) if another process
 * has taken it meanwhile; another error if it cannot be told now. */
static int keep_lock(td_subscription *sub)
{
    char lock_name[8 + TD_SUBSCRIPTION_NAME_MAX];
    lease_lock_name(sub, lock_name, sizeof lock_name);
    int error = td_store__lock_keep(sub->store, lock_name, &sub->lease.lock);
    if (error == TD_EBUSY)
        return td_error__set(TD_EBUSY,
                             "subscription '%s' lost its lock with the database session that "
                             "held it, and another process has taken it; it stops",
                             sub->name);
    return error;
}

int td_lease__renew(td_subscription *sub)
{
    int64_t now = td_sched__monotonic_us();
    if (!sub->lease.held || now - sub->lease.renewed_us < LEASE_RENEW_US)
        return 0;
    int error = keep_lock(sub);
    if (error == TD_EBUSY)
        return error;
    if (error < 0) { /* the server is away: tried again soon; the lease still runs */
        sub->lease.renewed_us = now - LEASE_RENEW_US + LEASE_RETRY_US;
        return error; /* TD_EUNAVAILABLE, say: the reader's td_sub__fail tells */
    }
    lease_op op = {sub, false, false, false};
    error = td_transact(sub->store, lease_unit, &op);
    if (error == 0 && op.lost)
        return td_error__set(TD_EBUSY,
                             "subscription '%s' lost its lease to another process (this one "
                             "was stalled for over %lld s); it stops",
                             sub->name, LEASE_TTL_US / 1000000);
    /* A renewal that failed (the store is full, say) is tried again soon;
     * meanwhile the lock keeps the name on this host. TD_EBUSY from the
     * store (its lock timed out) is not the lease lost. */
    sub->lease.renewed_us = error == 0 ? now : now - LEASE_RENEW_US + LEASE_RETRY_US;
    return error == TD_EBUSY ? TD_ERROR : error;
}

void td_lease__release(td_subscription *sub)
{
    if (!sub->lease.held)
        return;
    lease_op op = {sub, true, false, false};
    (void)td_transact(sub->store, lease_unit, &op); /* or it expires */
    td_store__unlock(sub->store, sub->lease.lock);  /* after: a taker then finds no lease */
    sub->lease.lock = NULL;
    sub->lease.held = false;
}

int td_lease__vacant(td_store *store, const char *name, bool *vacant)
{
    char *text = NULL;
    int error = td_store_doc_get(store, TD_COLL_LEASES, name, &text, NULL);
    *vacant = error == TD_ENOTFOUND;
    if (error < 0)
        return *vacant ? 0 : error;
    json_t *doc = json_loads(text, 0, NULL);
    td_free(text);
    *vacant = json_integer_value(json_object_get(doc, "expires_at")) < td_time_now();
    json_decref(doc);
    return 0;
}
