/*
 * cmd_audit.c: `tidings audit verify [--from POS] [--to POS]` checks the
 * audit chain and names the first position that does not verify (exit 1);
 * `tidings audit export [--since TIME] [--output FILE]` writes the events
 * from the first one at or after TIME to the end, with the exact stored
 * data and metadata and both links, so the file can be checked on its own
 * (docs/audit.md).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct export_state {
    uint8_t prev[TD_HASH_LEN];
    int64_t first; /* export from this position */
} export_state;

static void hex(char out[TD_HASH_LEN * 2 + 1], const uint8_t *bytes)
{
    sodium_bin2hex(out, TD_HASH_LEN * 2 + 1, bytes, TD_HASH_LEN);
}

static int print_link(const td_event *ev, void *payload)
{
    export_state *x = payload;
    char prev[TD_HASH_LEN * 2 + 1], hash[TD_HASH_LEN * 2 + 1];
    json_t *json = NULL;
    int error = td_event_to_json(&json, ev);
    if (error < 0)
        return error;
    hex(prev, x->prev);
    hex(hash, ev->hash);
    json_object_set_new(json, "metadata_raw", json_stringn(ev->metadata, ev->metadata_len));
    json_object_set_new(json, "data_raw", json_stringn(ev->data, ev->data_len));
    json_object_set_new(json, "prev_hash", json_string(prev));
    json_object_set_new(json, "hash", json_string(hash));
    json_dumpf(json, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(json);
    memcpy(x->prev, ev->hash, TD_HASH_LEN);
    return ferror(stdout) ? TD_EIO : 0;
}

static int export(td_store *store, const char *since_text)
{
    export_state x = {{0}, 1};
    td_time ignored;
    if (since_text && td_time_parse(&ignored, since_text) < 0)
        return TD_EINVAL;
    int error = since_text ? cli_first_position_since(store, since_text, &x.first) : 0;
    if (error == 0 && since_text && x.first == 0)
        return 0; /* nothing since then */
    td_read_query all = TD_READ_QUERY_INIT;
    all.after_position = x.first - 1;
    if (error == 0)
        error = td_store_hash_before(store, x.first, x.prev);
    if (error == 0)
        error = td_store_read(store, &all, print_link, &x);
    return error == 0 && fflush(stdout) != 0 ? TD_EIO : error;
}

static int verify(td_store *store, int64_t from, int64_t to)
{
    int64_t bad = 0, checked = 0;
    int error = td_store_audit_verify(store, from, to, &bad, &checked);
    if (error == TD_ECORRUPT && bad) {
        printf("tampered: the chain breaks at position %lld (%lld events checked)\n",
               (long long)bad, (long long)checked);
        return TD_ECORRUPT;
    }
    if (error == 0)
        printf("ok: %lld events verified\n", (long long)checked);
    return error;
}

int cmd_audit(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("audit");
    const char *from = NULL, *to = NULL, *since = NULL, *output = NULL, *pos[1];
    const cli_flag flags[] = {
        {"from", "POS", "verify: start at this position (default 1)", &from},
        {"to", "POS", "verify: stop at this position (default the head)", &to},
        {"since", "ISO8601", "export: events from this time on", &since},
        {"output", "FILE", "export: write to FILE instead of standard output", &output},
        {NULL, NULL, NULL, NULL}};
    int count;
    td_store *store = NULL;
    int rc = cli_parse(cmd, argc, argv, flags, pos, 1, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    bool is_verify = strcmp(pos[0], "verify") == 0, is_export = strcmp(pos[0], "export") == 0;
    if (!is_verify && !is_export)
        return cli_usage_error(cmd, "unknown audit action '%s'", pos[0]);
    if ((is_verify && (since || output)) || (is_export && (from || to)))
        return cli_usage_error(cmd, "verify takes --from/--to, export --since/--output");
    int64_t first = 0, last = 0;
    if ((from && cli_int(from, 1, INT64_MAX, &first) < 0) ||
        (to && cli_int(to, 1, INT64_MAX, &last) < 0))
        return cli_usage_error(cmd, "--from and --to must be positions >= 1");
    td_time ignored;
    if (since && td_time_parse(&ignored, since) < 0)
        return cli_usage_error(cmd, "--since: %s", td_error_last());
    if (output && cli_output_to(output) != 0)
        return EXIT_FAIL;
    int error = cli_open_unchecked(&store); /* the audit is the check */
    if (error == 0)
        error = is_verify ? verify(store, first, last) : export(store, since);
    td_store_free(store);
    if (error == TD_ECORRUPT)
        return EXIT_FAIL; /* reported above */
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
