/*
 * support.c: shared test helpers (see support.h).
 */
#define _XOPEN_SOURCE 700
#include "support.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *tt_tmpdir(void)
{
    char *dir = tmpdir_make(getenv("TMPDIR"), "tidings-test");
    assert_non_null(dir);
    return dir;
}

void tt_rmdir(char *dir)
{
    tmpdir_remove(dir);
}

const char *tt_backend(void)
{
    const char *b = getenv("TD_TEST_STORE");
    return b && b[0] ? b : "sqlite";
}

bool tt_postgres(void)
{
    return strcmp(tt_backend(), "postgres") == 0;
}

const char *tt_pg_server_url(void)
{
    static char url[1024];
    const char *given = getenv("TD_TEST_PG_URL");
    if (given && given[0])
        return given;
    const char *state = getenv("TD_TEST_PG_STATE");
    FILE *f = state ? fopen(state, "r") : NULL;
    char line[1100];
    url[0] = '\0';
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "url=", 4) == 0) {
            snprintf(url, sizeof url, "%s", line + 4);
            url[strcspn(url, "\n")] = '\0';
        }
    if (f)
        fclose(f);
    if (url[0] == '\0')
        fail_msg("no PostgreSQL server for the tests: set TD_TEST_PG_URL, or TD_TEST_PG_STATE "
                 "to the state file of scripts/start-postgres.sh");
    return url;
}

char *tt_pg_schema_url(const char *name)
{
    static int counter;
    char schema[64];
    int n = snprintf(schema, sizeof schema, "t%ld_%d_", (long)getpid(), counter++);
    for (size_t i = 0; name[i] && n < (int)sizeof schema - 1; i++) {
        char c = name[i];
        schema[n++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c
                      : c >= 'A' && c <= 'Z'                           ? (char)(c - 'A' + 'a')
                                                                       : '_';
    }
    schema[n] = '\0';
    char *url = malloc(2048);
    assert_non_null(url);
    snprintf(url, 2048, "%s?options=-csearch_path%%3D%s", tt_pg_server_url(), schema);
    return url;
}

char *tt_store_url(const char *dir, const char *name)
{
    if (tt_postgres())
        return tt_pg_schema_url(name);
    char *url = malloc(4096);
    assert_non_null(url);
    if (strcmp(tt_backend(), "sqlite") != 0 && strcmp(tt_backend(), "sqlite-pipelined") != 0)
        fail_msg("backend '%s' is not supported by this build of the tests", tt_backend());
    snprintf(url, 4096, "sqlite:%s/%s.db", dir, name);
    return url;
}

static char *fixture_dir, *fixture_url;

td_store *tt_fixture(const char *name)
{
    fixture_dir = tt_tmpdir();
    fixture_url = tt_store_url(fixture_dir, name);
    return tt_open(fixture_url);
}

const char *tt_fixture_url(void)
{
    return fixture_url;
}

const char *tt_fixture_dir(void)
{
    return fixture_dir;
}

void tt_fixture_free(td_store *store)
{
    td_store_free(store);
    free(fixture_url);
    tt_rmdir(fixture_dir);
    fixture_url = fixture_dir = NULL;
}

td_store *tt_open(const char *url)
{
    td_store *store = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.pipelined_commits = strcmp(tt_backend(), "sqlite-pipelined") == 0;
    assert_td_ok(td_store_open(&store, url, &opts));
    return store;
}

td_event tt_event(const char *type, const char *data)
{
    td_event ev;
    td_event_init(&ev);
    ev.type = type;
    ev.data = data;
    return ev;
}

int64_t tt_append(td_store *store, const char *stream, const char *type, int n)
{
    char data[64];
    snprintf(data, sizeof data, "{\"n\":%d}", n);
    td_event ev = tt_event(type, data);
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
    return ev.position;
}

static int count_one(const td_event *ev, void *payload)
{
    (void)ev;
    (*(int64_t *)payload)++;
    return 0;
}

int64_t tt_count(td_store *store, const td_read_query *q)
{
    int64_t n = 0;
    assert_td_ok(td_store_read(store, q, count_one, &n));
    return n;
}

/* ---- child processes ------------------------------------------------------ */

#include <sys/wait.h>

#include "child.h"

pid_t tt_spawn(const char *argv0, const char *const *args, int *out_fd)
{
    int fds[2] = {-1, -1};
    const char *argv[16] = {argv0, "--child"};
    int n = 2;
    for (; args[n - 2] && n < 15; n++)
        argv[n] = args[n - 2];
    argv[n] = NULL;
    if (out_fd)
        assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (out_fd) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
        }
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    if (out_fd) {
        close(fds[1]);
        *out_fd = fds[0];
    }
    return pid;
}

int tt_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tt_mbox_count(const char *path, const char *const *needles)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            text = realloc(text, cap);
            assert_non_null(text);
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    int count = 0;
    if (text == NULL)
        return 0;
    text[len] = '\0';
    /* entries start with "From " at the start of the file or after a blank line */
    for (char *entry = text; entry && *entry;) {
        char *next = strstr(entry + 1, "\n\nFrom ");
        if (next)
            next[1] = '\0'; /* ends this entry's text (its blank line's first byte) */
        bool all = true;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(entry, needles[i]) != NULL;
        count += all;
        entry = next ? next + 2 : NULL;
    }
    free(text);
    return count;
}

const unsigned char *tt_master_key(void)
{
    static const unsigned char key[TD_MASTER_KEY_BYTES] = "tidings tests' master key, fixed";
    return key;
}
