/* libFuzzer target for lib/imap_msg*.c: the input is a message file
   (seeds are plain messages). Fixed FETCH and SEARCH commands, parsed
   once with lib/imap_parser from literal strings, are run against it
   through the open callback (a memfd). Checks: every FETCH succeeds and
   is one "* 1 FETCH (...)\r\n" line, literals have the announced size,
   no bare LF and no NUL; every partial BODY[]<o.c> is exactly that slice
   of BODY[]; a header-only load followed by a whole one gives the same
   header; SEARCH answers 0 or 1; the date parser and the header decoder
   survive the input as a field value. The header hooks of struct
   imap_msg_cache: the header handed to header_loaded, given back
   through header_get, yields byte-identical header FETCH responses and
   the same SEARCH answers, without opening the file for header-only
   needs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "imap_msg.h"
#include "imap_msg_private.h"
#include "imap_parser.h"
#include "mime.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const char *const fetch_lines[] = {
    "a FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE MODSEQ)\r\n",
    ("a FETCH 1 (BODY[] BODY.PEEK[1.2.MIME] BODY[HEADER.FIELDS (FROM SUBJECT)]<3.20> "
     "BODY[HEADER.FIELDS.NOT (FROM \"X]\")] BODY[TEXT]<1.5> BODY[1] BODY[2.1.HEADER] "
     "BODY[1.TEXT] RFC822 RFC822.HEADER RFC822.TEXT BODY[]<7.13>)\r\n"),
    ("a FETCH 1 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[1.1] BODY.PEEK[2.MIME] BODY.PEEK[2.TEXT] "
     "BODY.PEEK[3.HEADER.FIELDS (Content-Type)] BODY.PEEK[1.2.3.4]<0.1>)\r\n"),
    "a FETCH 1 FULL\r\n",
};
#define NFETCH (sizeof(fetch_lines) / sizeof(fetch_lines[0]))

static const char *const header_line = "a FETCH 1 (ENVELOPE BODY.PEEK[HEADER])\r\n";
static const char *const header_items_line =
    ("a FETCH 1 (RFC822.HEADER BODY.PEEK[HEADER.FIELDS (From Subject Date)] "
     "BODY.PEEK[HEADER.FIELDS.NOT (To)]<2.50> ENVELOPE FLAGS)\r\n");
static const char *const whole_line = "a FETCH 1 BODY.PEEK[]\r\n";

static const uint32_t partials[][2] = {{0, 1}, {1, 1}, {2, 3}, {5, 7}, {13, 100}, {0, 4096},
                                       {30, 2}, {99, 1000}};
#define NPARTIAL (sizeof(partials) / sizeof(partials[0]))

static const char *const search_lines[] = {
    "a SEARCH OR (FROM x SUBJECT y) (BODY \"\xc3\xa9t\xc3\xa9\" TEXT foo) HEADER X-Y \"\"\r\n",
    "a SEARCH SENTSINCE 1-Jan-2000 NOT SENTON 2-Feb-2010 SENTBEFORE 1-Jan-2030\r\n",
    "a SEARCH LARGER 3 SMALLER 1000000 UNKEYWORD foo NOT KEYWORD bar 1:* UID 2:*\r\n",
    "a SEARCH CHARSET UTF-8 OR TO \"\xc3\x89\" CC a OR BCC b TEXT \"=?\"\r\n",
    "a SEARCH BODY a BODY \"\" TEXT \"\\\"\" HEADER Subject \"=\" NEW OLD RECENT SEEN\r\n",
    "a SEARCH NOT (OR BODY x TEXT y) SINCE 1-Jan-1970 BEFORE 1-Jan-2100 MODSEQ 1\r\n",
};
#define NSEARCH (sizeof(search_lines) / sizeof(search_lines[0]))

static struct imap_command *fetch_cmds[NFETCH], *search_cmds[NSEARCH], *partial_cmds[NPARTIAL];
static struct imap_command *header_cmd, *header_items_cmd, *whole_cmd;
static int memfd = -1;
static int opens;

static struct imap_command *parse(const char *line)
{
    struct imap_parser_limits limits;
    imap_parser_limits_default(&limits);
    struct imap_parser *p = imap_parser_create(&limits);
    struct buf in;
    buf_init(&in, 0);
    buf_append_str(&in, line);
    struct imap_parse_result res;
    CHECK(imap_parser_next(p, &in, &res) == IMAP_PARSE_COMMAND);
    buf_free(&in);
    imap_parser_destroy(&p);
    return res.command;
}

static void init(void)
{
    memfd = memfd_create("fuzz-imap-msg", 0);
    CHECK(memfd >= 0);
    for (size_t i = 0; i < NFETCH; i++)
        fetch_cmds[i] = parse(fetch_lines[i]);
    for (size_t i = 0; i < NSEARCH; i++)
        search_cmds[i] = parse(search_lines[i]);
    for (size_t i = 0; i < NPARTIAL; i++) {
        char line[100];
        snprintf(line, sizeof(line), "a FETCH 1 BODY.PEEK[]<%u.%u>\r\n", partials[i][0],
                 partials[i][1]);
        partial_cmds[i] = parse(line);
    }
    header_cmd = parse(header_line);
    header_items_cmd = parse(header_items_line);
    whole_cmd = parse(whole_line);
}

static int open_cb(void *ctx, uint32_t uid)
{
    opens++;
    if (lseek(memfd, 0, SEEK_SET) < 0)
        return -1;
    return dup(memfd);
}

/* Walks a response: literals must be complete and hold no NUL; outside
   literals there is no CR or LF but the final CRLF. */
static void check_response(const struct buf *b)
{
    static const char start[] = "* 1 FETCH (";
    CHECK(b->len >= sizeof(start) + 2 && memcmp(b->data, start, sizeof(start) - 1) == 0);
    CHECK(memcmp(b->data + b->len - 3, ")\r\n", 3) == 0);
    size_t i = 0, end = b->len - 2;
    while (i < end) {
        char c = b->data[i];
        CHECK(c != '\r' && c != '\n' && c != '\0');
        if (c == '"') {
            for (i++; i < end && b->data[i] != '"'; i++)
                if (b->data[i] == '\\')
                    i++;
            CHECK(i < end);
            i++;
            continue;
        }
        if (c == '{') {
            size_t n = 0, j = i + 1;
            while (j < end && b->data[j] >= '0' && b->data[j] <= '9')
                n = n * 10 + (size_t)(b->data[j++] - '0');
            CHECK(j + 3 <= end && memcmp(b->data + j, "}\r\n", 3) == 0);
            j += 3;
            CHECK(n <= end - j);
            CHECK(memchr(b->data + j, '\0', n) == NULL);
            /* a partial may start between the CR and the LF */
            for (size_t k = j + 1; k < j + n; k++)
                CHECK(b->data[k] != '\n' || b->data[k - 1] == '\r');
            i = j + n;
            continue;
        }
        i++;
    }
}

/* The header hooks: what header_loaded got, handed out by header_get
   when give is set. */
struct kept {
    char *data;
    size_t len;
    int loads, give;
};

static char *kept_get(void *ctx, uint32_t uid, size_t *len_r)
{
    struct kept *k = ctx;
    if (!k->give || k->data == NULL)
        return NULL;
    char *copy = malloc(k->len + 1);
    CHECK(copy != NULL);
    memcpy(copy, k->data, k->len);
    *len_r = k->len;
    return copy;
}

static void kept_loaded(void *ctx, uint32_t uid, const char *header, size_t len)
{
    struct kept *k = ctx;
    CHECK(uid == 1 && len <= IMAP_MSG_CACHE_HEADER_MAX);
    k->loads++;
    free(k->data);
    k->data = malloc(len + 1);
    CHECK(k->data != NULL);
    memcpy(k->data, header, len);
    k->len = len;
}

static void fetch_into(const struct imap_command *cmd, const struct imap_msg *msg,
                       struct buf *out)
{
    struct imap_msg_content *content = NULL;
    buf_reset(out);
    CHECK(imap_msg_fetch(cmd, msg, 0, &content, out, NULL) == 0);
    imap_msg_content_free(&content);
}

/* The header hooks change no response and no SEARCH answer. */
static void check_kept_header(const struct imap_msg *plain, size_t size)
{
    struct kept k = {0};
    struct imap_msg_cache cache = {0};
    cache.header_get = kept_get;
    cache.header_loaded = kept_loaded;
    cache.header_ctx = &k;
    struct imap_msg msg = *plain;
    msg.cache = &cache;
    struct buf want, got;
    buf_init(&want, 0);
    buf_init(&got, 0);
    const struct imap_command *cmds[] = {header_cmd, header_items_cmd};
    for (size_t i = 0; i < 2; i++) {
        fetch_into(cmds[i], plain, &want);
        fetch_into(cmds[i], &msg, &got);   /* not kept: read, handed over */
        CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
    }
    /* a header-only load hands over at most IMAP_MSG_CACHE_HEADER_MAX */
    CHECK(k.loads == (k.data != NULL ? 2 : 0));
    CHECK(k.data == NULL || k.len <= size);
    if (k.data != NULL) {
        k.give = 1;
        k.loads = 0;
        for (size_t i = 0; i < 2; i++) {
            fetch_into(cmds[i], plain, &want);
            opens = 0;
            fetch_into(cmds[i], &msg, &got);
            CHECK(opens == 0);
            CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
        }
        CHECK(k.loads == 0);
    }
    for (size_t i = 0; i < NSEARCH; i++) {
        struct imap_search *s = imap_search_compile(search_cmds[i], 5, 10);
        struct imap_msg_content *content = NULL;
        int a = imap_search_match(s, plain, &content);
        imap_msg_content_free(&content);
        int b = imap_search_match(s, &msg, &content);
        imap_msg_content_free(&content);
        CHECK(a == b);
        imap_search_free(&s);
    }
    free(k.data);
    buf_free(&want);
    buf_free(&got);
}

/* The literal of a one-item response. */
static const char *literal(const struct buf *b, size_t *n_r)
{
    const char *p = memchr(b->data, '{', b->len);
    CHECK(p != NULL);
    size_t n = 0;
    for (p++; *p >= '0' && *p <= '9'; p++)
        n = n * 10 + (size_t)(*p - '0');
    CHECK(memcmp(p, "}\r\n", 3) == 0);
    *n_r = n;
    return p + 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0)
        init();
    if (size > (1u << 20))
        return 0;
    CHECK(ftruncate(memfd, 0) == 0);
    CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);

    struct imap_msg msg = {
        .seq = 1,
        .uid = 1,
        .maildir_flags = size % 2 ? "FS" : "",
        .recent = (int)(size % 3 == 0),
        .internal_date = (int64_t)size * 86400,
        .crlf_size = mime_crlf_size((const char *)data, size),
        .modseq = size,
        .open = open_cb,
        .open_ctx = NULL,
    };
    struct imap_msg_content *content = NULL;
    struct buf out, whole, header;
    buf_init(&out, 0);
    buf_init(&whole, 0);
    buf_init(&header, 0);

    /* header-only first, then the same content grows to the whole file */
    CHECK(imap_msg_fetch(header_cmd, &msg, 0, &content, &header, NULL) == 0);
    check_response(&header);
    /* what a kept header relies on (imap_msg_search.c root_header): the
       header of a header-only load is all of its bytes */
    CHECK(content != NULL && content->mime != NULL);
    CHECK(content->mime->root->header_offset == 0 &&
          content->mime->root->header_size == content->size);
    CHECK(imap_msg_fetch(whole_cmd, &msg, 0, &content, &whole, NULL) == 0);
    check_response(&whole);
    CHECK(content != NULL && content->whole);
    CHECK(imap_msg_fetch(header_cmd, &msg, 0, &content, &out, NULL) == 0);
    CHECK(out.len == header.len && memcmp(out.data, header.data, out.len) == 0);
    size_t wlen;
    const char *w = literal(&whole, &wlen);
    CHECK(wlen == msg.crlf_size);

    for (size_t i = 0; i < NFETCH; i++) {
        buf_reset(&out);
        unsigned options = (unsigned)(i + size) & 7u;
        uint64_t bytes = 0;
        CHECK(imap_msg_fetch(fetch_cmds[i], &msg, options, &content, &out, &bytes) == 0);
        check_response(&out);
        CHECK(bytes <= out.len);
    }
    for (size_t i = 0; i < NPARTIAL; i++) {
        buf_reset(&out);
        CHECK(imap_msg_fetch(partial_cmds[i], &msg, 0, &content, &out, NULL) == 0);
        check_response(&out);
        size_t n, o = partials[i][0];
        const char *p = literal(&out, &n);
        size_t want = o >= wlen ? 0 : wlen - o;
        if (want > partials[i][1])
            want = partials[i][1];
        CHECK(n == want);
        CHECK(n == 0 || memcmp(p, w + o, n) == 0);
    }
    imap_msg_content_free(&content);
    check_kept_header(&msg, size);

    for (size_t i = 0; i < NSEARCH; i++) {
        struct imap_search *s = imap_search_compile(search_cmds[i], 5, 10);
        int r = imap_search_match(s, &msg, &content);
        CHECK(r == 0 || r == 1);
        imap_search_free(&s);
        CHECK(s == NULL);
        imap_msg_content_free(&content);
    }

    int64_t utc;
    int y, m, d;
    if (imap_msg_parse_date((const char *)data, size, &utc, &y, &m, &d) == 0)
        CHECK(y >= 1900 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= 31);
    buf_reset(&out);
    imap_msg_decode_header(&out, (const char *)data, size);

    buf_free(&out);
    buf_free(&whole);
    buf_free(&header);
    return 0;
}
