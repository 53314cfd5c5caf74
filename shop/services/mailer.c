/*
 * mailer.c (shop): a message's RFC 5322 text (see mailer.h), for the spool
 * and SMTP.
 */
#include "services/mailer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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
