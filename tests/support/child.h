/*
 * child.h: running helper processes from a test binary. A test re-executes
 * its own binary with "--child" and arguments; main() hands those to the
 * test's child function before cmocka starts. Exec'ing (instead of a bare
 * fork) keeps children independent of the parent's threads and locks.
 */
#ifndef TD_TEST_CHILD_H
#define TD_TEST_CHILD_H

#include <sys/types.h>

/* Starts argv0 --child args...; stdout of the child goes to *out_fd (a pipe
 * the caller reads and closes) when out_fd is not NULL. Returns the pid. */
pid_t tt_spawn(const char *argv0, const char *const *args, int *out_fd);

/* Waits for pid; returns its exit status, or 128 + signal. */
int tt_wait(pid_t pid);

#endif
