/*
 * balance.h: sharing a service's subscriptions and sagas between its live
 * instances.
 *
 * Each instance (a process, or any number of balancers on one store) makes
 * a balancer, adds every part it could run (the partitions of each
 * partitioned subscription or saga, and whole ones), and calls
 * td_balancer_tick about once a second from the thread that controls those
 * parts. The balancer then starts and stops them so that every part runs
 * in exactly one live instance, and each instance runs about its share:
 *
 *   membership: every instance renews a document in tidings_instances
 *   ({"label","host","pid","started_at","expires_at"}) every 3 s, for 15 s,
 *   and holds a lock beside the store while it runs; at each tick the live
 *   ones are those not expired whose lock is held (the kernel or the
 *   database drops a dead process's at once), and a stopping one deletes
 *   its own.
 *
 *   per group (the N parts of one name) among L live instances: each
 *   instance's share is N / L, one more for N % L of them (by rank,
 *   turned by a hash of the group's name), so the shares add up to N.
 *     running fewer than its share: it tries the parts it does not run,
 *       starting at its rank's slice (instances sorted by id), until it
 *       has its share; a part another live instance runs answers TD_EBUSY
 *       at once (its lease's lock).
 *     running more: it stops one part of the group a second (outside its
 *       slice first),
 *       so that a newcomer can take it.
 *     running its share: every 3 s it looks for parts nobody runs (no
 *       lease, or an expired one, seen twice running; not those it gave
 *       up in the last 10 s) and takes them.
 *   A part whose lease was taken over (this process stalled past it) is
 *   stopped and counts as not running.
 *
 * So when an instance stops, its parts' leases are released and taken by
 * the others within a few ticks; when it dies, the kernel or the database
 * drops its leases' locks, and its parts are taken as soon as an instance
 * below its share tries them, or by the orphan sweep once their leases
 * expire (15 s). Stopping a part is a graceful td_subscription_stop: its
 * handlers finish and its checkpoint is saved before its lease is let go,
 * so a partition is never handled in two places at once, and per-stream
 * (per-correlation) order holds across the move.
 *
 * Threads: td_balancer_tick, _stop and _free from one thread, the one that
 * controls the parts (none of them may be started or stopped elsewhere
 * once added); td_balancer_parts and td_balancer_live from any thread.
 */
#ifndef TIDINGS_BALANCE_H
#define TIDINGS_BALANCE_H

#include "saga.h"
#include "subscription.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_balancer td_balancer;

#define TD_INSTANCE_ID_LEN 36

/* label names this instance to people (on /health, in `tidings
 * instances`): 1..64 printable characters; NULL: "PID@HOST". Copied.
 * Caller owns *out; free with td_balancer_free (before the store and the
 * parts). */
int td_balancer_new(td_balancer **out, td_store *store, const char *label);

/* Adds a part, not running: the balancer starts it when it is this
 * instance's to run. The part is borrowed and must outlive the balancer;
 * a saga's timer runs with it. TD_EINVAL for a part that runs already. */
int td_balancer_add_subscription(td_balancer *b, td_subscription *sub);
int td_balancer_add_saga(td_balancer *b, td_saga *saga);

/* One round: renews the membership when due, stops parts whose lease was
 * taken, then starts or stops parts as above. 0, or the first error met
 * (a part that failed to start is tried again later; see
 * td_balancer_parts). */
int td_balancer_tick(td_balancer *b);

/* Stops every part it runs (gracefully, leases released) and leaves the
 * membership. td_balancer_tick starts them again. */
void td_balancer_stop(td_balancer *b);

/* Stops, then frees. Accepts NULL. */
void td_balancer_free(td_balancer *b);

/* This instance's id (a UUIDv7), for telling instances apart. Borrowed. */
const char *td_balancer_id(const td_balancer *b);

/* How people see this instance (td_balancer_new's label). Borrowed. */
const char *td_balancer_label(const td_balancer *b);

/* The live instances the last membership renewal saw (at least 1). */
unsigned td_balancer_live(td_balancer *b);

typedef struct td_balanced_part {
    const char *group; /* the name the parts share */
    const char *name;  /* the part's own: "NAME.pKofN", or NAME */
    unsigned index, count;
    bool running;    /* this instance runs it now */
    int error;       /* 0, or why it failed to start or run (a TD_E code) */
    const char *why; /* the message with error; "" with 0 */
} td_balanced_part;

/* Calls fn for each part, in the order added (borrowed for the call; a
 * nonzero return stops the walk and is returned). */
typedef int (*td_balanced_part_fn)(const td_balanced_part *part, void *payload);
int td_balancer_parts(td_balancer *b, td_balanced_part_fn fn, void *payload);

/* The instances in the store's membership, live or expired (not yet swept
 * away): borrowed for the call. */
typedef struct td_instance {
    const char *id;
    const char *label;
    const char *host;
    long long pid;
    td_time started_at, expires_at;
    bool live; /* expires_at is in the future */
} td_instance;
typedef int (*td_instance_fn)(const td_instance *instance, void *payload);
int td_instances_list(td_store *store, td_instance_fn fn, void *payload);

#ifdef __cplusplus
}
#endif
#endif
