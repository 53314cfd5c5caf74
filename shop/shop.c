/*
 * shop.c: opening and closing the shop, and the queries that span contexts.
 *
 * Opening starts the shop's event handling on the store: the inventory and
 * payment services, notifications, and the order-processing saga. Closing
 * stops them gracefully (in-flight handlers finish, checkpoints are saved)
 * in the reverse order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shop_int.h"

void shop_now(char buf[TD_TIME_STR_LEN + 1])
{
    if (td_time_format(buf, td_time_now()) < 0)
        strcpy(buf, "1970-01-01T00:00:00.000000Z");
}

td_subscription_options shop_subscription_options(const shop *s, const char *name)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = name;
    opts.lanes = s->opts.lanes;
    opts.metrics = s->opts.metrics;
    opts.tracer = s->opts.tracer;
    opts.max_attempts = 10;
    return opts;
}

td_partition shop_partition(const shop *s, unsigned part)
{
    td_partition p = {s->partitions > 1 ? s->partitions : 0, s->partitions > 1 ? part : 0,
                      TD_PARTITION_BY_STREAM};
    return p;
}

unsigned shop_partition_lanes(const shop *s, unsigned lanes)
{
    unsigned share = (lanes + s->partitions - 1) / s->partitions;
    return share > 0 ? share : 1;
}

td_subscription_options shop_handler_options(const shop *s, const char *name)
{
    td_subscription_options opts = shop_subscription_options(s, name);
    opts.transactional = true;
    opts.eager = !s->opts.deferred;
    return opts;
}

static int start_services(shop *s)
{
    char mail_dir[4096];
    snprintf(mail_dir, sizeof mail_dir, "%s/mail", s->data_dir);
    int error = shop_simulated_provider_new(&s->provider);
    shop_smtp_options smtp = {s->opts.smtp_url,     s->opts.smtp_netrc_file,
                              s->opts.smtp_user,    s->opts.smtp_password,
                              s->opts.smtp_ca_file, s->opts.smtp_starttls};
    if (error == 0 && s->opts.smtp_url)
        error = shop_smtp_new(&s->mailer, &smtp);
    else if (error == 0 && shop_spool_new(&s->mailer, mail_dir) < 0)
        error = shop_fail(TD_EIO, "internal_error", NULL, "cannot prepare the mail folder under %s",
                          s->data_dir);
    if (error == 0)
        error = read_models_new(s, s->read_models);
    if (error == 0)
        error = td_balancer_new(&s->balancer, s->store, s->opts.instance_label);
    for (int i = 0; error == 0 && i < SHOP_READ_MODELS; i++)
        if (s->read_models[i])
            error = td_balancer_add_subscription(s->balancer, s->read_models[i]);
    for (unsigned p = 0; error == 0 && p < s->partitions; p++) {
        if (shop_runs(s, SHOP_CTX_INVENTORY) &&
            ((error = inventory_service_new(s, p, &s->inventory[p])) < 0 ||
             (error = td_balancer_add_subscription(s->balancer, s->inventory[p])) < 0))
            break;
        if (shop_runs(s, SHOP_CTX_PAYMENTS) &&
            ((error = payment_service_new(s, p, &s->payments[p])) < 0 ||
             (error = td_balancer_add_subscription(s->balancer, s->payments[p])) < 0))
            break;
        if (shop_runs(s, SHOP_CTX_NOTIFICATIONS) &&
            ((error = notifications_new(s, p, &s->notifications[p])) < 0 ||
             (error = td_balancer_add_subscription(s->balancer, s->notifications[p])) < 0))
            break;
        if (shop_runs(s, SHOP_CTX_ORDERS) &&
            ((error = order_saga_new(s, p, &s->orders[p])) < 0 ||
             (error = td_balancer_add_saga(s->balancer, s->orders[p])) < 0))
            break;
    }
    /* The first round here, so that an instance alone runs every handler
     * once open; a handler that fails to start fails the opening. */
    if (error == 0 && (error = td_balancer_tick(s->balancer)) < 0)
        return error;
    return error < 0 ? error : shop_keeper_start(s);
}

int shop_open(shop **out, td_store *store, const shop_options *opts)
{
    shop *s = calloc(1, sizeof *s);
    if (s == NULL)
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
    s->store = store;
    if (opts)
        s->opts = *opts;
    s->partitions = s->opts.partitions > 1 ? s->opts.partitions : 1;
    if (s->opts.services == 0)
        s->opts.services = SHOP_CTX_ALL;
    if (s->partitions > SHOP_PARTITIONS_MAX) {
        free(s);
        return shop_fail(TD_EINVAL, "validation_failed", NULL, "at most %d partitions",
                         SHOP_PARTITIONS_MAX);
    }
    if (s->opts.payment_timeout_ms <= 0)
        s->opts.payment_timeout_ms = 30000;
    if (s->opts.lanes == 0)
        s->opts.lanes = 2;
    if (s->opts.io_lanes == 0)
        s->opts.io_lanes = 8;
    s->data_dir = strdup(s->opts.data_dir ? s->opts.data_dir : "data");
    s->opts.master_key = NULL; /* copied into the keyring, not kept */
    shop_error_clear();
    int error = s->data_dir == NULL ? TD_ENOMEM : shop_event_versions_new(&s->versions);
    if (error == 0 && (opts == NULL || opts->master_key == NULL))
        error = shop_fail(TD_EINVAL, "validation_failed", NULL,
                          "the shop needs a master key to seal personal data");
    if (error == 0)
        error = td_keyring_new(&s->keyring, store, opts->master_key);
    if (error == 0)
        error = users_upgrade(s);
    if (error == 0) /* before anything reads: every read sees the current schemas */
        td_store_set_upcasters(store, s->versions);
    if (error == 0 && !s->opts.passive)
        error = start_services(s);
    if (error < 0) {
        if (shop_error().status == 0) /* not described yet: a libtidings failure */
            shop_fail_td(error);
        shop_close(s);
        return error;
    }
    *out = s;
    return 0;
}

void shop_close(shop *s)
{
    if (s == NULL)
        return;
    shop_keeper_stop(s);           /* first: it may be starting or stopping a handler */
    td_balancer_free(s->balancer); /* stops what runs here, then leaves */
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        td_subscription_free(s->read_models[i]);
    for (unsigned p = 0; p < s->partitions; p++) {
        td_saga_free(s->orders[p]);
        td_subscription_free(s->notifications[p]);
        td_subscription_free(s->payments[p]);
        td_subscription_free(s->inventory[p]);
    }
    if (s->mailer.self && s->opts.smtp_url)
        shop_smtp_free(&s->mailer);
    else if (s->mailer.self)
        shop_spool_free(&s->mailer);
    if (s->provider.self)
        shop_simulated_provider_free(&s->provider);
    if (s->versions && td_store_upcasters(s->store) == s->versions)
        td_store_set_upcasters(s->store, NULL);
    td_upcasters_free(s->versions);
    td_keyring_free(s->keyring);
    free(s->data_dir);
    free(s);
}

td_store *shop_store(shop *s)
{
    return s->store;
}

bool shop_runs(const shop *s, unsigned mask)
{
    return (s->opts.services & mask) == mask;
}

unsigned shop_services(const shop *s)
{
    return s->opts.services;
}

td_backlog shop_backlog(shop *s)
{
    td_backlog all = {0, 0};
    for (unsigned p = 0; p < s->partitions; p++) {
        td_backlog none = {0, 0};
        td_backlog parts[3] = {s->orders[p] ? td_saga_backlog(s->orders[p]) : none,
                               s->inventory[p] ? td_subscription_backlog(s->inventory[p]) : none,
                               s->payments[p] ? td_subscription_backlog(s->payments[p]) : none};
        for (size_t i = 0; i < 3; i++) {
            all.events += parts[i].events;
            if (parts[i].age > all.age)
                all.age = parts[i].age;
        }
    }
    return all;
}

static int open_store(td_store **out, const char *db, const char *data, const td_store_options *so)
{
    char url[4200];
    const char *env = getenv("TIDINGS_DB");
    snprintf(url, sizeof url, "sqlite:%s/tidings.db", data);
    return td_store_open(out, db ? db : env && env[0] ? env : url, so);
}

int shop_open_store(td_store **out, const char *db, const char *data, shop_store_mode mode)
{
    td_store_options so = TD_STORE_OPTIONS_INIT;
    so.create = mode == SHOP_STORE_CREATE;
    so.read_only = mode == SHOP_STORE_READ;
    return open_store(out, db, data, &so);
}

int shop_open_serving_store(td_store **out, const char *db, const char *data,
                            bool each_commit_synced, int writer_nice, bool skip_check)
{
    td_store_options so = TD_STORE_OPTIONS_INIT;
    so.pipelined_commits = !each_commit_synced;
    so.writer_nice = writer_nice;
    so.skip_check = skip_check;
    return open_store(out, db, data, &so);
}

int shop_get_product(shop *s, const char *product_id, json_t **out)
{
    json_t *inventory = NULL;
    int error = check_id(product_id, "/product_id");
    if (error == 0 &&
        (error = agg_read(s->store, "product", product_fold, product_id, out, NULL)) < 0)
        return error == TD_ENOTFOUND
                   ? shop_fail(error, "not_found", NULL, "no product %s", product_id)
                   : shop_fail_td(error);
    if (error < 0)
        return error;
    error = agg_read(s->store, "inventory", inventory_fold, product_id, &inventory, NULL);
    json_object_set_new(
        *out, "stock",
        json_integer(error == 0 ? json_integer_value(json_object_get(inventory, "available")) : 0));
    json_decref(inventory);
    if (error < 0 && error != TD_ENOTFOUND)
        return shop_fail_td(error);
    int64_t units = 0, revenue = 0;
    /* sales come from the orders' events, which reach a process that runs
     * the catalog or the orders; elsewhere (inventory alone) they are unknown */
    bool sales_known = shop_runs(s, SHOP_CTX_CATALOG) || shop_runs(s, SHOP_CTX_ORDERS);
    if (sales_known && (error = shop_product_sales(s, product_id, &units, &revenue)) < 0)
        return error;
    json_object_set_new(*out, "units_sold", sales_known ? json_integer(units) : json_null());
    json_object_set_new(*out, "revenue", sales_known ? json_integer(revenue) : json_null());
    return 0;
}
