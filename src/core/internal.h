/*
 * internal.h: helpers shared by the core files and the rest of the library
 * (internal; nothing here is public API).
 */
#ifndef TD_CORE_INTERNAL_H
#define TD_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidings/event.h"
#include "tidings/store.h"
#include "tidings/upcast.h"

/* FNV-1a of a string: a fast, well-spread hash for in-memory tables. */
uint64_t td_hash__fnv1a(const char *s);

/* Sets the calling thread's nice value (clamped to -20..19); the kernel's
 * refusal is an error with why. */
int td_thread__nice(int nice);

/* Names the calling thread prefix+name, cut to the kernel's 15 bytes. */
void td_thread__name(const char *prefix, const char *name);

/* Writes a new traceparent that starts a fresh, sampled trace. */
int td_traceparent__new(char out[TD_TRACEPARENT_LEN + 1]);

/* Writes a traceparent for a new span (fresh parent id) in parent's trace. */
int td_traceparent__child(char out[TD_TRACEPARENT_LEN + 1], const char *parent);

/* Checks that text[0..len) is a JSON object of at most max bytes;
 * TD_EINVAL / TD_ETOOBIG naming `what` otherwise. */
int td_json__check_object(const char *what, const char *text, size_t len, size_t max);

/* Length of an optional JSON text field: len, or strlen when len is 0. */
size_t td_json__length(const char *text, size_t len);

/* json_loadb, telling a failure for want of memory from bad input: on
 * NULL, *oom says whether an allocation failed meanwhile (then report
 * td_error__oom(), not bad input). jansson's own error cannot tell: some
 * failed allocations come out of its parser as syntax errors. */
json_t *td_json__loadb(const char *text, size_t len, size_t flags, json_error_t *err, bool *oom);

/* Frees memory jansson handed out (json_dumps), with jansson's own free. */
void td_json__free(void *ptr);

/* json as one compact line. Takes the reference to json (NULL, as from a
 * failed json_pack, gives TD_ENOMEM). Caller owns *out; free with td_free.
 * len may be NULL. */
int td_json__dump_steal(char **out, size_t *len, json_t *json);

/* A data field name for a projected read (td_store_read_fields): 1..TD_FIELD_MAX
 * of [A-Za-z0-9_], starting with a letter. */
#define TD_FIELD_MAX 64
int td_field__check(const char *field);

/* Whether td_upcast would change ev (or refuse it): its type is declared
 * with another schema than ev's. */
bool td_upcast__needed(const td_upcasters *upcasters, const td_event *ev);

/* A lock beside the store that its holder keeps until td_store__unlock or
 * its death (the kernel releases it; SQLite: STORE-locks/NAME), telling a
 * live holder on this host from a dead one. TD_EBUSY if another holder, in
 * this process or another, has it; *out NULL where the store has no such
 * locks. name: letters, digits, '_', '.', '-'. */
typedef struct td_store_lock td_store_lock;
int td_store__lock(td_store *store, const char *name, td_store_lock **out);
void td_store__unlock(td_store *store, td_store_lock *lock); /* accepts NULL */
/* 0 while lock is held; TD_EBUSY once it is not (the server session that
 * held it ended: a PostgreSQL restart or a cut connection). Kernel locks,
 * and NULL (a store without locks), are held until unlocked: always 0. */
int td_store__lock_check(td_store *store, td_store_lock *lock);
/* Keeps the lock `name` in *lock: 0 while it is held, or once it is taken
 * again after the session that held it ended (or it was never taken);
 * TD_EBUSY when another holder has it now; another error when that cannot
 * be told now (*lock is then NULL and the next call tries again). */
int td_store__lock_keep(td_store *store, const char *name, td_store_lock **lock);
/* Whether the store's locks are a server session's (PostgreSQL): one can
 * then go while its holder lives on (a cut connection), so a free lock
 * does not prove its holder dead. False for a kernel's (SQLite). */
bool td_store__locks_by_session(const td_store *store);

/* td_store_read_event, but as stored (td_store_read_stored, upcast.h):
 * subscriptions upcast each event on its lane instead, so that an
 * unreadable one is parked rather than failing the read. */
int td_store__read_event_stored(td_store *store, const td_uuid *id, td_event_fn fn, void *payload);

#endif
