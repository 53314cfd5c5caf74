/*
 * mailer.c (shop): a message's RFC 5322 text (see mailer.h), for the spool
 * and SMTP: headers through mime.c, bodies as quoted-printable, a text and
 * an HTML alternative under multipart/alternative.
 */
#include "services/mailer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "services/mime.h"

static void part(FILE *f, const char *type, const char *body)
{
    fprintf(
        f, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        type);
    mime_quoted_printable(f, body);
    fputs("\r\n", f);
}

int shop_mail_format(const shop_mail *mail, char **out, size_t *len)
{
    char date[64], message_id[256], boundary[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(message_id, sizeof message_id, "<%s.%s@tidings.local>", mail->event_id, mail->kind);
    /* "=_" cannot occur in quoted-printable text, so the boundary never does */
    snprintf(boundary, sizeof boundary, "=_alt_%.60s", mail->event_id);
    FILE *f = open_memstream(out, len);
    if (f == NULL)
        return TD_ENOMEM;
    fputs("From: Shop <shop@tidings.local>\r\n", f);
    mime_address(f, "To", mail->to_name, mail->to_email);
    mime_header(f, "Subject", mail->subject);
    /* The Message-ID stays on its header's line (the spool reads names
     * there); it is the one line that may pass 78 characters, as an id
     * cannot be folded. */
    fprintf(f,
            "Date: %s\r\nMessage-ID: %s\r\nX-Order-Id: %s\r\nX-Email-Kind: %s\r\n"
            "MIME-Version: 1.0\r\n",
            date, message_id, mail->order_id, mail->kind);
    if (mail->html == NULL) {
        part(f, "text/plain", mail->text);
    } else {
        fprintf(f, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary);
        fprintf(f, "--%s\r\n", boundary);
        part(f, "text/plain", mail->text);
        fprintf(f, "--%s\r\n", boundary);
        part(f, "text/html", mail->html);
        fprintf(f, "--%s--\r\n", boundary);
    }
    return fclose(f) == 0 ? 0 : TD_ENOMEM;
}
