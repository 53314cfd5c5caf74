/*
 * spool.c (shop): the mail spool, the shop's default mailer (see mailer.h).
 *
 * Every message is appended to one mbox file, DIR/spool.mbox, and is sent
 * once that append is durable. The fdatasync is shared: while one sender
 * syncs, the others append and wait, and the next sync covers them all
 * (group commit, as the store's writer does for units). A file per message
 * (the Maildir this replaces) cost each e-mail a file creation and two
 * fsyncs, which competed with the store's own fsyncs on the disk; see
 * docs/benchmarks.md.
 *
 * Never twice: a message is named by its causing event and kind (its
 * Message-ID), and the spool keeps the names of the messages in the file;
 * sending a name it holds is done at once. Opening reads the names back.
 *
 * Bounded: a message that finds the file past rotate_at bytes (64 MiB)
 * makes it durable to its end (later senders wait meanwhile), renames it
 * DIR/spool.mbox.N (N one above the last) and begins a new one. The spool
 * keeps the names of the current file and of the last rotated one, and
 * opening reads those two, so memory and start-up time stay bounded while
 * a redelivery (which only ever concerns the last few events a crash left
 * unmarked) still finds its message. Names are kept as 16-byte digests:
 * two files' worth (about 190,000 shop e-mails) take at most 12 MiB.
 *
 * Each entry carries its own length (X-Spool-Length, the first header), so
 * opening also finds an entry torn by a crash mid-append, cuts it off, and
 * the message is sent again.
 *
 * After a failed fsync the spool refuses to send (TD_EIO), as the store
 * does after one: the kernel may have dropped what was appended. A full
 * disk is not that: an append that does not fit (ENOSPC, or cut short) is
 * cut off the file again, nothing of it being durable or named yet, and
 * the send fails with TD_ENOSPC; the notification is tried again, and goes
 * out once there is space.
 *
 * Several processes (shop instances sharing DIR) may send through it at
 * once. Each append happens under an flock on DIR/spool.lock, and before
 * it the sender reads what other processes appended since its last look
 * (their names, so that a message one sent is not sent again by another;
 * a torn entry a dead process left at the end is cut off) and notices a
 * rotation another made (the file at DIR/spool.mbox is no longer the one
 * it holds open: it reads the rest of that one, which now holds the
 * previous names, and opens the new one). A name found in what another
 * process appended is made durable before its send returns, as its own
 * would be. The fdatasync itself is done outside the flock.
 *
 * Threads: send is called from the notification lanes at once; `lock`
 * guards everything; one thread at a time holds the flock (`file_held`).
 */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "services/mailer.h"

#define PATH_CAP     4096
#define NAME_MAX_LEN 200

/* A set of message names, kept as their 16-byte BLAKE2b digests in one
 * open-addressed array (all zeros: an empty slot): 32 bytes a name at most
 * half full, where a copy of each name cost about 100. Two names that share
 * a digest (one chance in 2^64 among four billion names) would look sent. */
#define DIGEST_LEN 16
typedef struct digest {
    unsigned char bytes[DIGEST_LEN];
} digest;

typedef struct name_set {
    digest *slots;
    size_t count, cap;
} name_set;

typedef struct spool {
    pthread_mutex_t lock;
    pthread_cond_t synced;
    int fd;
    off_t end;     /* bytes in the file */
    off_t durable; /* bytes synced */
    bool syncing;
    int failed; /* 0, or TD_EIO after a failed fsync or write, TD_ENOMEM without room for an id */
    name_set current, previous; /* names in the file, and in the last rotated one */
    int lock_fd;                /* DIR/spool.lock: flock between processes */
    bool file_held;             /* a thread of this process holds that flock */
    pthread_cond_t file_free;
    char dir[PATH_CAP];
    off_t rotate_at;
    unsigned long rotated; /* N of the last DIR/spool.mbox.N, 0: none */
} spool;

static digest digest_of(const char *name, size_t len)
{
    digest d;
    crypto_generichash(d.bytes, sizeof d.bytes, (const unsigned char *)name, len, NULL, 0);
    if (sodium_is_zero(d.bytes, sizeof d.bytes))
        d.bytes[0] = 1; /* zeros mark an empty slot */
    return d;
}

static size_t slot_of(const digest *d, size_t cap)
{
    size_t h;
    memcpy(&h, d->bytes, sizeof h);
    return h & (cap - 1);
}

static bool empty_slot(const digest *d)
{
    return sodium_is_zero(d->bytes, sizeof d->bytes);
}

static bool set_holds(const name_set *set, const digest *d)
{
    if (set->cap == 0)
        return false;
    for (size_t i = slot_of(d, set->cap); !empty_slot(&set->slots[i]); i = (i + 1) & (set->cap - 1))
        if (memcmp(set->slots[i].bytes, d->bytes, DIGEST_LEN) == 0)
            return true;
    return false;
}

static bool holds(const spool *sp, const char *name)
{
    digest d = digest_of(name, strlen(name));
    return set_holds(&sp->current, &d) || set_holds(&sp->previous, &d);
}

static void set_clear(name_set *set)
{
    free(set->slots);
    memset(set, 0, sizeof *set);
}

static int add_name(name_set *set, const char *name, size_t len)
{
    if ((set->count + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        digest *grown = calloc(cap, sizeof *grown);
        if (grown == NULL)
            return TD_ENOMEM;
        for (size_t i = 0; i < set->cap; i++)
            if (!empty_slot(&set->slots[i])) {
                size_t j = slot_of(&set->slots[i], cap);
                while (!empty_slot(&grown[j]))
                    j = (j + 1) & (cap - 1);
                grown[j] = set->slots[i];
            }
        free(set->slots);
        set->slots = grown;
        set->cap = cap;
    }
    digest d = digest_of(name, len);
    if (set_holds(set, &d))
        return 0;
    size_t i = slot_of(&d, set->cap);
    while (!empty_slot(&set->slots[i]))
        i = (i + 1) & (set->cap - 1);
    set->slots[i] = d;
    set->count++;
    return 0;
}

/* The name in "Message-ID: <NAME@" of the message at text[0..len). */
static int message_name(const char *text, size_t len, const char **name, size_t *name_len)
{
    static const char tag[] = "\nMessage-ID: <";
    const char *at = memmem(text, len, tag, sizeof tag - 1);
    if (at == NULL)
        return -1;
    const char *start = at + sizeof tag - 1;
    const char *end = memchr(start, '@', len - (size_t)(start - text));
    if (end == NULL || end - start > NAME_MAX_LEN)
        return -1;
    *name = start;
    *name_len = (size_t)(end - start);
    return 0;
}

#define LENGTH_TAG    "X-Spool-Length: "
#define LENGTH_DIGITS 8

/* The length an entry at text[0..left) declares, or 0 if it is not whole. */
static size_t whole_entry(const char *text, size_t left)
{
    const char *line = strncmp(text, "From ", 5) == 0 ? memchr(text, '\n', left) : NULL;
    size_t tag = sizeof LENGTH_TAG - 1;
    if (line == NULL || (size_t)(line + 1 - text) + tag + LENGTH_DIGITS + 1 > left ||
        strncmp(line + 1, LENGTH_TAG, tag) != 0)
        return 0;
    char digits[LENGTH_DIGITS + 1], *end = NULL;
    memcpy(digits, line + 1 + tag, LENGTH_DIGITS);
    digits[LENGTH_DIGITS] = '\0';
    unsigned long n = strtoul(digits, &end, 10);
    if (end != digits + LENGTH_DIGITS || n > left || n < 2 || text[n - 1] != '\n' ||
        text[n - 2] != '\n')
        return 0;
    return (size_t)n;
}

/* Reads the names of the whole entries into set; *complete: where they end
 * (a torn last entry is cut there). */
static int load(name_set *set, const char *text, size_t len, off_t *complete)
{
    size_t at = 0, n;
    while (at < len && (n = whole_entry(text + at, len - at)) > 0) {
        const char *name;
        size_t name_len;
        if (message_name(text + at, n, &name, &name_len) == 0 && add_name(set, name, name_len) < 0)
            return TD_ENOMEM;
        at += n;
    }
    *complete = (off_t)at;
    return 0;
}

/* The message as an mbox entry: a From line, its length, the message with
 * LF line ends and ">"-quoted From lines, and a blank line. Caller frees
 * *out. */
static int entry_of(const shop_mail *mail, char **out, size_t *out_len)
{
    char *text = NULL, *body = NULL, date[64], head[128];
    size_t len = 0, body_len = 0;
    int error = shop_mail_format(mail, &text, &len);
    if (error < 0)
        return error;
    FILE *f = open_memstream(&body, &body_len);
    if (f == NULL) {
        free(text);
        return TD_ENOMEM;
    }
    bool line_start = true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue;
        if (line_start && strncmp(text + i, "From ", 5) == 0)
            fputc('>', f);
        fputc(text[i], f);
        line_start = text[i] == '\n';
    }
    fputs(line_start ? "\n" : "\n\n", f);
    free(text);
    if (fclose(f) != 0)
        return TD_ENOMEM;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
    int from = snprintf(head, sizeof head, "From shop@tidings.local %s\n", date);
    size_t total = (size_t)from + sizeof LENGTH_TAG - 1 + LENGTH_DIGITS + 1 + body_len;
    *out = malloc(total + 1);
    if (*out == NULL || total >= 100000000) {
        free(*out);
        free(body);
        return TD_ENOMEM;
    }
    snprintf(*out, total + 1, "%s" LENGTH_TAG "%0*zu\n%s", head, LENGTH_DIGITS, total, body);
    *out_len = total;
    free(body);
    return 0;
}

/* Waits until the file is durable through `upto`, syncing it when no one
 * else does; lock held. A rotation meanwhile means it was: a file is
 * rotated only once durable to its end. */
static void sync_through(spool *sp, off_t upto)
{
    unsigned long file = sp->rotated;
    while (sp->rotated == file && sp->durable < upto && !sp->failed) {
        if (sp->syncing) {
            pthread_cond_wait(&sp->synced, &sp->lock);
            continue;
        }
        sp->syncing = true;
        off_t target = sp->end;
        pthread_mutex_unlock(&sp->lock);
        int rc = fdatasync(sp->fd);
        pthread_mutex_lock(&sp->lock);
        sp->syncing = false;
        if (rc == 0 && target > sp->durable)
            sp->durable = target;
        else if (rc != 0)
            sp->failed = TD_EIO;
        pthread_cond_broadcast(&sp->synced);
    }
}

static int sync_dir(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = d >= 0 && fsync(d) == 0 ? 0 : TD_EIO;
    if (d >= 0)
        close(d);
    return rc;
}

static unsigned long last_rotated(const char *dir);
static int read_range(int fd, off_t from, off_t to, char **out);
static int sync_dir(const char *dir);

/* Renames the full file, durable to its end and with no sync in flight,
 * DIR/spool.mbox.N and begins a new one; its names become the previous
 * file's. Lock held; a failure stops the spool. */
static void rotate(spool *sp)
{
    char from[PATH_CAP + 16], to[PATH_CAP + 32];
    while (sp->syncing) /* no sync of the old file in flight (the flock keeps others out) */
        pthread_cond_wait(&sp->synced, &sp->lock);
    unsigned long last = last_rotated(sp->dir); /* another process may have rotated too */
    if (last > sp->rotated)
        sp->rotated = last;
    snprintf(from, sizeof from, "%s/spool.mbox", sp->dir);
    snprintf(to, sizeof to, "%s/spool.mbox.%lu", sp->dir, sp->rotated + 1);
    if (rename(from, to) != 0 || sync_dir(sp->dir) < 0) {
        sp->failed = TD_EIO;
        return;
    }
    sp->rotated++;
    int fd = open(from, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || sync_dir(sp->dir) < 0) {
        if (fd >= 0)
            close(fd);
        sp->failed = TD_EIO; /* the next open begins the file */
        return;
    }
    close(sp->fd);
    sp->fd = fd;
    sp->end = sp->durable = 0;
    set_clear(&sp->previous);
    sp->previous = sp->current;
    memset(&sp->current, 0, sizeof sp->current);
}

/* Before an append: a full file is made durable to its end (new appends
 * wait meanwhile) and rotated. Lock held. */
static void make_room(spool *sp)
{
    while (!sp->failed && sp->end >= sp->rotate_at) {
        if (sp->durable < sp->end)
            sync_through(sp, sp->end);
        else
            rotate(sp);
    }
}

/* Appends an entry (lock held). One that does not fit is cut off again and
 * TD_ENOSPC returned; any other failure stops the spool. */
static int append_entry(spool *sp, const char *entry, size_t len)
{
    ssize_t wrote = write(sp->fd, entry, len);
    if (wrote == (ssize_t)len)
        return 0;
    int e = wrote < 0 ? errno : ENOSPC; /* a short write: the file system filled up */
    if ((e != ENOSPC && e != EDQUOT) || ftruncate(sp->fd, sp->end) != 0) {
        sp->failed = TD_EIO; /* a partial entry is cut off at the next open */
        return TD_EIO;
    }
    return TD_ENOSPC;
}

/* Takes the flock between processes for this thread; lock held (and let
 * go while waiting for it). */
static int take_file(spool *sp)
{
    while (sp->file_held)
        pthread_cond_wait(&sp->file_free, &sp->lock);
    sp->file_held = true;
    pthread_mutex_unlock(&sp->lock);
    int rc;
    while ((rc = flock(sp->lock_fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&sp->lock);
    if (rc == 0)
        return 0;
    sp->file_held = false;
    pthread_cond_broadcast(&sp->file_free);
    return TD_EIO;
}

static void give_file(spool *sp)
{
    (void)flock(sp->lock_fd, LOCK_UN);
    sp->file_held = false;
    pthread_cond_broadcast(&sp->file_free);
}

/* Reads the entries appended to the open file at fd after `from` up to
 * its end into set; a torn one at the end (its writer died) is cut off.
 * *end: where the whole entries end. Flock held. */
static int read_tail(int fd, name_set *set, off_t from, off_t *end)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return TD_EIO;
    *end = st.st_size < from ? st.st_size : from;
    if (st.st_size <= from)
        return 0;
    char *text = NULL;
    off_t complete = 0;
    int error = read_range(fd, from, st.st_size, &text);
    if (error == 0)
        error = load(set, text, (size_t)(st.st_size - from), &complete);
    free(text);
    if (error == 0 && from + complete < st.st_size &&
        (ftruncate(fd, from + complete) != 0 || fdatasync(fd) != 0))
        error = TD_EIO;
    if (error == 0)
        *end = from + complete;
    return error;
}

/* Catches up with what other processes did since this one last held the
 * flock: their appends, and a rotation. Lock and flock held. */
static int catch_up(spool *sp)
{
    char path[PATH_CAP + 16];
    struct stat named, held;
    snprintf(path, sizeof path, "%s/spool.mbox", sp->dir);
    if (fstat(sp->fd, &held) != 0)
        return TD_EIO;
    bool rotated =
        stat(path, &named) != 0 || named.st_ino != held.st_ino || named.st_dev != held.st_dev;
    off_t end = sp->end;
    int error = read_tail(sp->fd, &sp->current, sp->end, &end);
    if (error < 0)
        return error;
    if (end != sp->end) { /* another's appends: durable when they return, not known here */
        if (end < sp->durable)
            sp->durable = end;
        sp->end = end;
    }
    if (!rotated)
        return 0;
    while (sp->syncing) /* the old file's sync in flight ends first */
        pthread_cond_wait(&sp->synced, &sp->lock);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return TD_EIO;
    close(sp->fd);
    sp->fd = fd;
    sp->rotated = last_rotated(sp->dir);
    set_clear(&sp->previous);
    sp->previous = sp->current;
    memset(&sp->current, 0, sizeof sp->current);
    sp->end = sp->durable = 0;
    error = read_tail(sp->fd, &sp->current, 0, &end);
    if (error == 0)
        sp->end = end;
    return error < 0 ? error : sync_dir(sp->dir);
}

static int send_spooled(void *self, const shop_mail *mail)
{
    spool *sp = self;
    char name[NAME_MAX_LEN + 1], *entry = NULL;
    size_t len = 0;
    int n = snprintf(name, sizeof name, "%s.%s", mail->event_id, mail->kind);
    if (n < 0 || (size_t)n >= sizeof name)
        return TD_EINVAL;
    int error = entry_of(mail, &entry, &len);
    if (error < 0)
        return error;
    pthread_mutex_lock(&sp->lock);
    int file = sp->failed ? sp->failed : take_file(sp);
    if (file == 0 && (file = catch_up(sp)) < 0)
        sp->failed = file; /* the file is not what this process thinks: stop */
    if (file == 0)
        make_room(sp);
    if (file == 0 && !sp->failed && !holds(sp, name) &&
        (error = append_entry(sp, entry, len)) == 0) {
        sp->end += (off_t)len;
        if (add_name(&sp->current, name, strlen(name)) < 0)
            sp->failed = TD_ENOMEM; /* a retry would append it twice: stop */
    }
    if (sp->file_held)
        give_file(sp);
    sync_through(sp, sp->end); /* also when held: it may not be durable yet */
    if (error == 0 && file < 0)
        error = file;
    if (error == 0 && sp->failed)
        error = sp->failed;
    pthread_mutex_unlock(&sp->lock);
    free(entry);
    return error;
}

static int make_dirs(const char *dir)
{
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash)
            *slash = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return TD_EIO;
        if (slash == NULL)
            return 0;
        *slash = '/';
    }
}

/* Reads bytes [from, to) of the file at fd; caller frees *out. */
static int read_range(int fd, off_t from, off_t to, char **out)
{
    size_t len = (size_t)(to - from), got = 0;
    *out = malloc(len + 1);
    if (*out == NULL)
        return TD_ENOMEM;
    while (got < len) {
        ssize_t n = pread(fd, *out + got, len - got, from + (off_t)got);
        if (n <= 0) {
            free(*out);
            *out = NULL;
            return TD_EIO;
        }
        got += (size_t)n;
    }
    (*out)[len] = '\0';
    return 0;
}

/* Reads the whole file at fd (the spool of one shop: megabytes at most). */
static int read_all(int fd, char **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return TD_EIO;
    *len = (size_t)st.st_size;
    return read_range(fd, 0, st.st_size, out);
}

static void spool_free(spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    set_clear(&sp->current);
    set_clear(&sp->previous);
    pthread_cond_destroy(&sp->synced);
    pthread_cond_destroy(&sp->file_free);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

/* N of the last DIR/spool.mbox.N, 0: none. */
static unsigned long last_rotated(const char *dir)
{
    unsigned long last = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end = NULL;
        if (strncmp(e->d_name, "spool.mbox.", 11) != 0 || e->d_name[11] < '1' ||
            e->d_name[11] > '9')
            continue;
        unsigned long n = strtoul(e->d_name + 11, &end, 10);
        if (*end == '\0' && n > last)
            last = n;
    }
    if (d)
        closedir(d);
    return last;
}

/* The names in the last rotated file, into sp->previous. */
static int load_previous(spool *sp)
{
    char path[PATH_CAP + 32], *text = NULL;
    size_t len = 0;
    off_t complete = 0;
    if (sp->rotated == 0)
        return 0;
    snprintf(path, sizeof path, "%s/spool.mbox.%lu", sp->dir, sp->rotated);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int error = fd < 0 ? TD_EIO : read_all(fd, &text, &len);
    if (error == 0)
        error = load(&sp->previous, text, len, &complete);
    free(text);
    if (fd >= 0)
        close(fd);
    return error;
}

int shop_spool_open(shop_mailer *out, const char *dir, size_t rotate_at)
{
    char path[PATH_CAP], *text = NULL;
    size_t len = 0;
    off_t complete = 0;
    if (strlen(dir) + sizeof "/spool.mbox.18446744073709551615" > sizeof path)
        return TD_EINVAL;
    spool *sp = calloc(1, sizeof *sp);
    if (sp == NULL)
        return TD_ENOMEM;
    sp->fd = sp->lock_fd = -1;
    sp->rotate_at = (off_t)(rotate_at ? rotate_at : SHOP_SPOOL_ROTATE_BYTES);
    snprintf(sp->dir, sizeof sp->dir, "%s", dir);
    pthread_mutex_init(&sp->lock, NULL);
    pthread_cond_init(&sp->synced, NULL);
    pthread_cond_init(&sp->file_free, NULL);
    snprintf(path, sizeof path, "%s/spool.lock", dir);
    int error = make_dirs(dir);
    if (error == 0 && (sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        error = TD_EIO;
    while (error == 0 && flock(sp->lock_fd, LOCK_EX) != 0) /* others append meanwhile */
        if (errno != EINTR)
            error = TD_EIO;
    snprintf(path, sizeof path, "%s/spool.mbox", dir);
    bool created = error == 0 && access(path, F_OK) != 0;
    if (error == 0 && (sp->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
        error = TD_EIO;
    if (error == 0)
        error = read_all(sp->fd, &text, &len);
    if (error == 0)
        error = load(&sp->current, text, len, &complete);
    free(text);
    if (error == 0 && complete < (off_t)len && /* cut a torn message off, durably */
        (ftruncate(sp->fd, complete) != 0 || fdatasync(sp->fd) != 0))
        error = TD_EIO;
    if (error == 0 && created) /* the new file's name, durably */
        error = sync_dir(dir);
    if (error == 0) {
        sp->rotated = last_rotated(dir);
        error = load_previous(sp);
    }
    if (sp->lock_fd >= 0)
        (void)flock(sp->lock_fd, LOCK_UN);
    if (error < 0) {
        spool_free(sp);
        return error;
    }
    sp->end = sp->durable = complete;
    *out = (shop_mailer){send_spooled, sp};
    return 0;
}

int shop_spool_new(shop_mailer *out, const char *dir)
{
    return shop_spool_open(out, dir, SHOP_SPOOL_ROTATE_BYTES);
}

void shop_spool_free(shop_mailer *mailer)
{
    if (mailer->self)
        spool_free(mailer->self);
    mailer->self = NULL;
}
