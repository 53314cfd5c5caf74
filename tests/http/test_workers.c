/*
 * test_workers.c: the shop's command workers (shop/http/workers.c), on
 * real threads. Commands run first in, first out; new work (bounded) waits
 * while the gate is shut, lets other commands pass it meanwhile, and starts
 * once the gate opens or it has waited max_wait; new work is refused while
 * the oldest waiting new work has waited longer than max_wait, other
 * commands are not; the queue is capped; a stop runs what is queued, gate
 * or not. Waits are on observable state (what ran, what the workers say),
 * never on a fixed sleep standing for an outcome.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "http/http.h"
#include "support.h"

#define WAIT_LIMIT_MS 20000 /* a wait for what must happen fails the test after this */

typedef struct book {
    pthread_mutex_t lock;
    char order[64]; /* job names in the order they ran */
    size_t count;
    atomic_bool gate_open;
    atomic_bool release; /* lets a blocking job end */
    atomic_int blocking; /* blocking jobs running now */
} book_t;

typedef struct job_arg {
    book_t *book;
    char name;
    bool block; /* hold the worker until book->release */
} job_arg;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void run(void *arg)
{
    job_arg *j = arg;
    if (j->block) {
        atomic_fetch_add(&j->book->blocking, 1);
        while (!atomic_load(&j->book->release))
            sleep_ms(1);
        atomic_fetch_sub(&j->book->blocking, 1);
    }
    pthread_mutex_lock(&j->book->lock);
    j->book->order[j->book->count++] = j->name;
    pthread_mutex_unlock(&j->book->lock);
}

static bool gate(void *arg)
{
    return atomic_load(&((book_t *)arg)->gate_open);
}

static size_t ran(book_t *book, char *order)
{
    pthread_mutex_lock(&book->lock);
    size_t n = book->count;
    memcpy(order, book->order, n);
    order[n] = '\0';
    pthread_mutex_unlock(&book->lock);
    return n;
}

/* Waits until n jobs ran; returns the order they ran in. */
static void wait_ran(book_t *book, size_t n, char *order)
{
    for (int ms = 0; ran(book, order) < n; ms++) {
        assert_true(ms < WAIT_LIMIT_MS);
        sleep_ms(1);
    }
}

static void wait_blocking(book_t *book, int n)
{
    for (int ms = 0; atomic_load(&book->blocking) != n; ms++) {
        assert_true(ms < WAIT_LIMIT_MS);
        sleep_ms(1);
    }
}

static void book_init(book_t *book)
{
    memset(book, 0, sizeof *book);
    pthread_mutex_init(&book->lock, NULL);
}

static void test_first_in_first_out(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    atomic_store(&book.gate_open, true);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 1, 16, 50000, gate, &book), 0);
    job_arg a[5] = {{&book, 'H', true},
                    {&book, 'a', false},
                    {&book, 'b', false},
                    {&book, 'c', false},
                    {&book, 'd', false}};
    assert_int_equal(http_workers_submit(w, run, &a[0], false), 0);
    wait_blocking(&book, 1); /* the one worker is held: the rest queue */
    for (int i = 1; i < 5; i++)
        assert_int_equal(http_workers_submit(w, run, &a[i], i % 2 == 0), 0);
    atomic_store(&book.release, true);
    char order[65];
    wait_ran(&book, 5, order);
    assert_string_equal(order, "Habcd");
    http_workers_free(w);
    pthread_mutex_destroy(&book.lock);
}

/* New work waits while the gate is shut; other commands pass it. */
static void test_gate_holds_new_work_only(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 2, 16, 600 * 1000000LL, gate, &book), 0);
    job_arg n1 = {&book, 'N', false}, c1 = {&book, 'c', false}, c2 = {&book, 'd', false};
    assert_int_equal(http_workers_submit(w, run, &n1, true), 0);
    assert_int_equal(http_workers_submit(w, run, &c1, false), 0);
    assert_int_equal(http_workers_submit(w, run, &c2, false), 0);
    char order[65];
    wait_ran(&book, 2, order);
    assert_int_equal(strspn(order, "cd"), 2); /* both commands, not the new order */
    sleep_ms(20);
    assert_int_equal(ran(&book, order), 2);  /* still held */
    assert_null(http_workers_full(w, true)); /* waited far less than its bound */
    atomic_store(&book.gate_open, true);
    wait_ran(&book, 3, order);
    assert_int_equal(order[2], 'N');
    http_workers_free(w);
    pthread_mutex_destroy(&book.lock);
}

/* New work held by a gate that stays shut starts once it has waited its
 * bound: the gate paces, it never starves. */
static void test_gate_never_starves(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 1, 16, 30000, gate, &book), 0);
    job_arg n1 = {&book, 'N', false}, n2 = {&book, 'M', false};
    assert_int_equal(http_workers_submit(w, run, &n1, true), 0);
    assert_int_equal(http_workers_submit(w, run, &n2, true), 0);
    char order[65];
    wait_ran(&book, 2, order);
    assert_string_equal(order, "NM");
    assert_false(atomic_load(&book.gate_open));
    http_workers_free(w);
    pthread_mutex_destroy(&book.lock);
}

/* While the oldest new work waiting has waited past the bound, new work is
 * refused and other commands are still taken; the queue is capped for all. */
static void test_refusals(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    atomic_store(&book.gate_open, true);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 1, 3, 5000, gate, &book), 0);
    job_arg h = {&book, 'H', true}, n1 = {&book, 'N', false}, n2 = {&book, 'M', false},
            c1 = {&book, 'c', false}, c2 = {&book, 'd', false}, c3 = {&book, 'e', false};
    assert_int_equal(http_workers_submit(w, run, &h, false), 0);
    wait_blocking(&book, 1);
    assert_null(http_workers_full(w, true));
    assert_int_equal(http_workers_submit(w, run, &n1, true), 0);
    /* n1 waits behind the held worker until it is past its bound */
    const char *why = NULL;
    for (int ms = 0; (why = http_workers_full(w, true)) == NULL; ms++) {
        assert_true(ms < WAIT_LIMIT_MS);
        sleep_ms(1);
    }
    assert_non_null(strstr(why, "wait"));
    assert_int_equal(http_workers_submit(w, run, &n2, true), TD_EBUSY);
    assert_null(http_workers_full(w, false));
    assert_int_equal(http_workers_submit(w, run, &c1, false), 0);
    assert_int_equal(http_workers_submit(w, run, &c2, false), 0);
    /* three wait: the cap */
    assert_non_null(http_workers_full(w, false));
    assert_int_equal(http_workers_submit(w, run, &c3, false), TD_EBUSY);
    atomic_store(&book.release, true);
    char order[65];
    wait_ran(&book, 4, order);
    assert_string_equal(order, "HNcd");
    assert_null(http_workers_full(w, true));
    http_workers_free(w);
    assert_int_equal(ran(&book, order), 4); /* the refused ones never ran */
    pthread_mutex_destroy(&book.lock);
}

static void run_slowly(void *arg)
{
    sleep_ms(50);
    run(arg);
}

/* New work is refused when what waits ahead of it would take longer than
 * its bound to run, at the pace new work ran so far, before the oldest has
 * waited that long: a burst past what the workers can do in time is turned
 * away at once. */
static void test_refused_by_the_wait_foreseen(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    atomic_store(&book.gate_open, true);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 1, 16, 120000, gate, &book), 0);
    job_arg first = {&book, 'F', false}, h = {&book, 'H', true}, n[4];
    assert_int_equal(http_workers_submit(w, run_slowly, &first, true), 0); /* 50 ms an order */
    char order[65];
    wait_ran(&book, 1, order);
    assert_int_equal(http_workers_submit(w, run, &h, false), 0);
    wait_blocking(&book, 1);
    for (int i = 0; i < 4; i++)
        n[i] = (job_arg){&book, (char)('a' + i), false};
    assert_int_equal(http_workers_submit(w, run_slowly, &n[0], true), 0);        /* none ahead */
    assert_int_equal(http_workers_submit(w, run_slowly, &n[1], true), 0);        /* 50 ms ahead */
    assert_int_equal(http_workers_submit(w, run_slowly, &n[2], true), 0);        /* 100 ms ahead */
    assert_int_equal(http_workers_submit(w, run_slowly, &n[3], true), TD_EBUSY); /* 150 ms */
    assert_non_null(strstr(http_workers_full(w, true), "would wait"));
    atomic_store(&book.release, true);
    wait_ran(&book, 5, order);
    assert_string_equal(order, "FHabc");
    http_workers_free(w);
    pthread_mutex_destroy(&book.lock);
}

/* A stop runs what is queued, the gate shut or not, then refuses new work
 * until the workers are freed (a connection thread may still call in). */
static void test_stop_runs_the_queue(void **state)
{
    (void)state;
    book_t book;
    book_init(&book);
    http_workers *w = NULL;
    assert_int_equal(http_workers_start(&w, 1, 16, 600 * 1000000LL, gate, &book), 0);
    job_arg n1 = {&book, 'N', false}, n2 = {&book, 'M', false};
    assert_int_equal(http_workers_submit(w, run, &n1, true), 0);
    assert_int_equal(http_workers_submit(w, run, &n2, true), 0);
    http_workers_stop(w); /* the gate stays shut */
    char order[65];
    assert_int_equal(ran(&book, order), 2);
    assert_string_equal(order, "NM");
    /* stopped, it refuses what comes after, until it is freed */
    job_arg late = {&book, 'L', false};
    assert_int_equal(http_workers_submit(w, run, &late, false), TD_EBUSY);
    assert_string_equal(http_workers_full(w, false), "the server is stopping");
    http_workers_stop(w); /* again: nothing */
    http_workers_free(w);
    assert_int_equal(ran(&book, order), 2);
    pthread_mutex_destroy(&book.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_in_first_out),
        cmocka_unit_test(test_gate_holds_new_work_only),
        cmocka_unit_test(test_gate_never_starves),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refused_by_the_wait_foreseen),
        cmocka_unit_test(test_stop_runs_the_queue),
        /* one a line */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
