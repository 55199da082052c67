/*
 * NAME
 *	test-policy - unit tests for lib/policy*.c (restriction lists)
 * DESCRIPTION
 *	Every check runs through the real asynchronous API in an event
 *	loop; the callback asserts it never runs inside policy_check().
 *	DNS restrictions are tested against a dnsmasq started on a free
 *	loopback port with a test zone, and against a dead loopback port
 *	(temporary failure). Tables: inline:, pcre: and lmdb: files in a
 *	mkdtemp() directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "dns.h"
#include "event.h"
#include "log.h"
#include "policy.h"
#include "policy_impl.h"
#include "resolve.h"
#include "table.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- fixtures */

static pid_t dnsmasq_pid = -1;
static char dns_servers[64];
static char dead_servers[64];
static char tmpdir[64];

static struct event_loop *loop;
static struct dns_resolver *resolver;
static struct policy *pol;
static struct policy_session *sess;

/* A loopback port free for both UDP and TCP (dnsmasq binds both). */
static int free_port(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        if (tcp < 0 || bind(tcp, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
            getsockname(tcp, (struct sockaddr *)&sin, &len) < 0) {
            close(tcp);
            continue;
        }
        int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int ok = udp >= 0 && bind(udp, (struct sockaddr *)&sin, sizeof(sin)) == 0;
        close(udp);
        close(tcp);
        if (ok)
            return ntohs(sin.sin_port);
    }
    return -1;
}

struct res {
    int done;
    enum policy_decision decision;
    char reply[700];
    int config_error;
    int hold;
    size_t nlogs, nwarn, nprep;
    char logs[8][1400];
    char warn[8][1100];
    char prep[4][400];
};

static int in_call;

static void done_cb(const struct policy_result *r, void *ctx)
{
    struct res *out = ctx;
    assert_false(in_call);
    assert_false(out->done);
    out->done = 1;
    out->decision = r->decision;
    snprintf(out->reply, sizeof(out->reply), "%s", r->reply ? r->reply : "");
    if (r->decision == POLICY_REJECT || r->decision == POLICY_DEFER)
        assert_non_null(r->reply);
    else
        assert_null(r->reply);
    out->config_error = r->config_error;
    out->hold = r->hold;
    out->nlogs = r->log_count;
    for (size_t i = 0; i < r->log_count && i < 8; i++)
        snprintf(out->logs[i], sizeof(out->logs[i]), "%s", r->log_lines[i]);
    out->nwarn = r->warning_count;
    for (size_t i = 0; i < r->warning_count && i < 8; i++)
        snprintf(out->warn[i], sizeof(out->warn[i]), "%s", r->warnings[i]);
    out->nprep = r->prepend_count;
    for (size_t i = 0; i < r->prepend_count && i < 4; i++)
        snprintf(out->prep[i], sizeof(out->prep[i]), "%s", r->prepend[i]);
    event_loop_stop(loop);
}

static void guard_cb(struct event_loop *l, void *ctx)
{
    *(int *)ctx = 1;
    event_loop_stop(l);
}

static void run_for(long long ms)
{
    int fired = 0;
    event_timer_add(loop, ms, guard_cb, &fired);
    event_loop_run(loop);
}

/* One check through the real API, bounded by a guard timer. */
static void check(const struct policy_ctx *ctx, enum policy_stage stage, struct res *out)
{
    memset(out, 0, sizeof(*out));
    in_call = 1;
    struct policy_check *chk = policy_check(sess, ctx, stage, done_cb, out);
    in_call = 0;
    assert_non_null(chk);
    int fired = 0;
    struct event_timer *guard = event_timer_add(loop, 8000, guard_cb, &fired);
    event_loop_run(loop);
    assert_false(fired);
    event_timer_cancel(loop, &guard);
    assert_true(out->done);
}

static struct policy_ctx base_ctx(void)
{
    struct policy_ctx c = {
        .client_addr = "192.0.2.9",
        .client_name = NULL,
        .helo = "client.test",
        .esmtp = 1,
        .sender = "a@b.test",
        .recipient = "alice@example.test",
    };
    return c;
}

static void base_config(void)
{
    config_free_all();
    config_override("myhostname", "mail.example.test");
    config_override("mydomain", "example.test");
    config_override("myorigin", "example.test");
    config_override("mydestination", "example.test, localhost");
    config_override("virtual_mailbox_domains", "virt.test");
    config_override("virtual_mailbox_maps", "inline:{ bob@virt.test=x }");
    config_override("virtual_alias_maps", "");
    config_override("local_recipient_maps", "inline:{ alice=x, root=x, a%b=x }");
    config_override("mynetworks", "10.99.0.0/16 [fd00::]/64");
    config_override("relay_domains", "relayed.test");
    config_override("recipient_delimiter", "+");
    resolve_reset();
}

static int setup(void **state)
{
    (void)state;
    base_config();
    loop = event_loop_create();
    return 0;
}

static void drop_policy(void)
{
    policy_session_destroy(&sess);
    policy_destroy(&pol);
    dns_resolver_destroy(&resolver);
}

static int teardown(void **state)
{
    (void)state;
    drop_policy();
    event_loop_destroy(&loop);
    resolve_reset();
    config_free_all();
    return 0;
}

/* (Re)creates the policy from the current configuration. servers NULL:
   no resolver. */
static void make_policy(const char *servers)
{
    drop_policy();
    if (servers != NULL) {
        const char *error = NULL;
        resolver = dns_resolver_create(loop, servers, 300, 1, &error);
        assert_non_null(resolver);
    }
    pol = policy_create(loop, resolver);
    sess = policy_session_create(pol);
}

static void set_lists(const char *client, const char *helo, const char *sender,
                      const char *relay, const char *recipient)
{
    config_override("smtpd_client_restrictions", client);
    config_override("smtpd_helo_restrictions", helo);
    config_override("smtpd_sender_restrictions", sender);
    config_override("smtpd_relay_restrictions",
                    relay ? relay
                          : "permit_mynetworks, permit_sasl_authenticated, "
                            "reject_unauth_destination");
    config_override("smtpd_recipient_restrictions", recipient);
}

/* ---------------------------------------------------------------- dnsmasq */

static int start_dnsmasq_once(void)
{
    int port = free_port(), dead = free_port();
    if (port < 0 || dead < 0 || port == dead)
        return -1;
    char port_arg[32], user_arg[300], v6_arg[200];
    snprintf(port_arg, sizeof(port_arg), "--port=%d", port);
    struct passwd *pw = getpwuid(getuid());
    snprintf(user_arg, sizeof(user_arg), "--user=%s", pw ? pw->pw_name : "root");
    char *rev6 = policy_rbl_reverse("2001:db8::2");
    snprintf(v6_arg, sizeof(v6_arg), "--host-record=%s.rbl.test,127.0.0.2", rev6);
    free(rev6);
    const char *argv[] = {"/usr/sbin/dnsmasq", port_arg, "--listen-address=127.0.0.1",
                          "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-daemon",
                          "--conf-file=/dev/null", user_arg, "--pid-file=", "--log-facility=-",
                          "--local=/test/",
                          "--host-record=2.0.0.127.rbl.test,127.0.0.2",
                          "--txt-record=2.0.0.127.rbl.test,listed for testing",
                          "--host-record=3.0.0.127.rbl.test,127.0.0.3",
                          v6_arg,
                          "--host-record=spam.test.rhsbl.test,127.0.0.2",
                          "--txt-record=spam.test.rhsbl.test,spammy domain",
                          "--mx-host=mx.test,mail.mx.test,10",
                          "--host-record=mail.mx.test,127.0.0.10",
                          "--host-record=aonly.test,127.0.0.9",
                          "--mx-host=nullmx.test,.,0",
                          "--txt-record=txtonly.test,nothing else", NULL};
    dnsmasq_pid = fork();
    if (dnsmasq_pid < 0)
        return -1;
    if (dnsmasq_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    snprintf(dns_servers, sizeof(dns_servers), "127.0.0.1:%d", port);
    snprintf(dead_servers, sizeof(dead_servers), "127.0.0.1:%d", dead);
    /* Wait (bounded) until it answers. */
    for (int i = 0; i < 50; i++) {
        int status;
        if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
            dnsmasq_pid = -1;
            return -1;
        }
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* A query for aonly.test A. */
        unsigned char q[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a', 'o', 'n', 'l',
                             'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
        struct timeval tv = {0, 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&sin, sizeof(sin));
        unsigned char r[512];
        ssize_t n = recv(fd, r, sizeof(r), 0);
        close(fd);
        if (n > 12)
            return 0;
        usleep(50000);
    }
    kill(dnsmasq_pid, SIGTERM);
    waitpid(dnsmasq_pid, NULL, 0);
    dnsmasq_pid = -1;
    return -1;
}

/* Another process may take the port between our probe and dnsmasq's
   bind: try a few ports. */
static int start_dnsmasq(void)
{
    for (int attempt = 0; attempt < 5; attempt++)
        if (start_dnsmasq_once() == 0)
            return 0;
    return -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-policy.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if (start_dnsmasq() < 0) {
        fprintf(stderr, "cannot start dnsmasq\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
    }
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    config_free_all();
    return 0;
}

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---------------------------------------------------------------- relay */

static void default_relay_restrictions_refuse_foreign_from_outside(void **state)
{
    set_lists("", "", "", NULL, "");
    make_policy(NULL);
    struct res r;
    struct policy_ctx c = base_ctx();
    c.recipient = "u@foreign.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 <u@foreign.test>: Relay access denied");
    assert_int_equal(r.nlogs, 1);
    assert_string_equal(r.logs[0],
                        "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
                        "<u@foreign.test>: Relay access denied; from=<a@b.test> "
                        "to=<u@foreign.test> proto=ESMTP helo=<client.test>");
    c.client_addr = "10.99.1.2";
    c.client_name = "inside.example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_int_equal(r.nlogs, 0);
}

struct relay_case {
    const char *client;
    const char *sasl;
    const char *rcpt;
    enum policy_decision decision;
    const char *reply;   /* NULL: not compared */
};

static void open_relay_matrix(void **state)
{
    set_lists("", "", "", NULL, "");
    config_override("smtpd_reject_unlisted_recipient", "no");
    make_policy(NULL);
    static const struct relay_case cases[] = {
        /* foreign destinations: only mynetworks and SASL may relay */
        {"10.99.0.1", NULL, "u@foreign.test", POLICY_ACCEPT, NULL},
        {"fd00::5", NULL, "u@foreign.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", "alice", "u@foreign.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "u@foreign.test", POLICY_REJECT,
         "554 5.7.1 <u@foreign.test>: Relay access denied"},
        {"2001:db8::9", NULL, "u@foreign.test", POLICY_REJECT, NULL},
        {"192.0.2.9", "", "u@foreign.test", POLICY_REJECT, NULL},
        /* ours: anyone */
        {"192.0.2.9", NULL, "alice@example.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "alice@EXAMPLE.Test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "alice", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "bob@virt.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "x@relayed.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", NULL, "@a.test,@b.test:alice@example.test", POLICY_ACCEPT, NULL},
        /* near misses */
        {"192.0.2.9", NULL, "u@sub.example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "u@sub.relayed.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "u@example.test.", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "u@example.test.foreign.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "u@[192.0.2.1]", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "@example.test:u@foreign.test", POLICY_REJECT, NULL},
        /* sender-specified routing hidden in a local part of ours */
        {"192.0.2.9", NULL, "user%foreign.test@example.test", POLICY_REJECT,
         "554 5.7.1 <user%foreign.test@example.test>: Relay access denied"},
        {"192.0.2.9", NULL, "foreign.test!user@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "\"user@foreign.test\"@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "\"user%foreign.test\"@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "\"user\\@foreign.test\"@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "a%b@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "user%foreign.test@virt.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "user%foreign.test@relayed.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "u@foreign.test@example.test", POLICY_REJECT, NULL},
        {"192.0.2.9", NULL, "user%foreign.test", POLICY_REJECT, NULL},
        /* trusted clients may still send them (local delivery decides) */
        {"10.99.0.1", NULL, "user%foreign.test@example.test", POLICY_ACCEPT, NULL},
        {"192.0.2.9", "alice", "foreign.test!user@example.test", POLICY_ACCEPT, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.client_addr = cases[i].client;
        c.sasl_username = cases[i].sasl;
        c.recipient = cases[i].rcpt;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        if (r.decision != cases[i].decision)
            fail_msg("case %zu (%s from %s): decision %d, reply %s", i, cases[i].rcpt,
                     cases[i].client, (int)r.decision, r.reply);
        if (cases[i].reply != NULL)
            assert_string_equal(r.reply, cases[i].reply);
    }
}

static void defer_unauth_destination_defers(void **state)
{
    set_lists("", "", "", "permit_mynetworks defer_unauth_destination", "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    c.recipient = "u@foreign.test";
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.7.1 <u@foreign.test>: Relay access denied");
}

static void relay_lists_without_a_guard_are_a_config_error(void **state)
{
    set_lists("", "", "", "permit_mynetworks", "permit_sasl_authenticated");
    make_policy(NULL);
    assert_non_null(policy_error(pol));
    assert_non_null(strstr(policy_error(pol), "reject_unauth_destination"));
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "451 4.3.5 Server configuration error");
    assert_true(r.config_error);
    /* A guard in the recipient list is enough (Postfix). */
    set_lists("", "", "", "", "permit_mynetworks reject_unauth_destination");
    make_policy(NULL);
    assert_null(policy_error(pol));
}

/* ---------------------------------------------------------------- unlisted */

static void unlisted_recipients_are_rejected_by_default(void **state)
{
    set_lists("", "", "", NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.recipient = "nobody@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "550 5.1.1 <nobody@example.test>: Recipient address "
                                 "rejected: User unknown in local recipient table");
    c.recipient = "nobody@virt.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "550 5.1.1 <nobody@virt.test>: Recipient address "
                                 "rejected: User unknown in virtual mailbox table");
    /* Even trusted clients: Postfix applies it after a permit. */
    c.client_addr = "10.99.0.1";
    c.recipient = "nobody";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "550 5.1.1 <nobody>: Recipient address rejected: User "
                                 "unknown in local recipient table");
    c.recipient = "alice+tag@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);

    config_override("smtpd_reject_unlisted_recipient", "no");
    config_override("unknown_local_recipient_reject_code", "450");
    make_policy(NULL);
    c.recipient = "nobody@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    /* Explicit restriction with a 4xx code. */
    set_lists("", "", "", NULL, "reject_unlisted_recipient");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.1.1 <nobody@example.test>: Recipient address "
                                 "rejected: User unknown in local recipient table");
}

static void unlisted_sender_and_multi_recipient_bounce(void **state)
{
    set_lists("", "", "reject_unlisted_sender reject_multi_recipient_bounce", NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.sender = "ghost@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "550 5.1.0 <ghost@example.test>: Sender address rejected: "
                                 "User unknown in local recipient table");
    c.sender = "alice@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.sender = "";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.rcpt_count = 1;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "550 5.5.3 <>: Sender address rejected: Multi-recipient "
                                 "bounce");
}

/* ---------------------------------------------------------------- stages */

static void permit_in_client_list_does_not_skip_recipient_restrictions(void **state)
{
    set_lists("permit", "permit", "permit", NULL, "reject");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 <alice@example.test>: Recipient address "
                                 "rejected: Access denied");
    /* permit_mynetworks in the relay list: recipient list still runs. */
    set_lists("", "", "", NULL, "check_recipient_access inline:{ alice@example.test=REJECT }");
    make_policy(NULL);
    c.client_addr = "10.99.0.1";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <alice@example.test>: Recipient address "
                                 "rejected: Access denied");
}

static void delay_reject_moves_client_helo_sender_lists_to_rcpt(void **state)
{
    set_lists("reject", "", "", NULL, "");
    make_policy(NULL);
    assert_false(policy_stage_active(pol, POLICY_STAGE_CONNECT));
    assert_false(policy_stage_active(pol, POLICY_STAGE_HELO));
    assert_false(policy_stage_active(pol, POLICY_STAGE_MAIL));
    assert_true(policy_stage_active(pol, POLICY_STAGE_RCPT));
    assert_false(policy_stage_active(pol, POLICY_STAGE_DATA));
    struct policy_ctx c = base_ctx();
    struct res r;
    c.sender = NULL;
    c.recipient = NULL;
    check(&c, POLICY_STAGE_CONNECT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c = base_ctx();
    check(&c, POLICY_STAGE_MAIL, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: "
                                 "Access denied");

    /* smtpd_delay_reject = no: each list at its own stage, once. */
    config_override("smtpd_delay_reject", "no");
    set_lists("check_client_access inline:{ 192.0.2.66=REJECT }",
              "reject_invalid_helo_hostname", "reject_non_fqdn_sender", NULL, "");
    make_policy(NULL);
    assert_true(policy_stage_active(pol, POLICY_STAGE_CONNECT));
    c = base_ctx();
    c.client_addr = "192.0.2.66";
    c.client_name = "bad.example.net";
    c.helo = NULL;
    c.sender = NULL;
    c.recipient = NULL;
    c.esmtp = 0;
    check(&c, POLICY_STAGE_CONNECT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 <bad.example.net[192.0.2.66]>: Client host "
                                 "rejected: Access denied");
    assert_string_equal(r.logs[0], "NOQUEUE: reject: CONNECT from bad.example.net[192.0.2.66]: "
                                   "554 5.7.1 <bad.example.net[192.0.2.66]>: Client host "
                                   "rejected: Access denied; proto=SMTP");
    c.helo = "bad helo";
    c.command = "HELO";
    check(&c, POLICY_STAGE_HELO, &r);
    assert_string_equal(r.reply, "501 5.5.2 <bad helo>: Helo command rejected: Invalid name");
    c.command = NULL;
    c.helo = "good.example.net";
    c.sender = "nofqdn";
    check(&c, POLICY_STAGE_MAIL, &r);
    assert_string_equal(r.reply, "504 5.5.2 <nofqdn>: Sender address rejected: need "
                                 "fully-qualified address");
    /* At RCPT only relay and recipient lists run. */
    c.recipient = "alice@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
}

static void reject_ends_evaluation_of_all_later_lists(void **state)
{
    set_lists("reject", "", "", NULL, "check_recipient_access inline:{ alice@example.test=WARN x }");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_int_equal(r.nlogs, 1);
    assert_non_null(strstr(r.logs[0], "NOQUEUE: reject: RCPT"));
}

static void warn_if_reject_turns_the_next_reject_into_a_warning(void **state)
{
    set_lists("", "", "warn_if_reject reject_non_fqdn_sender", NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.sender = "nofqdn";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_int_equal(r.nlogs, 1);
    assert_string_equal(r.logs[0], "NOQUEUE: reject_warning: RCPT from unknown[192.0.2.9]: 504 "
                                   "5.5.2 <nofqdn>: Sender address rejected: need "
                                   "fully-qualified address; from=<nofqdn> "
                                   "to=<alice@example.test> proto=ESMTP helo=<client.test>");
    /* Only the next restriction. */
    set_lists("", "", "warn_if_reject permit_mynetworks reject_non_fqdn_sender", NULL, "");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    /* Also through an access table. */
    set_lists("", "", "warn_if_reject check_sender_access inline:{ nofqdn@example.test=REJECT }",
              NULL, "");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_non_null(strstr(r.logs[0], "reject_warning: RCPT"));
    assert_non_null(strstr(r.logs[0], "554 5.7.1 <nofqdn>: Sender address rejected: Access "
                                      "denied"));
}

static void defer_if_permit_defers_only_an_accept(void **state)
{
    set_lists("defer_if_permit", "", "", NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.7.0 <unknown[192.0.2.9]>: Client host rejected: "
                                 "defer_if_permit requested");
    assert_non_null(strstr(r.logs[0], "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 450"));
    /* A later reject still rejects. */
    c.recipient = "u@foreign.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 <u@foreign.test>: Relay access denied");
}

static void defer_if_reject_and_defer(void **state)
{
    set_lists("", "", "", NULL, "defer_if_reject reject");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.7.1 <alice@example.test>: Recipient address rejected: "
                                 "Access denied");
    set_lists("", "", "", NULL, "defer");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "450 4.7.1 <alice@example.test>: Recipient address rejected: "
                                 "Try again later");
}

static void unknown_restriction_names_are_config_errors(void **state)
{
    set_lists("permit_mynetworks rejectt", "", "", NULL, "");
    make_policy(NULL);
    assert_string_equal(policy_error(pol),
                        "smtpd_client_restrictions: unknown restriction \"rejectt\"");
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_true(r.config_error);
    assert_string_equal(r.reply, "451 4.3.5 Server configuration error");
    assert_int_equal(r.nwarn, 1);
    assert_string_equal(r.warn[0],
                        "smtpd_client_restrictions: unknown restriction \"rejectt\"");
    assert_string_equal(r.logs[0], "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 451 4.3.5 "
                                   "Server configuration error; from=<a@b.test> "
                                   "to=<alice@example.test> proto=ESMTP helo=<client.test>");

    set_lists("", "", "check_sender_access", NULL, "");
    config_override("smtpd_data_restrictions", "check_client_access nosuchtype:/x");
    make_policy(NULL);
    assert_non_null(strstr(policy_error(pol), "smtpd_sender_restrictions: check_sender_access: "
                                              "missing argument"));
    assert_non_null(strstr(policy_error(pol), "smtpd_data_restrictions: check_client_access "
                                              "nosuchtype:/x"));
    assert_true(policy_stage_active(pol, POLICY_STAGE_DATA));
    check(&c, POLICY_STAGE_DATA, &r);
    assert_string_equal(r.reply, "451 4.3.5 Server configuration error");

    config_override("smtpd_data_restrictions", "");
    set_lists("", "", "", NULL, "reject_rbl_client bad/zone");
    make_policy(NULL);
    assert_non_null(strstr(policy_error(pol), "bad DNS zone"));

    /* A bad name in an access table result is found when it is used. */
    set_lists("", "", "check_sender_access inline:{ a@b.test=frobnicate }", NULL, "");
    make_policy(NULL);
    assert_null(policy_error(pol));
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "451 4.3.5 Server configuration error");
    assert_non_null(strstr(r.warn[0], "unknown restriction \"frobnicate\""));

    config_override("unknown_address_tempfail_action", "bounce");
    config_override("reject_code", "250");
    set_lists("", "", "", NULL, "");
    make_policy(NULL);
    assert_non_null(strstr(policy_error(pol), "unknown_address_tempfail_action"));
    assert_non_null(strstr(policy_error(pol), "reject_code: not a 4xx or 5xx code"));
}

/* ---------------------------------------------------------------- simple checks */

struct name_case {
    const char *name;
    int ok;
};

static void helo_hostname_checks(void **state)
{
    set_lists("", "reject_invalid_helo_hostname reject_non_fqdn_helo_hostname", "", NULL, "");
    make_policy(NULL);
    static const struct name_case cases[] = {
        {"mail.example.net", 1}, {"MAIL.Example.NET.", 1}, {"[192.0.2.1]", 1},
        {"[IPv6:2001:db8::1]", 1}, {"192.0.2.1", 1}, {"a-b.c_d.test", 1},
        {"localhost", 0}, {"bad_name!", 0}, {"-lead.test", 0}, {"trail-.test", 0},
        {"a..b", 0}, {"1.2.3", 0}, {"[300.1.1.1]", 0}, {"x.", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.helo = cases[i].name;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        if ((r.decision == POLICY_ACCEPT) != cases[i].ok)
            fail_msg("helo %s: %s", cases[i].name, r.reply);
    }
    struct policy_ctx c = base_ctx();
    struct res r;
    c.helo = "localhost";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "504 5.5.2 <localhost>: Helo command rejected: need "
                                 "fully-qualified hostname");
    c.helo = "bad_name!";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "501 5.5.2 <bad_name!>: Helo command rejected: Invalid name");
    c.helo = NULL;   /* no HELO: nothing to check */
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
}

static void non_fqdn_sender_and_recipient(void **state)
{
    set_lists("", "", "reject_non_fqdn_sender", NULL, "reject_non_fqdn_recipient");
    config_override("smtpd_reject_unlisted_recipient", "no");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    static const struct name_case senders[] = {
        {"a@b.test", 1}, {"", 1}, {"a@[192.0.2.1]", 1}, {"a", 0}, {"a@localhost", 0},
        {"a@b..test", 0},
    };
    for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
        c.sender = senders[i].name;
        check(&c, POLICY_STAGE_RCPT, &r);
        if ((r.decision == POLICY_ACCEPT) != senders[i].ok)
            fail_msg("sender %s: %s", senders[i].name, r.reply);
    }
    c.sender = "a@b.test";
    c.client_addr = "10.99.0.1";
    c.recipient = "postmaster";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "504 5.5.2 <postmaster>: Recipient address rejected: need "
                                 "fully-qualified address");
}

static void unauth_pipelining_at_data(void **state)
{
    set_lists("", "", "", NULL, "");
    config_override("smtpd_data_restrictions", "reject_unauth_pipelining");
    make_policy(NULL);
    assert_true(policy_stage_active(pol, POLICY_STAGE_DATA));
    struct policy_ctx c = base_ctx();
    struct res r;
    c.esmtp = 0;
    c.rcpt_count = 1;
    check(&c, POLICY_STAGE_DATA, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.unauth_pipelining = 1;
    check(&c, POLICY_STAGE_DATA, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "503 5.5.0 <DATA>: Data command rejected: Improper use of "
                                 "SMTP command pipelining");
    assert_string_equal(r.logs[0], "NOQUEUE: reject: DATA from unknown[192.0.2.9]: 503 5.5.0 "
                                   "<DATA>: Data command rejected: Improper use of SMTP "
                                   "command pipelining; from=<a@b.test> "
                                   "to=<alice@example.test> proto=SMTP helo=<client.test>");
}

static void end_of_data_log_line_names_the_queue_id(void **state)
{
    set_lists("", "", "", NULL, "");
    config_override("smtpd_end_of_data_restrictions",
                    "check_sender_access inline:{ {a@b.test = 552 5.3.4 too much} }");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    c.queue_id = "4XyZ12";
    c.recipient = NULL;
    c.rcpt_count = 2;
    struct res r;
    check(&c, POLICY_STAGE_END_OF_DATA, &r);
    assert_string_equal(r.reply, "552 5.3.4 <a@b.test>: Sender address rejected: too much");
    assert_string_equal(r.logs[0], "4XyZ12: reject: END-OF-MESSAGE from unknown[192.0.2.9]: "
                                   "552 5.3.4 <a@b.test>: Sender address rejected: too much; "
                                   "from=<a@b.test> proto=ESMTP helo=<client.test>");
}

/* ---------------------------------------------------------------- access tables */

struct action_case {
    const char *sender;
    enum policy_decision decision;
    const char *reply;   /* "" for none */
};

static void access_table_actions(void **state)
{
    set_lists("", "",
              "check_sender_access inline:{ {ok@s.test = OK}, {num@s.test = 1234}, "
              "{rej@s.test = REJECT}, {rejt@s.test = REJECT go away}, "
              "{rejd@s.test = REJECT 5.7.9 custom}, {def@s.test = DEFER}, "
              "{deft@s.test = DEFER later please}, {c450@s.test = 450 4.2.0 busy}, "
              "{c521@s.test = 521 no way}, {dunno@s.test = DUNNO}, "
              "{perm@s.test = permit}, {rlist@s.test = permit_mynetworks, reject}, "
              "{unauth@s.test = reject_unauth_destination}, "
              "{dip@s.test = defer_if_permit}, {dipa@s.test = DEFER_IF_PERMIT not now}, "
              "{dir@s.test = DEFER_IF_REJECT}, {redir@s.test = REDIRECT x@y.test} }, reject",
              NULL, "");
    make_policy(NULL);
    static const struct action_case cases[] = {
        {"ok@s.test", POLICY_ACCEPT, ""},
        {"rej@s.test", POLICY_REJECT, "554 5.7.1 <rej@s.test>: Sender address rejected: "
                                      "Access denied"},
        {"rejt@s.test", POLICY_REJECT, "554 5.7.1 <rejt@s.test>: Sender address rejected: "
                                       "go away"},
        {"rejd@s.test", POLICY_REJECT, "554 5.7.9 <rejd@s.test>: Sender address rejected: "
                                       "custom"},
        {"def@s.test", POLICY_DEFER, "450 4.7.1 <def@s.test>: Sender address rejected: "
                                     "Access denied"},
        {"deft@s.test", POLICY_DEFER, "450 4.7.1 <deft@s.test>: Sender address rejected: "
                                      "later please"},
        {"c450@s.test", POLICY_DEFER, "450 4.2.0 <c450@s.test>: Sender address rejected: "
                                      "busy"},
        {"c521@s.test", POLICY_REJECT, "521 5.7.1 <c521@s.test>: Sender address rejected: "
                                       "no way"},
        {"dipa@s.test", POLICY_REJECT, ""},
    };
    /* The list ends with "reject" after the access check, in the
       SENDER list; the recipient list is empty. A permit ends the
       sender list, so "reject" is not reached. */
    struct policy_ctx c = base_ctx();
    struct res r;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c.sender = cases[i].sender;
        check(&c, POLICY_STAGE_RCPT, &r);
        if (r.decision != cases[i].decision ||
            (*cases[i].reply != '\0' && strcmp(r.reply, cases[i].reply) != 0))
            fail_msg("%s: %d %s", cases[i].sender, (int)r.decision, r.reply);
    }
    (void)state;
}

static void access_table_permits_and_dunno(void **state)
{
    set_lists("", "",
              "check_sender_access inline:{ {ok@s.test = OK}, {num@s.test = 1234}, "
              "{dunno@s.test = DUNNO}, {s.test = OK}, {perm@s.test = permit}, "
              "{rlist@s.test = permit_mynetworks, reject}, "
              "{dip@s.test = defer_if_permit}, {dir@s.test = DEFER_IF_REJECT}, "
              "{redir@s.test = REDIRECT x@y.test}, {c250@s.test = 250 fine} }, "
              "check_sender_access inline:{ {dir@s.test = REJECT} }, reject",
              NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    const char *accept[] = {"ok@s.test", "num@s.test", "perm@s.test", "c250@s.test"};
    for (size_t i = 0; i < sizeof(accept) / sizeof(accept[0]); i++) {
        c.sender = accept[i];
        check(&c, POLICY_STAGE_RCPT, &r);
        if (r.decision != POLICY_ACCEPT)
            fail_msg("%s: %s", accept[i], r.reply);
    }
    /* DUNNO stops the table search (s.test=OK not reached): the final
       reject of the list applies. */
    c.sender = "dunno@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <dunno@s.test>: Sender address rejected: Access "
                                 "denied");
    c.sender = "other@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    /* A restriction list as a result: its reject speaks of the sender. */
    c.sender = "rlist@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <rlist@s.test>: Sender address rejected: Access "
                                 "denied");
    c.client_addr = "10.99.0.3";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.client_addr = "192.0.2.9";
    /* defer_if_permit as a result: the final reject wins. */
    c.sender = "dip@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <dip@s.test>: Sender address rejected: Access "
                                 "denied");
    /* DEFER_IF_REJECT makes the next table's REJECT a 450. */
    c.sender = "dir@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "450 4.7.1 <dir@s.test>: Sender address rejected: Access "
                                 "denied");
    c.sender = "redir@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_non_null(strstr(r.warn[0], "action REDIRECT is not supported"));
}

static void discard_hold_warn_prepend(void **state)
{
    set_lists("", "",
              "check_sender_access inline:{ {d@s.test = DISCARD}, {dt@s.test = DISCARD spam}, "
              "{h@s.test = HOLD}, {w@s.test = WARN look at this}, "
              "{p@s.test = PREPEND X-Policy: seen}, {bad@s.test = PREPEND no colon} }",
              NULL, "check_sender_access inline:{ h@s.test=REJECT }");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.sender = "d@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DISCARD);
    assert_string_equal(r.logs[0], "NOQUEUE: discard: RCPT from unknown[192.0.2.9]: "
                                   "<d@s.test>: Sender address triggers DISCARD action; "
                                   "from=<d@s.test> to=<alice@example.test> proto=ESMTP "
                                   "helo=<client.test>");
    c.sender = "dt@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DISCARD);
    assert_non_null(strstr(r.logs[0], "discard: RCPT from unknown[192.0.2.9]: spam;"));
    c.sender = "w@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_non_null(strstr(r.logs[0], "NOQUEUE: warn: RCPT from unknown[192.0.2.9]: look at "
                                      "this; from=<w@s.test>"));
    c.sender = "p@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_int_equal(r.nprep, 1);
    assert_string_equal(r.prep[0], "X-Policy: seen");
    c.sender = "bad@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.nprep, 0);
    assert_non_null(strstr(r.warn[0], "PREPEND needs"));
    /* HOLD is logged and kept, but a later reject drops it. */
    c.sender = "h@s.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_false(r.hold);
    assert_non_null(strstr(r.logs[0], "NOQUEUE: hold: RCPT from unknown[192.0.2.9]: "
                                      "<h@s.test>: Sender address triggers HOLD action;"));
    assert_non_null(strstr(r.logs[1], "NOQUEUE: reject: RCPT"));
    set_lists("", "", "check_sender_access inline:{ h@s.test=HOLD }", NULL, "");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_true(r.hold);
}

static void client_access_lookup_order(void **state)
{
    set_lists("check_client_access inline:{ {1.2.3.4 = DUNNO}, {1.2.3 = REJECT net3}, "
              "{10.20 = REJECT net2}, {10 = REJECT net1}, "
              "{mail.example.net = REJECT byname}, {.evil.test = REJECT dotparent}, "
              "{bad.test = REJECT parent}, {2001:db8:1 = REJECT v6net}, "
              "{2001:db8:2::5 = OK} }, permit_mynetworks, reject",
              "", "", NULL, "");
    make_policy(NULL);
    struct {
        const char *addr, *name, *expect;
    } cases[] = {
        {"1.2.3.4", NULL, "554 5.7.1 <unknown[1.2.3.4]>: Client host rejected: Access denied"},
        {"1.2.3.5", NULL, "554 5.7.1 <unknown[1.2.3.5]>: Client host rejected: net3"},
        {"10.20.30.40", NULL, "554 5.7.1 <unknown[10.20.30.40]>: Client host rejected: net2"},
        {"10.21.30.40", NULL, "554 5.7.1 <unknown[10.21.30.40]>: Client host rejected: net1"},
        {"10.20.30.40", "mail.example.net",
         "554 5.7.1 <mail.example.net[10.20.30.40]>: Client host rejected: byname"},
        {"192.0.2.1", "a.b.evil.test", "554 5.7.1 <a.b.evil.test[192.0.2.1]>: Client host "
                                       "rejected: dotparent"},
        {"192.0.2.1", "x.bad.test", "554 5.7.1 <x.bad.test[192.0.2.1]>: Client host "
                                    "rejected: parent"},
        {"2001:db8:1:0:0:0:0:9", NULL, "554 5.7.1 <unknown[2001:db8:1:0:0:0:0:9]>: Client "
                                       "host rejected: v6net"},
        {"2001:db8:2::5", NULL, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.client_addr = cases[i].addr;
        c.client_name = cases[i].name;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        if (strcmp(r.reply, cases[i].expect) != 0)
            fail_msg("%s/%s: got \"%s\"", cases[i].addr, cases[i].name ? cases[i].name : "-",
                     r.reply);
    }
}

static void address_and_helo_access_lookup_order(void **state)
{
    set_lists("", "check_helo_access inline:{ {.dyn.test = REJECT dynamic} }",
              "check_sender_access inline:{ {joe+x@a.test = REJECT full}, "
              "{joe@a.test = REJECT stripped}, {a.test = REJECT domain}, "
              "{.b.test = REJECT subdomain}, {c.test = REJECT parent}, "
              "{postmaster@ = REJECT localpart}, {<> = REJECT null} }",
              NULL, "");
    make_policy(NULL);
    struct {
        const char *sender, *expect;
    } cases[] = {
        {"joe+x@a.test", "full"},   {"joe+y@a.test", "stripped"},
        {"ann@a.test", "domain"},   {"ann@x.b.test", "subdomain"},
        {"ann@b.test", ""},         {"ann@x.y.c.test", "parent"},
        {"postmaster@z.test", "localpart"}, {"", "null"},
        {"ANN@A.TEST", "domain"},   {"postmaster", "localpart"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.sender = cases[i].sender;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        const char *colon = strrchr(r.reply, ':');
        const char *got = colon ? colon + 2 : "";
        if (strcmp(got, cases[i].expect) != 0)
            fail_msg("%s: got \"%s\"", cases[i].sender, r.reply);
    }
    struct policy_ctx c = base_ctx();
    struct res r;
    c.helo = "host1.dyn.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <host1.dyn.test>: Helo command rejected: dynamic");
}

static void pcre_tables_see_the_full_key_only(void **state)
{
    char *path = write_file("client.pcre", "/^192\\.0\\.2\\./ REJECT doc net $0\n"
                                           "/^ok\\./ OK\n");
    char *spath = write_file("sender.pcre", "/^spam@/ REJECT no spam\n"
                                            "/^a\\.test$/ REJECT whole domain\n"
                                            "/^<>$/ REJECT null\n");
    char *client = xasprintf("check_client_access pcre:%s, reject", path);
    char *sender = xasprintf("check_sender_access pcre:%s", spath);
    set_lists(client, "", sender, NULL, "");
    make_policy(NULL);
    assert_null(policy_error(pol));
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "192.0.2.77";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <unknown[192.0.2.77]>: Client host rejected: "
                                 "doc net 192.0.2.");
    c.client_name = "ok.example.net";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.client_name = NULL;
    c.client_addr = "198.51.100.1";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <unknown[198.51.100.1]>: Client host rejected: "
                                 "Access denied");
    free(client);
    client = xstrdup("");
    set_lists(client, "", sender, NULL, "");
    make_policy(NULL);
    c.sender = "spam@x.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <spam@x.test>: Sender address rejected: no spam");
    c.sender = "u@a.test";   /* a pattern table is not asked for the domain alone */
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.sender = "";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <>: Sender address rejected: null");
    free(client);
    free(sender);
    free(path);
    free(spath);
}

static void lmdb_access_table(void **state)
{
    char *src = write_file("access", "1.2.3 REJECT lmdb net\n"
                                     "Blocked.Test REJECT lmdb domain\n");
    const char *error = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &error), 2);
    char *client = xasprintf("check_client_access lmdb:%s", src);
    char *sender = xasprintf("check_sender_access lmdb:%s", src);
    set_lists(client, "", sender, NULL, "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "1.2.3.9";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <unknown[1.2.3.9]>: Client host rejected: lmdb "
                                 "net");
    c.client_addr = "192.0.2.9";
    c.sender = "x@sub.blocked.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <x@sub.blocked.test>: Sender address rejected: "
                                 "lmdb domain");
    /* A missing table is a lookup failure: defer, never accept blindly. */
    free(client);
    client = xasprintf("check_client_access lmdb:%s/missing", tmpdir);
    set_lists(client, "", "", NULL, "");
    make_policy(NULL);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "451 4.3.0 <unknown[192.0.2.9]>: Temporary lookup failure");
    assert_non_null(strstr(r.warn[0], "missing"));
    free(client);
    free(sender);
    free(src);
}

/* ---------------------------------------------------------------- SASL */

static void sender_login_mismatch(void **state)
{
    set_lists("", "", "reject_sender_login_mismatch", NULL, "");
    config_override("smtpd_sender_login_maps",
                    "inline:{ {alice@example.test = alice}, {@shared.test = alice, bob} }");
    make_policy(NULL);
    struct {
        const char *sasl, *sender, *reply;
    } cases[] = {
        {"alice", "alice@example.test", ""},
        {"ALICE", "alice+tag@example.test", ""},
        {"bob", "x@shared.test", ""},
        {"alice", "y@shared.test", ""},
        {"bob", "alice@example.test", "553 5.7.1 <alice@example.test>: Sender address "
                                      "rejected: not owned by user bob"},
        {"bob", "nobody@other.test", "553 5.7.1 <nobody@other.test>: Sender address "
                                     "rejected: not owned by user bob"},
        {"bob", "", ""},
        {NULL, "alice@example.test", "553 5.7.1 <alice@example.test>: Sender address "
                                     "rejected: not logged in"},
        {NULL, "z@shared.test", "553 5.7.1 <z@shared.test>: Sender address rejected: not "
                                "logged in"},
        {NULL, "nobody@other.test", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.sasl_username = cases[i].sasl;
        c.sender = cases[i].sender;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        if (strcmp(r.reply, cases[i].reply) != 0)
            fail_msg("%s as %s: got \"%s\"", cases[i].sasl ? cases[i].sasl : "-",
                     cases[i].sender, r.reply);
    }
    config_override("smtpd_sender_login_maps", "");
    make_policy(NULL);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "451 4.3.5 Server configuration error");
}

/* ---------------------------------------------------------------- DNS */

static void rbl_client_listed_with_txt_reason(void **state)
{
    set_lists("reject_rbl_client rbl.test", "", "", NULL, "");
    make_policy(dns_servers);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "127.0.0.2";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_REJECT);
    assert_string_equal(r.reply, "554 5.7.1 Service unavailable; Client host [127.0.0.2] "
                                 "blocked using rbl.test; listed for testing");
    assert_string_equal(r.logs[0], "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 "
                                   "Service unavailable; Client host [127.0.0.2] blocked "
                                   "using rbl.test; listed for testing; from=<a@b.test> "
                                   "to=<alice@example.test> proto=ESMTP helo=<client.test>");
    c.client_addr = "127.0.0.3";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 Service unavailable; Client host [127.0.0.3] "
                                 "blocked using rbl.test");
    c.client_addr = "127.0.0.4";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.client_addr = "2001:db8::2";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 Service unavailable; Client host [2001:db8::2] "
                                 "blocked using rbl.test");
}

static void rbl_reply_filters_and_reply_maps(void **state)
{
    set_lists("reject_rbl_client rbl.test=127.0.0.3", "", "", NULL, "");
    make_policy(dns_servers);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "127.0.0.2";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    set_lists("reject_rbl_client rbl.test=127.0.0.[1..2]", "", "", NULL, "");
    /* In a file: main.cf would expand the $names of an inline: table. */
    char *src = write_file("rbl_reply", "rbl.test $rbl_code 5.7.9 Go away $client_address "
                                        "(${rbl_reason?why: $rbl_reason}${rbl_reason:no "
                                        "reason}) $$1\n");
    const char *error = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &error), 1);
    char *maps = xasprintf("lmdb:%s", src);
    config_override("rbl_reply_maps", maps);
    free(maps);
    free(src);
    make_policy(dns_servers);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.9 Go away 127.0.0.2 (why: listed for testing) $1");
    c.client_addr = "127.0.0.3";
    set_lists("reject_rbl_client rbl.test=127.0.0.[2;3]", "", "", NULL, "");
    config_override("maps_rbl_reject_code", "450");
    make_policy(dns_servers);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.7.9 Go away 127.0.0.3 (no reason) $1");
    /* warn_if_reject works for an RBL too. */
    set_lists("warn_if_reject reject_rbl_client rbl.test", "", "", NULL, "");
    config_override("rbl_reply_maps", "");
    config_override("maps_rbl_reject_code", "554");
    make_policy(dns_servers);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_non_null(strstr(r.logs[0], "reject_warning: RCPT from unknown[127.0.0.3]: 554 5.7.1 "
                                      "Service unavailable;"));
}

static void rhsbl_sender_listed(void **state)
{
    set_lists("", "", "reject_rhsbl_sender rhsbl.test", NULL, "");
    make_policy(dns_servers);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.sender = "x@spam.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 Service unavailable; Sender address [spam.test] "
                                 "blocked using rhsbl.test; spammy domain");
    c.sender = "x@clean.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    c.sender = "";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
}

static void unknown_sender_and_recipient_domains(void **state)
{
    set_lists("", "", "reject_unknown_sender_domain", NULL,
              "reject_unknown_recipient_domain");
    make_policy(dns_servers);
    struct {
        const char *sender, *reply;
    } cases[] = {
        {"a@mx.test", ""},
        {"a@aonly.test", ""},
        {"a@MX.Test", ""},
        {"", ""},
        {"a@[192.0.2.1]", ""},
        {"a@example.test", ""},   /* ours: not looked up */
        {"a@nx.test", "450 4.1.8 <a@nx.test>: Sender address rejected: Domain not found"},
        {"a@txtonly.test", "450 4.1.8 <a@txtonly.test>: Sender address rejected: Domain not "
                           "found"},
        {"a@nullmx.test", "550 5.7.27 <a@nullmx.test>: Sender address rejected: Domain does "
                          "not accept mail"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_ctx c = base_ctx();
        c.sender = cases[i].sender;
        struct res r;
        check(&c, POLICY_STAGE_RCPT, &r);
        if (strcmp(r.reply, cases[i].reply) != 0)
            fail_msg("%s: got \"%s\"", cases[i].sender, r.reply);
    }
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "10.99.0.1";
    c.sender = "a@mx.test";
    c.recipient = "u@nx.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "450 4.1.2 <u@nx.test>: Recipient address rejected: Domain "
                                 "not found");
    c.recipient = "u@nullmx.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "556 5.1.10 <u@nullmx.test>: Recipient address rejected: "
                                 "Domain does not accept mail");
    config_override("unknown_address_reject_code", "550");
    make_policy(dns_servers);
    c.recipient = "u@nx.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "550 5.1.2 <u@nx.test>: Recipient address rejected: Domain "
                                 "not found");
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dns_temporary_failure(void **state)
{
    set_lists("reject_rbl_client rbl.test", "", "reject_unknown_sender_domain", NULL, "");
    make_policy(dead_servers);
    struct policy_ctx c = base_ctx();
    struct res r;
    c.client_addr = "127.0.0.2";
    /* RBL failure: not listed. Domain failure: defer_if_permit. */
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_string_equal(r.reply, "450 4.1.8 <a@b.test>: Sender address rejected: Domain not "
                                 "found");
    /* A later reject wins over defer_if_permit. */
    c.recipient = "u@foreign.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "554 5.7.1 <u@foreign.test>: Relay access denied");
    /* Answers (failures too) are cached per session: no waiting now. */
    long long start = now_ms();
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_true(now_ms() - start < 150);
    /* unknown_address_tempfail_action = defer: at once. */
    config_override("unknown_address_tempfail_action", "defer");
    set_lists("", "", "reject_unknown_sender_domain, reject", NULL, "");
    make_policy(dead_servers);
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_string_equal(r.reply, "450 4.1.8 <a@b.test>: Sender address rejected: Domain not "
                                 "found");
    /* No resolver at all: same as a failure, with a warning. */
    config_override("unknown_address_tempfail_action", "defer_if_permit");
    set_lists("", "", "reject_unknown_sender_domain", NULL, "");
    make_policy(NULL);
    c.recipient = "alice@example.test";
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_DEFER);
    assert_non_null(strstr(r.warn[0], "no DNS resolver"));
}

static void dns_lookups_per_check_are_bounded(void **state)
{
    struct buf list;
    buf_init(&list, 0);
    for (int i = 0; i < POLICY_MAX_LOOKUPS + 8; i++)
        buf_printf(&list, "reject_rbl_client z%d.test, ", i);
    set_lists(list.data, "", "", NULL, "");
    buf_free(&list);
    make_policy(dns_servers);
    struct policy_ctx c = base_ctx();
    struct res r;
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
    assert_int_equal(r.nwarn, 8);
    assert_non_null(strstr(r.warn[0], "too many DNS lookups for one request"));
    /* The next check of the session finds the first answers cached. */
    check(&c, POLICY_STAGE_RCPT, &r);
    assert_int_equal(r.decision, POLICY_ACCEPT);
}

static void never_cb(const struct policy_result *r, void *ctx)
{
    fail_msg("callback of a cancelled check ran");
}

static void cancel_and_session_destroy_stop_callbacks(void **state)
{
    set_lists("reject_rbl_client rbl.test", "", "", NULL, "");
    make_policy(dead_servers);
    struct policy_ctx c = base_ctx();
    c.client_addr = "127.0.0.2";
    struct policy_check *chk = policy_check(sess, &c, POLICY_STAGE_RCPT, never_cb, NULL);
    policy_cancel(&chk);
    assert_null(chk);
    /* Also one that would answer from the 0 ms timer. */
    set_lists("", "", "", NULL, "");
    make_policy(dead_servers);
    chk = policy_check(sess, &c, POLICY_STAGE_RCPT, never_cb, NULL);
    policy_cancel(&chk);
    set_lists("reject_rbl_client rbl.test", "", "", NULL, "");
    make_policy(dead_servers);
    policy_check(sess, &c, POLICY_STAGE_RCPT, never_cb, NULL);
    policy_check(sess, &c, POLICY_STAGE_CONNECT, never_cb, NULL);
    policy_session_destroy(&sess);
    run_for(500);
    sess = policy_session_create(pol);
}

static void destroy_cb(const struct policy_result *r, void *ctx)
{
    policy_session_destroy(&sess);
    *(int *)ctx = 1;
    event_loop_stop(loop);
}

static void session_destroyed_inside_the_callback(void **state)
{
    set_lists("reject_rbl_client rbl.test", "", "", NULL, "");
    make_policy(dns_servers);
    struct policy_ctx c = base_ctx();
    c.client_addr = "127.0.0.2";
    int called = 0;
    policy_check(sess, &c, POLICY_STAGE_RCPT, destroy_cb, &called);
    run_for(3000);
    assert_true(called);
    assert_null(sess);
}

/* ---------------------------------------------------------------- helpers */

static void rbl_names_and_templates(void **state)
{
    char *s = policy_rbl_reverse("192.0.2.1");
    assert_string_equal(s, "1.2.0.192");
    free(s);
    s = policy_rbl_reverse("::ffff:192.0.2.1");
    assert_string_equal(s, "1.2.0.192");
    free(s);
    s = policy_rbl_reverse("2001:db8::1");
    assert_string_equal(s, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
    free(s);
    assert_null(policy_rbl_reverse("not-an-ip"));

    const char *names[] = {"a", "empty", "b"};
    const char *values[] = {"x", "", "y$z"};
    struct {
        const char *in, *out;
    } cases[] = {
        {"$a-${a}-$b", "x-x-y$z"},
        {"${a?[$b]}${empty?no}${empty:yes}", "[y$z]yes"},
        {"$$a $unknown.", "$a ."},
        {"${a", "${a"},
        {"${a?1${a?2${a?3${a?4${a?5${a?6}}}}}}", "12345"},
        {"end$", "end$"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = policy_expand_template(cases[i].in, names, values, 3);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("%s -> \"%s\"", cases[i].in, out);
        free(out);
    }
}

static void log_line_format(void **state)
{
    struct policy_ctx c = {.client_addr = "192.0.2.1", .client_name = "h.example",
                           .helo = "h\r\nx", .sender = ""};
    char *line = policy_log_line(&c, POLICY_STAGE_MAIL, "reject", "550 x");
    assert_string_equal(line, "NOQUEUE: reject: MAIL from h.example[192.0.2.1]: 550 x; "
                              "from=<> proto=SMTP helo=<h??x>");
    free(line);
}

int main(void)
{
    if (getenv("POLICY_TEST_VERBOSE") != NULL)
        log_set_file("/dev/stderr");
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(default_relay_restrictions_refuse_foreign_from_outside),
        T(open_relay_matrix),
        T(defer_unauth_destination_defers),
        T(relay_lists_without_a_guard_are_a_config_error),
        T(unlisted_recipients_are_rejected_by_default),
        T(unlisted_sender_and_multi_recipient_bounce),
        T(permit_in_client_list_does_not_skip_recipient_restrictions),
        T(delay_reject_moves_client_helo_sender_lists_to_rcpt),
        T(reject_ends_evaluation_of_all_later_lists),
        T(warn_if_reject_turns_the_next_reject_into_a_warning),
        T(defer_if_permit_defers_only_an_accept),
        T(defer_if_reject_and_defer),
        T(unknown_restriction_names_are_config_errors),
        T(helo_hostname_checks),
        T(non_fqdn_sender_and_recipient),
        T(unauth_pipelining_at_data),
        T(end_of_data_log_line_names_the_queue_id),
        T(access_table_actions),
        T(access_table_permits_and_dunno),
        T(discard_hold_warn_prepend),
        T(client_access_lookup_order),
        T(address_and_helo_access_lookup_order),
        T(pcre_tables_see_the_full_key_only),
        T(lmdb_access_table),
        T(sender_login_mismatch),
        T(rbl_client_listed_with_txt_reason),
        T(rbl_reply_filters_and_reply_maps),
        T(rhsbl_sender_listed),
        T(unknown_sender_and_recipient_domains),
        T(dns_temporary_failure),
        T(dns_lookups_per_check_are_bounded),
        T(cancel_and_session_destroy_stop_callbacks),
        T(session_destroyed_inside_the_callback),
        T(rbl_names_and_templates),
        T(log_line_format),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
