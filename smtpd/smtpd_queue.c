/*
 * NAME
 *	smtpd_queue - queue files from SMTP DATA, group commit, qmgr notify
 * DESCRIPTION
 *	At DATA the queue file is created (tmp/ID) with the envelope and a
 *	Received: header; decoded pieces are appended as they arrive, while
 *	the header section is watched for Received: (hop count) and
 *	Message-ID:. At the end of data a good message is committed to
 *	incoming/ without fsync and its session waits (WAIT_COMMIT, input
 *	paused). In the before-sleep hook ONE queue_sync() covers every
 *	message finished in that loop round; only then "250 ... queued as
 *	ID" goes out (DESIGN.md invariant 1) and qmgr hears {request=new}.
 *
 *	Content checks (lib/content_filter, docs/content-filter.md): when
 *	header_checks, mime_header_checks, nested_header_checks or
 *	body_checks are set, everything written to the message (smtpd's
 *	Received:, the restrictions' PREPEND lines after it, then the
 *	client's data) goes through the filter, which writes the possibly
 *	edited bytes. At the end: REJECT / TEMPFAIL drop the file and reply
 *	the filter's 5xx / 451; DISCARD drops it and answers "250 2.0.0 Ok:
 *	queued as ID"; HOLD (or a restriction's HOLD) commits into hold/
 *	instead of incoming/, and qmgr is not told. Then
 *	smtpd_end_of_data_restrictions run (smtpd_policy.c) before the
 *	commit.
 *
 *	qmgr is told over one persistent non-blocking connection to
 *	$queue_directory/public/qmgr. If qmgr is down the notice is dropped:
 *	qmgr scans incoming/ when it starts. Replies are read and ignored.
 * LIMITS
 *	Pending notices QMGR_OUT_MAX bytes (beyond: dropped); qmgr replies
 *	are decoded from a buffer of at most ATTR_MAX_MSG + 4 bytes.
 * DIAGNOSTICS
 *	"ID: client=name[addr]" (", sasl_method=PLAIN, sasl_username=u"
 *	after SMTP AUTH) when the file is created, "ID:
 *	message-id=<...>" at the end of data. A failed queue_sync() answers
 *	451 for the whole batch: the files may survive and be delivered,
 *	so the client's retry can duplicate a message, never lose one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "content_filter.h"
#include "log.h"
#include "policy.h"
#include "smtpd.h"
#include "xalloc.h"

#define QMGR_OUT_MAX (1024 * 1024)
#define MSGID_MAX 500

static struct smtpd_session *commit_head;
static struct event_loop *queue_loop;

static struct {
    int fd;
    int mask;
    struct buf out;
    struct buf in;
    unsigned long next_id;
} qmgr = {.fd = -1};

/* ---- qmgr connection ---- */

static void qmgr_disconnect(void)
{
    if (qmgr.fd < 0)
        return;
    event_fd_del(queue_loop, qmgr.fd);
    close(qmgr.fd);
    qmgr.fd = -1;
    buf_reset(&qmgr.out);
    buf_reset(&qmgr.in);
}

static void qmgr_update_mask(void)
{
    int mask = EVENT_READ | (qmgr.out.len > 0 ? EVENT_WRITE : 0);
    if (qmgr.fd >= 0 && mask != qmgr.mask) {
        event_fd_set(queue_loop, qmgr.fd, mask);
        qmgr.mask = mask;
    }
}

/* Returns 0, or -1 when the connection broke (and was closed). */
static int qmgr_flush(void)
{
    while (qmgr.out.len > 0) {
        ssize_t n = send(qmgr.fd, qmgr.out.data, qmgr.out.len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&qmgr.out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            qmgr_disconnect();
            return -1;
        }
    }
    qmgr_update_mask();
    return 0;
}

static void qmgr_io(struct event_loop *loop, int fd, int events, void *ctx)
{
    if (events & EVENT_WRITE) {
        if (qmgr_flush() < 0)
            return;
    }
    if (!(events & (EVENT_READ | EVENT_ERROR)))
        return;
    ssize_t n = buf_read_fd(&qmgr.in, fd, 4096);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        qmgr_disconnect();   /* qmgr restarted; reconnect on the next notice */
        return;
    }
    for (;;) {
        struct attr_msg msg;
        const char *error;
        attr_msg_init(&msg);
        enum attr_status st = attr_msg_decode(&qmgr.in, &msg, &error);
        attr_msg_clear(&msg);
        if (st == ATTR_NEED_MORE)
            break;
        if (st == ATTR_BAD) {
            msg_warn("malformed reply from qmgr: %s", error);
            qmgr_disconnect();
            return;
        }
    }
    if (qmgr.in.len > ATTR_MAX_MSG + 4) {
        msg_warn("oversized reply from qmgr");
        qmgr_disconnect();
    }
}

static int qmgr_connect(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/public/qmgr",
                     smtpd_var.queue_directory);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
        if (log_verbose)
            msg_debug("connect %s: %m (qmgr will find the file when it scans)", sun.sun_path);
        close(fd);
        return -1;
    }
    if (event_fd_add(queue_loop, fd, EVENT_READ, qmgr_io, NULL) < 0) {
        close(fd);
        return -1;
    }
    qmgr.fd = fd;
    qmgr.mask = EVENT_READ;
    return 0;
}

static void qmgr_notify(const char *queue_id)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (qmgr.fd < 0 && qmgr_connect() < 0)
            return;
        if (qmgr.out.len > QMGR_OUT_MAX) {
            msg_warn("qmgr is not reading: notice for %s dropped", queue_id);
            return;
        }
        struct attr_msg msg;
        attr_msg_init(&msg);
        attr_msg_addf(&msg, "id", "%lu", ++qmgr.next_id);
        attr_msg_add(&msg, "request", "new");
        attr_msg_add(&msg, "queue_id", queue_id);
        attr_msg_encode(&msg, &qmgr.out);
        attr_msg_clear(&msg);
        if (qmgr_flush() == 0)
            return;
        /* The connection was stale (qmgr restarted): one fresh try. */
    }
}

/* ---- writing ---- */

static void write_error_reply(struct smtpd_session *s, int err)
{
    if (err == ENOSPC || err == EDQUOT || err == EFBIG)
        smtpd_reply(s, "452 4.3.1 Insufficient system storage");
    else
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

/* Appends message bytes: through the content filter when there is one. */
static void cf_write(void *ctx, const char *data, size_t len)
{
    struct smtpd_session *s = ctx;
    if (s->qw == NULL || s->write_errno != 0)
        return;
    if (queue_writer_message(s->qw, data, len) < 0) {
        s->write_errno = errno ? errno : EIO;
        msg_warn("%s: queue file write error: %s", s->queue_id, strerror(s->write_errno));
    }
}

static void message_write(struct smtpd_session *s, const char *data, size_t len)
{
    if (s->cf != NULL)
        content_filter_input(s->cf, data, len);
    else
        cf_write(s, data, len);
}

static void rfc5322_date(char *text, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (strftime(text, size, "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
        snprintf(text, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

int smtpd_queue_start(struct smtpd_session *s)
{
    if (smtpd_var.content_checks_broken) {
        msg_warn("%s: content checks unusable: DATA deferred", smtpd_client(s));
        smtpd_reply(s, "451 4.3.5 Server configuration error");
        return -1;
    }
    const char *error;
    s->qw = queue_writer_create(smtpd_var.queue_directory, &error);
    if (s->qw == NULL) {
        int err = errno;
        msg_warn("cannot create queue file: %s", error);
        write_error_reply(s, err);
        return -1;
    }
    snprintf(s->queue_id, sizeof(s->queue_id), "%s", queue_writer_id(s->qw));
    if (s->sasl_username != NULL)
        msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->queue_id,
                 smtpd_client(s), s->sasl_method, s->sasl_username);
    else
        msg_info("%s: client=%s", s->queue_id, smtpd_client(s));
    /* RFC 3848 / RFC 6531 4.3 "with" keywords: ESMTP, ESMTPS, ESMTPSA... */
    char proto[16];
    snprintf(proto, sizeof(proto), "%s", smtpd_protocol(s));
    queue_writer_sender(s->qw, s->sender);
    queue_writer_attr(s->qw, "client", smtpd_client(s));
    queue_writer_attr(s->qw, "client_address", s->addr);
    if (s->helo != NULL)
        queue_writer_attr(s->qw, "helo", s->helo);
    queue_writer_attr(s->qw, "protocol", proto);
    if (s->sasl_username != NULL) {
        queue_writer_attr(s->qw, "sasl_method", s->sasl_method);
        queue_writer_attr(s->qw, "sasl_username", s->sasl_username);
    }
    if (s->smtputf8)
        queue_writer_attr(s->qw, "smtputf8", "1");
    if (s->body_8bit)
        queue_writer_attr(s->qw, "body", "8BITMIME");
    for (size_t i = 0; i < s->rcpt_count; i++)
        queue_writer_recipient(s->qw, s->rcpts[i]);
    if (s->cf == NULL && smtpd_var.content_checks != NULL &&
        content_checks_active(smtpd_var.content_checks)) {
        struct content_filter_limits limits;
        content_filter_limits_config(&limits);
        struct content_filter_log log = {
            .queue_id = s->queue_id,
            .client = smtpd_client(s),
            .sender = s->sender,
            .recipient = s->rcpt_count ? s->rcpts[0] : NULL,
            .protocol = proto,
            .helo = s->helo,
        };
        s->cf = content_filter_create(smtpd_var.content_checks, &limits, &log, cf_write, s);
    }

    char date[80];
    rfc5322_date(date, sizeof(date));
    struct buf hdr;
    buf_init(&hdr, 0);
    buf_printf(&hdr, "Received: from %s (%s [%s])\n", s->helo ? s->helo : "unknown", s->name,
               s->addr);
    /* Postfix's TLS comment lines (smtpd_tls_received_header). */
    if (s->tls && smtpd_var.tls_received_header && s->tls_info != NULL)
        buf_printf(&hdr, "\t(using %s)\n\t(%s)\n", s->tls_info,
                   s->tls_peer != NULL ? s->tls_peer : "No client certificate requested");
    buf_printf(&hdr, "\tby %s (%s) with %s id %s", smtpd_var.myhostname, smtpd_var.mail_name,
               proto, s->queue_id);
    /* Postfix names the recipient only when there is one (privacy). */
    if (s->rcpt_count == 1)
        buf_printf(&hdr, "\n\tfor <%s>; %s\n", s->rcpts[0], date);
    else
        buf_printf(&hdr, ";\n\t%s\n", date);
    /* The restrictions' PREPEND lines go after our Received:. */
    for (size_t i = 0; i < s->prepend_count; i++)
        buf_printf(&hdr, "%s\n", s->prepend[i]);
    message_write(s, hdr.data, hdr.len);
    buf_free(&hdr);

    s->hdr_in_header = 1;
    s->hdr_at_bol = 1;
    s->hdr_msgid_next = 0;
    s->hdr_received = 1;   /* ours counts, as in Postfix's cleanup */
    xfree(&s->message_id);
    return 0;
}

static void capture_msgid(struct smtpd_session *s, const char *p, size_t len)
{
    while (len > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\t' ||
                       p[len - 1] == '\r'))
        len--;
    if (len == 0)
        return;
    s->message_id = xstrndup(p, len > MSGID_MAX ? MSGID_MAX : len);
    s->hdr_msgid_next = 0;
}

static void inspect_header(struct smtpd_session *s, const char *data, size_t len)
{
    if (len == 1 && data[0] == '\n') {
        s->hdr_in_header = 0;
        return;
    }
    if (data[0] == ' ' || data[0] == '\t') {
        if (s->hdr_msgid_next && s->message_id == NULL)
            capture_msgid(s, data, len);
        return;
    }
    s->hdr_msgid_next = 0;
    const char *colon = memchr(data, ':', len);
    if (colon == NULL || colon == data) {
        s->hdr_in_header = 0;   /* not a header: the body starts here */
        return;
    }
    for (const char *p = data; p < colon; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            s->hdr_in_header = 0;
            return;
        }
    }
    size_t name_len = (size_t)(colon - data);
    if (name_len == 8 && strncasecmp(data, "Received", 8) == 0) {
        s->hdr_received++;
    } else if (name_len == 10 && strncasecmp(data, "Message-ID", 10) == 0 &&
               s->message_id == NULL) {
        s->hdr_msgid_next = 1;
        capture_msgid(s, colon + 1, len - name_len - 1);
    }
}

void smtpd_queue_piece(struct smtpd_session *s, const char *data, size_t len, int ends_line)
{
    if (len == 0)
        return;
    if (s->hdr_in_header && s->hdr_at_bol)
        inspect_header(s, data, len);
    s->hdr_at_bol = ends_line;
    if (s->qw == NULL || s->write_errno != 0)
        return;
    /* A refused message is not worth checking. */
    if (s->cf != NULL && (s->data.error != SMTP_DATA_ERR_NONE || s->data.too_big))
        return;
    message_write(s, data, len);
}

static void reject_data(struct smtpd_session *s)
{
    if (s->counts_ok[SMTPD_CNT_DATA] > 0)
        s->counts_ok[SMTPD_CNT_DATA]--;
    smtpd_transaction_reset(s);
}

void smtpd_queue_finish(struct smtpd_session *s)
{
    if (s->qw != NULL && s->data.error == SMTP_DATA_ERR_NONE && !s->data.too_big &&
        s->write_errno == 0 && s->piece.len > 0) {
        /* Cannot happen with a correct decoder: the end follows a line. */
        smtpd_queue_piece(s, s->piece.data, s->piece.len, 0);
    }
    buf_reset(&s->piece);
    if (s->cf != NULL)
        content_filter_end(s->cf);
    if (s->data.error != SMTP_DATA_ERR_NONE) {
        const char *what = s->data.error == SMTP_DATA_ERR_BARE_LF ? "<LF>" : "<CR>";
        msg_info("%s: reject: disallowed bare %s received from %s", s->queue_id, what,
                 smtpd_client(s));
        reject_data(s);
        smtpd_reply_nocount(s, "521 5.5.2 %s Error: bare %s received", smtpd_var.myhostname,
                            what);
        smtpd_close(s);
        return;
    }
    if (s->data.too_big) {
        msg_info("%s: reject: message size %lld exceeds limit %lld from %s", s->queue_id,
                 s->data.size, smtpd_var.message_size_limit, smtpd_client(s));
        reject_data(s);
        smtpd_reply(s, "552 5.3.4 Error: message file too big");
        return;
    }
    if (s->hdr_received > smtpd_var.hopcount_limit) {
        msg_info("%s: reject: too many hops (%lld) from %s", s->queue_id, s->hdr_received,
                 smtpd_client(s));
        reject_data(s);
        smtpd_reply(s, "554 5.4.0 Error: too many hops");
        return;
    }
    if (s->write_errno != 0) {
        int err = s->write_errno;
        reject_data(s);
        write_error_reply(s, err);
        return;
    }
    if (s->message_id != NULL)
        msg_info("%s: message-id=%s", s->queue_id, s->message_id);
    if (s->cf != NULL) {
        switch (content_filter_verdict(s->cf)) {
        case CONTENT_ACCEPT:
            break;
        case CONTENT_HOLD:
            s->hold = 1;
            break;
        case CONTENT_DISCARD:
            smtpd_queue_discard(s);
            return;
        case CONTENT_REJECT:
        case CONTENT_TEMPFAIL: {
            const char *r = content_filter_reply(s->cf);
            char *reply = xstrdup(r != NULL ? r : "451 4.3.0 Error: content check failed");
            smtpd_queue_reject(s);
            smtpd_reply(s, "%s", reply);
            free(reply);
            return;
        }
        }
    }
    if (s->discard) {
        smtpd_queue_discard(s);
        return;
    }
    if (smtpd_policy_wanted(s, POLICY_STAGE_END_OF_DATA)) {
        smtpd_policy_start(s, POLICY_STAGE_END_OF_DATA, SMTPD_PENDING_END_OF_DATA, NULL);
        return;
    }
    smtpd_queue_commit(s);
}

void smtpd_queue_discard(struct smtpd_session *s)
{
    char id[QUEUE_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", s->queue_id);
    if (s->qw != NULL)
        queue_writer_abort(&s->qw);
    smtpd_transaction_reset(s);
    smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
}

void smtpd_queue_reject(struct smtpd_session *s)
{
    if (s->qw != NULL)
        queue_writer_abort(&s->qw);
    reject_data(s);
}

void smtpd_queue_commit(struct smtpd_session *s)
{
    if (s->qw == NULL) {   /* cannot happen: the session owns its file until here */
        reject_data(s);
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
        return;
    }
    const char *error;
    if (queue_writer_commit(&s->qw, s->hold ? "hold" : "incoming", 0, &error) < 0) {
        int err = errno;
        msg_warn("%s: cannot commit queue file: %s", s->queue_id, error);
        reject_data(s);
        write_error_reply(s, err);
        return;
    }
    smtpd_set_state(s, SMTPD_STATE_WAIT_COMMIT);
    /* Order does not matter for correctness; prepend. */
    s->commit_next = commit_head;
    commit_head = s;
}

void smtpd_queue_forget(struct smtpd_session *s)
{
    for (struct smtpd_session **p = &commit_head; *p != NULL; p = &(*p)->commit_next) {
        if (*p == s) {
            *p = s->commit_next;
            s->commit_next = NULL;
            return;
        }
    }
}

int smtpd_queue_pending(void)
{
    return commit_head != NULL;
}

void smtpd_queue_group_commit(struct event_loop *loop)
{
    while (commit_head != NULL) {
        struct smtpd_session *batch = commit_head;
        commit_head = NULL;
        int r = queue_sync(smtpd_var.queue_directory);
        if (r < 0)
            msg_warn("queue sync %s: %m", smtpd_var.queue_directory);
        while (batch != NULL) {
            struct smtpd_session *s = batch;
            batch = s->commit_next;
            s->commit_next = NULL;
            if (r == 0) {
                smtpd_reply(s, "250 2.0.0 Ok: queued as %s", s->queue_id);
                /* qmgr does not look into hold/ (postsuper -H releases). */
                if (!s->hold)
                    qmgr_notify(s->queue_id);
            } else {
                if (s->counts_ok[SMTPD_CNT_DATA] > 0)
                    s->counts_ok[SMTPD_CNT_DATA]--;
                smtpd_reply(s, "451 4.3.0 Error: queue file write error");
            }
            smtpd_transaction_reset(s);
            smtpd_session_resume(s);
        }
    }
}

void smtpd_queue_init(struct event_loop *loop)
{
    queue_loop = loop;
    buf_init(&qmgr.out, 0);
    buf_init(&qmgr.in, 0);
}
