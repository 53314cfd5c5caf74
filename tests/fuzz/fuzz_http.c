/*
 * fuzz_http.c: the shop's request bodies and query strings, through the
 * real HTTP server (shop/http/, libmicrohttpd) on a real SQLite store,
 * started once with its event handling; each input is one request on a
 * fresh loopback connection.
 *
 * Input: byte 0 picks the route (method and path), then up to the first
 * newline is appended to the path, up to the second is the query string
 * (both percent-encoded but for '/', '=' and '&'), and the rest is the
 * JSON body. The server serves with open access (as an administrator) and
 * rate limits out of reach, so every input reaches its handler. The oracle:
 * an answer comes, and it is never a 500 (a failure of the shop's own,
 * which bad input must not cause); sanitizers catch the rest.
 *
 * Registration and login (POST /users, POST /sessions) are left out: each
 * valid one hashes a password with Argon2id, which would bring the run to
 * a crawl; their bodies are read by the same http_body and http_string.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz.h"
#include "http/http.h"

static const struct {
    const char *method, *path;
} routes[] = {
    {"GET", "/users/"},           {"POST", "/users/"},
    {"POST", "/categories"},      {"GET", "/categories"},
    {"POST", "/products"},        {"GET", "/products"},
    {"GET", "/products/"},        {"PUT", "/products/"},
    {"POST", "/products/"},       {"POST", "/orders"},
    {"GET", "/orders/"},          {"POST", "/orders/"},
    {"GET", "/events"},           {"GET", "/streams/"},
    {"GET", "/metrics"},          {"GET", "/health"},
    {"GET", "/dead-letters"},     {"POST", "/dead-letters/"},
    {"GET", "/sessions/current"}, {"DELETE", "/sessions/current"},
};
#define ROUTES (sizeof routes / sizeof routes[0])

static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const unsigned char key[TD_MASTER_KEY_BYTES] = "the fuzz target's master key....";
    char url[4200];
    td_store *store = NULL;
    shop *s = NULL;
    http_server *server = NULL;
    td_metrics *metrics = NULL;
    snprintf(url, sizeof url, "sqlite:%s/fuzz.db", fuzz_tmpdir());
    FUZZ_CHECK(td_store_open(&store, url, NULL) == 0);
    shop_options so = {.data_dir = fuzz_tmpdir(), .lanes = 1, .io_lanes = 1, .master_key = key};
    FUZZ_CHECK(shop_open(&s, store, &so) == 0);
    FUZZ_CHECK(td_metrics_new(&metrics) == 0);
    http_options ho = {.host = "127.0.0.1",
                       .metrics = metrics,
                       .threads = 1,
                       .open_access = true,
                       .auth_per_minute = 1e5,
                       .client_per_second = 1e6,
                       .credential_per_second = 1e6};
    int rc = http_server_start(&server, s, store, &ho);
    if (rc < 0)
        fprintf(stderr, "fuzz_http: %d %s / %s\n", rc, td_error_last(), shop_error().message);
    FUZZ_CHECK(rc == 0);
    port = http_server_port(server);
    return 0; /* the server lives as long as the process */
}

/* Appends text[0..len) to out, percent-encoding all but [A-Za-z0-9-._~]
 * and the characters of keep. */
static size_t encode(char *out, const uint8_t *text, size_t len, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = text[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~", c)) || (c && strchr(keep, c))) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    return n;
}

/* The next line of data[*at..size), advancing *at past its newline. */
static size_t next_line(const uint8_t *data, size_t size, size_t *at, const uint8_t **line)
{
    const uint8_t *start = data + *at, *nl = memchr(start, '\n', size - *at);
    size_t len = nl ? (size_t)(nl - start) : size - *at;
    *line = start;
    *at += nl ? len + 1 : len;
    return len;
}

static int connect_server(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval wait = {.tv_sec = 20};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == 0);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&addr, sizeof addr)) != 0 && errno == EINTR)
        ;
    FUZZ_CHECK(rc == 0);
    return fd;
}

static void send_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may answer and close before reading it all */
        text += n;
        len -= (size_t)n;
    }
}

/* The status of the answer on fd (read to its end). */
static int read_status(int fd)
{
    char answer[8192];
    size_t got = 0;
    ssize_t n;
    /* libFuzzer's timeout alarm interrupts calls (EINTR): go on after it */
    while ((n = recv(fd, answer + (got < 64 ? got : 64), sizeof answer - 65, 0)) > 0 ||
           (n < 0 && errno == EINTR))
        got += n > 0 ? (size_t)n : 0;
    if (n < 0 || got < 12 || strncmp(answer, "HTTP/1.", 7) != 0)
        fprintf(stderr, "fuzz_http: no answer (%zu bytes, %s)\n", got,
                n < 0 ? strerror(errno) : "closed");
    FUZZ_CHECK(n == 0 && got >= 12 && strncmp(answer, "HTTP/1.", 7) == 0);
    return atoi(answer + 9);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    size_t at = 1, path_len, query_len;
    const uint8_t *path, *query;
    path_len = next_line(data, size, &at, &path);
    query_len = next_line(data, size, &at, &query);
    char *head = malloc(3 * (path_len + query_len) + 512);
    FUZZ_CHECK(head != NULL);
    size_t n = (size_t)sprintf(head, "%s %s", routes[data[0] % ROUTES].method,
                               routes[data[0] % ROUTES].path);
    n += encode(head + n, path, path_len, "/");
    head[n++] = '?';
    n += encode(head + n, query, query_len, "=&");
    n += (size_t)sprintf(head + n,
                         " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         size - at);
    int fd = connect_server();
    send_all(fd, head, n);
    send_all(fd, (const char *)data + at, size - at);
    int status = read_status(fd);
    close(fd);
    free(head);
    if (getenv("FUZZ_HTTP_VERBOSE"))
        fprintf(stderr, "fuzz_http: %d %s%.*s\n", status, routes[data[0] % ROUTES].path,
                (int)path_len, (const char *)path);
    if (status == 500)
        fprintf(stderr, "fuzz_http: 500 for %s%.*s\n", routes[data[0] % ROUTES].path, (int)path_len,
                (const char *)path);
    FUZZ_CHECK(status >= 200 && status != 500 && status < 600);
    return 0;
}
