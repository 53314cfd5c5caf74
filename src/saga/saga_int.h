/*
 * saga_int.h: what the saga engine's files share (internal).
 *
 * Documents:
 *   tidings_sagas           SAGA|CORRELATION            the instance (saga.h)
 *   tidings_saga_deadlines  SAGA|DEADLINE(20)|CORRELATION   due-time index
 */
#ifndef TD_SAGA_INT_H
#define TD_SAGA_INT_H

#include <pthread.h>

#include "core/json_cache.h"
#include "tidings/saga.h"

#define TD_COLL_SAGAS          "tidings_sagas"
#define TD_COLL_SAGA_DEADLINES "tidings_saga_deadlines"
#define TD_SAGA_NAME_MAX       40
#define TD_SAGA_KEY_MAX        512
#define TD_SAGA_IGNORED_KEPT   20

struct td_saga {
    td_store *store;
    const td_saga_definition *def;
    void *payload;
    td_saga_options opts;
    char subscription_name[TD_SAGA_NAME_MAX + 8];
    td_subscription *sub;

    pthread_t timer;
    bool timer_started;
    bool stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;

    /* instances as last loaded or saved, by their stored text (json_cache.h) */
    td_json_cache *instances;
};

/* saga.c: whether the saga's partition (all of it when not partitioned)
 * runs the instance of this correlation id. */
bool td_saga__owns(const td_saga *saga, const char *correlation_id);

struct td_saga_ctx {
    td_saga *saga;
    td_txn *txn;
    const td_event *event;
    json_t *event_data; /* parsed once per event; borrowed */
    const char *correlation_id;
    json_t *instance;  /* the whole document */
    json_t *data;      /* borrowed from instance */
    const char *state; /* before the transition; NULL for a new instance */
    td_time deadline;  /* 0: none */
};

/* saga.c: TD_EINVAL for a name that is not 1..TD_SAGA_NAME_MAX of [a-z0-9_]
 * starting with a letter. */
int td_saga__check_name(const char *name);

/* instance.c */
int td_saga__key(char buf[TD_SAGA_KEY_MAX + 1], const char *saga, const char *correlation_id);
int td_saga__deadline_key(char buf[TD_SAGA_KEY_MAX + 1], const char *saga, td_time deadline,
                          const char *correlation_id);
/* An instance as loaded: the object (NULL if there is none) and the text
 * stored for it. */
typedef struct td_saga_loaded {
    json_t *instance;
    char *text;
    size_t len;
} td_saga_loaded;

/* Loads the instance for correlation_id, from the saga's cache of instances
 * when it holds the one for the stored text. Caller owns *out and ends it
 * with td_saga__loaded_done. */
int td_saga__load(td_txn *txn, td_saga *saga, const char *correlation_id, td_saga_loaded *out);

/* Ends a load: an instance not changed goes back to the cache; a changed
 * one is dropped here (td_saga__save kept it with its new text). */
void td_saga__loaded_done(td_saga *saga, const char *correlation_id, td_saga_loaded *loaded,
                          bool unchanged);

json_t *td_saga__fresh(const char *saga, const char *correlation_id);
int td_saga__save(td_txn *txn, td_saga_ctx *ctx, td_time old_deadline);
void td_saga__record(json_t *instance, const char *list, const td_event *event, const char *from,
                     const char *to);

/* timer.c */
void *td_saga__timer_main(void *arg);

#endif
