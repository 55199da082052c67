/*
 * NAME
 *	content_filter - streamed header and body checks (Postfix semantics)
 * DESCRIPTION
 *	See content_filter.h for what is checked and the actions. This
 *	file is one resumable state machine over physical lines:
 *
 *	  input bytes -> line assembly (at most line_max bytes kept; the
 *	  rest of a longer line is its "tail", streamed through or dropped
 *	  as the decision on its head says) -> header state or body state.
 *
 *	Header state keeps the current logical header (complete physical
 *	lines, at most line_max bytes) until the next line shows whether
 *	it continues; then the header is looked up and written out (or
 *	not). A logical header that grows past line_max is decided on its
 *	first line_max bytes; the rest of it follows that decision without
 *	being kept ("header tail").
 *
 *	Body state checks each line against the boundaries of the open
 *	multiparts (innermost first) and against body_checks. The MIME
 *	structure is read from the input, before any action changed it.
 * DIAGNOSTICS
 *	Log lines as in content_filter.h (msg_info). A table lookup
 *	failure is a warning and a TEMPFAIL verdict; an unknown action or
 *	a PREPEND/REPLACE text that is not a header is a warning.
 * LIMITS
 *	See content_filter.h. Nothing here recurses; the MIME frame stack
 *	has max_depth entries.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "content_filter.h"
#include "log.h"
#include "table.h"
#include "xalloc.h"

#define LOG_CONTENT_MAX 1000
#define REPLY_TEXT_MAX 400
#define LINE_MAX_MIN 64

/* ---- tables ---- */

enum cf_list { LIST_HEADER, LIST_MIME, LIST_NESTED, LIST_BODY, LIST_COUNT };

static const char *const list_param[LIST_COUNT] = {
    "header_checks", "mime_header_checks", "nested_header_checks", "body_checks",
};

struct content_checks {
    struct table_list *lists[LIST_COUNT];   /* NULL = no checks */
    int shared[LIST_COUNT];                 /* same object as an earlier list */
};

static int blank_value(const char *v)
{
    if (v == NULL)
        return 1;
    for (; *v; v++)
        if (*v != ' ' && *v != '\t' && *v != ',' && *v != '\n' && *v != '\r')
            return 0;
    return 1;
}

struct content_checks *content_checks_open(const char *header_checks,
                                           const char *mime_header_checks,
                                           const char *nested_header_checks,
                                           const char *body_checks, const char **error_r)
{
    const char *values[LIST_COUNT] = {header_checks, mime_header_checks, nested_header_checks,
                                      body_checks};
    struct content_checks *checks = xcalloc(1, sizeof(*checks));
    for (int i = 0; i < LIST_COUNT; i++) {
        if (blank_value(values[i]))
            continue;
        for (int j = 0; j < i; j++) {
            if (checks->lists[j] != NULL && strcmp(values[i], values[j]) == 0) {
                checks->lists[i] = checks->lists[j];
                checks->shared[i] = 1;
                break;
            }
        }
        if (checks->lists[i] != NULL)
            continue;
        checks->lists[i] = table_list_open(values[i], error_r);
        if (checks->lists[i] == NULL) {
            content_checks_close(&checks);
            return NULL;
        }
    }
    return checks;
}

struct content_checks *content_checks_open_config(const char **error_r)
{
    /* config_str() strings live until the next load: copy first, as the
       opens below do not touch the configuration but callers may. */
    char *v[LIST_COUNT];
    for (int i = 0; i < LIST_COUNT; i++)
        v[i] = xstrdup(config_str(list_param[i]));
    struct content_checks *checks = content_checks_open(v[0], v[1], v[2], v[3], error_r);
    for (int i = 0; i < LIST_COUNT; i++)
        free(v[i]);
    return checks;
}

int content_checks_active(const struct content_checks *checks)
{
    for (int i = 0; i < LIST_COUNT; i++)
        if (checks->lists[i] != NULL)
            return 1;
    return 0;
}

void content_checks_close(struct content_checks **checks_p)
{
    struct content_checks *checks = *checks_p;
    if (checks == NULL)
        return;
    for (int i = 0; i < LIST_COUNT; i++)
        if (!checks->shared[i])
            table_list_close(&checks->lists[i]);
    free(checks);
    *checks_p = NULL;
}

/* ---- limits ---- */

void content_filter_limits_default(struct content_filter_limits *limits_r)
{
    limits_r->line_max = TABLE_KEY_MAX;
    limits_r->body_max = 51200;
    limits_r->max_depth = 20;
    limits_r->boundary_max = 2048;
}

void content_filter_limits_config(struct content_filter_limits *limits_r)
{
    content_filter_limits_default(limits_r);
    long long h = config_int("header_size_limit");
    if (h > 0 && h < (long long)limits_r->line_max)
        limits_r->line_max = (size_t)h;
    long long b = config_int("body_checks_size_limit");
    limits_r->body_max = b > 0 ? b : 0;
}

/* ---- the filter ---- */

enum entity { ENT_PRIMARY, ENT_PART, ENT_NESTED };
enum ct_kind { CT_NONE, CT_OTHER, CT_MULTIPART, CT_MESSAGE };

struct frame {
    int multipart;            /* else a message/rfc822 level */
    int digest;               /* multipart/digest: parts default to message/rfc822 */
    size_t boundary_off;      /* in cf->boundaries */
    size_t boundary_len;
};

enum act_kind {
    ACT_NONE, ACT_REJECT, ACT_DISCARD, ACT_HOLD, ACT_WARN, ACT_INFO, ACT_IGNORE,
    ACT_REPLACE, ACT_PREPEND, ACT_ERROR,
};

struct content_filter {
    struct content_checks *checks;
    struct content_filter_limits lim;
    struct content_filter_log log;        /* copied strings */
    content_filter_write_fn *write_fn;
    void *write_ctx;

    enum content_verdict verdict;
    int final;                /* REJECT, DISCARD or TEMPFAIL: stop */
    int ended;
    char *reply;

    /* Line assembly. */
    struct buf line;          /* current physical line, <= line_max bytes, no '\n' */
    int in_tail;              /* past line_max: the rest of the line is a tail */
    int tail_drop;            /* ... which is dropped (1) or written (0) */
    int eof_line;             /* the line being handled has no '\n' (end of input) */

    /* Structure. */
    int in_header;            /* header section of the current entity */
    enum entity entity;
    struct buf pending;       /* logical header so far: raw lines with '\n' */
    int hdr_tail;             /* current logical header already decided */
    int hdr_tail_drop;
    enum ct_kind ct;          /* first Content-Type of the current entity */
    int ct_digest;
    int ct_encoded;           /* Content-Transfer-Encoding base64 / quoted-printable */
    int ct_bad_boundary;      /* multipart without a usable boundary */
    struct buf ct_boundary;
    int part_default_message; /* current part lives in a multipart/digest */
    struct frame *frames;
    unsigned depth;
    struct buf boundaries;
    long long body_left;      /* body_checks budget of the current segment */

    struct buf key;           /* lookup key scratch */
    struct buf scratch;       /* formatting scratch */
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

struct content_filter *content_filter_create(struct content_checks *checks,
                                             const struct content_filter_limits *limits,
                                             const struct content_filter_log *log,
                                             content_filter_write_fn *write_fn, void *write_ctx)
{
    struct content_filter *cf = xcalloc(1, sizeof(*cf));
    cf->checks = checks;
    if (limits != NULL)
        cf->lim = *limits;
    else
        content_filter_limits_default(&cf->lim);
    if (cf->lim.line_max < LINE_MAX_MIN)
        cf->lim.line_max = LINE_MAX_MIN;
    if (cf->lim.line_max > TABLE_KEY_MAX)
        cf->lim.line_max = TABLE_KEY_MAX;
    if (cf->lim.max_depth > CONTENT_FILTER_DEPTH_CAP)
        cf->lim.max_depth = CONTENT_FILTER_DEPTH_CAP;
    /* A boundary line must fit in one assembled line to be seen. */
    if (cf->lim.boundary_max + 8 > cf->lim.line_max)
        cf->lim.boundary_max = cf->lim.line_max - 8;
    if (cf->lim.body_max < 0)
        cf->lim.body_max = 0;
    if (log != NULL) {
        cf->log.queue_id = dup_or_null(log->queue_id);
        cf->log.client = dup_or_null(log->client);
        cf->log.sender = dup_or_null(log->sender);
        cf->log.recipient = dup_or_null(log->recipient);
        cf->log.protocol = dup_or_null(log->protocol);
        cf->log.helo = dup_or_null(log->helo);
    }
    cf->write_fn = write_fn;
    cf->write_ctx = write_ctx;
    cf->verdict = CONTENT_ACCEPT;
    buf_init(&cf->line, 0);
    buf_init(&cf->pending, 0);
    buf_init(&cf->ct_boundary, 0);
    buf_init(&cf->boundaries, 0);
    buf_init(&cf->key, 0);
    buf_init(&cf->scratch, 0);
    if (cf->lim.max_depth > 0)
        cf->frames = xreallocarray(NULL, cf->lim.max_depth, sizeof(*cf->frames));
    cf->in_header = 1;
    cf->entity = ENT_PRIMARY;
    cf->body_left = cf->lim.body_max;
    return cf;
}

void content_filter_destroy(struct content_filter **cf_p)
{
    struct content_filter *cf = *cf_p;
    if (cf == NULL)
        return;
    free((char *)cf->log.queue_id);
    free((char *)cf->log.client);
    free((char *)cf->log.sender);
    free((char *)cf->log.recipient);
    free((char *)cf->log.protocol);
    free((char *)cf->log.helo);
    free(cf->reply);
    buf_free(&cf->line);
    buf_free(&cf->pending);
    buf_free(&cf->ct_boundary);
    buf_free(&cf->boundaries);
    buf_free(&cf->key);
    buf_free(&cf->scratch);
    free(cf->frames);
    free(cf);
    *cf_p = NULL;
}

enum content_verdict content_filter_verdict(const struct content_filter *cf)
{
    return cf->verdict;
}

const char *content_filter_reply(const struct content_filter *cf)
{
    return (cf->verdict == CONTENT_REJECT || cf->verdict == CONTENT_TEMPFAIL) ? cf->reply
                                                                              : NULL;
}

size_t content_filter_memory(const struct content_filter *cf)
{
    return sizeof(*cf) + cf->line.size + cf->pending.size + cf->ct_boundary.size +
           cf->boundaries.size + cf->key.size + cf->scratch.size +
           cf->lim.max_depth * sizeof(*cf->frames) + (cf->reply ? strlen(cf->reply) + 1 : 0);
}

/* ---- output and logging ---- */

static void emit(struct content_filter *cf, const char *data, size_t len)
{
    if (len > 0 && !cf->final && cf->write_fn != NULL)
        cf->write_fn(cf->write_ctx, data, len);
}

/* Writes text plus a newline as one call (text must not be in scratch). */
static void emit_text_line(struct content_filter *cf, const char *text)
{
    buf_reset(&cf->scratch);
    buf_append_str(&cf->scratch, text);
    buf_append_char(&cf->scratch, '\n');
    emit(cf, cf->scratch.data, cf->scratch.len);
}

/* Copies s with control characters replaced by repl. */
static void append_sanitized(struct buf *out, const char *s, size_t len, char repl)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_append_char(out, (c < 0x20 || c == 0x7f) ? repl : (char)c);
    }
}

static void append_printable(struct buf *out, const char *s, size_t len)
{
    append_sanitized(out, s, len, '?');
}

void content_filter_format_log(struct buf *out, const struct content_filter_log *log,
                               const char *action, const char *where, const char *content,
                               size_t content_len, const char *text)
{
    static const struct content_filter_log none;
    if (log == NULL)
        log = &none;
    buf_printf(out, "%s: %s: %s ", log->queue_id ? log->queue_id : "NOQUEUE", action, where);
    append_printable(out, content, content_len > LOG_CONTENT_MAX ? LOG_CONTENT_MAX : content_len);
    buf_printf(out, " from %s;", log->client ? log->client : "unknown");
    if (log->sender != NULL) {
        buf_append_str(out, " from=<");
        append_printable(out, log->sender, strlen(log->sender));
        buf_append_char(out, '>');
    }
    if (log->recipient != NULL) {
        buf_append_str(out, " to=<");
        append_printable(out, log->recipient, strlen(log->recipient));
        buf_append_char(out, '>');
    }
    if (log->protocol != NULL)
        buf_printf(out, " proto=%s", log->protocol);
    if (log->helo != NULL) {
        buf_append_str(out, " helo=<");
        append_printable(out, log->helo, strlen(log->helo));
        buf_append_char(out, '>');
    }
    if (text != NULL && *text != '\0') {
        buf_append_str(out, ": ");
        append_printable(out, text, strlen(text));
    }
}

static void log_action(struct content_filter *cf, const char *action, const char *where,
                       const char *content, const char *text)
{
    struct buf out;
    buf_init(&out, 0);
    content_filter_format_log(&out, &cf->log, action, where, content, strlen(content), text);
    msg_info("%s", out.data);
    buf_free(&out);
}

/* ---- actions ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* "Name:" with printable non-space name bytes, optional blanks before ':'. */
static int looks_like_header(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f && s[i] != ':')
        i++;
    if (i == 0)
        return 0;
    while (i < len && is_space(s[i]))
        i++;
    return i < len && s[i] == ':';
}

/* The reply and log text of REJECT: "550 5.7.1 text" etc. */
static void set_reject(struct content_filter *cf, const char *text, const char *where,
                       const char *content)
{
    char dsn[16] = "5.7.1";
    const char *msg = "Message content rejected";
    if (text != NULL && *text != '\0') {
        msg = text;
        /* An explicit enhanced status code "4.x.x" / "5.x.x" leads the text. */
        const char *p = text;
        if ((*p == '4' || *p == '5') && p[1] == '.') {
            const char *q = p + 2;
            int d1 = 0, d2 = 0;
            while (isdigit((unsigned char)*q) && d1 < 3) {
                q++;
                d1++;
            }
            if (d1 > 0 && *q == '.') {
                q++;
                while (isdigit((unsigned char)q[d2]) && d2 < 3)
                    d2++;
                if (d2 > 0 && (q[d2] == '\0' || is_space(q[d2]))) {
                    size_t n = (size_t)(q + d2 - p);
                    memcpy(dsn, p, n);
                    dsn[n] = '\0';
                    msg = q + d2;
                    while (is_space(*msg))
                        msg++;
                    if (*msg == '\0')
                        msg = "Message content rejected";
                }
            }
        }
    }
    struct buf r;
    buf_init(&r, 0);
    buf_printf(&r, "%d %s ", dsn[0] == '4' ? 451 : 550, dsn);
    size_t mlen = strlen(msg);
    /* Folded headers captured by $n carry newlines: never into a reply. */
    append_sanitized(&r, msg, mlen > REPLY_TEXT_MAX ? REPLY_TEXT_MAX : mlen, ' ');
    free(cf->reply);
    cf->reply = buf_steal(&r);
    buf_free(&r);
    log_action(cf, "reject", where, content, cf->reply + 4);
    cf->verdict = CONTENT_REJECT;
    cf->final = 1;
}

/* Looks key up in list; returns the action, with *text_r pointing into
   *value_r (malloc'd, the caller frees) for the optional text. */
static enum act_kind lookup_action(struct content_filter *cf, enum cf_list which,
                                   const char *key, char **value_r, const char **text_r)
{
    *value_r = NULL;
    *text_r = "";
    struct table_list *list = cf->checks ? cf->checks->lists[which] : NULL;
    if (list == NULL)
        return ACT_NONE;
    const char *error = NULL;
    enum table_result res = table_list_lookup(list, key, value_r, &error);
    if (res == TABLE_NOTFOUND)
        return ACT_NONE;
    if (res == TABLE_ERROR) {
        msg_warn("%s: %s lookup problem -- message not accepted, try again later: %s",
                 cf->log.queue_id ? cf->log.queue_id : "NOQUEUE", list_param[which],
                 error ? error : "unknown error");
        return ACT_ERROR;
    }
    char *v = *value_r;
    while (is_space(*v))
        v++;
    char *end = v;
    while (*end != '\0' && !is_space(*end))
        end++;
    size_t alen = (size_t)(end - v);
    const char *text = end;
    while (is_space(*text))
        text++;
    *text_r = text;
    static const struct {
        const char *name;
        enum act_kind kind;
    } names[] = {
        {"REJECT", ACT_REJECT}, {"DISCARD", ACT_DISCARD}, {"HOLD", ACT_HOLD},
        {"WARN", ACT_WARN},     {"INFO", ACT_INFO},       {"IGNORE", ACT_IGNORE},
        {"REPLACE", ACT_REPLACE}, {"PREPEND", ACT_PREPEND}, {"DUNNO", ACT_NONE},
        {"OK", ACT_NONE},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == alen && strncasecmp(v, names[i].name, alen) == 0)
            return names[i].kind;
    msg_warn("%s: unknown action \"%.*s\"; ignored", list_param[which], (int)alen, v);
    return ACT_NONE;
}

/* What happens to the line/header that was looked up. */
enum fate { FATE_PASS, FATE_DROP, FATE_REPLACE };

/* Applies a looked-up action. Logging and verdicts happen here; PREPEND
   text is written here; the caller writes (or not) the item itself per
   the returned fate, and for FATE_REPLACE writes text itself. */
static enum fate apply_action(struct content_filter *cf, enum act_kind act, const char *text,
                              enum cf_list which, const char *key, int is_header)
{
    const char *where = is_header ? "header" : "body";
    switch (act) {
    case ACT_NONE:
        return FATE_PASS;
    case ACT_ERROR:
        free(cf->reply);
        cf->reply = xstrdup("451 4.3.0 Temporary lookup failure");
        cf->verdict = CONTENT_TEMPFAIL;
        cf->final = 1;
        return FATE_DROP;
    case ACT_REJECT:
        set_reject(cf, text, where, key);
        return FATE_DROP;
    case ACT_DISCARD:
        log_action(cf, "discard", where, key, text);
        cf->verdict = CONTENT_DISCARD;
        cf->final = 1;
        return FATE_DROP;
    case ACT_HOLD:
        log_action(cf, "hold", where, key, text);
        cf->verdict = CONTENT_HOLD;
        return FATE_PASS;
    case ACT_WARN:
        log_action(cf, "warning", where, key, text);
        return FATE_PASS;
    case ACT_INFO:
        log_action(cf, "info", where, key, text);
        return FATE_PASS;
    case ACT_IGNORE:
        return FATE_DROP;
    case ACT_REPLACE:
    case ACT_PREPEND:
        if (*text == '\0' || (is_header && !looks_like_header(text, strlen(text)))) {
            msg_warn("%s: bad %s text \"%s\" in %s%s; ignored",
                     cf->log.queue_id ? cf->log.queue_id : "NOQUEUE",
                     act == ACT_REPLACE ? "REPLACE" : "PREPEND", text, list_param[which],
                     is_header ? " -- need \"headername: headervalue\"" : "");
            return FATE_PASS;
        }
        if (act == ACT_PREPEND) {
            emit_text_line(cf, text);
            return FATE_PASS;
        }
        return FATE_REPLACE;
    }
    return FATE_PASS;
}

/* ---- MIME bookkeeping ---- */

static void skip_cfws(const char **pp, const char *end)
{
    const char *p = *pp;
    int comment = 0;
    while (p < end) {
        if (comment > 0) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '(')
                comment++;
            else if (*p == ')')
                comment--;
        } else if (*p == '(') {
            comment = 1;
        } else if (!(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            break;
        }
        p++;
    }
    *pp = p;
}

static int is_token_char(char c)
{
    unsigned char u = (unsigned char)c;
    return u > 0x20 && u < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static size_t token_len(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && is_token_char(*q))
        q++;
    return (size_t)(q - p);
}

/* Content-Type value [p, end): kind and boundary of the current entity. */
static void parse_content_type(struct content_filter *cf, const char *p, const char *end)
{
    skip_cfws(&p, end);
    size_t tl = token_len(p, end);
    const char *type = p;
    p += tl;
    skip_cfws(&p, end);
    const char *sub = "";
    size_t sl = 0;
    if (p < end && *p == '/') {
        p++;
        skip_cfws(&p, end);
        sub = p;
        sl = token_len(p, end);
        p += sl;
    }
    cf->ct = CT_OTHER;
    if (tl == 9 && strncasecmp(type, "multipart", 9) == 0) {
        cf->ct = CT_MULTIPART;
        cf->ct_digest = sl == 6 && strncasecmp(sub, "digest", 6) == 0;
    } else if (tl == 7 && strncasecmp(type, "message", 7) == 0 && sl == 6 &&
               strncasecmp(sub, "rfc822", 6) == 0) {
        cf->ct = CT_MESSAGE;
    }
    if (cf->ct != CT_MULTIPART)
        return;
    cf->ct_bad_boundary = 1;
    buf_reset(&cf->ct_boundary);
    for (;;) {
        skip_cfws(&p, end);
        if (p >= end || *p != ';')
            return;
        p++;
        skip_cfws(&p, end);
        size_t nl = token_len(p, end);
        const char *name = p;
        p += nl;
        skip_cfws(&p, end);
        if (p >= end || *p != '=')
            return;
        p++;
        skip_cfws(&p, end);
        int is_boundary = nl == 8 && strncasecmp(name, "boundary", 8) == 0;
        if (p < end && *p == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                /* A folded quoted value loses its CRLF (RFC 5322 unfolding). */
                if (is_boundary && *p != '\n' && *p != '\r')
                    buf_append_char(&cf->ct_boundary, *p);
                p++;
            }
            if (p < end)
                p++;
        } else {
            size_t vl = token_len(p, end);
            if (is_boundary)
                buf_append(&cf->ct_boundary, p, vl);
            p += vl;
        }
        if (is_boundary) {
            cf->ct_bad_boundary = cf->ct_boundary.len == 0 ||
                                  cf->ct_boundary.len > cf->lim.boundary_max;
            return;
        }
    }
}

static void parse_cte(struct content_filter *cf, const char *p, const char *end)
{
    skip_cfws(&p, end);
    size_t n = token_len(p, end);
    cf->ct_encoded = (n == 6 && strncasecmp(p, "base64", 6) == 0) ||
                     (n == 16 && strncasecmp(p, "quoted-printable", 16) == 0);
}

static void entity_reset(struct content_filter *cf)
{
    cf->ct = CT_NONE;
    cf->ct_digest = 0;
    cf->ct_encoded = 0;
    cf->ct_bad_boundary = 0;
    buf_reset(&cf->ct_boundary);
}

/* The header section of the current entity is over. */
static void end_of_header(struct content_filter *cf, int blank_line)
{
    enum ct_kind ct = cf->ct;
    if (ct == CT_NONE && cf->entity == ENT_PART && cf->part_default_message)
        ct = CT_MESSAGE;
    cf->in_header = 0;
    cf->body_left = cf->lim.body_max;
    if (!cf->ct_encoded && cf->depth < cf->lim.max_depth) {
        if (ct == CT_MULTIPART && !cf->ct_bad_boundary) {
            struct frame *f = &cf->frames[cf->depth++];
            f->multipart = 1;
            f->digest = cf->ct_digest;
            f->boundary_off = cf->boundaries.len;
            f->boundary_len = cf->ct_boundary.len;
            buf_append(&cf->boundaries, cf->ct_boundary.data, cf->ct_boundary.len);
        } else if (ct == CT_MESSAGE && blank_line) {
            struct frame *f = &cf->frames[cf->depth++];
            f->multipart = 0;
            f->digest = 0;
            f->boundary_off = cf->boundaries.len;
            f->boundary_len = 0;
            cf->in_header = 1;
            cf->entity = ENT_NESTED;
        }
    }
    entity_reset(cf);
}

/* Pops frames so that depth becomes n (boundary storage too). */
static void pop_to(struct content_filter *cf, unsigned n)
{
    if (n < cf->depth) {
        buf_truncate(&cf->boundaries, cf->frames[n].boundary_off);
        cf->depth = n;
    }
}

/* Index+1 of the open multipart whose boundary the line is, or 0;
   *close_r for "--boundary--". */
static unsigned match_boundary(struct content_filter *cf, const char *s, size_t len,
                               int *close_r)
{
    if (len < 3 || s[0] != '-' || s[1] != '-')
        return 0;
    for (unsigned i = cf->depth; i > 0; i--) {
        const struct frame *f = &cf->frames[i - 1];
        if (!f->multipart || len < 2 + f->boundary_len)
            continue;
        if (memcmp(s + 2, cf->boundaries.data + f->boundary_off, f->boundary_len) != 0)
            continue;
        size_t k = 2 + f->boundary_len;
        int close = 0;
        if (len >= k + 2 && s[k] == '-' && s[k + 1] == '-') {
            close = 1;
            k += 2;
        }
        /* Transport padding (RFC 2046 5.1.1) may follow the boundary. */
        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
            k++;
        if (k != len)
            continue;
        *close_r = close;
        return i;
    }
    return 0;
}

/* ---- headers ---- */

static int is_mime_header(const char *s, size_t len)
{
    static const char *const names[] = {
        "content-type", "content-transfer-encoding", "content-disposition",
        "content-id", "content-description", "mime-version",
    };
    size_t n = 0;
    while (n < len && s[n] != ':' && !is_space(s[n]))
        n++;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0)
            return 1;
    return 0;
}

/* Decides the logical header in cf->key (NUL-terminated, no final
   newline): MIME bookkeeping, lookup, logging. Returns the fate and,
   for FATE_REPLACE, the text in *value_r and *text_r (caller frees). */
static enum fate decide_header(struct content_filter *cf, char **value_r, const char **text_r)
{
    const char *k = cf->key.data;
    size_t klen = cf->key.len;
    const char *colon = memchr(k, ':', klen);
    size_t nlen = colon ? (size_t)(colon - k) : klen;
    while (nlen > 0 && is_space(k[nlen - 1]))
        nlen--;
    *value_r = NULL;
    *text_r = "";
    if (colon != NULL) {
        if (nlen == 12 && strncasecmp(k, "content-type", 12) == 0 && cf->ct == CT_NONE)
            parse_content_type(cf, colon + 1, k + klen);
        else if (nlen == 25 && strncasecmp(k, "content-transfer-encoding", 25) == 0)
            parse_cte(cf, colon + 1, k + klen);
    }
    enum cf_list which;
    if (cf->entity == ENT_PART || is_mime_header(k, klen))
        which = LIST_MIME;
    else if (cf->entity == ENT_NESTED)
        which = LIST_NESTED;
    else
        which = LIST_HEADER;
    enum act_kind act = lookup_action(cf, which, k, value_r, text_r);
    enum fate fate = apply_action(cf, act, *text_r, which, k, 1);
    if (fate != FATE_REPLACE) {
        xfree(value_r);
        *text_r = "";
    }
    return fate;
}

/* The pending logical header is complete: decide and write it. */
static void flush_pending(struct content_filter *cf)
{
    if (cf->pending.len == 0)
        return;
    buf_reset(&cf->key);
    buf_append(&cf->key, cf->pending.data, cf->pending.len - 1);   /* without the last '\n' */
    char *value;
    const char *text;
    enum fate fate = decide_header(cf, &value, &text);
    if (fate == FATE_PASS)
        emit(cf, cf->pending.data, cf->pending.len);
    else if (fate == FATE_REPLACE)
        emit_text_line(cf, text);
    free(value);
    buf_reset(&cf->pending);
}

/* A header (pending + this physical line, cut or not) outgrows
   line_max: decide on the first line_max bytes, write what is there,
   and let the rest of the header follow the decision. */
static void decide_early(struct content_filter *cf, const char *s, size_t len, int complete)
{
    buf_reset(&cf->key);
    if (cf->pending.len > 0)
        buf_append(&cf->key, cf->pending.data, cf->pending.len);   /* keeps its '\n' */
    size_t room = cf->lim.line_max > cf->key.len ? cf->lim.line_max - cf->key.len : 0;
    buf_append(&cf->key, s, len < room ? len : room);
    char *value;
    const char *text;
    enum fate fate = decide_header(cf, &value, &text);
    if (fate == FATE_PASS) {
        emit(cf, cf->pending.data, cf->pending.len);
        emit(cf, s, len);
        if (complete)
            emit(cf, "\n", 1);
    } else if (fate == FATE_REPLACE) {
        emit_text_line(cf, text);
    }
    free(value);
    buf_reset(&cf->pending);
    cf->hdr_tail = 1;
    cf->hdr_tail_drop = fate != FATE_PASS;
    cf->tail_drop = cf->hdr_tail_drop;
}

static void body_line(struct content_filter *cf, const char *s, size_t len, int complete);

/* One physical line in a header section. s is cf->line.data. */
static void header_line(struct content_filter *cf, const char *s, size_t len, int complete)
{
    int nl = complete && !cf->eof_line;
    if (len > 0 && is_space(s[0]) && (cf->pending.len > 0 || cf->hdr_tail)) {
        if (cf->hdr_tail) {
            cf->tail_drop = cf->hdr_tail_drop;
            if (!cf->hdr_tail_drop) {
                emit(cf, s, len);
                if (nl)
                    emit(cf, "\n", 1);
            }
            return;
        }
        if (nl && cf->pending.len + len + 1 <= cf->lim.line_max) {
            buf_append(&cf->pending, s, len);
            buf_append_char(&cf->pending, '\n');
            return;
        }
        decide_early(cf, s, len, nl);
        return;
    }
    flush_pending(cf);
    cf->hdr_tail = 0;
    if (cf->final)
        return;
    if (len == 0 && complete) {
        if (nl)
            emit(cf, "\n", 1);
        end_of_header(cf, 1);
        return;
    }
    if (looks_like_header(s, len)) {
        if (nl && len + 1 <= cf->lim.line_max) {
            buf_append(&cf->pending, s, len);
            buf_append_char(&cf->pending, '\n');
        } else {
            decide_early(cf, s, len, nl);
        }
        return;
    }
    /* Neither header nor continuation: the body starts without the
       empty line (a message/rfc822 part is then not descended into). */
    end_of_header(cf, 0);
    if (cf->in_header)
        msg_panic("content_filter: header section did not end");
    body_line(cf, s, len, complete);
}

/* ---- body ---- */

static void body_line(struct content_filter *cf, const char *s, size_t len, int complete)
{
    int nl = complete && !cf->eof_line;
    int close = 0;
    unsigned level = complete ? match_boundary(cf, s, len, &close) : 0;
    enum fate fate = FATE_PASS;
    char *value = NULL;
    const char *text = "";

    if (cf->body_left > 0) {
        struct content_checks *c = cf->checks;
        if (c != NULL && c->lists[LIST_BODY] != NULL) {
            enum act_kind act = lookup_action(cf, LIST_BODY, s, &value, &text);
            fate = apply_action(cf, act, text, LIST_BODY, s, 0);
        }
        long long used = (long long)len + (complete ? 1 : 0);
        cf->body_left = used >= cf->body_left ? 0 : cf->body_left - used;
    }
    if (fate == FATE_PASS) {
        emit(cf, s, len);
        if (nl)
            emit(cf, "\n", 1);
    } else if (fate == FATE_REPLACE) {
        emit_text_line(cf, text);
    }
    free(value);
    cf->tail_drop = fate != FATE_PASS;

    if (level > 0) {
        if (close) {
            /* Epilogue: body of the entity that held the multipart. */
            pop_to(cf, level - 1);
            cf->body_left = cf->lim.body_max;
        } else {
            pop_to(cf, level);
            cf->in_header = 1;
            cf->entity = ENT_PART;
            cf->part_default_message = cf->frames[level - 1].digest;
            entity_reset(cf);
        }
    }
}

/* ---- line assembly ---- */

static void handle_line(struct content_filter *cf, int complete)
{
    const char *s = cf->line.data;
    size_t len = cf->line.len;
    cf->tail_drop = 0;
    if (cf->in_header)
        header_line(cf, s, len, complete);
    else
        body_line(cf, s, len, complete);
    buf_reset(&cf->line);
    cf->in_tail = !complete;
}

void content_filter_input(struct content_filter *cf, const char *data, size_t len)
{
    if (cf->ended)
        return;
    while (len > 0 && !cf->final) {
        const char *nl = memchr(data, '\n', len);
        if (cf->in_tail) {
            size_t n = nl ? (size_t)(nl - data) + 1 : len;
            if (!cf->tail_drop)
                emit(cf, data, n);
            data += n;
            len -= n;
            if (nl != NULL)
                cf->in_tail = 0;
            continue;
        }
        size_t avail = nl ? (size_t)(nl - data) : len;
        size_t room = cf->lim.line_max - cf->line.len;
        if (avail > room) {
            buf_append(&cf->line, data, room);
            data += room;
            len -= room;
            handle_line(cf, 0);
            continue;
        }
        buf_append(&cf->line, data, avail);
        data += avail;
        len -= avail;
        if (nl != NULL) {
            data++;
            len--;
            handle_line(cf, 1);
        }
    }
}

void content_filter_end(struct content_filter *cf)
{
    if (cf->ended)
        return;
    if (!cf->final && !cf->in_tail && cf->line.len > 0) {
        cf->eof_line = 1;
        handle_line(cf, 1);
        cf->eof_line = 0;
    }
    if (!cf->final && cf->in_header)
        flush_pending(cf);
    cf->ended = 1;
}
