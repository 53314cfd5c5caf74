/*
 * cmd_import.c: `tidings import FILE`: append the events of a JSON lines
 * export, keeping their ids, versions and positions.
 *
 * The whole file is read and checked first (every line an event, positions
 * increasing), then imported in one unit of work, so a bad line or a version
 * or position conflict anywhere writes nothing. Events whose id is stored
 * already with the same stream, version and position are skipped, which
 * makes importing the same file twice a no-op.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct import_batch {
    td_event **events;
    size_t *lines; /* line number of each event, for messages */
    size_t count, capacity;
    size_t imported, skipped;
    size_t failed_at; /* index of the event that failed, if any */
} import_batch;

static void batch_dispose(import_batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        td_event_free(b->events[i]);
    free(b->events);
    free(b->lines);
}

static int batch_push(import_batch *b, td_event *ev, size_t line)
{
    if (b->count == b->capacity) {
        size_t cap = b->capacity ? b->capacity * 2 : 256;
        td_event **events = realloc(b->events, cap * sizeof *events);
        if (events)
            b->events = events;
        size_t *lines = events ? realloc(b->lines, cap * sizeof *lines) : NULL;
        if (lines == NULL)
            return -1;
        b->lines = lines;
        b->capacity = cap;
    }
    b->events[b->count] = ev;
    b->lines[b->count++] = line;
    return 0;
}

/* Parses one line into the batch; returns 0 or an exit code after printing. */
static int parse_line(import_batch *b, const char *text, size_t len, size_t line)
{
    json_error_t err;
    td_event *ev = NULL;
    json_t *json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (json == NULL) {
        fprintf(stderr, "tidings: line %zu: not JSON: %s\n", line, err.text);
        return EXIT_INVALID;
    }
    int error = td_event_from_json(&ev, json);
    json_decref(json);
    if (error < 0) {
        fprintf(stderr, "tidings: line %zu: %s\n", line, td_error_last());
        return EXIT_INVALID;
    }
    if (ev->position < 1 || (b->count > 0 && ev->position <= b->events[b->count - 1]->position)) {
        fprintf(stderr, "tidings: line %zu: positions must be >= 1 and increase\n", line);
        td_event_free(ev);
        return EXIT_INVALID;
    }
    if (batch_push(b, ev, line) < 0) {
        td_event_free(ev);
        fprintf(stderr, "tidings: out of memory\n");
        return EXIT_FAIL;
    }
    return 0;
}

static int read_file(import_batch *b, FILE *in)
{
    char *text = NULL;
    size_t size = 0, line = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&text, &size, in)) >= 0) {
        line++;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--;
        if (len > 0)
            rc = parse_line(b, text, (size_t)len, line);
    }
    free(text);
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "tidings: reading the import file failed\n");
        rc = EXIT_FAIL;
    }
    return rc;
}

static int import_unit(td_txn *txn, void *payload)
{
    import_batch *b = payload;
    b->imported = b->skipped = 0;
    for (size_t i = 0; i < b->count; i++) {
        int rc = td_txn_import(txn, b->events[i]);
        if (rc < 0) {
            b->failed_at = i;
            return rc;
        }
        if (rc > 0)
            b->skipped++;
        else
            b->imported++;
    }
    return 0;
}

int cmd_import(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("import");
    import_batch b = {.failed_at = SIZE_MAX};
    const char *pos[1];
    int count;
    td_store *store = NULL;
    int rc = cli_parse(cmd, argc, argv, NULL, pos, 1, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    FILE *in = strcmp(pos[0], "-") == 0 ? stdin : fopen(pos[0], "r");
    if (in == NULL) {
        fprintf(stderr, "tidings: cannot open '%s': %s\n", pos[0], strerror(errno));
        return EXIT_FAIL;
    }
    rc = read_file(&b, in);
    if (in != stdin)
        fclose(in);
    if (rc == 0) {
        int error = cli_open(&store, true, false);
        if (error == 0 && b.count > 0)
            error = td_transact(store, import_unit, &b);
        if (error < 0 && b.failed_at < b.count) {
            fprintf(stderr, "tidings: line %zu: %s; nothing was imported\n", b.lines[b.failed_at],
                    td_error_last());
            rc = cli_exit_code(error);
        } else {
            rc = error < 0 ? cli_fail(error) : EXIT_OK;
        }
        if (rc == EXIT_OK)
            printf("imported %zu events, skipped %zu already present\n", b.imported, b.skipped);
    }
    td_store_free(store);
    batch_dispose(&b);
    return rc;
}
