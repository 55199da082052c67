/* Unit tests for lib/conn and lib/tls: a server-side conn in an event
   loop, driven by a blocking client (plain or OpenSSL) in a second
   thread over a socketpair. A self-signed certificate is made at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "conn.h"
#include "event.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

#define BIG_SIZE (1024 * 1024)

static char tmpdir[] = "/tmp/test-conn.XXXXXX";
static char cert_path[256], key_path[256], other_key_path[256], log_path[256];
static SSL_CTX *server_ctx;
static SSL_CTX *client_ctx;

/* ---- certificate ---- */

static void write_key(EVP_PKEY *key, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static void make_self_signed(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    write_key(key, key_path);
    X509_free(x);
    EVP_PKEY_free(key);

    EVP_PKEY *other = EVP_EC_gen("P-256");
    assert_non_null(other);
    write_key(other, other_key_path);
    EVP_PKEY_free(other);
}

/* ---- the server side: a tiny line session ---- */

struct srv {
    struct event_loop *loop;
    struct conn *conn;
    struct event_timer *guard;
    struct event_timer *timer;
    int inputs, closeds, readys;
    int timed_out;
    char lines[512];          /* lines received, each followed by '|' */
    int starttls;             /* "STLS" -> reply, conn_start_tls */
    size_t stls_filler;       /* bytes of 'x' before the "OK\r\n" reply */
    int saw_pipelined;        /* bytes were behind STLS when it ran */
    int start_tls_rc;
    int hs_after_start;       /* conn->handshaking right after conn_start_tls */
    int hold;                 /* do not consume input; a timer does */
    size_t hold_total;        /* reply "done" after consuming this many bytes */
    size_t max_in, consumed;
    int full_seen;
    int pause_first;          /* pause input in the first INPUT callback */
    int paused, inputs_while_paused;
    int flush_big_rc;
    int progress_rounds;      /* rounds that ended with less output queued */
    int pending_rounds;       /* rounds that ended with output queued */
    size_t last_out_len;
    int flush_after_close_rc;
    char describe[128];
};

static void srv_finish(struct event_loop *loop, void *ctx)
{
    struct srv *s = ctx;
    conn_destroy(&s->conn);
    event_timer_cancel(loop, &s->timer);
    event_timer_cancel(loop, &s->guard);
    event_loop_stop(loop);
}

static void srv_guard(struct event_loop *loop, void *ctx)
{
    struct srv *s = ctx;
    s->guard = NULL;
    s->timed_out = 1;
    srv_finish(loop, s);
}

static void append_big(struct buf *out, size_t n)
{
    char *p = buf_reserve(out, n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    buf_commit(out, n);
}

static void srv_lines(struct srv *s)
{
    struct conn *conn = s->conn;
    const char *line;
    size_t len, consume;
    int crlf;
    while (buf_read_line(&conn->in, 1000, &line, &len, &crlf, &consume) == BUF_LINE_OK) {
        char text[128];
        snprintf(text, sizeof(text), "%.*s", (int)len, line);
        buf_consume(&conn->in, consume);
        size_t used = strlen(s->lines);
        snprintf(s->lines + used, sizeof(s->lines) - used, "%s|", text);
        if (s->starttls && strcmp(text, "STLS") == 0) {
            s->saw_pipelined = conn->in.len > 0;
            append_big(&conn->out, s->stls_filler);
            buf_append_str(&conn->out, "OK\r\n");
            s->start_tls_rc = conn_start_tls(conn, server_ctx);
            s->hs_after_start = conn->handshaking;
            return;
        }
        if (strcmp(text, "BIG") == 0) {
            append_big(&conn->out, BIG_SIZE);
            s->flush_big_rc = conn_flush(conn);
            continue;
        }
        buf_printf(&conn->out, "%s\r\n", text);
    }
}

static void srv_consume(struct event_loop *loop, void *ctx)
{
    struct srv *s = ctx;
    s->timer = NULL;
    s->consumed += s->conn->in.len;
    buf_reset(&s->conn->in);
    conn_update(s->conn);
    if (s->consumed >= s->hold_total) {
        buf_append_str(&s->conn->out, "done\r\n");
        conn_flush(s->conn);
    }
}

static void srv_resume(struct event_loop *loop, void *ctx)
{
    struct srv *s = ctx;
    s->timer = NULL;
    s->paused = 0;
    conn_pause_input(s->conn, 0);
}

static void srv_cb(struct conn *conn, enum conn_event event, void *ctx)
{
    struct srv *s = ctx;
    assert_ptr_equal(conn, s->conn);
    switch (event) {
    case CONN_EVENT_CLOSED:
        s->closeds++;
        assert_int_equal(conn->closed, 1);
        /* Calls on a closed conn fail without a second CLOSED. */
        buf_append_str(&conn->out, "late\r\n");
        s->flush_after_close_rc = conn_flush(conn);
        conn_update(conn);
        event_defer(s->loop, srv_finish, s);
        return;
    case CONN_EVENT_TLS_READY:
        s->readys++;
        tls_describe(conn->ssl, s->describe, sizeof(s->describe));
        return;
    case CONN_EVENT_INPUT:
        s->inputs++;
        if (s->paused)
            s->inputs_while_paused++;
        if (conn->in.len > s->max_in)
            s->max_in = conn->in.len;
        if (s->hold) {
            if (conn->in.len == conn->in.limit)
                s->full_seen++;
            if (s->timer == NULL)
                s->timer = event_timer_add(s->loop, 5, srv_consume, s);
            return;
        }
        srv_lines(s);
        if (s->pause_first && !s->paused && s->inputs == 1) {
            s->paused = 1;
            conn_pause_input(conn, 1);
            s->timer = event_timer_add(s->loop, 50, srv_resume, s);
        }
        conn_flush(conn);
        return;
    }
}

static void srv_before_sleep(struct event_loop *loop, void *ctx)
{
    struct srv *s = ctx;
    if (s->conn == NULL)
        return;
    if (s->conn->out.len > 0)
        s->pending_rounds++;
    if (s->conn->out.len < s->last_out_len)
        s->progress_rounds++;
    s->last_out_len = s->conn->out.len;
}

/* ---- the client side ---- */

struct client {
    int fd;
    int (*fn)(struct client *c);
    char error[256];
    int result;
};

static int client_fail(struct client *c, const char *what)
{
    if (c->error[0] == '\0')
        snprintf(c->error, sizeof(c->error), "%s (errno %s)", what, strerror(errno));
    return -1;
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_exact(int fd, char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, data, len, 0);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ssl_write_all(SSL *ssl, const char *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write(ssl, data, (int)len);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ssl_read_exact(SSL *ssl, char *data, size_t len)
{
    while (len > 0) {
        int n = SSL_read(ssl, data, (int)len);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static SSL *client_handshake(struct client *c)
{
    SSL *ssl = SSL_new(client_ctx);
    if (ssl == NULL)
        return NULL;
    SSL_set_fd(ssl, c->fd);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

/* Reads len bytes in 32 KiB steps with a pause between them, so the
   server's socket fills and its output drains over many events. */
static int paced_read(int fd, SSL *ssl, char *data, size_t len)
{
    struct timespec ts = {0, 1000 * 1000};
    while (len > 0) {
        size_t step = len > 32768 ? 32768 : len;
        if ((ssl != NULL ? ssl_read_exact(ssl, data, step) : recv_exact(fd, data, step)) < 0)
            return -1;
        data += step;
        len -= step;
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int check_big(const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (data[i] != (char)('a' + i % 26))
            return -1;
    return 0;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    c->result = c->fn(c);
    close(c->fd);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

/* Runs one conversation: server conn on sv[0], client thread on sv[1]. */
static void run(struct srv *s, int (*fn)(struct client *c), int implicit_tls, size_t in_limit,
                size_t out_limit, int small_sndbuf)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    if (small_sndbuf) {
        int size = 8192;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    s->loop = event_loop_create();
    struct sockaddr_in6 peer = {.sin6_family = AF_INET6, .sin6_port = htons(40110)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &peer.sin6_addr);
    s->conn = conn_create(s->loop, sv[0], (struct sockaddr *)&peer, sizeof(peer), in_limit,
                          out_limit, srv_cb, s);
    if (implicit_tls) {
        assert_int_equal(conn_start_tls(s->conn, server_ctx), 0);
        assert_int_equal(s->conn->handshaking, 1);
    }
    s->guard = event_timer_add(s->loop, 10000, srv_guard, s);
    event_before_sleep(s->loop, srv_before_sleep, s);

    struct client c = {.fd = sv[1], .fn = fn};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, client_main, &c), 0);
    event_loop_run(s->loop);
    pthread_join(thread, NULL);
    event_loop_destroy(&s->loop);
    if (c.result != 0)
        fail_msg("client: %s", c.error);
    assert_false(s->timed_out);
    assert_null(s->conn);
}

/* ---- plain ---- */

static int client_echo(struct client *c)
{
    const char *msg = "hello\r\nworld\r\n";
    char got[32] = "";
    if (send_all(c->fd, msg, strlen(msg)) < 0)
        return client_fail(c, "send");
    if (recv_exact(c->fd, got, strlen(msg)) < 0)
        return client_fail(c, "recv");
    if (strcmp(got, msg) != 0)
        return client_fail(c, "echo differs");
    return 0;
}

static void plain_lines_are_echoed(void **state)
{
    struct srv s = {0};
    run(&s, client_echo, 0, 4096, 65536, 0);
    assert_string_equal(s.lines, "hello|world|");
    assert_int_equal(s.closeds, 1);
    assert_int_equal(s.readys, 0);
}

static void peer_address_is_text_and_mapped_ipv4_is_shown_as_ipv4(void **state)
{
    struct event_loop *loop = event_loop_create();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_port = htons(995)};
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &six.sin6_addr);
    struct conn *conn = conn_create(loop, sv[0], (struct sockaddr *)&six, sizeof(six), 64, 64,
                                    srv_cb, NULL);
    assert_string_equal(conn->addr, "192.0.2.7");
    assert_int_equal(conn->port, 995);
    conn_destroy(&conn);
    assert_null(conn);

    close(sv[1]);
    inet_pton(AF_INET6, "2001:db8::1", &six.sin6_addr);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    conn = conn_create(loop, sv[0], (struct sockaddr *)&six, sizeof(six), 64, 64, srv_cb, NULL);
    assert_string_equal(conn->addr, "2001:db8::1");
    conn_destroy(&conn);

    struct sockaddr_in four = {.sin_family = AF_INET, .sin_port = htons(110)};
    inet_pton(AF_INET, "198.51.100.9", &four.sin_addr);
    int sv2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
    conn = conn_create(loop, sv2[0], (struct sockaddr *)&four, sizeof(four), 64, 64, srv_cb,
                       NULL);
    assert_string_equal(conn->addr, "198.51.100.9");
    assert_int_equal(conn->port, 110);
    conn_destroy(&conn);
    close(sv[1]);
    close(sv2[1]);
    event_loop_destroy(&loop);
}

static int client_send_1000_then_wait(struct client *c)
{
    char data[1000];
    memset(data, 'q', sizeof(data));
    if (send_all(c->fd, data, sizeof(data)) < 0)
        return client_fail(c, "send");
    char got[7] = "";
    if (recv_exact(c->fd, got, 6) < 0)
        return client_fail(c, "recv");
    if (strcmp(got, "done\r\n") != 0)
        return client_fail(c, "no done");
    return 0;
}

static void input_never_exceeds_limit_and_reading_resumes_after_consume(void **state)
{
    struct srv s = {0};
    s.hold = 1;
    s.hold_total = 1000;
    run(&s, client_send_1000_then_wait, 0, 64, 65536, 0);
    assert_int_equal(s.max_in, 64);
    assert_int_equal(s.consumed, 1000);
    assert_true(s.full_seen >= 10);
    assert_int_equal(s.closeds, 1);
}

static int client_two_lines_apart(struct client *c)
{
    if (send_all(c->fd, "one\r\n", 5) < 0)
        return client_fail(c, "send");
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (send_all(c->fd, "two\r\n", 5) < 0)
        return client_fail(c, "send");
    char got[16] = "";
    if (recv_exact(c->fd, got, 10) < 0)
        return client_fail(c, "recv");
    if (strcmp(got, "one\r\ntwo\r\n") != 0)
        return client_fail(c, "echo differs");
    return 0;
}

static void pause_inside_callback_stops_reading_until_resumed(void **state)
{
    struct srv s = {0};
    s.pause_first = 1;
    run(&s, client_two_lines_apart, 0, 4096, 65536, 0);
    assert_string_equal(s.lines, "one|two|");
    assert_int_equal(s.inputs_while_paused, 0);
    assert_int_equal(s.closeds, 1);
}

static int client_send_and_close(struct client *c)
{
    if (send_all(c->fd, "x\r\n", 3) < 0)
        return client_fail(c, "send");
    return 0;
}

static void peer_close_gives_exactly_one_closed(void **state)
{
    struct srv s = {0};
    run(&s, client_send_and_close, 0, 4096, 65536, 0);
    assert_int_equal(s.closeds, 1);
    assert_int_equal(s.flush_after_close_rc, -1);
    assert_string_equal(s.lines, "x|");
}

static void peer_close_while_paused_gives_one_closed(void **state)
{
    struct srv s = {0};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    s.loop = event_loop_create();
    s.conn = conn_create(s.loop, sv[0], NULL, 0, 4096, 65536, srv_cb, &s);
    assert_string_equal(s.conn->addr, "unknown");
    conn_pause_input(s.conn, 1);
    close(sv[1]);
    s.guard = event_timer_add(s.loop, 5000, srv_guard, &s);
    event_loop_run(s.loop);
    event_loop_destroy(&s.loop);
    assert_false(s.timed_out);
    assert_int_equal(s.closeds, 1);
    assert_int_equal(s.inputs, 0);
}

static int client_big(struct client *c)
{
    if (send_all(c->fd, "BIG\r\n", 5) < 0)
        return client_fail(c, "send");
    char *data = xmalloc(BIG_SIZE);
    int rc = paced_read(c->fd, NULL, data, BIG_SIZE);
    int ok = rc == 0 && check_big(data, BIG_SIZE) == 0;
    free(data);
    if (!ok)
        return client_fail(c, "big output differs");
    char got[8] = "";
    if (send_all(c->fd, "bye\r\n", 5) < 0 || recv_exact(c->fd, got, 5) < 0)
        return client_fail(c, "bye");
    return strcmp(got, "bye\r\n") == 0 ? 0 : client_fail(c, "bye differs");
}

static void large_output_drains_across_many_writable_events(void **state)
{
    struct srv s = {0};
    run(&s, client_big, 0, 4096, 65536, 1);
    assert_int_equal(s.flush_big_rc, 1);
    assert_true(s.progress_rounds >= 10);
    assert_string_equal(s.lines, "BIG|bye|");
    assert_int_equal(s.closeds, 1);
}

/* ---- TLS ---- */

static int client_tls_echo(struct client *c)
{
    SSL *ssl = client_handshake(c);
    if (ssl == NULL)
        return client_fail(c, "handshake");
    char got[16] = "";
    int rc = 0;
    if (ssl_write_all(ssl, "ping\r\n", 6) < 0 || ssl_read_exact(ssl, got, 6) < 0)
        rc = client_fail(c, "tls io");
    else if (strcmp(got, "ping\r\n") != 0)
        rc = client_fail(c, "echo differs");
    SSL_shutdown(ssl);
    SSL_free(ssl);
    return rc;
}

static void implicit_tls_handshake_then_data_both_ways(void **state)
{
    struct srv s = {0};
    run(&s, client_tls_echo, 1, 4096, 65536, 0);
    assert_int_equal(s.readys, 1);
    assert_string_equal(s.lines, "ping|");
    assert_int_equal(s.closeds, 1);
    assert_non_null(strstr(s.describe, "TLSv1."));
    assert_non_null(strstr(s.describe, " with cipher "));
}

static int client_tls_big(struct client *c)
{
    SSL *ssl = client_handshake(c);
    if (ssl == NULL)
        return client_fail(c, "handshake");
    int rc = 0;
    char *data = xmalloc(BIG_SIZE);
    char got[8] = "";
    if (ssl_write_all(ssl, "BIG\r\n", 5) < 0 || paced_read(c->fd, ssl, data, BIG_SIZE) < 0)
        rc = client_fail(c, "tls io");
    else if (check_big(data, BIG_SIZE) < 0)
        rc = client_fail(c, "big output differs");
    else if (ssl_write_all(ssl, "bye\r\n", 5) < 0 || ssl_read_exact(ssl, got, 5) < 0 ||
             strcmp(got, "bye\r\n") != 0)
        rc = client_fail(c, "bye");
    free(data);
    SSL_free(ssl);
    return rc;
}

/* OpenSSL reports a record as written only once a later SSL_write
   completes without blocking, so progress is counted in rounds. */
static void large_tls_output_drains_across_many_writable_events(void **state)
{
    struct srv s = {0};
    run(&s, client_tls_big, 1, 4096, 65536, 1);
    assert_int_equal(s.flush_big_rc, 1);
    assert_true(s.pending_rounds >= 10);
    assert_string_equal(s.lines, "BIG|bye|");
    assert_int_equal(s.closeds, 1);
}

/* Reads the plaintext reply byte by byte up to "OK\r\n" (never past it:
   what follows belongs to TLS). */
static int read_ok_line(struct client *c, size_t filler)
{
    char *data = xmalloc(filler + 5);
    if (filler > 0) {
        /* Let the server find its socket full when STLS runs. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int rc = paced_read(c->fd, NULL, data, filler + 4);
    data[filler + 4] = '\0';
    int ok = rc == 0 && memcmp(data + filler, "OK\r\n", 4) == 0 &&
             (filler == 0 || check_big(data, filler) == 0);
    free(data);
    return ok ? 0 : client_fail(c, "no plaintext OK before the handshake");
}

static int starttls_client(struct client *c, size_t filler)
{
    /* One write: the injected line is in the server's buffer together
       with STLS when the session handles STLS. */
    const char *cmds = "STLS\r\nEVIL\r\n";
    if (send_all(c->fd, cmds, strlen(cmds)) < 0)
        return client_fail(c, "send");
    if (read_ok_line(c, filler) < 0)
        return -1;
    SSL *ssl = client_handshake(c);
    if (ssl == NULL)
        return client_fail(c, "handshake");
    int rc = 0;
    char got[16] = "";
    if (ssl_write_all(ssl, "AFTER\r\n", 7) < 0 || ssl_read_exact(ssl, got, 7) < 0)
        rc = client_fail(c, "tls io");
    else if (strcmp(got, "AFTER\r\n") != 0)
        rc = client_fail(c, "echo differs");
    SSL_shutdown(ssl);
    SSL_free(ssl);
    return rc;
}

static int client_starttls(struct client *c)
{
    return starttls_client(c, 0);
}

static int client_starttls_big_reply(struct client *c)
{
    return starttls_client(c, 300000);
}

static void starttls_reply_is_plaintext_and_pipelined_input_is_discarded(void **state)
{
    struct srv s = {0};
    s.starttls = 1;
    run(&s, client_starttls, 0, 4096, 65536, 0);
    assert_int_equal(s.start_tls_rc, 0);
    assert_int_equal(s.hs_after_start, 1);
    assert_int_equal(s.saw_pipelined, 1);
    assert_int_equal(s.readys, 1);
    assert_string_equal(s.lines, "STLS|AFTER|");
    assert_int_equal(s.closeds, 1);
}

static void starttls_waits_until_a_large_plaintext_reply_is_written(void **state)
{
    struct srv s = {0};
    s.starttls = 1;
    s.stls_filler = 300000;
    run(&s, client_starttls_big_reply, 0, 4096, 1 << 20, 1);
    assert_int_equal(s.start_tls_rc, 0);
    assert_int_equal(s.hs_after_start, 2);   /* reply still draining */
    assert_int_equal(s.readys, 1);
    assert_string_equal(s.lines, "STLS|AFTER|");
    assert_int_equal(s.closeds, 1);
}

static int client_garbage(struct client *c)
{
    const char *junk = "GET / HTTP/1.0\r\n\r\n";
    if (send_all(c->fd, junk, strlen(junk)) < 0)
        return client_fail(c, "send");
    /* The server gives up (perhaps with a TLS alert): wait for its EOF. */
    char tmp[256];
    while (recv(c->fd, tmp, sizeof(tmp), 0) > 0)
        ;
    return 0;
}

static char *read_log(void)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    struct buf b;
    buf_init(&b, 0);
    char chunk[512];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    buf_reserve(&b, 0);
    return buf_steal(&b);
}

static void garbage_instead_of_client_hello_closes_and_logs(void **state)
{
    struct srv s = {0};
    if (truncate(log_path, 0) != 0)
        fail_msg("truncate log");
    run(&s, client_garbage, 1, 4096, 65536, 0);
    assert_int_equal(s.readys, 0);
    assert_int_equal(s.inputs, 0);
    assert_int_equal(s.closeds, 1);
    char *log = read_log();
    assert_non_null(strstr(log, "TLS handshake failed from 127.0.0.1: "));
    free(log);
}

static int client_eof_in_handshake(struct client *c)
{
    return 0;   /* connects and closes: an EOF instead of a ClientHello */
}

static void eof_during_handshake_closes_once(void **state)
{
    struct srv s = {0};
    run(&s, client_eof_in_handshake, 1, 4096, 65536, 0);
    assert_int_equal(s.readys, 0);
    assert_int_equal(s.closeds, 1);
}

/* ---- tls_server_context ---- */

static void server_context_errors_name_the_file_and_reason(void **state)
{
    const char *error = NULL;
    SSL_CTX *ctx = tls_server_context("/nonexistent/cert.pem", key_path, &error);
    assert_null(ctx);
    assert_non_null(strstr(error, "/nonexistent/cert.pem"));

    ctx = tls_server_context(cert_path, other_key_path, &error);
    assert_null(ctx);
    assert_non_null(strstr(error, other_key_path));
    assert_non_null(strstr(error, "mismatch"));

    ctx = tls_server_context("", key_path, &error);
    assert_null(ctx);
    assert_non_null(strstr(error, "certificate"));

    ctx = tls_server_context(cert_path, key_path, &error);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    tls_context_free(&ctx);
    assert_null(ctx);
    tls_context_free(&ctx);
}

/* ---- client side: conn_start_tls_client against a blocking server ---- */

struct tls_cli {
    struct event_loop *loop;
    struct conn *conn;
    struct event_timer *guard;
    SSL_CTX *ctx;
    const char *peer_name;
    int started, readys, closeds, timed_out;
    int in_at_start;           /* conn->in.len when TLS started (must be 0) */
    char got[64];
    char failure[192];
};

static void cli_finish(struct event_loop *loop, void *ctx)
{
    struct tls_cli *c = ctx;
    conn_destroy(&c->conn);
    event_timer_cancel(loop, &c->guard);
    event_loop_stop(loop);
}

static void cli_guard(struct event_loop *loop, void *ctx)
{
    struct tls_cli *c = ctx;
    c->guard = NULL;
    c->timed_out = 1;
    cli_finish(loop, c);
}

static void cli_cb(struct conn *conn, enum conn_event event, void *ctx)
{
    struct tls_cli *c = ctx;
    switch (event) {
    case CONN_EVENT_CLOSED:
        c->closeds++;
        snprintf(c->failure, sizeof(c->failure), "%s", conn->tls_failure);
        event_defer(c->loop, cli_finish, c);
        return;
    case CONN_EVENT_TLS_READY:
        c->readys++;
        buf_append_str(&conn->out, "ping\r\n");
        conn_flush(conn);
        return;
    case CONN_EVENT_INPUT:
        if (!c->started) {
            const char *line;
            size_t len, consume;
            int crlf;
            if (buf_read_line(&conn->in, 100, &line, &len, &crlf, &consume) != BUF_LINE_OK)
                return;
            buf_consume(&conn->in, consume);
            c->started = 1;
            c->in_at_start = (int)conn->in.len;
            assert_int_equal(conn_start_tls_client(conn, c->ctx, c->peer_name), 0);
            return;
        }
        snprintf(c->got + strlen(c->got), sizeof(c->got) - strlen(c->got), "%.*s",
                 (int)conn->in.len, conn->in.data);
        buf_reset(&conn->in);
        conn_update(conn);
        if (strstr(c->got, "\n") != NULL)
            event_defer(c->loop, cli_finish, c);
        return;
    }
}

struct tls_srv {
    int fd;
    int garbage;      /* answer the ClientHello with junk */
    int result;
    char error[128];
};

static void *tls_srv_main(void *arg)
{
    struct tls_srv *t = arg;
    t->result = 0;
    if (send_all(t->fd, "220 go\r\n", 8) < 0) {
        t->result = -1;
        snprintf(t->error, sizeof(t->error), "send");
    } else if (t->garbage) {
        char hello[64];
        if (recv(t->fd, hello, sizeof(hello), 0) <= 0 ||
            send_all(t->fd, "junk instead of TLS\r\n", 21) < 0)
            snprintf(t->error, sizeof(t->error), "garbage");
    } else {
        SSL *ssl = SSL_new(server_ctx);
        SSL_set_fd(ssl, t->fd);
        char got[7] = "";
        /* A client that refuses the certificate aborts here: fine. */
        if (SSL_accept(ssl) == 1 && ssl_read_exact(ssl, got, 6) == 0 &&
            strcmp(got, "ping\r\n") == 0)
            ssl_write_all(ssl, "pong\r\n", 6);
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(t->fd);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

static void run_tls_client(struct tls_cli *c, int garbage)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    c->loop = event_loop_create();
    c->conn = conn_create(c->loop, sv[0], NULL, 0, 4096, 65536, cli_cb, c);
    c->guard = event_timer_add(c->loop, 10000, cli_guard, c);
    struct tls_srv t = {.fd = sv[1], .garbage = garbage};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, tls_srv_main, &t), 0);
    event_loop_run(c->loop);
    pthread_join(thread, NULL);
    event_loop_destroy(&c->loop);
    if (t.result != 0)
        fail_msg("server: %s", t.error);
    assert_false(c->timed_out);
    assert_null(c->conn);
    assert_int_equal(c->in_at_start, 0);
}

static void client_tls_handshake_then_data_both_ways(void **state)
{
    const char *error = NULL;
    struct tls_cli c = {.peer_name = "localhost"};
    c.ctx = tls_client_context(NULL, 0, &error);
    assert_non_null(c.ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(c.ctx), TLS1_2_VERSION);
    run_tls_client(&c, 0);
    assert_int_equal(c.readys, 1);
    assert_string_equal(c.got, "pong\r\n");
    tls_context_free(&c.ctx);
}

static void client_tls_verifies_chain_and_name(void **state)
{
    const char *error = NULL;
    struct tls_cli c = {.peer_name = "localhost"};
    c.ctx = tls_client_context(cert_path, 1, &error);
    if (c.ctx == NULL)
        fail_msg("tls_client_context: %s", error);
    run_tls_client(&c, 0);
    assert_int_equal(c.readys, 1);
    assert_string_equal(c.got, "pong\r\n");

    struct tls_cli wrong = {.peer_name = "mx.other.test", .ctx = c.ctx};
    run_tls_client(&wrong, 0);
    assert_int_equal(wrong.readys, 0);
    assert_int_equal(wrong.closeds, 1);
    assert_non_null(strstr(wrong.failure, "certificate verify failed"));
    assert_non_null(strstr(wrong.failure, "mismatch"));
    tls_context_free(&c.ctx);

    assert_null(tls_client_context("/nonexistent/ca.pem", 1, &error));
    assert_non_null(strstr(error, "/nonexistent/ca.pem"));
}

static void client_tls_garbage_from_server_closes_once_with_reason(void **state)
{
    const char *error = NULL;
    struct tls_cli c = {.peer_name = "127.0.0.1"};
    c.ctx = tls_client_context(NULL, 0, &error);
    assert_non_null(c.ctx);
    run_tls_client(&c, 1);
    assert_int_equal(c.readys, 0);
    assert_int_equal(c.closeds, 1);
    assert_true(c.failure[0] != '\0');
    tls_context_free(&c.ctx);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    assert_non_null(mkdtemp(tmpdir));
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
    snprintf(other_key_path, sizeof(other_key_path), "%s/other-key.pem", tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/log", tmpdir);
    log_init("test-conn");
    log_set_file(log_path);
    make_self_signed();
    const char *error = NULL;
    server_ctx = tls_server_context(cert_path, key_path, &error);
    if (server_ctx == NULL)
        fail_msg("tls_server_context: %s", error);
    client_ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(client_ctx);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    return 0;
}

static int teardown(void **state)
{
    tls_context_free(&server_ctx);
    SSL_CTX_free(client_ctx);
    log_set_file("/dev/stderr");
    unlink(cert_path);
    unlink(key_path);
    unlink(other_key_path);
    unlink(log_path);
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_lines_are_echoed),
        cmocka_unit_test(peer_address_is_text_and_mapped_ipv4_is_shown_as_ipv4),
        cmocka_unit_test(input_never_exceeds_limit_and_reading_resumes_after_consume),
        cmocka_unit_test(pause_inside_callback_stops_reading_until_resumed),
        cmocka_unit_test(peer_close_gives_exactly_one_closed),
        cmocka_unit_test(peer_close_while_paused_gives_one_closed),
        cmocka_unit_test(large_output_drains_across_many_writable_events),
        cmocka_unit_test(implicit_tls_handshake_then_data_both_ways),
        cmocka_unit_test(large_tls_output_drains_across_many_writable_events),
        cmocka_unit_test(starttls_reply_is_plaintext_and_pipelined_input_is_discarded),
        cmocka_unit_test(starttls_waits_until_a_large_plaintext_reply_is_written),
        cmocka_unit_test(garbage_instead_of_client_hello_closes_and_logs),
        cmocka_unit_test(eof_during_handshake_closes_once),
        cmocka_unit_test(server_context_errors_name_the_file_and_reason),
        cmocka_unit_test(client_tls_handshake_then_data_both_ways),
        cmocka_unit_test(client_tls_verifies_chain_and_name),
        cmocka_unit_test(client_tls_garbage_from_server_closes_once_with_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
