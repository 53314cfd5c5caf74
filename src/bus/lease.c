/*
 * lease.c: one process at a time runs a subscription name.
 *
 * A running subscription holds a lease, a document in tidings_leases under
 * its name: {"owner","pid","host","expires_at"}. Starting takes it when
 * there is none, when it has expired, or when its holder was a process of
 * this host that is gone (so a restart after a crash takes over at once);
 * otherwise the start fails with TD_EBUSY, naming the holder. The reader
 * thread renews it every LEASE_RENEW_US; a holder that finds the lease taken
 * by another (it was stalled past LEASE_TTL_US) stops handing out events
 * and reports TD_EBUSY. Stopping releases it. Transactional handlers are
 * exactly-once even without the lease (progress marks); the lease is what
 * keeps other handlers from running twice in two processes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define LEASE_TTL_US   (15 * 1000000LL)
#define LEASE_RENEW_US (3 * 1000000LL)

typedef struct lease_op {
    td_subscription *sub;
    bool release;
    bool lost; /* renewing: another process holds it */
} lease_op;

/* Whether the holder named in doc may keep the lease against us. */
static bool held_by_other(td_subscription *sub, json_t *doc, char *why, size_t why_size)
{
    const char *owner = json_string_value(json_object_get(doc, "owner"));
    const char *host = json_string_value(json_object_get(doc, "host"));
    json_int_t pid = json_integer_value(json_object_get(doc, "pid"));
    json_int_t expires = json_integer_value(json_object_get(doc, "expires_at"));
    char here[256] = "";
    if (owner == NULL || strcmp(owner, sub->lease_owner) == 0)
        return false;
    if (expires < td_time_now())
        return false; /* expired */
    if (host && gethostname(here, sizeof here - 1) == 0 && strcmp(host, here) == 0 && pid > 0 &&
        kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return false; /* its process is gone */
    char until[TD_TIME_STR_LEN + 1] = "?";
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
    json_t *doc = text ? json_loads(text, 0, &err) : NULL;
    td_free(text);
    bool other = doc && held_by_other(sub, doc, why, sizeof why);
    json_decref(doc);
    if (op->release)
        return other || error == TD_ENOTFOUND ? 0
                                              : td_txn_doc_delete(txn, TD_COLL_LEASES, sub->name);
    if (other && sub->lease_held) {
        op->lost = true;
        return 0;
    }
    if (other)
        return td_error__set(TD_EBUSY, "subscription '%s' runs in another process: %s", sub->name,
                             why);
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    json_t *lease =
        json_pack("{s:s,s:I,s:s,s:I}", "owner", sub->lease_owner, "pid", (json_int_t)getpid(),
                  "host", host, "expires_at", (json_int_t)(td_time_now() + LEASE_TTL_US));
    error = lease ? td_txn_doc_put_json(txn, TD_COLL_LEASES, sub->name, lease) : td_error__oom();
    json_decref(lease);
    return error;
}

int td_lease__take(td_subscription *sub)
{
    td_uuid id;
    int error = td_uuid_v7(&id);
    if (error < 0)
        return error;
    td_uuid_format(sub->lease_owner, &id);
    lease_op op = {sub, false, false};
    if ((error = td_transact(sub->store, lease_unit, &op)) == 0) {
        sub->lease_held = true;
        sub->lease_renewed_us = td_sched__monotonic_us();
    }
    return error;
}

int td_lease__renew(td_subscription *sub)
{
    int64_t now = td_sched__monotonic_us();
    if (!sub->lease_held || now - sub->lease_renewed_us < LEASE_RENEW_US)
        return 0;
    lease_op op = {sub, false, false};
    int error = td_transact(sub->store, lease_unit, &op);
    if (error == 0 && op.lost)
        error = td_error__set(TD_EBUSY,
                              "subscription '%s' lost its lease to another process (this one "
                              "was stalled for over %lld s); it stops",
                              sub->name, LEASE_TTL_US / 1000000);
    if (error == 0)
        sub->lease_renewed_us = now;
    return error;
}

void td_lease__release(td_subscription *sub)
{
    if (!sub->lease_held)
        return;
    lease_op op = {sub, true, false};
    (void)td_transact(sub->store, lease_unit, &op); /* or it expires */
    sub->lease_held = false;
}
