/*
 * fuzz_spool.c: the mail spool's reader (shop/services/spool.c), which at
 * start reads DIR/spool.mbox back, remembers the Message-IDs of its whole
 * entries and cuts a torn last entry off. Any bytes are the file it finds.
 * The oracle: it opens, the file left is a prefix of what was there, and
 * opening it again changes nothing more (what is left is all whole). Then
 * one message is spooled, and a second open finds the file grown.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "services/mailer.h"

static off_t size_of(const char *path)
{
    struct stat st;
    FUZZ_CHECK(stat(path, &st) == 0);
    return st.st_size;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
    close(fd);
}

static int is_prefix(const char *path, const uint8_t *data, size_t size)
{
    off_t left = size_of(path);
    uint8_t *text = malloc((size_t)left + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(text && fd >= 0 && read(fd, text, (size_t)left) == left);
    close(fd);
    int prefix = (size_t)left <= size && memcmp(text, data, (size_t)left) == 0;
    free(text);
    return prefix;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[4200];
    shop_mailer spool;
    const char *dir = fuzz_tmpdir();
    snprintf(path, sizeof path, "%s/spool.mbox", dir);
    write_file(path, data, size);
    FUZZ_CHECK(shop_spool_open(&spool, dir, 0) == 0);
    shop_spool_free(&spool);
    FUZZ_CHECK(is_prefix(path, data, size));
    off_t kept = size_of(path);
    FUZZ_CHECK(shop_spool_open(&spool, dir, 0) == 0);
    FUZZ_CHECK(size_of(path) == kept);
    shop_mail mail = {.event_id = "018f0000-0000-7000-8000-000000000001",
                      .kind = "order_received",
                      .order_id = "018f0000-0000-7000-8000-000000000002",
                      .to_email = "ada@example.com",
                      .to_name = "Ada",
                      .subject = "Your order",
                      .text = "Thank you.\n"};
    FUZZ_CHECK(spool.send(spool.self, &mail) == 0);
    shop_spool_free(&spool);
    FUZZ_CHECK(size_of(path) > kept);
    FUZZ_CHECK(shop_spool_open(&spool, dir, 0) == 0);
    shop_spool_free(&spool);
    return 0;
}
