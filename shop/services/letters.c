/*
 * letters.c (shop): the words of the shop's e-mails (letters.h).
 */
#include "services/letters.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shop.h"

void shop_order_reference(char out[SHOP_ORDER_REF_LEN + 1], const char *order_id)
{
    size_t len = order_id ? strlen(order_id) : 0;
    const char *tail = len >= 8 ? order_id + len - 8 : "00000000";
    for (int i = 0, o = 0; i < 8; i++) {
        if (i == 4)
            out[o++] = '-';
        out[o++] = (char)toupper((unsigned char)tail[i]);
    }
    out[SHOP_ORDER_REF_LEN] = '\0';
}

/* Digits after the point for a currency (ISO 4217); most have 2. */
static int exponent(const char *currency)
{
    static const char *const none[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
                                       "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"};
    static const char *const three[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
    for (size_t i = 0; currency && i < sizeof none / sizeof none[0]; i++)
        if (strcmp(currency, none[i]) == 0)
            return 0;
    for (size_t i = 0; currency && i < sizeof three / sizeof three[0]; i++)
        if (strcmp(currency, three[i]) == 0)
            return 3;
    return 2;
}

void shop_money(char *out, size_t size, int64_t amount, const char *currency)
{
    int digits = exponent(currency);
    int64_t unit = digits == 0 ? 1 : digits == 3 ? 1000 : 100;
    uint64_t magnitude = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = magnitude / (uint64_t)unit, part = magnitude % (uint64_t)unit;
    char grouped[40], plain[24];
    int n = snprintf(plain, sizeof plain, "%llu", (unsigned long long)whole), g = 0;
    for (int i = 0; i < n; i++) { /* 1234567 → 1,234,567 */
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = plain[i];
    }
    grouped[g] = '\0';
    if (digits == 0)
        snprintf(out, size, "%s %s%s", currency ? currency : "", amount < 0 ? "-" : "", grouped);
    else
        snprintf(out, size, "%s %s%s.%0*llu", currency ? currency : "", amount < 0 ? "-" : "",
                 grouped, digits, (unsigned long long)part);
}

/* Why an order was cancelled, in words: "because …". */
static const char *why_cancelled(const char *reason)
{
    static const struct {
        const char *code, *words;
    } reasons[] = {
        {"payment_declined", "your card payment was declined. You have not been charged"},
        {"payment_timeout",
         "the payment provider did not answer in time. You have not been charged"},
        {"out_of_stock", "some of the items are no longer in stock. You have not been charged"},
        {"no_items", "it had no items in it"},
        {"cancelled_by_customer", "you asked us to cancel it"},
    };
    for (size_t i = 0; reason && i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reason, reasons[i].code) == 0)
            return reasons[i].words;
    return "it could not be completed";
}

/* Writes text with &, <, > and " escaped for HTML. */
static void html_text(FILE *f, const char *text)
{
    for (; text && *text; text++) {
        switch (*text) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*text, f);
        }
    }
}

/* "Pen", "Pen and Ink", "Pen, Ink and 2 more": the order's products. */
static void summary(char *out, size_t size, json_t *items)
{
    size_t n = json_array_size(items), o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 2; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(items, i), "name"));
        o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%s%s",
                              i == 0   ? ""
                              : n == 2 ? " and "
                                       : ", ",
                              name ? name : "an item");
    }
    if (n > 2 && o < size)
        snprintf(out + o, size - o, " and %zu more", n - 2);
}

typedef struct facts {
    const char *kind, *name, *currency;
    char ref[SHOP_ORDER_REF_LEN + 1], total[48];
    json_t *items;
    const char *why; /* cancelled: why, in words */
} facts;

/* The opening paragraph: what happened to the order. */
static void opening(FILE *f, const facts *x, bool html)
{
    if (strcmp(x->kind, "order_received") == 0)
        fprintf(f,
                "Thank you for your order %s. We have received it, and we will write again "
                "as soon as the payment has gone through.",
                x->ref);
    else if (strcmp(x->kind, "order_confirmed") == 0)
        fprintf(f,
                "Good news: your order %s is confirmed. Your payment of %s has gone through, "
                "and we are getting the order ready to ship.",
                x->ref, x->total);
    else {
        fprintf(f, "We are sorry: your order %s was cancelled because ", x->ref);
        html ? html_text(f, x->why) : (void)fputs(x->why, f);
        fputs(".", f);
    }
}

static void write_text(FILE *f, const facts *x)
{
    fprintf(f, "Hello %s,\n\n", x->name);
    opening(f, x, false);
    fputs("\n\n", f);
    size_t i;
    json_t *item;
    json_array_foreach(x->items, i, item)
    {
        char line[48];
        json_int_t qty = json_integer_value(json_object_get(item, "quantity"));
        shop_money(line, sizeof line, qty * json_integer_value(json_object_get(item, "unit_price")),
                   x->currency);
        fprintf(f, "  %lld \xc3\x97 %s: %s\n", (long long)qty,
                json_string_value(json_object_get(item, "name")), line);
    }
    fprintf(f, "  Total: %s\n\nKind regards,\nThe Shop\n", x->total);
}

static void write_html(FILE *f, const facts *x)
{
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n<p>Hello ", f);
    html_text(f, x->name);
    fputs(",</p>\n<p>", f);
    opening(f, x, true);
    fputs("</p>\n<table>\n", f);
    size_t i;
    json_t *item;
    json_array_foreach(x->items, i, item)
    {
        char line[48];
        json_int_t qty = json_integer_value(json_object_get(item, "quantity"));
        shop_money(line, sizeof line, qty * json_integer_value(json_object_get(item, "unit_price")),
                   x->currency);
        fprintf(f, "<tr><td>%lld \xc3\x97 ", (long long)qty);
        html_text(f, json_string_value(json_object_get(item, "name")));
        fprintf(f, "</td><td>%s</td></tr>\n", line);
    }
    fprintf(f,
            "<tr><th>Total</th><th>%s</th></tr>\n</table>\n<p>Kind regards,<br>The Shop</p>\n"
            "</body></html>\n",
            x->total);
}

int shop_letter_write(shop_letter *out, const char *kind, const char *order_id, json_t *user,
                      json_t *order_state)
{
    facts x = {.kind = kind,
               .name = json_string_value(json_object_get(user, "full_name")),
               .currency = json_string_value(json_object_get(order_state, "currency")),
               .items = json_object_get(order_state, "items"),
               .why =
                   why_cancelled(json_string_value(json_object_get(order_state, "cancel_reason")))};
    char products[160];
    size_t text_len = 0, html_len = 0;
    memset(out, 0, sizeof *out);
    if (x.name == NULL)
        x.name = "customer";
    shop_order_reference(x.ref, order_id);
    shop_money(x.total, sizeof x.total,
               json_integer_value(json_object_get(order_state, "total_amount")), x.currency);
    summary(products, sizeof products, x.items);
    snprintf(out->subject, sizeof out->subject, "%s %s%s%s%s%s",
             strcmp(kind, "order_received") == 0 ? "We have received your order" : "Your order",
             x.ref,
             strcmp(kind, "order_received") == 0    ? ""
             : strcmp(kind, "order_confirmed") == 0 ? " is confirmed"
                                                    : " was cancelled",
             products[0] ? " (" : "", products, products[0] ? ")" : "");
    FILE *text = open_memstream(&out->text, &text_len);
    FILE *html = text ? open_memstream(&out->html, &html_len) : NULL;
    if (text)
        write_text(text, &x);
    if (html)
        write_html(html, &x);
    int error = text && html ? 0 : TD_ENOMEM;
    if ((text && fclose(text) != 0) || (html && fclose(html) != 0))
        error = TD_ENOMEM;
    if (error < 0)
        shop_letter_free(out);
    return error;
}

void shop_letter_free(shop_letter *letter)
{
    free(letter->text);
    free(letter->html);
    letter->text = letter->html = NULL;
}
