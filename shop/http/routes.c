/*
 * routes.c (shop http): the shop's resources: users, sessions, categories,
 * products, orders. Each handler reads and checks the body's shape (400 for
 * malformed or mistyped input), checks that a customer asks only for what
 * is theirs (another's user or order answers as a missing one), calls the
 * shop's C API (which checks the values and the domain rules), and answers
 * with the resource as the shop returns it. Who may call which route is in
 * the table at the end (access.c checks it before the handler runs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http/http.h"

static int created(http_response *res, unsigned status, const char *prefix, const char *id,
                   json_t *json)
{
    snprintf(res->location, sizeof res->location, "%s/%s", prefix, id);
    return http_json(res, status, json);
}

/* ---- users -------------------------------------------------------------------- */

/* A user as the API shows it: id added; the body holds their personal data. */
static int user_answer(http_request *req, http_response *res, unsigned status, const char *id)
{
    json_t *user = NULL;
    if (shop_get_user(req->shop, id, &user) < 0)
        return http_shop_problem(res, true);
    json_object_set_new(user, "id", json_string(id));
    snprintf(res->subject, sizeof res->subject, "%s", id);
    return status == 201 ? created(res, 201, "/users", id, user) : http_json(res, status, user);
}

/* Someone else's user, to a customer: as if there were none. */
static int no_such_user(http_response *res, const char *id)
{
    return http_problem(res, 404, "not_found", NULL, "no user %s", id);
}

static int post_user(http_request *req, http_response *res)
{
    const char *email, *name, *password;
    char id[SHOP_ID_LEN + 1];
    if (http_throttled(req, res, HTTP_LIMIT_AUTH_CLIENT, req->client) < 0)
        return 0;
    json_t *body = http_body(req, res);
    if (body && http_string(body, "email", true, &email, res) == 0 &&
        http_string(body, "full_name", true, &name, res) == 0 &&
        http_string(body, "password", true, &password, res) == 0) {
        if (shop_register_user(req->shop, email, name, password, id) < 0)
            http_shop_problem(res, false);
        else
            user_answer(req, res, 201, id);
    }
    json_decref(body);
    return 0;
}

static int get_user(http_request *req, http_response *res)
{
    if (!http_owns(req, req->params[0]))
        return no_such_user(res, req->params[0]);
    return user_answer(req, res, 200, req->params[0]);
}

static int get_user_orders(http_request *req, http_response *res)
{
    json_t *orders = NULL;
    if (!http_owns(req, req->params[0]))
        return no_such_user(res, req->params[0]);
    if (shop_list_user_orders(req->shop, req->params[0], &orders) < 0)
        return http_shop_problem(res, true);
    return http_json(res, 200, orders);
}

static int forget_user(http_request *req, http_response *res)
{
    if (shop_forget_user(req->shop, req->params[0]) < 0)
        return http_shop_problem(res, true);
    return user_answer(req, res, 200, req->params[0]);
}

/* ---- sessions --------------------------------------------------------------------- */

static int post_session(http_request *req, http_response *res)
{
    const char *email, *password;
    char lookup[TD_LOOKUP_HEX_LEN + 1], when[TD_TIME_STR_LEN + 1];
    shop_session session;
    if (http_throttled(req, res, HTTP_LIMIT_AUTH_CLIENT, req->client) < 0)
        return 0;
    json_t *body = http_body(req, res);
    if (body && http_string(body, "email", true, &email, res) == 0 &&
        http_string(body, "password", true, &password, res) == 0) {
        shop_email_lookup(req->shop, email, lookup);
        if (http_throttled(req, res, HTTP_LIMIT_AUTH_ACCOUNT, lookup) < 0)
            ; /* 429 set */
        else if (shop_login(req->shop, email, password, 0, &session) < 0)
            shop_error().status == TD_ENOTFOUND
                ? http_problem(res, 401, "invalid_credentials", NULL, "%s", shop_error().message)
                : http_shop_problem(res, false);
        else if (td_time_format(when, session.expires_at) == 0)
            http_json(res, 201,
                      json_pack("{s:s,s:s,s:s}", "token", session.token, "user_id", session.user_id,
                                "expires_at", when));
        sodium_memzero(session.token, sizeof session.token);
    }
    json_decref(body);
    return 0;
}

static int get_session(http_request *req, http_response *res)
{
    const shop_principal *who = &req->who;
    return http_json(res, 200,
                     json_pack("{s:s,s:s?,s:s?}", "role", shop_role_name(who->role), "user_id",
                               who->user_id[0] ? who->user_id : NULL, "key_name",
                               who->name[0] ? who->name : NULL));
}

static int delete_session(http_request *req, http_response *res)
{
    if (shop_logout(req->shop, &req->who) < 0)
        return http_shop_problem(res, false);
    res->status = 204;
    return 0;
}

/* ---- catalog -------------------------------------------------------------------- */

static int post_category(http_request *req, http_response *res)
{
    const char *name;
    char id[SHOP_ID_LEN + 1];
    json_t *body = http_body(req, res);
    if (body && http_string(body, "name", true, &name, res) == 0) {
        if (shop_create_category(req->shop, name, id) < 0)
            http_shop_problem(res, false);
        else
            created(res, 201, "/categories", id,
                    json_pack("{s:s,s:s,s:s}", "id", id, "category_id", id, "name", name));
    }
    json_decref(body);
    return 0;
}

static int get_categories(http_request *req, http_response *res)
{
    json_t *list = NULL;
    if (shop_list_categories(req->shop, &list) < 0)
        return http_shop_problem(res, false);
    return http_json(res, 200, json_pack("{s:o}", "categories", list));
}

static int product_answer(http_request *req, http_response *res, unsigned status, const char *id)
{
    json_t *product = NULL;
    if (shop_get_product(req->shop, id, &product) < 0)
        return http_shop_problem(res, true);
    json_object_set_new(product, "id", json_string(id));
    return status == 201 ? created(res, 201, "/products", id, product)
                         : http_json(res, status, product);
}

static int post_product(http_request *req, http_response *res)
{
    shop_product_input in = {NULL, 0, NULL, NULL, 0};
    char id[SHOP_ID_LEN + 1];
    json_t *body = http_body(req, res);
    if (body && http_string(body, "name", true, &in.name, res) == 0 &&
        http_integer(body, "price", true, &in.price, res) == 0 &&
        http_string(body, "currency", true, &in.currency, res) == 0 &&
        http_string(body, "category_id", false, &in.category_id, res) == 0 &&
        http_integer(body, "stock", false, &in.stock, res) == 0) {
        if (shop_create_product(req->shop, &in, id) < 0)
            http_shop_problem(res, false);
        else
            product_answer(req, res, 201, id);
    }
    json_decref(body);
    return 0;
}

static int get_products(http_request *req, http_response *res)
{
    const char *limit_text = http_query(req, "limit");
    char *end = NULL;
    long limit = limit_text ? strtol(limit_text, &end, 10) : 50;
    json_t *page = NULL;
    if (limit_text && (*end != '\0' || limit < 1 || limit > 500))
        return http_problem(res, 400, "validation_failed", NULL, "limit must be 1..500");
    if (shop_list_products(req->shop, http_query(req, "after"), (size_t)limit, &page) < 0)
        return http_shop_problem(res, false);
    return http_json(res, 200, page);
}

static int get_product(http_request *req, http_response *res)
{
    return product_answer(req, res, 200, req->params[0]);
}

static int put_price(http_request *req, http_response *res)
{
    int64_t price = 0;
    json_t *body = http_body(req, res);
    if (body && http_integer(body, "price", true, &price, res) == 0) {
        if (shop_change_price(req->shop, req->params[0], price) < 0)
            http_shop_problem(res, true);
        else
            product_answer(req, res, 200, req->params[0]);
    }
    json_decref(body);
    return 0;
}

static int post_stock(http_request *req, http_response *res)
{
    int64_t change = 0;
    const char *reason;
    json_t *body = http_body(req, res);
    if (body && http_integer(body, "quantity_change", true, &change, res) == 0 &&
        http_string(body, "reason", true, &reason, res) == 0) {
        if (shop_adjust_stock(req->shop, req->params[0], change, reason) < 0)
            http_shop_problem(res, true);
        else
            product_answer(req, res, 200, req->params[0]);
    }
    json_decref(body);
    return 0;
}

/* ---- orders ------------------------------------------------------------------------ */

/* Reads items, address and payment from body into in (strings borrowed). */
static int order_input(json_t *body, shop_order_input *in, shop_order_item *items,
                       http_response *res)
{
    json_t *list = json_object_get(body, "items"),
           *address = json_object_get(body, "shipping_address");
    json_t *payment = json_object_get(body, "payment");
    if (http_string(body, "user_id", true, &in->user_id, res) < 0)
        return -1;
    if (!json_is_array(list))
        return http_problem(res, 400, "validation_failed", "/items", "items must be an array"), -1;
    if (json_array_size(list) > SHOP_MAX_ORDER_ITEMS)
        return http_problem(res, 422, "validation_failed", "/items",
                            "an order has at most %d items", SHOP_MAX_ORDER_ITEMS),
               -1;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *item = json_array_get(list, i);
        char field[48];
        snprintf(field, sizeof field, "/items/%zu", i);
        if (!json_is_object(item) || !json_is_string(json_object_get(item, "product_id")) ||
            !json_is_integer(json_object_get(item, "quantity")))
            return http_problem(res, 400, "validation_failed", field,
                                "each item needs product_id (string) and quantity (integer)"),
                   -1;
        items[i].product_id = json_string_value(json_object_get(item, "product_id"));
        items[i].quantity = json_integer_value(json_object_get(item, "quantity"));
    }
    in->items = items;
    in->item_count = json_array_size(list);
    if (!json_is_object(address) || !json_is_object(payment))
        return http_problem(res, 400, "validation_failed",
                            json_is_object(address) ? "/payment" : "/shipping_address",
                            "shipping_address and payment must be objects"),
               -1;
    shop_address *to = &in->shipping_address;
    static const char at[] = "/shipping_address", pay[] = "/payment";
    if (http_string_in(address, at, "line1", true, &to->line1, res) < 0 ||
        http_string_in(address, at, "city", true, &to->city, res) < 0 ||
        http_string_in(address, at, "postal_code", true, &to->postal_code, res) < 0 ||
        http_string_in(address, at, "country", true, &to->country, res) < 0 ||
        http_string_in(payment, pay, "method", true, &in->payment_method, res) < 0 ||
        http_string_in(payment, pay, "token", true, &in->payment_token, res) < 0)
        return -1;
    return 0;
}

/* The order, if the caller may see it: *out (owned), else a 404 set in
 * res exactly as for an order that does not exist. */
static int visible_order(http_request *req, http_response *res, const char *id, bool as_placed,
                         json_t **out)
{
    int error = as_placed ? shop_get_order_as_placed(req->shop, id, out)
                          : shop_get_order(req->shop, id, out);
    if (error < 0)
        return http_shop_problem(res, true), error;
    if (!http_owns(req, json_string_value(json_object_get(*out, "user_id")))) {
        json_decref(*out);
        *out = NULL;
        return http_problem(res, 404, "not_found", NULL, "no order %s", id), TD_ENOTFOUND;
    }
    return 0;
}

static int order_answer(http_request *req, http_response *res, unsigned status, const char *id)
{
    json_t *order = NULL;
    if (visible_order(req, res, id, status == 202, &order) < 0)
        return 0;
    json_object_set_new(order, "id", json_string(id));
    const char *user = json_string_value(json_object_get(order, "user_id"));
    snprintf(res->subject, sizeof res->subject, "%s", user ? user : "");
    return status == 202 ? created(res, 202, "/orders", id, order) : http_json(res, status, order);
}

static int post_order(http_request *req, http_response *res)
{
    shop_order_item items[SHOP_MAX_ORDER_ITEMS];
    shop_order_input in;
    char id[SHOP_ID_LEN + 1];
    memset(&in, 0, sizeof in);
    json_t *body = http_body(req, res);
    if (body && req->who.role == SHOP_ROLE_CUSTOMER && !json_object_get(body, "user_id"))
        json_object_set_new(body, "user_id", json_string(req->who.user_id)); /* their own */
    if (body && order_input(body, &in, items, res) == 0) {
        if (!http_owns(req, in.user_id))
            http_problem(res, 403, "forbidden", "/user_id",
                         "a customer places orders for themselves only");
        else if (shop_place_order(req->shop, &in, id) < 0)
            http_shop_problem(res, false);
        else
            order_answer(req, res, 202, id);
    }
    json_decref(body);
    return 0;
}

static int get_order(http_request *req, http_response *res)
{
    return order_answer(req, res, 200, req->params[0]);
}

static int order_action(http_request *req, http_response *res, int (*action)(shop *, const char *))
{
    json_t *order = NULL;
    if (visible_order(req, res, req->params[0], false, &order) < 0) /* a customer: theirs only */
        return 0;
    json_decref(order);
    if (action(req->shop, req->params[0]) < 0)
        return http_shop_problem(res, true);
    return order_answer(req, res, 200, req->params[0]);
}

static int cancel(http_request *req, http_response *res)
{
    return order_action(req, res, shop_cancel_order);
}

static int ship(http_request *req, http_response *res)
{
    return order_action(req, res, shop_ship_order);
}

static int deliver(http_request *req, http_response *res)
{
    return order_action(req, res, shop_deliver_order);
}

/* Who may call what; docs/api.md has the same table, and
 * tests/http/authz/matrix.txt checks every cell of it. */
const http_route http_shop_routes[] = {
    {"POST", "/users", "/users", HTTP_ANYONE, post_user, 0, SHOP_CTX_USERS},
    {"GET", "/users/{}", "/users/{id}", HTTP_CUSTOMER_ADMIN, get_user, 0, SHOP_CTX_USERS},
    {"GET", "/users/{}/orders", "/users/{id}/orders", HTTP_CUSTOMER_ADMIN, get_user_orders, 0,
     SHOP_CTX_USERS},
    {"POST", "/users/{}/forget", "/users/{id}/forget", SHOP_ROLE_ADMIN, forget_user, 0,
     SHOP_CTX_USERS},
    {"POST", "/sessions", "/sessions", HTTP_ANYONE, post_session, 0, SHOP_CTX_USERS},
    {"GET", "/sessions/current", "/sessions/current",
     SHOP_ROLE_CUSTOMER | SHOP_ROLE_STAFF | SHOP_ROLE_ADMIN | SHOP_ROLE_METRICS, get_session, 0,
     SHOP_CTX_USERS},
    {"DELETE", "/sessions/current", "/sessions/current", SHOP_ROLE_CUSTOMER, delete_session, 0,
     SHOP_CTX_USERS},
    {"POST", "/categories", "/categories", HTTP_STAFF_ADMIN, post_category, 0, SHOP_CTX_CATALOG},
    {"GET", "/categories", "/categories", HTTP_ANYONE, get_categories, 0, SHOP_CTX_CATALOG},
    {"POST", "/products", "/products", HTTP_STAFF_ADMIN, post_product, 0, SHOP_CTX_CATALOG},
    {"GET", "/products", "/products", HTTP_ANYONE, get_products, 0, SHOP_CTX_CATALOG},
    {"GET", "/products/{}", "/products/{id}", HTTP_ANYONE, get_product, 0, SHOP_CTX_CATALOG},
    {"PUT", "/products/{}/price", "/products/{id}/price", HTTP_STAFF_ADMIN, put_price, 0,
     SHOP_CTX_CATALOG},
    {"POST", "/products/{}/stock", "/products/{id}/stock", HTTP_STAFF_ADMIN, post_stock, 0,
     SHOP_CTX_INVENTORY},
    {"POST", "/orders", "/orders", HTTP_CUSTOMER_ADMIN, post_order, HTTP_NEW_WORK, SHOP_CTX_ORDERS},
    {"GET", "/orders/{}", "/orders/{id}", HTTP_CUSTOMER_STAFF_ADMIN, get_order, 0, SHOP_CTX_ORDERS},
    {"POST", "/orders/{}/cancel", "/orders/{id}/cancel", HTTP_CUSTOMER_STAFF_ADMIN, cancel, 0,
     SHOP_CTX_ORDERS},
    {"POST", "/orders/{}/ship", "/orders/{id}/ship", HTTP_STAFF_ADMIN, ship, 0, SHOP_CTX_ORDERS},
    {"POST", "/orders/{}/deliver", "/orders/{id}/deliver", HTTP_STAFF_ADMIN, deliver, 0,
     SHOP_CTX_ORDERS},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
