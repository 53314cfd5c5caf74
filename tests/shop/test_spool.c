/*
 * test_spool.c: the mail spool (shop/services/spool.c). Messages sent from
 * many threads at once are all in the file, once each; sending a message
 * again, also after reopening, adds nothing; a message torn by a crash
 * mid-append is cut off on opening and goes out again whole; a body line
 * starting with "From " cannot split a message; a full file is rotated,
 * and what the current and the last rotated file hold is still sent once;
 * on a full disk (a small tmpfs, skipped where mounting is refused) a send
 * fails with TD_ENOSPC, leaves nothing behind, and goes through once there
 * is space.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "services/mailer.h"
#include "support.h"

static char *dir, path[4200];

static int setup(void **state)
{
    (void)state;
    dir = tt_tmpdir();
    snprintf(path, sizeof path, "%s/mail/spool.mbox", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_rmdir(dir);
    return 0;
}

static shop_mailer open_spool(void)
{
    char at[4200];
    shop_mailer m;
    snprintf(at, sizeof at, "%s/mail", dir);
    assert_int_equal(shop_spool_new(&m, at), 0);
    return m;
}

static int send_one(shop_mailer *m, const char *event, const char *body)
{
    shop_mail mail = {event, "order_received", "o-1", "ada@example.com",
                      "Ada", "Hello",          body,  NULL};
    return m->send(m->self, &mail);
}

static int all(void)
{
    const char *needles[] = {"", NULL};
    return tt_mbox_count(path, needles);
}

static off_t size_of(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_once_across_reopen(void **state)
{
    (void)state;
    shop_mailer m = open_spool();
    assert_int_equal(send_one(&m, "e1", "one"), 0);
    assert_int_equal(send_one(&m, "e2", "two"), 0);
    assert_int_equal(send_one(&m, "e1", "one"), 0); /* redelivery */
    assert_int_equal(all(), 2);
    shop_spool_free(&m);
    m = open_spool();
    assert_int_equal(send_one(&m, "e2", "two"), 0);
    assert_int_equal(send_one(&m, "e3", "From here on, a line that looks like a separator"), 0);
    shop_spool_free(&m);
    assert_int_equal(all(), 3);
    /* quoted-printable writes the F of a body line's "From " as =46 */
    const char *quoted[] = {"\n=46rom here on", NULL}, *bare[] = {"\nFrom here on", NULL};
    assert_int_equal(tt_mbox_count(path, quoted), 1);
    assert_int_equal(tt_mbox_count(path, bare), 0);
}

static void test_torn_message_is_cut_and_sent_again(void **state)
{
    (void)state;
    shop_mailer m = open_spool();
    assert_int_equal(send_one(&m, "e1", "one"), 0);
    assert_int_equal(send_one(&m, "e2", "two"), 0);
    shop_spool_free(&m);
    off_t whole = size_of();
    /* a crash in the middle of appending e3: its first 120 bytes only */
    char *again = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&again, &len);
    assert_non_null(mem);
    fprintf(mem, "From shop@tidings.local Thu Nov 26 10:00:00 2026\nX-Spool-Length: 00000600\n"
                 "From: Shop <shop@tidings.local>\nTo: \"Ada\" <ada@example.com>\nSubj");
    fclose(mem);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, again, len), (ssize_t)len);
    close(fd);
    free(again);
    m = open_spool();
    assert_int_equal(size_of(), whole); /* cut off */
    assert_int_equal(send_one(&m, "e3", "three"), 0);
    assert_int_equal(send_one(&m, "e2", "two"), 0);
    shop_spool_free(&m);
    assert_int_equal(all(), 3);
}

typedef struct sender {
    shop_mailer *m;
    int id;
} sender;

static void *send_many(void *arg)
{
    sender *s = arg;
    for (int i = 0; i < 50; i++) {
        char event[64];
        snprintf(event, sizeof event, "t%d-%d", s->id, i);
        if (send_one(s->m, event, "body") != 0)
            return (void *)1;
        snprintf(event, sizeof event, "t%d-%d", (s->id + 1) % 8, i / 2); /* another's, again */
        if (send_one(s->m, event, "body") != 0)
            return (void *)1;
    }
    return NULL;
}

/* Eight threads sending through m with fn at once; each must succeed. */
static void run_senders(shop_mailer *m, void *(*fn)(void *))
{
    pthread_t threads[8];
    sender senders[8];
    for (int i = 0; i < 8; i++) {
        senders[i] = (sender){m, i};
        assert_int_equal(pthread_create(&threads[i], NULL, fn, &senders[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        void *rc = NULL;
        pthread_join(threads[i], &rc);
        assert_null(rc);
    }
}

static void test_concurrent_senders(void **state)
{
    (void)state;
    shop_mailer m = open_spool();
    run_senders(&m, send_many);
    shop_spool_free(&m);
    assert_int_equal(all(), 400);
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 50; i += 7) {
            char id[96];
            snprintf(id, sizeof id, "Message-ID: <t%d-%d.order_received@", t, i);
            const char *needles[] = {id, NULL};
            assert_int_equal(tt_mbox_count(path, needles), 1);
        }
}

/* Messages named name in DIR/mail/spool.mbox (n 0) or spool.mbox.n. */
static int count_in(int n, const char *name)
{
    char file[4300], id[96];
    snprintf(file, sizeof file, n ? "%s.%d" : "%s", path, n);
    snprintf(id, sizeof id, "Message-ID: <%s.order_received@", name);
    const char *needles[] = {name[0] ? id : "", NULL};
    struct stat st;
    return stat(file, &st) == 0 ? tt_mbox_count(file, needles) : -1;
}

static void test_rotation(void **state)
{
    (void)state;
    char at[4200], name[16];
    snprintf(at, sizeof at, "%s/mail", dir);
    shop_mailer m;
    assert_int_equal(shop_spool_open(&m, at, 1200), 0); /* about two messages a file */
    for (int i = 1; i <= 7; i++) {
        snprintf(name, sizeof name, "e%d", i);
        assert_int_equal(send_one(&m, name, "a body of some length for the test"), 0);
    }
    int files = 0, total = 0;
    for (int n = 1; count_in(n, "") >= 0; n++, files++)
        total += count_in(n, "");
    total += count_in(0, "");
    assert_true(files >= 2);
    assert_int_equal(total, 7); /* each once, none lost to a rotation */
    assert_int_equal(count_in(files + 1, ""), -1);
    /* what the current file and the last rotated one hold: once, also
     * across reopening */
    for (int round = 0; round < 2; round++) {
        for (int i = 1; i <= 7; i++) {
            snprintf(name, sizeof name, "e%d", i);
            int before = count_in(0, name) + count_in(files, name);
            if (before == 1)
                assert_int_equal(send_one(&m, name, "a body of some length for the test"), 0);
        }
        int again = count_in(0, "");
        for (int n = 1; n <= files; n++)
            again += count_in(n, "");
        assert_int_equal(again, 7);
        shop_spool_free(&m);
        assert_int_equal(shop_spool_open(&m, at, 1200), 0);
    }
    shop_spool_free(&m);
}

static void *send_unique(void *arg)
{
    sender *s = arg;
    for (int i = 0; i < 50; i++) {
        char event[64];
        snprintf(event, sizeof event, "u%d-%d", s->id, i);
        if (send_one(s->m, event, "body") != 0)
            return (void *)1;
    }
    return NULL;
}

/* Rotations while eight threads append and wait for shared fsyncs: every
 * message ends up in exactly one file, and no sender waits forever on a
 * file that was rotated under it. */
static void test_rotation_under_concurrent_senders(void **state)
{
    (void)state;
    char at[4200];
    snprintf(at, sizeof at, "%s/mail", dir);
    shop_mailer m;
    assert_int_equal(shop_spool_open(&m, at, 3000), 0);
    run_senders(&m, send_unique);
    shop_spool_free(&m);
    int files = 0;
    while (count_in(files + 1, "") >= 0)
        files++;
    assert_true(files > 10);
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 50; i++) {
            char name[32];
            snprintf(name, sizeof name, "u%d-%d", t, i);
            int found = count_in(0, name);
            for (int n = 1; n <= files; n++)
                found += count_in(n, name);
            assert_int_equal(found, 1);
        }
}

/* A full disk: the send fails with TD_ENOSPC and leaves the file as it
 * was; the spool goes on, and sends once there is space. */
static void test_full_disk(void **state)
{
    (void)state;
    char filler[4300], body[8192];
    if (mount("tidings-test", dir, "tmpfs", 0, "size=256k") != 0)
        skip(); /* needs root */
    shop_mailer m = open_spool();
    assert_int_equal(send_one(&m, "e-1", "before"), 0);
    off_t before = size_of();
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(body, 'x', sizeof body);
    for (size_t n = sizeof body; n >= 1; n /= 2)
        while (write(fd, body, n) == (ssize_t)n)
            ;
    close(fd);
    body[sizeof body - 1] = '\0';
    assert_int_equal(send_one(&m, "e-2", body), TD_ENOSPC);
    assert_int_equal(size_of(), before);                    /* nothing of it stays */
    assert_int_equal(send_one(&m, "e-2", body), TD_ENOSPC); /* not stopped: tried again */
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(send_one(&m, "e-2", body), 0);
    assert_int_equal(send_one(&m, "e-2", body), 0); /* once */
    assert_int_equal(all(), 2);
    shop_spool_free(&m);
    assert_int_equal(umount(dir), 0);
}

/* ---- several processes on one spool -------------------------------------------- */

static shop_mailer open_spool_rotating(size_t rotate_at)
{
    char at[4200];
    shop_mailer m;
    snprintf(at, sizeof at, "%s/mail", dir);
    assert_int_equal(shop_spool_open(&m, at, rotate_at), 0);
    return m;
}

/* Two spools on one folder, as two shop processes sharing it would have:
 * what one sent, the other does not send again, also across a rotation
 * the other made; what either sends next lands in the current file. */
static void test_two_spools_share_what_they_sent(void **state)
{
    (void)state;
    char scratch[4300];
    shop_mailer m;
    snprintf(scratch, sizeof scratch, "%s/scratch", dir);
    assert_int_equal(shop_spool_new(&m, scratch), 0);
    assert_int_equal(send_one(&m, "e0", "a body of some length for the test"), 0);
    shop_spool_free(&m);
    struct stat st;
    snprintf(scratch, sizeof scratch, "%s/scratch/spool.mbox", dir);
    assert_int_equal(stat(scratch, &st), 0);
    /* two messages fill a file: the third send rotates it */
    size_t rotate_at = (size_t)st.st_size * 2 - 10;
    shop_mailer a = open_spool_rotating(rotate_at), b = open_spool_rotating(rotate_at);
    assert_int_equal(send_one(&a, "e1", "a body of some length for the test"), 0);
    assert_int_equal(send_one(&a, "e2", "a body of some length for the test"), 0);
    assert_int_equal(send_one(&b, "e1", "a body of some length for the test"), 0); /* rotates */
    assert_int_equal(count_in(1, ""), 2);
    assert_int_equal(count_in(0, ""), 0); /* b found e1 in what a appended */
    assert_int_equal(send_one(&a, "e2", "a body of some length for the test"), 0);
    assert_int_equal(count_in(0, ""), 0); /* a found e2 in the file b rotated */
    assert_int_equal(send_one(&a, "e3", "a body of some length for the test"), 0);
    assert_int_equal(send_one(&b, "e3", "a body of some length for the test"), 0);
    assert_int_equal(send_one(&b, "e4", "a body of some length for the test"), 0);
    assert_int_equal(count_in(0, "e3"), 1);
    assert_int_equal(count_in(0, "e4"), 1);
    assert_int_equal(count_in(0, ""), 2);
    assert_int_equal(count_in(2, ""), -1); /* one rotation only */
    shop_spool_free(&a);
    shop_spool_free(&b);
}

/* A process that died in the middle of an append left a torn entry: the
 * next sender of another process cuts it off and its own entry is whole. */
static void test_torn_entry_of_another_process(void **state)
{
    (void)state;
    shop_mailer a = open_spool();
    assert_int_equal(send_one(&a, "e1", "one"), 0);
    off_t whole = size_of();
    static const char torn[] = "From shop@tidings.local Thu Nov 26 10:00:00 2026\n"
                               "X-Spool-Length: 00000600\nFrom: Shop <shop@tid";
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, torn, sizeof torn - 1), (ssize_t)(sizeof torn - 1));
    close(fd);
    assert_int_equal(send_one(&a, "e2", "two"), 0);
    assert_true(size_of() > whole);
    assert_int_equal(all(), 2);
    const char *needles[] = {"Subj", NULL};
    assert_int_equal(tt_mbox_count(path, needles), 2); /* both whole */
    shop_spool_free(&a);
    a = open_spool(); /* and e2 is still there when the file is read again */
    assert_int_equal(count_in(0, "e2"), 1);
    assert_int_equal(send_one(&a, "e2", "two"), 0);
    assert_int_equal(all(), 2);
    shop_spool_free(&a);
}

#define PROCESSES 4
#define SHARED    100

/* One process: opens the spool and sends every shared name (in an order
 * of its own) and fifty of its own from four threads. */
static void *send_shared(void *arg)
{
    sender *s = arg;
    for (int i = 0; i < SHARED; i++) {
        char event[64];
        snprintf(event, sizeof event, "s-%d", (i * 7 + s->id * 13) % SHARED);
        if (send_one(s->m, event, "body") != 0)
            return (void *)1;
        if (i % 2 == 0) {
            snprintf(event, sizeof event, "own-%d-%d", s->id, i / 2);
            if (send_one(s->m, event, "body") != 0)
                return (void *)1;
        }
    }
    return NULL;
}

static int process_main(int p)
{
    shop_mailer m = open_spool();
    pthread_t threads[4];
    sender senders[4];
    for (int i = 0; i < 4; i++) {
        senders[i] = (sender){&m, p * 4 + i};
        if (pthread_create(&threads[i], NULL, send_shared, &senders[i]) != 0)
            return 1;
    }
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        pthread_join(threads[i], &rc);
        failed |= rc != NULL;
    }
    shop_spool_free(&m);
    return failed;
}

/* Four processes of four threads on one spool at once: each shared name
 * is in the file once, and every process's own names too. */
static void test_processes_share_a_spool(void **state)
{
    (void)state;
    pid_t pids[PROCESSES];
    for (int p = 0; p < PROCESSES; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0)
            _exit(process_main(p));
    }
    for (int p = 0; p < PROCESSES; p++) {
        int status = 0;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char name[32];
    for (int i = 0; i < SHARED; i++) {
        snprintf(name, sizeof name, "s-%d", i);
        assert_int_equal(count_in(0, name), 1);
    }
    for (int t = 0; t < PROCESSES * 4; t++) {
        snprintf(name, sizeof name, "own-%d-%d", t, SHARED / 2 - 1);
        assert_int_equal(count_in(0, name), 1);
    }
    assert_int_equal(all(), SHARED + PROCESSES * 4 * SHARED / 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_once_across_reopen),
        T(test_torn_message_is_cut_and_sent_again),
        T(test_concurrent_senders),
        T(test_rotation),
        T(test_rotation_under_concurrent_senders),
        T(test_full_disk),
        T(test_two_spools_share_what_they_sent),
        T(test_torn_entry_of_another_process),
        T(test_processes_share_a_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
