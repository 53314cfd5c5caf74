/*
 * cmd_dlq.c: the delivery commands: `subscriptions` (each subscription's
 * position, lag, retries, dead letters and holder), `instances` (the
 * processes sharing them) and `dlq` (list, show, retry, drop and the audit
 * history of the dead-letter queue).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int print_status(const char *name, const td_subscription_status *st, void *payload)
{
    int *rows = payload;
    if ((*rows)++ == 0)
        printf("%-32s %12s %10s %9s %13s  %s\n", "SUBSCRIPTION", "POSITION", "LAG", "IN_RETRY",
               "DEAD_LETTERS", "HELD_BY");
    printf("%-32s %12lld %10lld %9lld %13lld  %s\n", name, (long long)st->position,
           (long long)st->lag_events, (long long)st->in_retry, (long long)st->dead_letters,
           st->holder ? st->holder : "-");
    return 0;
}

int cmd_subscriptions(int argc, char **argv)
{
    const char *pos[1];
    int count, rows = 0;
    td_store *store = NULL;
    int rc = cli_parse(cli_find_command("subscriptions"), argc, argv, NULL, pos, 0, 0, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = td_subscriptions_list(store, print_status, &rows);
    if (error == 0 && rows == 0)
        printf("no subscriptions have run on this store\n");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

static int print_instance(const td_instance *in, void *payload)
{
    int *rows = payload;
    char started[TD_TIME_STR_LEN + 1] = "?", until[TD_TIME_STR_LEN + 1] = "?";
    (void)td_time_format(started, in->started_at);
    (void)td_time_format(until, in->expires_at);
    if ((*rows)++ == 0)
        printf("%-36s  %-20s %8s  %-20s %-5s  %-27s  %s\n", "ID", "LABEL", "PID", "HOST", "LIVE",
               "STARTED", "UNTIL");
    printf("%-36s  %-20s %8lld  %-20s %-5s  %-27s  %s\n", in->id, in->label, in->pid, in->host,
           in->live ? "yes" : "no", started, until);
    return 0;
}

int cmd_instances(int argc, char **argv)
{
    const char *pos[1];
    int count, rows = 0;
    td_store *store = NULL;
    int rc = cli_parse(cli_find_command("instances"), argc, argv, NULL, pos, 0, 0, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = td_instances_list(store, print_instance, &rows);
    if (error == 0 && rows == 0)
        printf("no instances share this store's subscriptions\n");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

/* ---- dlq -------------------------------------------------------------------- */

static int print_entry(const td_dead_letter *e, void *payload)
{
    char event_id[TD_UUID_STR_LEN + 1], first[TD_TIME_STR_LEN + 1], last[TD_TIME_STR_LEN + 1];
    (void)payload;
    td_uuid_format(event_id, &e->event_id);
    if (td_time_format(first, e->first_failure) < 0 || td_time_format(last, e->last_failure) < 0)
        return TD_ECORRUPT;
    json_t *json = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s*,s:s*}", "id", e->id,
                             "subscription", e->subscription, "status", e->status, "position",
                             (json_int_t)e->position, "event_id", event_id, "stream", e->stream,
                             "type", e->type, "attempts", (json_int_t)e->attempts, "last_error",
                             e->last_error, "first_failure", first, "last_failure", last, "behind",
                             e->behind, "request", e->request);
    if (json == NULL)
        return TD_ENOMEM;
    json_dumpf(json, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(json);
    return 0;
}

static const char *who(const char *given)
{
    if (given && given[0])
        return given;
    const char *user = getenv("USER");
    if (user && user[0])
        return user;
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "unknown";
}

typedef struct dlq_flags {
    const char *subscription, *type, *stream, *all, *by;
} dlq_flags;

static int print_counted(const td_dead_letter *e, void *payload)
{
    (*(int64_t *)payload)++;
    return print_entry(e, NULL);
}

static int dlq_list(td_store *store, const td_dlq_filter *filter)
{
    int64_t printed = 0;
    int error = td_dlq_list(store, filter, print_counted, &printed);
    if (error == 0 && printed == 0) /* on stderr: stdout holds only entries */
        fprintf(stderr, "tidings dlq: no dead letters%s\n",
                filter->subscription || filter->type || filter->stream ? " match" : "");
    return error;
}

static int show_event(const td_dead_letter *e, void *payload)
{
    td_store *store = payload;
    int error = print_entry(e, NULL);
    return error < 0 ? error : td_store_read_event(store, &e->event_id, cli_print_event, NULL);
}

static int print_audit(const char *json, void *payload)
{
    (*(int64_t *)payload)++;
    printf("%s\n", json);
    return 0;
}

static int dlq_history(td_store *store)
{
    int64_t printed = 0;
    int error = td_dlq_audit(store, print_audit, &printed);
    if (error == 0 && printed == 0)
        fprintf(stderr, "tidings dlq: no retries or drops have been asked for\n");
    return error;
}

static int dlq_act(td_store *store, const char *action, const char *id, const dlq_flags *f,
                   const td_dlq_filter *filter)
{
    size_t count = 0;
    int error;
    if (strcmp(action, "show") == 0)
        return td_dlq_get(store, id, show_event, store);
    if (strcmp(action, "drop") == 0) {
        if ((error = td_dlq_drop(store, id, who(f->by))) == 0)
            printf("drop of %s requested; the subscription discards it and delivers the "
                   "events parked behind it\n",
                   id);
        return error;
    }
    if (f->all) {
        if ((error = td_dlq_retry_all(store, filter, who(f->by), &count)) == 0)
            printf("retry requested for %zu dead letters\n", count);
        return error;
    }
    if ((error = td_dlq_retry(store, id, who(f->by))) == 0)
        printf("retry of %s requested; the subscription delivers it again, then the events "
               "parked behind it\n",
               id);
    return error;
}

/* Checks the words after `dlq`; returns 0 or an exit code. */
static int check_words(const cli_command *cmd, const char **pos, int count, const dlq_flags *f)
{
    const char *action = pos[0];
    bool needs_id = strcmp(action, "show") == 0 || strcmp(action, "drop") == 0 ||
                    (strcmp(action, "retry") == 0 && !f->all);
    if (strcmp(action, "list") && strcmp(action, "show") && strcmp(action, "retry") &&
        strcmp(action, "drop") && strcmp(action, "history"))
        return cli_usage_error(cmd, "unknown dlq action '%s'", action);
    if (needs_id && count != 2)
        return cli_usage_error(cmd, "dlq %s needs the id of a dead letter", action);
    if (!needs_id && count != 1)
        return cli_usage_error(cmd, "dlq %s takes no id", action);
    if (f->all && strcmp(action, "retry") != 0)
        return cli_usage_error(cmd, "--all goes with retry");
    return 0;
}

int cmd_dlq(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("dlq");
    dlq_flags f = {0};
    const cli_flag flags[] = {{"subscription", "NAME",
                               "only the dead letters of this subscription\n(one that exists)",
                               &f.subscription},
                              {"type", "TYPE", "only events of this type", &f.type},
                              {"stream", "STREAM", "only events of this stream", &f.stream},
                              {"all", NULL, "retry: every entry the filters select", &f.all},
                              {"by", "NAME", "who asks, recorded in the audit history", &f.by},
                              {NULL, NULL, NULL, NULL}};
    const char *pos[2];
    int count;
    td_store *store = NULL;
    int rc = cli_parse(cmd, argc, argv, flags, pos, 1, 2, &count);
    if (rc == 0)
        rc = check_words(cmd, pos, count, &f);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    td_dlq_filter filter = {f.subscription, f.type, f.stream};
    bool reads = strcmp(pos[0], "list") == 0 || strcmp(pos[0], "show") == 0 ||
                 strcmp(pos[0], "history") == 0;
    int error = cli_open(&store, false, reads);
    if (error == 0 && f.subscription &&
        (rc = cli_check_subscription(cmd, store, f.subscription)) != 0) {
        td_store_free(store);
        return rc;
    }
    if (error == 0 && strcmp(pos[0], "list") == 0)
        error = dlq_list(store, &filter);
    else if (error == 0 && strcmp(pos[0], "history") == 0)
        error = dlq_history(store);
    else if (error == 0)
        error = dlq_act(store, pos[0], count > 1 ? pos[1] : NULL, &f, &filter);
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
