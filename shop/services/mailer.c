/*
 * mailer.c (shop): the Maildir mailer (see mailer.h).
 */
#include "services/mailer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_CAP 4096
#define ROOT_CAP 3072 /* leaves room for "/new/" and a message name */

typedef struct maildir {
    char root[ROOT_CAP];
} maildir;

static int make_dir(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : TD_EIO;
}

/* mkdir -p dir, then its tmp/, new/ and cur/. */
static int make_tree(const char *dir)
{
    char path[PATH_CAP];
    int error = 0;
    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strchr(path + 1, '/'); error == 0 && slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        error = make_dir(path);
        *slash = '/';
    }
    if (error == 0)
        error = make_dir(dir);
    const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; error == 0 && i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
        error = make_dir(path);
    }
    return error;
}

/* Whether name is in new/, or in cur/ with flags appended (":2,S"). */
static bool delivered(const maildir *m, const char *name)
{
    char path[PATH_CAP];
    size_t n = strlen(name);
    snprintf(path, sizeof path, "%s/new/%s", m->root, name);
    if (access(path, F_OK) == 0)
        return true;
    snprintf(path, sizeof path, "%s/cur", m->root);
    DIR *cur = opendir(path);
    bool found = false;
    for (struct dirent *e; cur && !found && (e = readdir(cur)) != NULL;)
        found = strncmp(e->d_name, name, n) == 0 && (e->d_name[n] == '\0' || e->d_name[n] == ':');
    if (cur)
        closedir(cur);
    return found;
}

/* "Name" with quotes and backslashes escaped (names hold no control bytes). */
static void quoted(char *out, size_t size, const char *name)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *name && o + 3 < size; name++) {
        if (*name == '"' || *name == '\\')
            out[o++] = '\\';
        out[o++] = *name;
    }
    out[o++] = '"';
    out[o] = '\0';
}

int shop_mail_format(const shop_mail *mail, char **out, size_t *len)
{
    char date[64], name[512];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    quoted(name, sizeof name, mail->to_name);
    FILE *f = open_memstream(out, len);
    if (f == NULL)
        return TD_ENOMEM;
    fprintf(f,
            "From: Shop <shop@tidings.local>\r\nTo: %s <%s>\r\nSubject: %s\r\nDate: %s\r\n"
            "Message-ID: <%s.%s@tidings.local>\r\nX-Order-Id: %s\r\nX-Email-Kind: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
            name, mail->to_email, mail->subject, date, mail->event_id, mail->kind, mail->order_id,
            mail->kind, mail->body);
    return fclose(f) == 0 ? 0 : TD_ENOMEM;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : TD_EIO;
}

static int send_maildir(void *self, const shop_mail *mail)
{
    maildir *m = self;
    char name[256], tmp[PATH_CAP], dest[PATH_CAP], dir[PATH_CAP];
    snprintf(name, sizeof name, "%s.%s.eml", mail->event_id, mail->kind);
    if (delivered(m, name))
        return 0;
    snprintf(tmp, sizeof tmp, "%s/tmp/%s", m->root, name);
    snprintf(dest, sizeof dest, "%s/new/%s", m->root, name);
    snprintf(dir, sizeof dir, "%s/new", m->root);
    char *text = NULL;
    size_t len = 0;
    int error = shop_mail_format(mail, &text, &len);
    if (error < 0)
        return error;
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        free(text);
        return TD_EIO;
    }
    if (fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
        error = TD_EIO;
    if (fclose(f) != 0)
        error = TD_EIO;
    free(text);
    if (error == 0 && rename(tmp, dest) != 0)
        error = TD_EIO;
    return error == 0 ? sync_dir(dir) : error;
}

int shop_maildir_new(shop_mailer *out, const char *dir)
{
    if (strlen(dir) >= ROOT_CAP)
        return TD_EINVAL;
    maildir *m = calloc(1, sizeof *m);
    if (m == NULL)
        return TD_ENOMEM;
    snprintf(m->root, sizeof m->root, "%s", dir);
    if (make_tree(dir) < 0) {
        free(m);
        return TD_EIO;
    }
    *out = (shop_mailer){send_maildir, m};
    return 0;
}

void shop_maildir_free(shop_mailer *mailer)
{
    free(mailer->self);
    mailer->self = NULL;
}
