/*
 * migrate.c (shop): `shop migrate`, a copy of a store into a new, empty one
 * with every event upcast to the schema the shop reads (upcast.h).
 *
 *   shop migrate --to URL [--db URL | --data DIR]
 *
 * Positions, ids, streams, versions and envelopes are kept, so every
 * document (snapshots, read models, saga instances, checkpoints, dead
 * letters, inbox, the users' wrapped keys) is copied verbatim and stays
 * true; the target builds its own audit chain over the new bytes.
 *
 * Events written before personal data was sealed hold it in the clear;
 * the copy seals it under each user's key (seal.h, with the master key
 * of --master-key-file or DATA/master.key), so forgetting a user erases
 * it there too, and a user forgotten already comes out erased. Card tokens
 * of such events are dropped by the upcasters (domain/event_versions.c).
 * Documents go first, so that the events are sealed under the keys the
 * users already have. The source is opened read-only and
 * left as it was. A first pass checks that every event can be upcast, so an
 * unreadable one stops the migration before the target is created; a copy
 * that fails later (a full disk, say) removes the target it created, so
 * there is never half a store to mistake for a whole one. Prints what
 * changed, per type and version step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/commands.h"
#include "cmd/common.h"
#include "shop_int.h"

#define PAGE 1000

typedef struct change {
    char type[TD_TYPE_MAX + 1];
    int32_t from, to;
    int64_t count;
} change;

typedef struct migration {
    const td_upcasters *versions;
    td_store *source, *target;
    td_keyring *keyring;  /* the target's */
    int64_t sealed;       /* events whose personal data the copy sealed */
    td_event *page[PAGE]; /* owned, upcast */
    size_t count;
    int64_t last;
    change changes[64];
    size_t changes_count;
    int64_t events, documents;
    const char *collection;
    char why[256]; /* why an event could not be copied, when the library did not say */
} migration;

static void note_change(migration *m, const td_event *before, const td_event *after)
{
    size_t i = 0;
    while (i < m->changes_count && (strcmp(m->changes[i].type, before->type) != 0 ||
                                    m->changes[i].from != before->schema_version))
        i++;
    if (i == m->changes_count && i < sizeof m->changes / sizeof m->changes[0]) {
        snprintf(m->changes[i].type, sizeof m->changes[i].type, "%s", before->type);
        m->changes[i].from = before->schema_version;
        m->changes[i].to = after->schema_version;
        m->changes_count++;
    }
    if (i < m->changes_count)
        m->changes[i].count++;
}

/* First pass: every event can be read at the current schema. */
static int check_one(const td_event *ev, void *payload)
{
    migration *m = payload;
    td_event *up;
    int error = td_upcast(m->versions, ev, &up);
    td_event_free(up);
    m->last = ev->position;
    return error;
}

static int keep_one(const td_event *ev, void *payload)
{
    migration *m = payload;
    td_event *up;
    int error = td_upcast(m->versions, ev, &up);
    if (error == 0 && up)
        note_change(m, ev, up);
    if (error == 0 && up == NULL)
        error = td_event_dup(&up, ev);
    if (error < 0)
        return error;
    m->page[m->count++] = up;
    m->last = ev->position;
    return 0;
}

/* Imports ev, its personal data sealed if it held any in the clear. */
static int import_sealed(td_txn *txn, migration *m, const td_event *ev)
{
    json_t *data = NULL;
    char *text = NULL;
    if (shop_personal_fields(ev->type) == NULL)
        return td_txn_import(txn, ev);
    int error = td_event_data(&data, ev);
    if (error == 0)
        error = shop_seal_event_data(m->keyring, txn, m->source, ev->type, data);
    if (error == 1 && (text = json_dumps(data, JSON_COMPACT)) == NULL)
        error = TD_ENOMEM;
    td_event sealed = *ev;
    if (text) {
        sealed.data = text;
        sealed.data_len = strlen(text);
        m->sealed++;
    }
    if (error == TD_ENOTFOUND)
        snprintf(m->why, sizeof m->why,
                 "event %lld (%s) holds personal data but names no user it belongs to",
                 (long long)ev->position, ev->type);
    if (error >= 0)
        error = td_txn_import(txn, &sealed);
    free(text);
    json_decref(data);
    return error;
}

static int import_page(td_txn *txn, void *payload)
{
    migration *m = payload;
    int error = 0;
    int64_t sealed = m->sealed;
    for (size_t i = 0; error == 0 && i < m->count; i++)
        error = import_sealed(txn, m, m->page[i]);
    if (error < 0)
        m->sealed = sealed; /* the unit rolls back */
    return error;
}

static void drop_page(migration *m)
{
    for (size_t i = 0; i < m->count; i++)
        td_event_free(m->page[i]);
    m->count = 0;
}

/* Reads the source in pages; with import, writes each page to the target. */
static int each_page(td_store *source, migration *m, bool import)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.limit = PAGE;
    m->last = 0;
    for (;;) {
        q.after_position = m->last;
        int64_t before = m->last;
        int error = td_store_read(source, &q, import ? keep_one : check_one, m);
        if (error == 0 && import && m->count > 0) {
            error = td_transact(m->target, import_page, m);
            m->events += error == 0 ? (int64_t)m->count : 0;
        }
        drop_page(m);
        if (error < 0 || m->last == before)
            return error;
    }
}

/* ---- documents ---------------------------------------------------------------- */

typedef struct doc_page {
    migration *m;
    char *keys[PAGE], *bodies[PAGE];
    size_t lens[PAGE], count;
} doc_page;

static int keep_doc(const char *key, const char *json, size_t len, void *payload)
{
    doc_page *p = payload;
    p->keys[p->count] = strdup(key);
    p->bodies[p->count] = strndup(json, len);
    p->lens[p->count] = len;
    if (p->keys[p->count] == NULL || p->bodies[p->count] == NULL) {
        free(p->keys[p->count]);
        free(p->bodies[p->count]);
        return TD_ENOMEM;
    }
    p->count++;
    return 0;
}

static int put_docs(td_txn *txn, void *payload)
{
    doc_page *p = payload;
    int error = 0;
    for (size_t i = 0; error == 0 && i < p->count; i++)
        error = td_txn_doc_put(txn, p->m->collection, p->keys[i], p->bodies[i], p->lens[i]);
    return error;
}

typedef struct copy_docs {
    migration *m;
    td_store *source;
} copy_docs;

static int copy_collection(const char *collection, void *payload)
{
    copy_docs *c = payload;
    doc_page *p = calloc(1, sizeof *p);
    char after[256] = "";
    int error = p ? 0 : TD_ENOMEM;
    c->m->collection = collection;
    while (error == 0) {
        p->m = c->m;
        error = td_store_doc_list(c->source, collection, after, PAGE, keep_doc, p);
        if (error == 0 && p->count > 0)
            error = td_transact(c->m->target, put_docs, p);
        if (error == 0 && p->count > 0)
            snprintf(after, sizeof after, "%s", p->keys[p->count - 1]);
        c->m->documents += error == 0 ? (int64_t)p->count : 0;
        size_t got = p->count;
        for (size_t i = 0; i < p->count; i++) {
            free(p->keys[i]);
            free(p->bodies[i]);
        }
        p->count = 0;
        if (got < PAGE)
            break;
    }
    free(p);
    return error;
}

/* ---- the command ---------------------------------------------------------------- */

static int run(td_store *source, const char *to, migration *m,
               const unsigned char master[TD_MASTER_KEY_BYTES])
{
    copy_docs c = {m, source};
    td_store_stats stats;
    int error = each_page(source, m, false);
    if (error < 0) {
        fprintf(stderr, "shop migrate: the source holds an event this shop cannot read: %s\n",
                td_error_last());
        return 1;
    }
    td_store_options probe = TD_STORE_OPTIONS_INIT;
    td_store *existing = NULL;
    probe.create = false;
    probe.read_only = true;
    bool created = td_store_open(&existing, to, &probe) == TD_ENOTFOUND;
    td_store_free(existing);
    if ((error = td_store_open(&m->target, to, NULL)) == 0 &&
        (error = td_store_stats_get(m->target, &stats)) == 0 &&
        (stats.events > 0 || stats.documents > 0))
        error = TD_EEXISTS;
    if (error < 0) {
        fprintf(stderr, "shop migrate: %s: %s\n", to,
                error == TD_EEXISTS ? "the target is not empty; migrate into a new store"
                                    : td_error_last());
        return error == TD_EEXISTS ? SHOP_EXIT_NOT_EMPTY : SHOP_EXIT_FAIL;
    }
    m->source = source;
    if ((error = td_store_doc_collections(source, copy_collection, &c)) == 0 &&
        (error = td_keyring_new(&m->keyring, m->target, master)) == 0)
        error = each_page(source, m, true);
    if (error < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", m->why[0] ? m->why : td_error_last());
        int gone = created ? td_store_destroy(m->target) : -1;
        if (!created)
            td_store_free(m->target);
        m->target = NULL;
        if (gone == 0)
            fprintf(stderr, "shop migrate: copying stopped, the new target %s was removed: %s\n",
                    to, why);
        else
            fprintf(stderr, "shop migrate: copying stopped, the target %s is incomplete: %s\n", to,
                    why);
        return 1;
    }
    printf("migrated %lld events and %lld documents from %s to %s\n", (long long)m->events,
           (long long)m->documents, td_store_url(source), td_store_url(m->target));
    for (size_t i = 0; i < m->changes_count; i++)
        printf("upcast %s schema %d -> %d: %lld events\n", m->changes[i].type, m->changes[i].from,
               m->changes[i].to, (long long)m->changes[i].count);
    if (m->changes_count == 0)
        printf("every event was at its current schema already\n");
    if (m->sealed > 0)
        printf("sealed the personal data of %lld events written before sealing\n",
               (long long)m->sealed);
    return 0;
}

static const cmdline_option migrate_options[] = {
    {"to", 't', "URL", "the new store to copy into (required; must be empty)"},
    {"master-key-file", 'k', "FILE",
     "the key that seals personal data (default\nDATA/master.key; made if the store has none)"},
    {NULL, 0, NULL, NULL},
};

static const cmdline migrate_line = {
    .program = "shop migrate",
    .usage = "--to URL [options]",
    .summary = "Copies the store into a new, empty one with every event at the schema\n"
               "this shop reads, personal data written before sealing sealed. The source\n"
               "is left as it was; a copy that fails removes the target it made.",
    .version = SHOP_VERSION,
    .options = migrate_options,
    .common = shop_cmd_store_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

int shop_migrate_main(int argc, char **argv)
{
    const char *to = NULL, *db = NULL, *data = "data", *key_file = NULL, *value;
    unsigned char master[TD_MASTER_KEY_BYTES];
    bool created = false;
    cmdline line = migrate_line;
    int key;
    cmdline_start(&line, argc, argv);
    while ((key = cmdline_next(&line, &value)) > 0) {
        if (key == CMDLINE_WORD)
            return cmdline_error(&line, "unexpected argument '%s'", value);
        *(key == 't' ? &to : key == 'd' ? &db : key == 'D' ? &data : &key_file) = value;
    }
    if (key < 0)
        return line.exit_code;
    if (to == NULL)
        return cmdline_error(&line, "--to is required");
    td_store *source = NULL;
    td_upcasters *versions = NULL;
    migration *m = calloc(1, sizeof *m);
    int error = m ? shop_event_versions_new(&versions) : TD_ENOMEM;
    if (error == 0 && (error = shop_open_store(&source, db, data, SHOP_STORE_READ)) < 0)
        fprintf(stderr, "shop migrate: %s\n", td_error_last());
    if (error == 0) /* a store from before sealing gets a master key now */
        error = shop_cmd_master_key(master, source, key_file, data, true, "shop migrate", &created);
    int code = error < 0 ? 1 : 0;
    if (error == 0) {
        m->versions = versions;
        code = run(source, to, m, master);
    }
    sodium_memzero(master, sizeof master);
    if (m) {
        td_keyring_free(m->keyring);
        td_store_free(m->target);
    }
    td_store_free(source);
    td_upcasters_free(versions);
    free(m);
    return code;
}
