/*
 * NAME
 *	imap_msg - flags, dates and the loaded message of lib/imap_msg.h
 * DESCRIPTION
 *	Maildir letters <-> IMAP flags (system flags, and keywords through
 *	the folder's map), INTERNALDATE text, RFC 5322
 *	Date: parsing for SENT* searches, and imap_msg_content_load(),
 *	which reads a message file (its header alone when that is enough)
 *	and parses it with lib/mime once. For header-only needs it first
 *	asks the caller's header_get hook (struct imap_msg_cache) and
 *	parses the kept header instead of opening the file; a header it
 *	reads from a file goes to the header_loaded hook.
 *
 *	The date parser takes RFC 5322 dates and the obsolete forms still
 *	found in old mail: no weekday, no seconds, two- and three-digit
 *	years, zone names (UT, GMT, EST ... PDT), military letters and a
 *	missing zone (both taken as +0000), comments and extra blanks,
 *	month names spelled out, "-" between day, month and year.
 * LIMITS
 *	IMAP_MSG_MAX_LOAD bytes per message, IMAP_MSG_MAX_HEADER for a
 *	header-only load (a longer header makes the load take the whole
 *	file); headers up to IMAP_MSG_CACHE_HEADER_MAX go to
 *	header_loaded. A kept header is parsed like a file's, whatever
 *	its bytes. Years 1900..9999; INTERNALDATE clamps to 1970..9999.
 * DIAGNOSTICS
 *	imap_msg_content_load() returns -1 with errno: the open callback's
 *	errno, EFBIG for a file over IMAP_MSG_MAX_LOAD, read()'s errno.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imap_msg_private.h"
#include "xalloc.h"

/* The order Dovecot lists them in, which clients are used to. */
static const struct {
    char letter;
    const char *name;
} system_flags[] = {
    {'R', "\\Answered"}, {'F', "\\Flagged"}, {'T', "\\Deleted"},
    {'S', "\\Seen"},     {'D', "\\Draft"},
};
#define NSYSTEM_FLAGS (sizeof(system_flags) / sizeof(system_flags[0]))

void imap_msg_flags_format(const char *maildir_flags, const struct maildir_keywords *kw,
                           int recent, struct buf *out)
{
    int first = 1;
    buf_append_char(out, '(');
    for (size_t i = 0; i < NSYSTEM_FLAGS; i++) {
        if (maildir_flags == NULL || strchr(maildir_flags, system_flags[i].letter) == NULL)
            continue;
        if (!first)
            buf_append_char(out, ' ');
        buf_append_str(out, system_flags[i].name);
        first = 0;
    }
    if (recent) {
        if (!first)
            buf_append_char(out, ' ');
        buf_append_str(out, "\\Recent");
        first = 0;
    }
    for (const char *p = maildir_flags; kw != NULL && p != NULL && *p != '\0'; p++) {
        const char *name = maildir_keywords_name(kw, *p);
        if (name == NULL)
            continue;
        if (!first)
            buf_append_char(out, ' ');
        buf_append_str(out, name);
        first = 0;
    }
    buf_append_char(out, ')');
}

int imap_msg_flags_to_maildir(char *const *flags, size_t nflags,
                              const struct maildir_keywords *kw,
                              char out[IMAP_MSG_LETTERS_SIZE], const char **bad_r)
{
    unsigned mask = 0;
    uint32_t keywords = 0;
    const char *unknown = NULL;
    out[0] = '\0';
    for (size_t i = 0; i < nflags; i++) {
        const char *f = flags[i];
        if (f[0] != '\\') {
            char letter = maildir_keywords_letter(kw, f);
            if (letter != 0)
                keywords |= 1u << (letter - 'a');
            else if (unknown == NULL)
                unknown = f;
            continue;
        }
        size_t k = 0;
        while (k < NSYSTEM_FLAGS && strcasecmp(f, system_flags[k].name) != 0)
            k++;
        if (k == NSYSTEM_FLAGS) {  /* \Recent or an unknown system flag */
            if (bad_r != NULL)
                *bad_r = f;
            return -1;
        }
        mask |= 1u << k;
    }
    /* Maildir wants the letters in ASCII order: D F R S T. */
    static const char order[] = "DFRST";
    size_t n = 0;
    for (const char *l = order; *l != '\0'; l++)
        for (size_t k = 0; k < NSYSTEM_FLAGS; k++)
            if ((mask & (1u << k)) && system_flags[k].letter == *l)
                out[n++] = *l;
    for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX; k++)
        if (keywords & (1u << k))
            out[n++] = (char)('a' + k);
    out[n] = '\0';
    if (unknown != NULL) {
        if (bad_r != NULL)
            *bad_r = unknown;
        return 1;
    }
    return 0;
}

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void imap_msg_date_format(int64_t t, struct buf *out)
{
    /* 253402300799 is 9999-12-31 23:59:59: the date-year is 4 digits. */
    if (t < 0)
        t = 0;
    if (t > 253402300799LL)
        t = 253402300799LL;
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    buf_printf(out, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
               month_names[tm.tm_mon >= 0 && tm.tm_mon < 12 ? tm.tm_mon : 0], tm.tm_year + 1900,
               tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- the message file ---- */

void imap_msg_content_free(struct imap_msg_content **content_p)
{
    struct imap_msg_content *c = *content_p;
    if (c == NULL)
        return;
    mime_message_destroy(&c->mime);
    free(c->data);
    free(c);
    *content_p = NULL;
}

/* Offset just past the blank line that ends the header in data[0..len),
   or 0 when there is none yet. Scanning resumes at *scan_p. */
static size_t header_end(const char *data, size_t len, size_t *scan_p)
{
    size_t i = *scan_p;
    /* an empty header: the message starts with its blank line */
    if (len >= 1 && data[0] == '\n')
        return 1;
    if (len >= 2 && data[0] == '\r' && data[1] == '\n')
        return 2;
    for (; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (i + 1 < len && data[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
            return i + 3;
        if (i + 2 >= len)
            break;  /* the blank line may still be arriving */
    }
    *scan_p = i;
    return 0;
}

/* Hands the header of a file just read (what a header-only load keeps)
   to the caller's header_loaded hook. */
static void report_header(const struct imap_msg *msg, const char *data, size_t len,
                          size_t hend)
{
    const struct imap_msg_cache *cache = msg->cache;
    if (cache == NULL || cache->header_loaded == NULL)
        return;
    if (hend == 0) {
        size_t scan = 0;
        hend = header_end(data, len, &scan);
    }
    size_t hlen = hend > 0 ? hend : len;
    if (hlen <= IMAP_MSG_CACHE_HEADER_MAX)
        cache->header_loaded(cache->header_ctx, msg->uid, data, hlen);
}

static int load(const struct imap_msg *msg, int whole, int report,
                struct imap_msg_content **content_r)
{
    int fd = msg->open(msg->open_ctx, msg->uid);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    /* The size is a hint only: the file may change under us. One byte
       more than expected lets the first read() see the end. */
    size_t cap = 16384;
    if (whole && st.st_size > 0 && (uint64_t)st.st_size < IMAP_MSG_MAX_LOAD)
        cap = (size_t)st.st_size + 1;
    char *data = xmalloc(cap);
    size_t len = 0, scan = 0, hend = 0;
    int eof = 0;
    for (;;) {
        if (len == cap) {
            if (len > IMAP_MSG_MAX_LOAD) {
                free(data);
                close(fd);
                errno = EFBIG;
                return -1;
            }
            cap = cap < 65536 ? 65536 : cap * 2;
            if (cap > IMAP_MSG_MAX_LOAD + 1)
                cap = IMAP_MSG_MAX_LOAD + 1;
            data = xreallocarray(data, cap, 1);
        }
        size_t want = cap - len;
        if (!whole && want > 65536)
            want = 65536;  /* keep a header-only read close to the header */
        ssize_t n = read(fd, data + len, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(data);
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        len += (size_t)n;
        if (!whole) {
            hend = header_end(data, len, &scan);
            if (hend > 0 && hend <= IMAP_MSG_MAX_HEADER)
                break;
            if (len > IMAP_MSG_MAX_HEADER)
                whole = 1;  /* an odd header: serve it from the whole file */
        }
    }
    close(fd);
    if (len > IMAP_MSG_MAX_LOAD) {
        free(data);
        errno = EFBIG;
        return -1;
    }
    if (report)
        report_header(msg, data, len, eof ? 0 : hend);
    struct imap_msg_content *c = xcalloc(1, sizeof(*c));
    c->uid = msg->uid;
    c->data = data;
    c->whole = eof;
    c->size = eof ? len : hend;
    c->mime = mime_message_parse(c->data, c->size, NULL);
    *content_r = c;
    return 0;
}

int imap_msg_content_cached(const struct imap_msg *msg, struct imap_msg_content **content_p)
{
    struct imap_msg_content *c = *content_p;
    if (c != NULL && c->uid == msg->uid)
        return 1;
    const struct imap_msg_cache *cache = msg->cache;
    if (cache == NULL || cache->header_get == NULL)
        return 0;
    size_t len = 0;
    char *header = cache->header_get(cache->header_ctx, msg->uid, &len);
    if (header == NULL)
        return 0;
    /* The same bytes as a header-only load from the file gives, so the
       same items; parsed when an item needs the tree (header SEARCH
       keys do not: the header is data[0..size), as lib/mime would end
       it at the same first empty line). */
    struct imap_msg_content *fresh = xcalloc(1, sizeof(*fresh));
    fresh->uid = msg->uid;
    fresh->data = header;
    fresh->size = len;
    fresh->whole = 0;
    imap_msg_content_free(content_p);
    *content_p = fresh;
    return 1;
}

void imap_msg_content_parse(struct imap_msg_content *c)
{
    if (c->mime == NULL)
        c->mime = mime_message_parse(c->data, c->size, NULL);
}

static int content_load(const struct imap_msg *msg, enum imap_msg_need need, int asked,
                        struct imap_msg_content **content_p)
{
    struct imap_msg_content *c = *content_p;
    if (need == IMAP_MSG_NEED_NONE)
        return 0;
    if (c != NULL && c->uid == msg->uid && (c->whole || need == IMAP_MSG_NEED_HEADER))
        return 0;
    if (need == IMAP_MSG_NEED_HEADER && !asked && imap_msg_content_cached(msg, content_p))
        return 0;
    /* A header is reported when the caller's cache lacks it: the
       header_get hook was asked in vain (a whole load for some other
       reason says nothing, or every BODY[] fetch would store headers
       again). */
    int report = need == IMAP_MSG_NEED_HEADER || asked;
    struct imap_msg_content *fresh = NULL;
    if (load(msg, need == IMAP_MSG_NEED_WHOLE, report, &fresh) < 0)
        return -1;
    imap_msg_content_free(content_p);
    *content_p = fresh;
    return 0;
}

int imap_msg_content_load(const struct imap_msg *msg, enum imap_msg_need need,
                          struct imap_msg_content **content_p)
{
    return content_load(msg, need, 0, content_p);
}

int imap_msg_content_load_uncached(const struct imap_msg *msg, enum imap_msg_need need,
                                   struct imap_msg_content **content_p)
{
    return content_load(msg, need, 1, content_p);
}

/* ---- RFC 5322 dates ---- */

struct date_scan {
    const char *p, *end;
};

/* Skips blanks, line breaks and (nested) comments: CFWS. */
static void skip_cfws(struct date_scan *s)
{
    while (s->p < s->end) {
        char c = *s->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            s->p++;
        } else if (c == '(') {
            unsigned depth = 0;
            while (s->p < s->end) {
                c = *s->p++;
                if (c == '\\' && s->p < s->end)
                    s->p++;
                else if (c == '(')
                    depth++;
                else if (c == ')' && --depth == 0)
                    break;
            }
        } else {
            break;
        }
    }
}

static size_t scan_word(struct date_scan *s, const char **w_r)
{
    *w_r = s->p;
    while (s->p < s->end && isalpha((unsigned char)*s->p))
        s->p++;
    return (size_t)(s->p - *w_r);
}

/* Reads 1..max digits; returns the count (0: none) and the value. */
static int scan_number(struct date_scan *s, int max, int *n_r)
{
    int n = 0, digits = 0;
    while (s->p < s->end && isdigit((unsigned char)*s->p) && digits < max) {
        n = n * 10 + (*s->p++ - '0');
        digits++;
    }
    *n_r = n;
    return digits;
}

static int month_from_name(const char *w, size_t len)
{
    static const char *const full[12] = {"january", "february", "march",     "april",
                                         "may",     "june",     "july",      "august",
                                         "september", "october", "november", "december"};
    if (len < 3)
        return 0;
    for (int m = 0; m < 12; m++)
        if (strncasecmp(w, month_names[m], 3) == 0 &&
            (len == 3 || (len == strlen(full[m]) && strncasecmp(w, full[m], len) == 0) ||
             (m == 8 && len == 4 && strncasecmp(w, "sept", 4) == 0)))
            return m + 1;
    return 0;
}

/* obs-zone names; military letters and unknown names are -0000 (unknown),
   which counts as UTC. */
static int zone_from_name(const char *w, size_t len)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"UT", 0},      {"UTC", 0},     {"GMT", 0},     {"Z", 0},
                 {"EST", -300},  {"EDT", -240},  {"CST", -360},  {"CDT", -300},
                 {"MST", -420},  {"MDT", -360},  {"PST", -480},  {"PDT", -420}};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        if (strlen(zones[i].name) == len && strncasecmp(w, zones[i].name, len) == 0)
            return zones[i].minutes;
    return 0;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t imap_msg_days(int year, int month, int day)
{
    return days_from_civil(year, month, day);
}

int imap_msg_parse_date(const char *text, size_t len, int64_t *utc_r, int *year_r,
                        int *month_r, int *day_r)
{
    struct date_scan s = {text, text + len};
    const char *w;
    size_t wlen;
    int day, month, year, hour, min, sec = 0, zone = 0, n;

    skip_cfws(&s);
    if (s.p < s.end && isalpha((unsigned char)*s.p)) {
        wlen = scan_word(&s, &w);  /* day-of-week: not checked against the date */
        if (wlen < 3)
            return -1;
        skip_cfws(&s);
        if (s.p < s.end && *s.p == ',')
            s.p++;
        skip_cfws(&s);
    }
    if (scan_number(&s, 2, &day) == 0)
        return -1;
    skip_cfws(&s);
    if (s.p < s.end && *s.p == '-')
        s.p++;
    skip_cfws(&s);
    wlen = scan_word(&s, &w);
    if ((month = month_from_name(w, wlen)) == 0)
        return -1;
    skip_cfws(&s);
    if (s.p < s.end && *s.p == '-')
        s.p++;
    skip_cfws(&s);
    n = scan_number(&s, 4, &year);
    if (n == 2)
        year += year < 50 ? 2000 : 1900;
    else if (n == 3)
        year += 1900;
    else if (n != 4)
        return -1;
    skip_cfws(&s);
    if (scan_number(&s, 2, &hour) == 0)
        return -1;
    skip_cfws(&s);
    if (s.p >= s.end || *s.p++ != ':')
        return -1;
    skip_cfws(&s);
    if (scan_number(&s, 2, &min) == 0)
        return -1;
    skip_cfws(&s);
    if (s.p < s.end && *s.p == ':') {
        s.p++;
        skip_cfws(&s);
        if (scan_number(&s, 2, &sec) == 0)
            return -1;
        skip_cfws(&s);
    }
    if (s.p < s.end && (*s.p == '+' || *s.p == '-')) {
        int sign = *s.p++ == '-' ? -1 : 1;
        int hhmm;
        if (scan_number(&s, 4, &hhmm) != 4 || hhmm % 100 > 59)
            return -1;
        zone = sign * (hhmm / 100 * 60 + hhmm % 100);
    } else if (s.p < s.end && isalpha((unsigned char)*s.p)) {
        wlen = scan_word(&s, &w);
        zone = zone_from_name(w, wlen);
    }
    /* Whatever follows (a comment, junk) is ignored: the date is known. */
    if (year < 1900 || year > 9999 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || min > 59 || sec > 60)
        return -1;
    if (utc_r != NULL)
        *utc_r = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec -
                 (int64_t)zone * 60;
    if (year_r != NULL)
        *year_r = year;
    if (month_r != NULL)
        *month_r = month;
    if (day_r != NULL)
        *day_r = day;
    return 0;
}
