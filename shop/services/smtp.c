/*
 * smtp.c (shop): the SMTP mailer (see mailer.h), through libcurl's SMTP
 * support: one connection per message, bounded by timeouts, every failure
 * reported as transient so the notification subscription retries it.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "services/mailer.h"

typedef struct smtp {
    char *url;
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

int shop_smtp_new(shop_mailer *out, const char *url)
{
    if (url == NULL || strncmp(url, "smtp://", 7) != 0)
        return TD_EINVAL;
    pthread_once(&curl_once, init_curl);
    smtp *s = calloc(1, sizeof *s);
    if (s == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        return TD_ENOMEM;
    }
    *out = (shop_mailer){send_smtp, s};
    return 0;
}

void shop_smtp_free(shop_mailer *mailer)
{
    smtp *s = mailer->self;
    if (s)
        free(s->url);
    free(s);
    mailer->self = NULL;
}
