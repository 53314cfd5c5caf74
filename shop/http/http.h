/*
 * http.h (shop): the HTTP API's plumbing shared by the route files.
 *
 * A request reaches one route by method and path (segments like {id} are
 * captured in order). A handler fills the response: a status and a JSON body,
 * or a problem (RFC 9457: type, title, status, detail, code, field). Bodies
 * must be JSON objects sent as application/json, at most 1 MiB; duplicate
 * keys, invalid UTF-8, NUL characters, nesting beyond jansson's limit and
 * numbers that do not fit 64 bits are refused as malformed.
 *
 * Every route names the roles that may use it (auth/auth.h). Before a
 * handler runs, the request's bearer token is resolved to a principal:
 * a token that is malformed, unknown, revoked or expired is 401
 * invalid_token; no token on a route that needs one is 401
 * unauthenticated; a role the route does not allow is 403 forbidden.
 * Handlers then check ownership: a customer reaches only their own user
 * and orders, and another customer's answers exactly as a missing one
 * (404). docs/api.md has the table.
 */
#ifndef SHOP_HTTP_HTTP_H
#define SHOP_HTTP_HTTP_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "common/contexts.h"
#include "auth/auth.h"
#include "services/spans.h"
#include "shop.h"

#define HTTP_MAX_BODY   (1024 * 1024)
#define HTTP_MAX_PARAMS 4

typedef struct http_server http_server;

typedef struct http_request {
    http_server *server;
    shop *shop;
    td_store *store;
    struct MHD_Connection *connection;
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    const char *params[HTTP_MAX_PARAMS]; /* captured {…} path segments */
    shop_principal who;                  /* who is asking */
    char client[64];                     /* the client's address, for throttling */
} http_request;

typedef struct http_response {
    unsigned status;
    json_t *json;             /* owned; or NULL with text */
    char *text;               /* owned (malloc) */
    const char *content_type; /* NULL: application/json */
    char location[160];
    char allow[64];                /* for 405 */
    unsigned retry_after;          /* seconds, for 429 and 503; 0: none */
    const char *challenge;         /* 401: the WWW-Authenticate header's value */
    bool close;                    /* close the connection after this answer */
    char subject[SHOP_ID_LEN + 1]; /* the user whose personal data the body holds, or
                                      "": idempotency.c keeps such a body sealed */
    bool page; /* a console file: sent with the console's Content-Security-Policy and
                  the other headers of a page, never with CORS headers */
} http_response;

typedef int (*http_handler)(http_request *req, http_response *res);

/* Sets a problem response; returns 0 so handlers can `return problem(…)`. */
int http_problem(http_response *res, unsigned status, const char *code, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The problem for the thread's last shop error. */
int http_shop_problem(http_response *res, bool path_entity);
/* 200/201/202 with json (stolen). */
int http_json(http_response *res, unsigned status, json_t *json);

/* Parses the body as a JSON object; on failure sets the problem and returns
 * NULL. Caller owns the result. */
json_t *http_body(http_request *req, http_response *res);

/* Typed fields of a body; on a wrong type or a missing required field, set
 * a 400 problem and return -1. */
int http_string(json_t *body, const char *key, bool required, const char **out, http_response *res);
int http_integer(json_t *body, const char *key, bool required, int64_t *out, http_response *res);
/* As http_string, for a field of an object inside the body: parent is that
 * object's JSON Pointer ("/payment"), which the problem's field starts with. */
int http_string_in(json_t *object, const char *parent, const char *key, bool required,
                   const char **out, http_response *res);

/* A query argument, or NULL. */
const char *http_query(http_request *req, const char *key);

/* Parked live feeds (feeds.c): a feed with nothing to send parks its
 * connection instead of waiting on a server thread; one thread resumes it
 * when something is committed after its position or a keep-alive is due.
 * The server needs MHD_ALLOW_SUSPEND_RESUME. Stop before MHD_stop_daemon
 * (it resumes every parked feed, and refuses to park more); free after. */
#define HTTP_FEED_KEEPALIVE_US (15 * 1000000LL)
typedef struct http_feeds http_feeds;
typedef struct http_feed {
    struct MHD_Connection *connection;
    int64_t after;     /* the last position the feed has read */
    td_time last_sent; /* when it last sent anything */
    bool parked;
    /* what it follows (borrowed; NULL: any), so that the waker resumes it
     * only for events it would send */
    const char *stream, *type, *category, *user;
    char client[64]; /* its client's address, for the caps */
    struct http_feed *next;
} http_feed;
typedef enum http_feed_parking {
    HTTP_FEED_PARKED,   /* suspended: return 0 from the content reader */
    HTTP_FEED_MISSED,   /* something was committed meanwhile: read again */
    HTTP_FEED_STOPPING, /* the server stops: end the stream */
} http_feed_parking;
int http_feeds_start(http_feeds **out, td_store *store, unsigned max_feeds,
                     unsigned max_feeds_per_client);
/* Admits a new feed of client (its address): 0, or TD_EBUSY when the
 * feeds in all or the client's are at their cap (then 503 with
 * Retry-After). A feed admitted is counted until http_feeds_forget. */
int http_feeds_admit(http_feeds *feeds, http_feed *feed);
/* Feeds open now. */
unsigned http_feeds_open(http_feeds *feeds);
/* From the feed's content reader only. */
http_feed_parking http_feeds_park(http_feeds *feeds, http_feed *feed);
/* From the response's free callback: the feed is gone. */
void http_feeds_forget(http_feeds *feeds, http_feed *feed);
void http_feeds_stop(http_feeds *feeds);
void http_feeds_free(http_feeds *feeds);

/* A feed's position as a client sends it (Last-Event-ID, ?after=): whole
 * decimal digits only, no sign or spaces, at most INT64_MAX. On success sets
 * *out and returns true; otherwise leaves *out as it was. */
bool http_parse_position(const char *text, int64_t *out);

/* GET /events/stream (sse.c): makes the streaming response in *out, or sets
 * a problem in res and leaves *out NULL. The feed ends when *stopping. */
int http_event_stream(http_request *req, http_response *res, const atomic_bool *stopping,
                      http_feeds *feeds, struct MHD_Response **out);

/* ---- access (access.c) ---------------------------------------------------------- */

#define HTTP_ANYONE                                                                                \
    (SHOP_ROLE_ANONYMOUS | SHOP_ROLE_CUSTOMER | SHOP_ROLE_STAFF | SHOP_ROLE_ADMIN |                \
     SHOP_ROLE_METRICS)
#define HTTP_CUSTOMER_ADMIN       (SHOP_ROLE_CUSTOMER | SHOP_ROLE_ADMIN)
#define HTTP_CUSTOMER_STAFF_ADMIN (SHOP_ROLE_CUSTOMER | SHOP_ROLE_STAFF | SHOP_ROLE_ADMIN)
#define HTTP_STAFF_ADMIN          (SHOP_ROLE_STAFF | SHOP_ROLE_ADMIN)

/* Resolves the request's credentials into req->who and admits it to a
 * route open to roles; on refusal sets the 401 or 403 problem and returns
 * < 0. */
int http_admit(http_request *req, http_response *res, unsigned roles);
/* Whether a customer may see user_id's data: their own only. Staff and
 * admins may see anyone's (where the route lets them in at all). */
bool http_owns(const http_request *req, const char *user_id);
/* Token buckets (throttle.c) keyed by text: 0 when key may go on, else
 * sets a 429 problem with Retry-After and returns < 0. */
typedef struct http_throttle http_throttle;
int http_throttle_new(http_throttle **out, double per_minute, double burst);
void http_throttle_free(http_throttle *throttle);
/* Seconds until key may go on again (0: now; a token is taken). */
double http_throttle_take(http_throttle *throttle, const char *key);
/* The server's throttles, for login and registration. */
typedef enum http_limit {
    HTTP_LIMIT_AUTH_CLIENT,  /* logins and registrations per client address */
    HTTP_LIMIT_AUTH_ACCOUNT, /* logins per account */
    HTTP_LIMIT_CLIENT,       /* requests per client address */
    HTTP_LIMIT_CREDENTIAL,   /* requests per credential (a customer, a key) */
    HTTP_LIMITS
} http_limit;
int http_throttled(http_request *req, http_response *res, http_limit limit, const char *key);
/* The server's parts for the access checks (server.c). */
bool http_server_open_access(const http_server *server);
http_throttle *http_server_throttle(http_server *server, http_limit limit);
/* Counts a request refused by limit (http_rate_limited_total{limit}). */
void http_server_count_limited(http_server *server, http_limit limit);

/* Runs handler, honouring an Idempotency-Key header on POST (idempotency.c):
 * records in the expiring collection HTTP_IDEMPOTENCY. */
#define HTTP_IDEMPOTENCY "http_idempotency"
/* How long the server keeps Idempotency-Key records, in microseconds. */
td_time http_server_idempotency_ttl(const http_server *server);
int http_idempotent(http_request *req, http_response *res, http_handler handler);

/* Route tables of the route files, ending with a NULL method. */
typedef struct http_route {
    const char *method;
    const char *pattern; /* "/orders/{}/cancel" */
    const char *name;    /* for metrics: "/orders/{id}/cancel" */
    unsigned roles;      /* who may: shop_role bits */
    http_handler handler;
    unsigned flags; /* HTTP_NEW_WORK */
    /* The context that owns it (SHOP_CTX_*); 0: every process serves it.
     * A process that does not run it answers 421, naming the owner. */
    unsigned context;
} http_route;

/* http_route flags: the route begins new work (an order), refused with 503
 * while the work already begun is behind (http_options.admit_backlog_ms). */
#define HTTP_NEW_WORK 1u

extern const http_route http_shop_routes[];
extern const http_route http_ops_routes[];
extern const http_route http_dead_letter_routes[];
extern const http_route http_status_routes[];
extern const http_route http_saga_routes[];
extern const http_route http_story_routes[];
extern const http_route http_console_routes[];

/* The console's static files (shop/console/, compiled in by
 * cmake/embed_assets.cmake), ending with a NULL name. */
typedef struct http_asset {
    const char *name; /* "index.html" */
    const char *type; /* its media type */
    const unsigned char *bytes;
    size_t size;
} http_asset;
extern const http_asset http_console_assets[];

/* An event as JSON for a client: its envelope, its data at the current
 * schema with personal fields opened (erased ones null). Caller owns *out. */
int http_event_json(shop *s, const td_event *event, json_t **out);

/* Whole-request deadlines (deadlines.c): a connection must deliver each
 * request head within head_s of opening (or of its last answer) and the
 * body within body_s of the head, or it is cut. */
typedef struct http_deadlines http_deadlines;
typedef enum http_phase {
    HTTP_PHASE_BODY,      /* the head is in: the body's deadline */
    HTTP_PHASE_ANSWERING, /* an answer is queued: no deadline */
    HTTP_PHASE_NEXT_HEAD, /* answered: the next head's deadline */
} http_phase;
int http_deadlines_start(http_deadlines **out, unsigned head_s, unsigned body_s);
void http_deadlines_stop(http_deadlines *deadlines);
/* From libmicrohttpd's connection notifications (context: its socket context). */
void http_deadlines_opened(http_deadlines *deadlines, struct MHD_Connection *c, void **context);
void http_deadlines_closed(http_deadlines *deadlines, void **context);
void http_deadlines_set(http_deadlines *deadlines, struct MHD_Connection *c, http_phase phase);
/* Connections cut so far for missing a deadline. */
long long http_deadlines_cut(const http_deadlines *deadlines);

/* Workers (workers.c): commands run off the connection threads, first in,
 * first out. max_waiting: commands that may wait for a worker. Bounded
 * submissions (new work) start only while gate(gate_arg) says so (asked on
 * a worker, without locks held; NULL: always), or once they have waited
 * max_wait_us; and new ones are refused while the oldest waiting has waited
 * longer (max_wait_us 0: neither). */
typedef struct http_workers http_workers;
typedef void (*http_work_fn)(void *arg);
typedef bool (*http_gate_fn)(void *arg);
int http_workers_start(http_workers **out, unsigned threads, unsigned max_waiting,
                       int64_t max_wait_us, http_gate_fn gate, void *gate_arg);
/* 0, or TD_EBUSY when the command must be refused (the caller answers 503
 * at once): stopping, the queue is full, or (bounded: new work) it makes
 * commands wait past max_wait_us. TD_ENOMEM. */
int http_workers_submit(http_workers *workers, http_work_fn fn, void *arg, bool bounded);
/* Why a command submitted now would be refused (a static string), or NULL
 * (a hint: cheap, racy). */
const char *http_workers_full(http_workers *workers, bool bounded);
/* How many commands wait for a worker, and how long the oldest has waited
 * (seconds); 0 and 0 for NULL. */
void http_workers_queue(http_workers *workers, unsigned *waiting, double *oldest_s);
/* Runs what is queued, then joins; later submissions are refused ("the
 * server is stopping"), so connection threads may still call in until
 * http_workers_free. Accepts NULL; a second call does nothing. */
void http_workers_stop(http_workers *workers);
/* Stops if still running, then frees, once nobody can call in. Accepts NULL. */
void http_workers_free(http_workers *workers);

/* Serving. */
#define HTTP_MAX_HOSTS   8
#define HTTP_MAX_ORIGINS 8
typedef struct http_options {
    const char *host; /* "127.0.0.1" */
    int port;         /* 0: any free port */
    unsigned threads; /* 0: 4 */
    td_metrics *metrics;
    shop_spans *spans; /* the last spans when tracing is on (the console reads them), or NULL */
    /* Host header names served besides localhost, 127.0.0.1, [::1] and the
     * listening address ("*": any); others get 421, against DNS rebinding. */
    const char *hosts[HTTP_MAX_HOSTS];
    /* Origins allowed cross-origin requests (CORS); none: no CORS headers. */
    const char *origins[HTTP_MAX_ORIGINS];
    double auth_per_minute;              /* logins and registrations per client address; 0: 60 */
    bool open_access;                    /* every request is an admin's: for benchmarks only */
    unsigned max_connections;            /* in all; 0: 10,000 */
    unsigned max_connections_per_client; /* per client address; 0: 256 */
    unsigned head_timeout_s;             /* a request head must be in within; 0: 10 */
    unsigned body_timeout_s;             /* its body within, after the head; 0: 30 */
    double client_per_second;            /* requests per client address; 0: 2,000 (burst: 2 s) */
    double credential_per_second;        /* requests per credential; 0: 1,000 (burst: 2 s) */
    int64_t idempotency_ttl_s;           /* Idempotency-Key records are kept; 0: 24 h */
    int command_workers;                 /* commands run on workers (workers.c); 0: 8;
                                            negative: none, on the connection threads */
    unsigned commands_waiting;           /* ... that may wait for one of them; 0: 1,024 */
    int admit_wait_ms;                   /* HTTP_NEW_WORK is refused while commands wait for a
                                            worker longer; 0: 50 ms; negative: never */
    unsigned max_feeds;                  /* live feeds in all; 0: 10,000 */
    unsigned max_feeds_per_client;       /* per client address; 0: 64 */
    int admit_backlog_ms;                /* HTTP_NEW_WORK is refused while shop_backlog
                                            is past this; 0: 100 ms; negative: never */
    td_relay *relay;                     /* the broker relay, for /health; NULL: none */
    td_consumer *consumer;               /* the broker consumer, for /health; NULL: none */
} http_options;

int http_server_start(http_server **out, shop *s, td_store *store, const http_options *opts);
int http_server_port(const http_server *server);
/* Stops accepting, lets requests in progress finish, frees. */
void http_server_stop(http_server *server);
td_metrics *http_server_metrics(http_server *server);
/* The ring of recent spans, or NULL when tracing is off. */
shop_spans *http_server_spans(http_server *server);
/* The broker relay /health reports on, or NULL. Borrowed. */
td_relay *http_server_relay(http_server *server);
/* The broker consumer /health reports on, or NULL. Borrowed. */
td_consumer *http_server_consumer(http_server *server);

#endif
