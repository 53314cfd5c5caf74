/*
 * cmd_events.c: appending and reading events: append, events, tail, export.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int parse_expected(const char *text, int64_t *out)
{
    if (text == NULL || strcmp(text, "any") == 0)
        *out = TD_EXPECT_ANY;
    else if (strcmp(text, "no-stream") == 0)
        *out = TD_EXPECT_NO_STREAM;
    else
        return cli_int(text, 0, INT64_MAX, out);
    return 0;
}

/* All of standard input as a string; NULL on failure. Caller frees. */
static char *read_stdin(void)
{
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

typedef struct append_flags {
    const char *expected, *schema, *kind, *source, *metadata, *correlation, *causation;
} append_flags;

static int build_event(const cli_command *cmd, const append_flags *f, td_event *ev)
{
    int64_t schema = 1;
    if (f->schema && cli_int(f->schema, 1, INT32_MAX, &schema) < 0)
        return cli_usage_error(cmd, "--schema-version must be a whole number >= 1");
    ev->schema_version = (int32_t)schema;
    if (f->kind && td_event_kind_parse(&ev->kind, f->kind) < 0)
        return cli_usage_error(cmd, "%s", td_error_last());
    ev->source = f->source;
    ev->metadata = f->metadata;
    ev->correlation_id = f->correlation;
    ev->causation_id = f->causation;
    return 0;
}

int cmd_append(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("append");
    append_flags f = {0};
    const cli_flag flags[] = {
        {"expected-version", "N|any|no-stream",
         "append only if the stream is at version N,\nor does not exist yet (default any)",
         &f.expected},
        {"schema-version", "N", "the version of the data's schema (default 1)", &f.schema},
        {"kind", "domain|integration", "the kind of event (default domain)", &f.kind},
        {"source", "S", "who wrote it (default the stream's category)", &f.source},
        {"metadata", "JSON", "a JSON object kept beside the data", &f.metadata},
        {"correlation-id", "ID", "the id that ties the events of one flow together",
         &f.correlation},
        {"causation-id", "ID", "the id of the event or request that caused it", &f.causation},
        {NULL, NULL, NULL, NULL}};
    const char *pos[3];
    int count;
    int64_t expected;
    td_event ev;
    td_store *store = NULL;

    int rc = cli_parse(cmd, argc, argv, flags, pos, 3, 3, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    if (parse_expected(f.expected, &expected) < 0)
        return cli_usage_error(cmd, "--expected-version must be any, no-stream or a version");
    td_event_init(&ev);
    ev.type = pos[1];
    ev.data = pos[2];
    if ((rc = build_event(cmd, &f, &ev)) != 0)
        return rc;
    char *stdin_data = NULL;
    if (strcmp(pos[2], "-") == 0 && (ev.data = stdin_data = read_stdin()) == NULL)
        return fprintf(stderr, "tidings: cannot read the data from standard input\n"), EXIT_FAIL;
    int error = cli_open(&store, false, false);
    if (error == 0)
        error = td_store_append(store, pos[0], expected, &ev, 1);
    if (error == 0)
        error = td_store_read_event(store, &ev.id, cli_print_event, NULL);
    td_store_free(store);
    free(stdin_data);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

typedef struct filter_flags {
    const char *stream, *category, *type, *since, *after, *limit, *output;
} filter_flags;

/* Turns the filter flags into a query; returns 0 or an exit code. */
static int build_query(const cli_command *cmd, const filter_flags *f, td_read_query *q)
{
    int64_t n;
    q->stream = f->stream;
    q->category = f->category;
    q->type = f->type;
    if (f->since && td_time_parse(&q->since, f->since) < 0)
        return cli_usage_error(cmd, "--since: %s", td_error_last());
    if (f->after) {
        if (cli_int(f->after, 0, INT64_MAX, &n) < 0)
            return cli_usage_error(cmd, "--after must be a position >= 0");
        q->after_position = n;
    }
    if (f->limit) {
        if (cli_int(f->limit, 1, INT64_MAX, &n) < 0)
            return cli_usage_error(cmd, "--limit must be a whole number >= 1");
        q->limit = (size_t)n;
    }
    return 0;
}

/* Parses a reading command's flags (its own table) into f, then q. */
static int parse_filters(const char *name, int argc, char **argv, const cli_flag *flags,
                         filter_flags *f, td_read_query *q)
{
    const cli_command *cmd = cli_find_command(name);
    const char *pos[1];
    int count;
    int rc = cli_parse(cmd, argc, argv, flags, pos, 0, 0, &count);
    return rc == 0 ? build_query(cmd, f, q) : rc;
}

static int print_counted(const td_event *event, void *payload)
{
    (*(int64_t *)payload)++;
    return cli_print_event(event, NULL);
}

int cmd_events(int argc, char **argv)
{
    filter_flags f = {0};
    td_read_query q = TD_READ_QUERY_INIT;
    td_store *store = NULL;
    const cli_flag flags[] = {
        {"stream", "S", "only this stream", &f.stream},
        {"category", "C", "only streams of this category (the stream name\nup to its first '-')",
         &f.category},
        {"type", "T", "only events of this type", &f.type},
        {"since", "ISO8601", "only events stored at or after this time", &f.since},
        {"after", "POS", "only events after this position", &f.after},
        {"limit", "N", "at most N events", &f.limit},
        {NULL, NULL, NULL, NULL}};
    int rc = parse_filters("events", argc, argv, flags, &f, &q);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    int64_t printed = 0;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = td_store_read(store, &q, print_counted, &printed);
    if (error == 0 && printed == 0) /* on stderr: stdout holds only events */
        fprintf(stderr, "tidings events: no events%s\n",
                f.stream || f.category || f.type || f.since || f.after ? " match" : " stored");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

int cmd_export(int argc, char **argv)
{
    filter_flags f = {0};
    td_read_query q = TD_READ_QUERY_INIT;
    td_store *store = NULL;
    const cli_flag flags[] = {
        {"after", "POS", "only events after this position", &f.after},
        {"output", "FILE", "write to FILE instead of standard output", &f.output},
        {NULL, NULL, NULL, NULL}};
    int rc = parse_filters("export", argc, argv, flags, &f, &q);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    if (f.output && cli_output_to(f.output) != 0)
        return EXIT_FAIL;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = td_store_read(store, &q, cli_print_event, NULL);
    td_store_free(store);
    if (error == 0 && fflush(stdout) != 0)
        return fprintf(stderr, "tidings: writing the export failed\n"), EXIT_FAIL;
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

#define TAIL_PAGE 1000

typedef struct tail_state {
    int64_t last;   /* the position everything up to has been printed or skipped */
    size_t printed; /* in the current page */
} tail_state;

static int print_and_track(const td_event *ev, void *payload)
{
    tail_state *t = payload;
    t->last = ev->position;
    t->printed++;
    return cli_print_event(ev, NULL);
}

/* Prints what matches q between t->last and head. A page that is not full
 * means nothing matching is left up to head, so filtered-out events up to
 * head count as seen and are not read again. */
static int tail_page(td_store *store, const td_read_query *q, tail_state *t, int64_t head)
{
    td_read_query page = *q;
    page.after_position = t->last;
    page.limit = TAIL_PAGE;
    t->printed = 0;
    int error = td_store_read(store, &page, print_and_track, t);
    if (error == 0 && t->printed < TAIL_PAGE && head > t->last)
        t->last = head;
    return error;
}

int cmd_tail(int argc, char **argv)
{
    filter_flags f = {0};
    td_read_query q = TD_READ_QUERY_INIT;
    td_store *store = NULL;
    int64_t head = 0;
    const cli_flag flags[] = {
        {"stream", "S", "only this stream", &f.stream},
        {"category", "C", "only streams of this category (the stream name\nup to its first '-')",
         &f.category},
        {"type", "T", "only events of this type", &f.type},
        {"after", "POS", "only events after this position", &f.after},
        {NULL, NULL, NULL, NULL}};
    int rc = parse_filters("tail", argc, argv, flags, &f, &q);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    cli_catch_signals();
    setvbuf(stdout, NULL, _IOLBF, 0);
    int error = cli_open(&store, false, true);
    tail_state t = {q.after_position, 0};
    if (error == 0 && f.after == NULL)
        error = td_store_head(store, &t.last);
    while (error == 0 && !cli_stop_requested) {
        error = td_store_wait(store, t.last, 200, &head);
        if (error == 0 && head > t.last)
            error = tail_page(store, &q, &t, head);
    }
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
