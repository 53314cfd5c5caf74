/*
 * smtp.c (shop): the SMTP mailer (see mailer.h), through libcurl's SMTP
 * support: one connection per message, bounded by timeouts, every failure
 * reported as transient so the notification subscription retries it.
 *
 * Transport security is the URL's and the operator's choice, made once:
 *
 *   smtps://host:port             TLS from the first byte
 *   smtp://host:port + starttls   STARTTLS, or no mail (CURLUSESSL_ALL)
 *   smtp://host:port              in the clear: for a relay on this host
 *
 * Certificates are always checked (a CA file for a relay's own). A login,
 * from a netrc file that only its owner may read or from a user and
 * password the caller got from the environment, is refused in the clear,
 * and never accepted inside the URL, where it would sit in the process
 * list and in logs.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shop_int.h"

typedef struct smtp {
    char *url, *netrc_file, *user, *password, *ca_file;
    bool starttls;
} smtp;

typedef struct upload {
    const char *text;
    size_t len, sent;
} upload;

static size_t read_message(char *buffer, size_t size, size_t count, void *payload)
{
    upload *u = payload;
    size_t n = u->len - u->sent;
    if (n > size * count)
        n = size * count;
    memcpy(buffer, u->text + u->sent, n);
    u->sent += n;
    return n;
}

static void set_login(CURL *curl, const smtp *s)
{
    if (s->netrc_file) {
        curl_easy_setopt(curl, CURLOPT_NETRC, (long)CURL_NETRC_REQUIRED);
        curl_easy_setopt(curl, CURLOPT_NETRC_FILE, s->netrc_file);
    } else if (s->user) {
        curl_easy_setopt(curl, CURLOPT_USERNAME, s->user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, s->password ? s->password : "");
    }
    if (s->starttls)
        curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (s->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, s->ca_file);
}

static int send_smtp(void *self, const shop_mail *mail)
{
    smtp *s = self;
    char *text = NULL, recipient[320];
    size_t len = 0;
    int error = shop_mail_format(mail, &text, &len);
    if (error < 0)
        return error;
    CURL *curl = curl_easy_init();
    struct curl_slist *rcpt = NULL;
    snprintf(recipient, sizeof recipient, "<%s>", mail->to_email);
    rcpt = curl_slist_append(rcpt, recipient);
    upload u = {text, len, 0};
    CURLcode rc = curl && rcpt ? CURLE_OK : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK) {
        curl_easy_setopt(curl, CURLOPT_URL, s->url);
        set_login(curl, s);
        curl_easy_setopt(curl, CURLOPT_MAIL_FROM, "<shop@tidings.local>");
        curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_message);
        curl_easy_setopt(curl, CURLOPT_READDATA, &u);
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        rc = curl_easy_perform(curl);
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    free(text);
    return rc == CURLE_OK ? 0 : TD_EIO;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int refuse(const char *why)
{
    return shop_fail(TD_EINVAL, "validation_failed", NULL, "%s", why);
}

/* Checks the options; the reason is the shop error. */
static int check(const shop_smtp_options *o)
{
    struct stat st;
    const char *url = o->url;
    bool tls = url && strncmp(url, "smtps://", 8) == 0;
    if (url == NULL || (!tls && strncmp(url, "smtp://", 7) != 0))
        return refuse("the SMTP URL must look like smtp://host:port or smtps://host:port");
    const char *host = url + (tls ? 8 : 7);
    if (memchr(host, '@', strcspn(host, "/")))
        return refuse("the SMTP URL must not hold a login: give it in a netrc file "
                      "(--smtp-credentials-file) or in SHOP_SMTP_USER and SHOP_SMTP_PASSWORD");
    if ((o->netrc_file || o->user) && !tls && !o->starttls)
        return refuse("an SMTP login would travel in the clear: use smtps:// or --smtp-starttls");
    if (o->netrc_file && stat(o->netrc_file, &st) < 0)
        return shop_fail(TD_EINVAL, "validation_failed", NULL, "cannot read the SMTP netrc file %s",
                         o->netrc_file);
    if (o->netrc_file && (st.st_mode & 077) != 0)
        return shop_fail(TD_EINVAL, "validation_failed", NULL,
                         "the SMTP netrc file %s may be read by others: make it 0600",
                         o->netrc_file);
    return 0;
}

static char *copy(const char *s, bool *ok)
{
    char *c = s ? strdup(s) : NULL;
    *ok = *ok && (s == NULL || c != NULL);
    return c;
}

void shop_smtp_free(shop_mailer *mailer)
{
    smtp *s = mailer->self;
    if (s) {
        free(s->url);
        free(s->netrc_file);
        free(s->user);
        if (s->password)
            sodium_memzero(s->password, strlen(s->password));
        free(s->password);
        free(s->ca_file);
    }
    free(s);
    mailer->self = NULL;
}

int shop_smtp_new(shop_mailer *out, const shop_smtp_options *o)
{
    int error = check(o);
    if (error < 0)
        return error;
    pthread_once(&curl_once, init_curl);
    smtp *s = calloc(1, sizeof *s);
    if (s == NULL)
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
    bool ok = true;
    s->url = copy(o->url, &ok);
    s->netrc_file = copy(o->netrc_file, &ok);
    s->user = copy(o->user, &ok);
    s->password = copy(o->password, &ok);
    s->ca_file = copy(o->ca_file, &ok);
    s->starttls = o->starttls && strncmp(o->url, "smtp://", 7) == 0;
    *out = (shop_mailer){send_smtp, s};
    if (!ok) {
        shop_smtp_free(out);
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
    }
    return 0;
}
