/*
 * test_pipelined_sync.c: with pipelined commits, a failed sync of the log is
 * fail-stop too. A child appends one event at a time on a store with
 * pipelined_commits, under strace, which makes the kernel's fdatasync fail
 * with EIO from its Nth call on (real fault injection, nothing mocked). The
 * child prints each append's result: the appends before the failure are
 * acknowledged, the one whose sync failed gets TD_EIO, every later one
 * TD_ECLOSED; no append is acknowledged after the first failure. Reopened,
 * the store holds every acknowledged event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define APPENDS   40
#define FAIL_FROM 12 /* the fdatasync call that fails first */

static const char *self;

static int child_main(const char *url)
{
    td_store *store = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.pipelined_commits = true;
    if (td_store_open(&store, url, &opts) < 0)
        return 2;
    for (int i = 0; i < APPENDS; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        td_event ev = tt_event("Tick", data);
        int rc = td_store_append(store, "clock-1", TD_EXPECT_ANY, &ev, 1);
        printf("%d %lld\n", rc, (long long)(rc == 0 ? ev.position : 0));
        fflush(stdout);
    }
    td_store_free(store);
    return 0;
}

/* Runs the child under strace; returns its stdout as a FILE. */
static FILE *spawn_under_strace(const char *url, pid_t *pid)
{
    char inject[64];
    int fds[2];
    snprintf(inject, sizeof inject, "inject=fdatasync:error=EIO:when=%d+", FAIL_FROM);
    assert_int_equal(pipe(fds), 0);
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1); /* LeakSanitizer cannot run under ptrace */
        execlp("strace", "strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync", "-e",
               inject, self, "--child", url, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    return fdopen(fds[0], "r");
}

static int first_position(const td_event *ev, void *payload)
{
    *(int64_t *)payload = ev->position;
    return 1;
}

static void test_failed_sync_is_fail_stop(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "pipelined");
    pid_t pid;
    FILE *out = spawn_under_strace(url, &pid);
    assert_non_null(out);
    int rc, results[APPENDS], n = 0, acked = 0;
    long long positions[APPENDS], pos;
    while (n < APPENDS && fscanf(out, "%d %lld", &rc, &pos) == 2) {
        results[n] = rc;
        positions[n++] = pos;
    }
    fclose(out);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(n, APPENDS);
    while (acked < n && results[acked] == 0)
        acked++;
    print_message("%d appends acknowledged before the failed sync\n", acked);
    assert_true(acked >= 1 && acked < n); /* some went through, then the failure came */
    assert_int_equal(results[acked], TD_EIO);
    for (int i = acked + 1; i < n; i++)
        assert_int_equal(results[i], TD_ECLOSED);

    td_store *store = tt_open(url); /* reopened: recovery from the log */
    for (int i = 0; i < acked; i++) {
        td_read_query q = TD_READ_QUERY_INIT;
        int64_t found = 0;
        q.after_position = positions[i] - 1;
        q.limit = 1;
        assert_td_ok(td_store_read(store, &q, first_position, &found));
        assert_int_equal(found, positions[i]);
    }
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    self = "/proc/self/exe";
    char path[4096];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len > 0) {
        path[len] = '\0';
        self = path;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_failed_sync_is_fail_stop)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
