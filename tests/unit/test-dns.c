/* Unit tests for lib/dns: real DNS over loopback. A dnsmasq started by
   the test serves the ordinary cases; a tiny scripted UDP responder in
   this process serves what dnsmasq refuses to say (CNAME loops,
   SERVFAIL, truncation, malformed answers, silence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dns.h"
#include "event.h"
#include "log.h"

/* ---------------------------------------------------------------- fixtures */

static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static char dnsmasq_servers[64];
static int dead_port;        /* nothing listens there */
static int fake_udp = -1;    /* scripted responder */
static int fake_tcp = -1;    /* listening: answers after truncation */
static int fake_port;
static char fake_servers[64];

/* Binds UDP and TCP sockets to the same free loopback port. */
static int bind_pair(int *udp_r, int *tcp_r)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        if (tcp < 0 || bind(tcp, (struct sockaddr *)&sin, sizeof(sin)) < 0
            || getsockname(tcp, (struct sockaddr *)&sin, &len) < 0) {
            close(tcp);
            continue;
        }
        int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (udp >= 0 && bind(udp, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
            *udp_r = udp;
            *tcp_r = tcp;
            return ntohs(sin.sin_port);
        }
        close(udp);
        close(tcp);
    }
    return -1;
}

static int free_port(void)
{
    int udp, tcp;
    int port = bind_pair(&udp, &tcp);
    if (port > 0) {
        close(udp);
        close(tcp);
    }
    return port;
}

/* ---------------------------------------------------------------- results */

struct outcome {
    int done;
    enum dns_status status;
    char error[512];
    size_t count;
    unsigned pref[DNS_MAX_RECORDS];
    char host[DNS_MAX_RECORDS][256];
    char addr[DNS_MAX_RECORDS][64];
    int family[DNS_MAX_RECORDS];
    int *returned;   /* set once the lookup call returned (re-entrancy check) */
};

static struct event_loop *cur_loop;
static int outstanding;
static int timed_out;

static void got_one(void)
{
    if (--outstanding == 0)
        event_loop_stop(cur_loop);
}

static void mx_cb(const struct dns_mx_result *res, void *ctx)
{
    struct outcome *o = ctx;
    if (o->returned != NULL)
        assert_true(*o->returned);
    assert_false(o->done);
    o->done = 1;
    o->status = res->status;
    snprintf(o->error, sizeof(o->error), "%s", res->error ? res->error : "");
    if (res->status == DNS_OK)
        assert_null(res->error);
    else
        assert_non_null(res->error);
    o->count = res->count;
    for (size_t i = 0; i < res->count; i++) {
        o->pref[i] = res->mx[i].preference;
        snprintf(o->host[i], sizeof(o->host[i]), "%s", res->mx[i].host);
    }
    got_one();
}

static void addr_cb(const struct dns_addr_result *res, void *ctx)
{
    struct outcome *o = ctx;
    if (o->returned != NULL)
        assert_true(*o->returned);
    assert_false(o->done);
    o->done = 1;
    o->status = res->status;
    snprintf(o->error, sizeof(o->error), "%s", res->error ? res->error : "");
    o->count = res->count;
    for (size_t i = 0; i < res->count; i++) {
        dns_addr_text(&res->addrs[i], o->addr[i], sizeof(o->addr[i]));
        o->family[i] = res->addrs[i].ss_family;
    }
    got_one();
}

static char txt_seen[4][DNS_MAX_TXT + 1];

static void txt_cb(const struct dns_txt_result *res, void *ctx)
{
    struct outcome *o = ctx;
    assert_false(o->done);
    o->done = 1;
    o->status = res->status;
    snprintf(o->error, sizeof(o->error), "%s", res->error ? res->error : "");
    o->count = res->count;
    for (size_t i = 0; i < res->count && i < 4; i++)
        snprintf(txt_seen[i], sizeof(txt_seen[i]), "%s", res->texts[i]);
    got_one();
}

static void never_cb_mx(const struct dns_mx_result *res, void *ctx)
{
    fail_msg("callback of a cancelled/destroyed MX lookup ran");
}

static void never_cb_addr(const struct dns_addr_result *res, void *ctx)
{
    fail_msg("callback of a cancelled/destroyed address lookup ran");
}

static void guard_cb(struct event_loop *loop, void *ctx)
{
    *(int *)ctx = 1;
    event_loop_stop(loop);
}

/* Runs the loop until every expected callback ran, or limit_ms passed
   (then *timed_out is set): a bug cannot hang the test. */
static void run_loop(struct event_loop *loop, long long limit_ms)
{
    int fired = 0;
    struct event_timer *guard = event_timer_add(loop, limit_ms, guard_cb, &fired);
    cur_loop = loop;
    timed_out = 0;
    if (outstanding > 0)
        event_loop_run(loop);
    if (fired)
        timed_out = 1;
    else
        event_timer_cancel(loop, &guard);
}

/* Runs the loop for ms (for "nothing happens" checks). */
static void run_for(struct event_loop *loop, long long ms)
{
    int fired = 0;
    event_timer_add(loop, ms, guard_cb, &fired);
    cur_loop = loop;
    event_loop_run(loop);
}

static struct dns_resolver *make_resolver(struct event_loop *loop, const char *servers,
                                          int timeout_ms, int tries)
{
    const char *error = NULL;
    struct dns_resolver *r = dns_resolver_create(loop, servers, timeout_ms, tries, &error);
    if (r == NULL)
        fail_msg("dns_resolver_create: %s", error);
    return r;
}

static void lookup_mx_sync(struct dns_resolver *r, struct event_loop *loop, const char *name,
                           struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    outstanding = 1;
    assert_non_null(dns_lookup_mx(r, name, mx_cb, o));
    run_loop(loop, 3000);
    assert_false(timed_out);
    assert_true(o->done);
}

static void lookup_addr_sync(struct dns_resolver *r, struct event_loop *loop, const char *name,
                             struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    outstanding = 1;
    assert_non_null(dns_lookup_addr(r, name, addr_cb, o));
    run_loop(loop, 3000);
    assert_false(timed_out);
    assert_true(o->done);
}

/* ---------------------------------------------------------------- fake server */

/* Appends a name in wire form (no compression). */
static size_t put_name(unsigned char *p, const char *name)
{
    size_t n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        p[n++] = (unsigned char)len;
        memcpy(p + n, name, len);
        n += len;
        name += len;
        if (*name == '.')
            name++;
    }
    p[n++] = 0;
    return n;
}

static size_t put_rr(unsigned char *p, const char *owner, int type, const unsigned char *rdata,
                     size_t rdlen)
{
    size_t n = put_name(p, owner);
    unsigned char fixed[10] = {0, (unsigned char)type, 0, 1, 0, 0, 0, 60,
                               (unsigned char)(rdlen >> 8), (unsigned char)rdlen};
    memcpy(p + n, fixed, 10);
    memcpy(p + n + 10, rdata, rdlen);
    return n + 10 + rdlen;
}

static size_t put_mx(unsigned char *p, const char *owner, unsigned pref, const char *host)
{
    unsigned char rd[300];
    rd[0] = (unsigned char)(pref >> 8);
    rd[1] = (unsigned char)pref;
    size_t n = 2 + (strcmp(host, ".") == 0 ? put_name(rd + 2, "") : put_name(rd + 2, host));
    return put_rr(p, owner, 15, rd, n);
}

static size_t put_cname(unsigned char *p, const char *owner, const char *target)
{
    unsigned char rd[300];
    return put_rr(p, owner, 5, rd, put_name(rd, target));
}

/* The answer to query q (n octets) in r, by the question's name; -1:
   say nothing. Over UDP an answer longer than 512 octets is truncated
   (TC) as a real server does, so c-ares asks again over TCP. */
static ssize_t fake_answer(const unsigned char *q, ssize_t n, unsigned char *r, int tcp)
{
    if (n < 17)
        return -1;
    /* Question name as text. */
    char name[256];
    size_t pos = 12, nl = 0;
    while (pos < (size_t)n && q[pos] != 0 && nl < 200) {
        size_t len = q[pos++];
        if (nl > 0)
            name[nl++] = '.';
        memcpy(name + nl, q + pos, len);
        nl += len;
        pos += len;
    }
    name[nl] = '\0';
    size_t qend = pos + 1 + 4;
    if (qend > (size_t)n)
        return -1;
    unsigned qtype = (unsigned)q[pos + 1] << 8 | q[pos + 2];
    memcpy(r, q, qend);
    r[2] = 0x81;   /* QR, RD */
    r[3] = 0x80;   /* RA, NOERROR */
    r[4] = 0;
    r[5] = 1;
    memset(r + 6, 0, 6);
    size_t len = qend;
    unsigned an = 0;

    if (strcmp(name, "silent.fake") == 0) {
        return -1;
    } else if (strcmp(name, "servfail.fake") == 0) {
        r[3] |= 2;
    } else if (strcmp(name, "refused.fake") == 0) {
        r[3] |= 5;
    } else if (strcmp(name, "trunc.fake") == 0) {
        if (tcp)
            return -1;   /* TCP connection closed without an answer */
        r[2] |= 0x02;
    } else if (strcmp(name, "loop.fake") == 0) {
        len += put_cname(r + len, "loop.fake", "loop2.fake");
        len += put_cname(r + len, "loop2.fake", "loop.fake");
        an = 2;
    } else if (strcmp(name, "garbage.fake") == 0) {
        an = 3;   /* promises records that are not there */
        r[len++] = 0xc0;
    } else if (strcmp(name, "badmx.fake") == 0) {
        len += put_mx(r + len, "badmx.fake", 10, "bad host.fake");
        an = 1;
    } else if (strcmp(name, "mixnull.fake") == 0) {
        len += put_mx(r + len, "mixnull.fake", 0, ".");
        len += put_mx(r + len, "mixnull.fake", 10, "mx.mixnull.fake");
        an = 2;
    } else if (strcmp(name, "manyaddr.fake") == 0) {
        for (unsigned i = 0; i < 40; i++) {
            unsigned char rd[16] = {0};
            if (qtype == 1) {
                rd[0] = 127, rd[1] = 0, rd[2] = 1, rd[3] = (unsigned char)i;
                len += put_rr(r + len, name, 1, rd, 4);
            } else {
                rd[15] = (unsigned char)i;
                len += put_rr(r + len, name, 28, rd, 16);
            }
        }
        an = 40;
    } else if (strcmp(name, "many.fake") == 0) {
        for (unsigned i = 0; i < 40; i++) {
            char host[32];
            snprintf(host, sizeof(host), "m%02u.many.fake", 39 - i);
            len += put_mx(r + len, "many.fake", 39 - i, host);
        }
        an = 40;
    } else {
        r[3] |= 3;   /* NXDOMAIN */
    }
    if (!tcp && len > 512) {
        r[2] |= 0x02;
        len = qend;
        an = 0;
    }
    r[6] = (unsigned char)(an >> 8);
    r[7] = (unsigned char)an;
    return (ssize_t)len;
}

static void fake_read(struct event_loop *loop, int fd, int events, void *ctx)
{
    unsigned char q[512], r[4096];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
    ssize_t len = fake_answer(q, n, r, 0);
    if (len > 0)
        sendto(fd, r, (size_t)len, 0, (struct sockaddr *)&from, fromlen);
}

/* Length-prefixed queries over TCP (c-ares sends several on one
   connection). Event driven: c-ares writes from this same thread, so a
   blocking read here would wait forever. trunc.fake gets the connection
   closed. */
struct fake_conn {
    int fd;
    unsigned char q[2048];
    size_t got;
};

static struct fake_conn *fake_conns[16];

static void fake_conn_close(struct event_loop *loop, struct fake_conn *fc)
{
    for (size_t i = 0; i < 16; i++)
        if (fake_conns[i] == fc)
            fake_conns[i] = NULL;
    event_fd_del(loop, fc->fd);
    close(fc->fd);
    free(fc);
}

static void fake_conn_read(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct fake_conn *fc = ctx;
    ssize_t n = read(fd, fc->q + fc->got, sizeof(fc->q) - fc->got);
    if (n < 0 && errno == EAGAIN)
        return;
    int close_it = n <= 0;
    if (n > 0)
        fc->got += (size_t)n;
    while (!close_it && fc->got >= 2) {
        size_t want = 2 + ((size_t)fc->q[0] << 8 | fc->q[1]);
        if (want > sizeof(fc->q)) {
            close_it = 1;
            break;
        }
        if (fc->got < want)
            break;
        unsigned char r[4098];
        ssize_t len = fake_answer(fc->q + 2, (ssize_t)want - 2, r + 2, 1);
        if (len < 0) {
            close_it = 1;
            break;
        }
        r[0] = (unsigned char)(len >> 8);
        r[1] = (unsigned char)len;
        if (write(fd, r, (size_t)len + 2) != len + 2)
            close_it = 1;
        memmove(fc->q, fc->q + want, fc->got - want);
        fc->got -= want;
    }
    if (close_it)
        fake_conn_close(loop, fc);
}

static void fake_accept(struct event_loop *loop, int fd, int events, void *ctx)
{
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return;
    struct fake_conn *fc = calloc(1, sizeof(*fc));
    assert_non_null(fc);
    fc->fd = c;
    size_t i;
    for (i = 0; i < 16 && fake_conns[i] != NULL; i++)
        continue;
    assert_true(i < 16);
    fake_conns[i] = fc;
    assert_int_equal(event_fd_add(loop, c, EVENT_READ, fake_conn_read, fc), 0);
}

static struct event_loop *loop_with_fake(void)
{
    struct event_loop *loop = event_loop_create();
    assert_int_equal(event_fd_add(loop, fake_udp, EVENT_READ, fake_read, NULL), 0);
    assert_int_equal(event_fd_add(loop, fake_tcp, EVENT_READ, fake_accept, NULL), 0);
    return loop;
}

static void loop_done(struct event_loop **loop_p)
{
    for (size_t i = 0; i < 16; i++)
        if (fake_conns[i] != NULL)
            fake_conn_close(*loop_p, fake_conns[i]);
    event_fd_del(*loop_p, fake_udp);
    event_fd_del(*loop_p, fake_tcp);
    event_loop_destroy(loop_p);
}

/* ---------------------------------------------------------------- setup */

static int start_dnsmasq(void)
{
    dnsmasq_port = free_port();
    dead_port = free_port();
    if (dnsmasq_port < 0 || dead_port < 0 || dead_port == dnsmasq_port)
        return -1;
    char port_arg[32], user_arg[300];
    snprintf(port_arg, sizeof(port_arg), "--port=%d", dnsmasq_port);
    struct passwd *pw = getpwuid(getuid());
    snprintf(user_arg, sizeof(user_arg), "--user=%s", pw ? pw->pw_name : "root");
    const char *argv[] = {"/usr/sbin/dnsmasq", port_arg, "--listen-address=127.0.0.1",
                          "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-daemon",
                          "--conf-file=/dev/null", user_arg, "--pid-file=", "--log-facility=-",
                          "--local=/test/",
                          "--mx-host=m.test,c.m.test,30", "--mx-host=m.test,a.m.test,10",
                          "--mx-host=m.test,b.m.test,20",
                          "--mx-host=eq.test,one.eq.test,10", "--mx-host=eq.test,two.eq.test,10",
                          "--mx-host=nullmx.test,.,0",
                          "--mx-host=up.test,MX.Upper.TEST,5",
                          "--host-record=h.test,127.0.0.5",
                          "--host-record=both.test,127.0.0.7,::7",
                          "--host-record=six.test,::6",
                          "--cname=c.test,h.test", "--cname=cm.test,m.test",
                          "--cname=d.test,nothere.test",
                          "--txt-record=h.test,\"some text\"", NULL};
    dnsmasq_pid = fork();
    if (dnsmasq_pid < 0)
        return -1;
    if (dnsmasq_pid == 0) {
        /* Best effort: do not outlive a test that crashed. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        if (getenv("DNS_TEST_VERBOSE") == NULL)
            dup2(null, 2);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    snprintf(dnsmasq_servers, sizeof(dnsmasq_servers), "127.0.0.1:%d", dnsmasq_port);

    /* Wait (bounded) until it answers, asking it through the resolver. */
    for (int i = 0; i < 50; i++) {
        int status;
        if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
            dnsmasq_pid = -1;
            return -1;
        }
        struct event_loop *loop = event_loop_create();
        const char *error;
        struct dns_resolver *r = dns_resolver_create(loop, dnsmasq_servers, 100, 1, &error);
        struct outcome o = {0};
        outstanding = 1;
        dns_lookup_addr(r, "h.test", addr_cb, &o);
        run_loop(loop, 1000);
        dns_resolver_destroy(&r);
        event_loop_destroy(&loop);
        if (o.done && o.status == DNS_OK)
            return 0;
        usleep(50000);
    }
    return -1;
}

static int group_setup(void **state)
{
    if (start_dnsmasq() < 0) {
        fprintf(stderr, "cannot start dnsmasq\n");
        return -1;
    }
    fake_port = bind_pair(&fake_udp, &fake_tcp);
    if (fake_port < 0 || listen(fake_tcp, 16) < 0)
        return -1;
    snprintf(fake_servers, sizeof(fake_servers), "127.0.0.1:%d", fake_port);
    return 0;
}

static int group_teardown(void **state)
{
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
        dnsmasq_pid = -1;
    }
    close(fake_udp);
    close(fake_tcp);
    config_free_all();
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void mx_records_come_sorted_by_preference(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_mx_sync(r, loop, "m.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 3);
    assert_string_equal(o.host[0], "a.m.test");
    assert_int_equal(o.pref[0], 10);
    assert_string_equal(o.host[1], "b.m.test");
    assert_int_equal(o.pref[1], 20);
    assert_string_equal(o.host[2], "c.m.test");
    assert_int_equal(o.pref[2], 30);
    dns_resolver_destroy(&r);
    assert_null(r);
    event_loop_destroy(&loop);
}

static void mx_equal_preferences_are_shuffled(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    int one_first = 0, two_first = 0;
    for (int i = 0; i < 50; i++) {
        struct outcome o;
        lookup_mx_sync(r, loop, "eq.test", &o);
        assert_int_equal(o.status, DNS_OK);
        assert_int_equal(o.count, 2);
        assert_int_equal(o.pref[0], 10);
        assert_int_equal(o.pref[1], 10);
        if (strcmp(o.host[0], "one.eq.test") == 0) {
            assert_string_equal(o.host[1], "two.eq.test");
            one_first++;
        } else {
            assert_string_equal(o.host[0], "two.eq.test");
            assert_string_equal(o.host[1], "one.eq.test");
            two_first++;
        }
    }
    assert_true(one_first > 0);
    assert_true(two_first > 0);
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void null_mx_is_reported_as_dot(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_mx_sync(r, loop, "nullmx.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_int_equal(o.pref[0], 0);
    assert_string_equal(o.host[0], ".");
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void mx_hosts_are_lower_cased_and_trailing_dot_ignored(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_mx_sync(r, loop, "UP.Test.", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.host[0], "mx.upper.test");
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void nxdomain_is_notfound_with_postfix_text(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_mx_sync(r, loop, "x.test", &o);
    assert_int_equal(o.status, DNS_NOTFOUND);
    assert_string_equal(o.error, "Host or domain name not found. Name service error for "
                                 "name=x.test type=MX: Host not found");
    lookup_addr_sync(r, loop, "x.test", &o);
    assert_int_equal(o.status, DNS_NOTFOUND);
    assert_string_equal(o.error, "Host or domain name not found. Name service error for "
                                 "name=x.test type=A: Host not found");
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void name_without_mx_is_nodata(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_mx_sync(r, loop, "h.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    assert_int_equal(o.count, 0);
    assert_non_null(strstr(o.error, "name=h.test type=MX"));
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void addresses_ipv4_first_then_ipv6(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_addr_sync(r, loop, "both.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 2);
    assert_string_equal(o.addr[0], "127.0.0.7");
    assert_int_equal(o.family[0], AF_INET);
    assert_string_equal(o.addr[1], "::7");
    assert_int_equal(o.family[1], AF_INET6);

    lookup_addr_sync(r, loop, "six.test", &o);   /* AAAA only */
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.addr[0], "::6");

    lookup_addr_sync(r, loop, "h.test", &o);   /* A only */
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.addr[0], "127.0.0.5");

    dns_resolver_set_families(r, DNS_INET4 | DNS_INET6, 1);
    lookup_addr_sync(r, loop, "both.test", &o);
    assert_int_equal(o.count, 2);
    assert_string_equal(o.addr[0], "::7");
    assert_string_equal(o.addr[1], "127.0.0.7");

    /* A name with MX records only has no address. */
    lookup_addr_sync(r, loop, "m.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void inet_protocols_ipv4_skips_aaaa(void **state)
{
    config_override("inet_protocols", "ipv4");
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_addr_sync(r, loop, "both.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.addr[0], "127.0.0.7");
    lookup_addr_sync(r, loop, "six.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    assert_non_null(strstr(o.error, "name=six.test type=A:"));
    lookup_addr_sync(r, loop, "[IPv6:2001:db8::1]", &o);
    assert_int_equal(o.status, DNS_NODATA);
    dns_resolver_destroy(&r);

    config_override("inet_protocols", "ipv6");
    r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    lookup_addr_sync(r, loop, "both.test", &o);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.addr[0], "::7");
    lookup_addr_sync(r, loop, "h.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    assert_non_null(strstr(o.error, "type=AAAA"));
    dns_resolver_destroy(&r);

    config_override("inet_protocols", "ipv5");
    const char *error = NULL;
    assert_null(dns_resolver_create(loop, dnsmasq_servers, 1000, 2, &error));
    assert_non_null(error);
    config_override("inet_protocols", "all");
    assert_int_equal(dns_inet_protocols("ipv4, ipv6"), DNS_INET4 | DNS_INET6);
    assert_int_equal(dns_inet_protocols("all"), DNS_INET4 | DNS_INET6);
    assert_int_equal(dns_inet_protocols("IPv4"), DNS_INET4);
    assert_int_equal(dns_inet_protocols(""), -1);
    event_loop_destroy(&loop);
}

static void ip_literals_are_answered_without_dns_and_not_reentrantly(void **state)
{
    /* A dead server: any DNS query would fail. */
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", dead_port);
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dead, 1000, 1);
    static const struct {
        const char *in;
        enum dns_status status;
        const char *addr;
        int family;
    } cases[] = {
        {"192.0.2.1", DNS_OK, "192.0.2.1", AF_INET},
        {"[192.0.2.1]", DNS_OK, "192.0.2.1", AF_INET},
        {"[IPv6:2001:db8::1]", DNS_OK, "2001:db8::1", AF_INET6},
        {"[ipv6:::1]", DNS_OK, "::1", AF_INET6},
        {"2001:db8::2", DNS_OK, "2001:db8::2", AF_INET6},
        {"[300.1.1.1]", DNS_NOTFOUND, NULL, 0},
        {"[IPv6:nonsense]", DNS_NOTFOUND, NULL, 0},
        {"[]", DNS_NOTFOUND, NULL, 0},
        {"bad name.test", DNS_NOTFOUND, NULL, 0},
        {"a..test", DNS_NOTFOUND, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome o = {0};
        int returned = 0;
        o.returned = &returned;
        outstanding = 1;
        assert_non_null(dns_lookup_addr(r, cases[i].in, addr_cb, &o));
        returned = 1;
        assert_false(o.done);
        run_loop(loop, 1000);
        assert_false(timed_out);
        assert_int_equal(o.status, cases[i].status);
        if (cases[i].addr != NULL) {
            assert_int_equal(o.count, 1);
            assert_string_equal(o.addr[0], cases[i].addr);
            assert_int_equal(o.family[0], cases[i].family);
        } else {
            assert_int_equal(o.count, 0);
            assert_true(o.error[0] != '\0');
        }
    }
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void malformed_and_overlong_names_are_notfound(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 1);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    for (size_t i = 50; i < sizeof(longname) - 1; i += 51)
        longname[i] = '.';
    const char *bad[] = {longname, "", ".", "a..b", "with space.test", "tab\t.test",
                         "[1.2.3.4]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct outcome o;
        int returned = 0;
        memset(&o, 0, sizeof(o));
        o.returned = &returned;
        outstanding = 1;
        dns_lookup_mx(r, bad[i], mx_cb, &o);
        returned = 1;
        run_loop(loop, 1000);
        assert_true(o.done);
        assert_int_equal(o.status, DNS_NOTFOUND);
        assert_null(strchr(o.error, '\t'));   /* control characters never reach texts */
    }
    /* 63-octet labels are fine; 64 are not. */
    char label[80];
    memset(label, 'b', 63);
    snprintf(label + 63, sizeof(label) - 63, ".test");
    struct outcome o;
    lookup_mx_sync(r, loop, label, &o);
    assert_int_equal(o.status, DNS_NOTFOUND);
    assert_non_null(strstr(o.error, ": Host not found"));
    assert_null(strstr(o.error, "Malformed"));
    memset(label, 'b', 64);
    snprintf(label + 64, sizeof(label) - 64, ".test");
    lookup_mx_sync(r, loop, label, &o);
    assert_int_equal(o.status, DNS_NOTFOUND);
    assert_non_null(strstr(o.error, "Malformed"));
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dead_server_is_tempfail_within_timeout(void **state)
{
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", dead_port);
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dead, 300, 2);
    long long start = now_ms();
    struct outcome o;
    lookup_mx_sync(r, loop, "x.test", &o);
    assert_int_equal(o.status, DNS_TEMPFAIL);
    assert_string_equal(o.error, "Host or domain name not found. Name service error for "
                                 "name=x.test type=MX: Host not found, try again");
    assert_true(now_ms() - start < 300 + 600 + 200);
    lookup_addr_sync(r, loop, "x.test", &o);
    assert_int_equal(o.status, DNS_TEMPFAIL);
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void silent_server_times_out_as_tempfail(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 200, 2);
    long long start = now_ms();
    struct outcome o;
    lookup_mx_sync(r, loop, "silent.fake", &o);
    long long took = now_ms() - start;
    assert_int_equal(o.status, DNS_TEMPFAIL);
    assert_non_null(strstr(o.error, "try again"));
    /* Two tries: 200 ms, then 400 ms (c-ares backs off). */
    assert_true(took >= 190);
    assert_true(took < 1200);
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void server_failures_and_bad_answers_are_tempfail(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 300, 1);
    const char *names[] = {"servfail.fake", "refused.fake", "trunc.fake", "garbage.fake",
                           "badmx.fake", "loop.fake"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct outcome o;
        lookup_mx_sync(r, loop, names[i], &o);
        if (o.status != DNS_TEMPFAIL)
            fail_msg("%s: status %d, want TEMPFAIL", names[i], o.status);
        assert_int_equal(o.count, 0);
        assert_non_null(strstr(o.error, "try again"));
    }
    /* The address lookup of a looping alias ends too. */
    struct outcome o;
    lookup_addr_sync(r, loop, "loop.fake", &o);
    assert_int_not_equal(o.status, DNS_OK);
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void null_mx_among_other_records_is_dropped(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 300, 1);
    struct outcome o;
    lookup_mx_sync(r, loop, "mixnull.fake", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.host[0], "mx.mixnull.fake");
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void at_most_max_records_kept_the_best_ones(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 300, 1);
    struct outcome o;
    lookup_mx_sync(r, loop, "many.fake", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, DNS_MAX_RECORDS);
    for (unsigned i = 0; i < DNS_MAX_RECORDS; i++) {
        char want[32];
        snprintf(want, sizeof(want), "m%02u.many.fake", i);
        assert_int_equal(o.pref[i], i);
        assert_string_equal(o.host[i], want);
    }
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void many_addresses_share_the_room_between_families(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 300, 1);
    struct outcome o;
    lookup_addr_sync(r, loop, "manyaddr.fake", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, DNS_MAX_RECORDS);
    assert_string_equal(o.addr[0], "127.0.1.0");
    assert_string_equal(o.addr[15], "127.0.1.15");
    assert_string_equal(o.addr[16], "::");
    assert_string_equal(o.addr[31], "::f");
    dns_resolver_set_families(r, DNS_INET4, 0);
    lookup_addr_sync(r, loop, "manyaddr.fake", &o);
    assert_int_equal(o.count, DNS_MAX_RECORDS);
    assert_string_equal(o.addr[31], "127.0.1.31");
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void cname_chain_is_followed(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    lookup_addr_sync(r, loop, "c.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.addr[0], "127.0.0.5");
    lookup_mx_sync(r, loop, "cm.test", &o);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 3);
    assert_string_equal(o.host[0], "a.m.test");
    /* An alias to a name dnsmasq does not know: the chain ends without
       the record. */
    lookup_addr_sync(r, loop, "d.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    lookup_mx_sync(r, loop, "c.test", &o);
    assert_int_equal(o.status, DNS_NODATA);
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void cancelled_lookup_never_calls_back(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 1);
    struct dns_query *q1 = dns_lookup_mx(r, "m.test", never_cb_mx, NULL);
    struct dns_query *q2 = dns_lookup_addr(r, "both.test", never_cb_addr, NULL);
    struct dns_query *q3 = dns_lookup_addr(r, "[192.0.2.1]", never_cb_addr, NULL);
    struct dns_query *q4 = dns_lookup_mx(r, "bad name", never_cb_mx, NULL);
    dns_cancel(&q1);
    dns_cancel(&q2);
    dns_cancel(&q3);
    dns_cancel(&q4);
    assert_null(q1);
    assert_null(q3);
    dns_cancel(&q1);   /* NULL: no-op */
    /* A lookup started after the cancels still works. */
    struct outcome o;
    lookup_mx_sync(r, loop, "nullmx.test", &o);
    assert_int_equal(o.status, DNS_OK);
    run_for(loop, 50);
    dns_resolver_destroy(&r);

    /* Cancel while the server is silent, then let the timeout pass. */
    r = make_resolver(loop, fake_servers, 100, 1);
    q1 = dns_lookup_mx(r, "silent.fake", never_cb_mx, NULL);
    dns_cancel(&q1);
    run_for(loop, 250);
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void several_lookups_in_flight_at_once(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct dns_resolver *rf = make_resolver(loop, fake_servers, 300, 1);
    enum { N = 24 };
    static struct outcome o[N];
    memset(o, 0, sizeof(o));
    outstanding = N;
    for (int i = 0; i < N; i++) {
        switch (i % 6) {
        case 0: dns_lookup_mx(r, "m.test", mx_cb, &o[i]); break;
        case 1: dns_lookup_addr(r, "both.test", addr_cb, &o[i]); break;
        case 2: dns_lookup_mx(r, "x.test", mx_cb, &o[i]); break;
        case 3: dns_lookup_addr(r, "127.0.0.9", addr_cb, &o[i]); break;
        case 4: dns_lookup_mx(rf, "servfail.fake", mx_cb, &o[i]); break;
        case 5: dns_lookup_mx(r, "nullmx.test", mx_cb, &o[i]); break;
        }
    }
    run_loop(loop, 5000);
    assert_false(timed_out);
    for (int i = 0; i < N; i++) {
        assert_true(o[i].done);
        switch (i % 6) {
        case 0: assert_int_equal(o[i].count, 3); assert_string_equal(o[i].host[2], "c.m.test"); break;
        case 1: assert_int_equal(o[i].count, 2); break;
        case 2: assert_int_equal(o[i].status, DNS_NOTFOUND); break;
        case 3: assert_string_equal(o[i].addr[0], "127.0.0.9"); break;
        case 4: assert_int_equal(o[i].status, DNS_TEMPFAIL); break;
        case 5: assert_string_equal(o[i].host[0], "."); break;
        }
    }
    dns_resolver_destroy(&rf);
    dns_resolver_destroy(&r);
    loop_done(&loop);
}

static void destroy_with_lookups_outstanding_calls_nothing(void **state)
{
    struct event_loop *loop = loop_with_fake();
    struct dns_resolver *r = make_resolver(loop, fake_servers, 500, 3);
    dns_lookup_mx(r, "silent.fake", never_cb_mx, NULL);
    dns_lookup_addr(r, "silent.fake", never_cb_addr, NULL);
    struct dns_query *q = dns_lookup_mx(r, "silent.fake", never_cb_mx, NULL);
    dns_cancel(&q);
    run_for(loop, 30);   /* queries are on the wire */
    /* Answers waiting for their delivery timer. */
    dns_lookup_addr(r, "[192.0.2.1]", never_cb_addr, NULL);
    dns_lookup_mx(r, "bad name", never_cb_mx, NULL);
    dns_resolver_destroy(&r);
    assert_null(r);
    run_for(loop, 50);   /* no stray timer or fd of the resolver fires */
    loop_done(&loop);
}

static struct dns_resolver *victim;

static void destroying_mx_cb(const struct dns_mx_result *res, void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    dns_resolver_destroy(&victim);
    event_loop_stop(cur_loop);
}

static void destroy_from_inside_a_callback_is_safe(void **state)
{
    struct event_loop *loop = loop_with_fake();
    int calls = 0;
    /* Answered by the server (callback inside c-ares processing)... */
    victim = make_resolver(loop, fake_servers, 500, 1);
    dns_lookup_mx(victim, "servfail.fake", destroying_mx_cb, &calls);
    dns_lookup_mx(victim, "silent.fake", never_cb_mx, NULL);
    outstanding = 1;
    run_loop(loop, 2000);
    assert_false(timed_out);
    assert_int_equal(calls, 1);
    assert_null(victim);
    run_for(loop, 30);
    /* ...and answered at once (callback from a timer). */
    victim = make_resolver(loop, fake_servers, 500, 1);
    dns_lookup_addr(victim, "silent.fake", never_cb_addr, NULL);
    dns_lookup_mx(victim, "bad name", destroying_mx_cb, &calls);
    outstanding = 1;
    run_loop(loop, 2000);
    assert_int_equal(calls, 2);
    assert_null(victim);
    run_for(loop, 30);
    loop_done(&loop);
}

struct chain_ctx {
    struct dns_resolver *r;
    struct outcome second;
};

static void chain_first_cb(const struct dns_mx_result *res, void *ctx)
{
    struct chain_ctx *c = ctx;
    assert_int_equal(res->status, DNS_OK);
    /* The usual next step: the address of the best MX. */
    dns_lookup_addr(c->r, "h.test", addr_cb, &c->second);
}

static void lookups_from_inside_a_callback_work(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct chain_ctx c;
    memset(&c, 0, sizeof(c));
    c.r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    outstanding = 1;
    dns_lookup_mx(c.r, "m.test", chain_first_cb, &c);
    run_loop(loop, 3000);
    assert_false(timed_out);
    assert_true(c.second.done);
    assert_string_equal(c.second.addr[0], "127.0.0.5");
    dns_resolver_destroy(&c.r);
    event_loop_destroy(&loop);
}

static void server_lists_are_parsed_strictly(void **state)
{
    struct event_loop *loop = event_loop_create();
    /* "" means c-ares's defaults (resolv.conf); creating asks nothing. */
    const char *good[] = {"", "127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1", "[::1]",
                          "127.0.0.1, 127.0.0.2:54 [::1]:55"};
    const char *bad[] = {"localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
                         "[::1", "[::1]x", "1.2.3.4:53x", "[]:53",
                         "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 "
                         "1.1.1.9 1.1.1.10 1.1.1.11 1.1.1.12 1.1.1.13 1.1.1.14 1.1.1.15 "
                         "1.1.1.16 1.1.1.17"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *error = NULL;
        struct dns_resolver *r = dns_resolver_create(loop, good[i], 1000, 1, &error);
        if (r == NULL)
            fail_msg("%s: %s", good[i], error);
        dns_resolver_destroy(&r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *error = NULL;
        struct dns_resolver *r = dns_resolver_create(loop, bad[i], 1000, 1, &error);
        if (r != NULL)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(error);
    }
    const char *error = NULL;
    assert_null(dns_resolver_create(loop, "127.0.0.1", 0, 1, &error));
    assert_null(dns_resolver_create(loop, "127.0.0.1", 100, 0, &error));
    event_loop_destroy(&loop);
}

static void txt_records_are_returned_and_missing_ones_reported(void **state)
{
    struct event_loop *loop = event_loop_create();
    struct dns_resolver *r = make_resolver(loop, dnsmasq_servers, 1000, 2);
    struct outcome o;
    int returned = 0;

    memset(&o, 0, sizeof(o));
    o.returned = &returned;
    outstanding = 1;
    assert_non_null(dns_lookup_txt(r, "h.test.", txt_cb, &o));
    returned = 1;
    run_loop(loop, 3000);
    assert_true(o.done);
    assert_int_equal(o.status, DNS_OK);
    assert_int_equal(o.count, 1);
    assert_string_equal(txt_seen[0], "\"some text\"");   /* execv: quotes are data */

    memset(&o, 0, sizeof(o));
    outstanding = 1;
    dns_lookup_txt(r, "nothere.test", txt_cb, &o);
    run_loop(loop, 3000);
    assert_int_equal(o.status, DNS_NOTFOUND);
    assert_non_null(strstr(o.error, "type=TXT"));

    memset(&o, 0, sizeof(o));
    outstanding = 1;
    dns_lookup_txt(r, "both.test", txt_cb, &o);
    run_loop(loop, 3000);
    assert_int_equal(o.status, DNS_NODATA);

    memset(&o, 0, sizeof(o));
    outstanding = 1;
    dns_lookup_txt(r, "bad..name", txt_cb, &o);
    run_loop(loop, 3000);
    assert_int_equal(o.status, DNS_NOTFOUND);

    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", dead_port);
    struct dns_resolver *rd = make_resolver(loop, dead, 200, 1);
    memset(&o, 0, sizeof(o));
    outstanding = 1;
    dns_lookup_txt(rd, "h.test", txt_cb, &o);
    run_loop(loop, 3000);
    assert_true(o.done);
    assert_int_equal(o.status, DNS_TEMPFAIL);
    dns_resolver_destroy(&rd);
    dns_resolver_destroy(&r);
    event_loop_destroy(&loop);
}

static void addr_text_formats_both_families(void **state)
{
    struct sockaddr_storage ss;
    char out[64];
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
    dns_addr_text(&ss, out, sizeof(out));
    assert_string_equal(out, "192.0.2.1");
    dns_addr_text(&ss, out, 4);
    assert_string_equal(out, "192");
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
    dns_addr_text(&ss, out, sizeof(out));
    assert_string_equal(out, "2001:db8::1");
}

int main(void)
{
    if (getenv("DNS_TEST_VERBOSE") != NULL) {
        log_verbose = 1;
        log_set_file("/dev/stderr");
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mx_records_come_sorted_by_preference),
        cmocka_unit_test(mx_equal_preferences_are_shuffled),
        cmocka_unit_test(null_mx_is_reported_as_dot),
        cmocka_unit_test(mx_hosts_are_lower_cased_and_trailing_dot_ignored),
        cmocka_unit_test(nxdomain_is_notfound_with_postfix_text),
        cmocka_unit_test(name_without_mx_is_nodata),
        cmocka_unit_test(addresses_ipv4_first_then_ipv6),
        cmocka_unit_test(inet_protocols_ipv4_skips_aaaa),
        cmocka_unit_test(ip_literals_are_answered_without_dns_and_not_reentrantly),
        cmocka_unit_test(malformed_and_overlong_names_are_notfound),
        cmocka_unit_test(dead_server_is_tempfail_within_timeout),
        cmocka_unit_test(silent_server_times_out_as_tempfail),
        cmocka_unit_test(server_failures_and_bad_answers_are_tempfail),
        cmocka_unit_test(null_mx_among_other_records_is_dropped),
        cmocka_unit_test(at_most_max_records_kept_the_best_ones),
        cmocka_unit_test(many_addresses_share_the_room_between_families),
        cmocka_unit_test(cname_chain_is_followed),
        cmocka_unit_test(cancelled_lookup_never_calls_back),
        cmocka_unit_test(several_lookups_in_flight_at_once),
        cmocka_unit_test(destroy_with_lookups_outstanding_calls_nothing),
        cmocka_unit_test(destroy_from_inside_a_callback_is_safe),
        cmocka_unit_test(lookups_from_inside_a_callback_work),
        cmocka_unit_test(server_lists_are_parsed_strictly),
        cmocka_unit_test(addr_text_formats_both_families),
        cmocka_unit_test(txt_records_are_returned_and_missing_ones_reported),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
