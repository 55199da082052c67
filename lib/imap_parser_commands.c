/*
 * NAME
 *	imap_parser_commands - IMAP command table and per-command grammar
 * DESCRIPTION
 *	imap_gram_parse(): tag SP command [arguments], where the command
 *	name is case-insensitive and UID prefixes FETCH, STORE, COPY, MOVE,
 *	SEARCH and EXPUNGE. Each command's arguments follow RFC 3501
 *	section 9 plus SASL-IR (RFC 4959), MOVE (RFC 6851), UIDPLUS UID
 *	EXPUNGE (RFC 4315), ENABLE (RFC 5161), ID (RFC 2971), UNSELECT (RFC
 *	3691), NAMESPACE (RFC 2342), IDLE (RFC 2177) and the CONDSTORE
 *	select parameter (RFC 7162). Arguments are separated by exactly one
 *	space and nothing may follow the last one.
 * DIAGNOSTICS
 *	A line without a valid tag is an untagged error; an unknown command
 *	is "Unknown command"; everything else is a tagged error whose text
 *	names the command.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap_parser_private.h"

typedef int parse_fn(struct imap_gram *g);

struct command_def {
    const char *name;
    enum imap_cmd cmd;
    parse_fn *parse;   /* NULL: no arguments */
    int uid_ok;        /* may follow UID */
};

static parse_fn parse_authenticate, parse_login, parse_select, parse_mailbox, parse_rename,
    parse_list, parse_status, parse_append, parse_copy, parse_expunge, parse_enable, parse_id,
    parse_search, parse_fetch, parse_store;

static const struct command_def commands[] = {
    {"CAPABILITY", IMAP_CMD_CAPABILITY, NULL, 0},
    {"NOOP", IMAP_CMD_NOOP, NULL, 0},
    {"LOGOUT", IMAP_CMD_LOGOUT, NULL, 0},
    {"STARTTLS", IMAP_CMD_STARTTLS, NULL, 0},
    {"AUTHENTICATE", IMAP_CMD_AUTHENTICATE, parse_authenticate, 0},
    {"LOGIN", IMAP_CMD_LOGIN, parse_login, 0},
    {"SELECT", IMAP_CMD_SELECT, parse_select, 0},
    {"EXAMINE", IMAP_CMD_EXAMINE, parse_select, 0},
    {"CREATE", IMAP_CMD_CREATE, parse_mailbox, 0},
    {"DELETE", IMAP_CMD_DELETE, parse_mailbox, 0},
    {"RENAME", IMAP_CMD_RENAME, parse_rename, 0},
    {"SUBSCRIBE", IMAP_CMD_SUBSCRIBE, parse_mailbox, 0},
    {"UNSUBSCRIBE", IMAP_CMD_UNSUBSCRIBE, parse_mailbox, 0},
    {"LIST", IMAP_CMD_LIST, parse_list, 0},
    {"LSUB", IMAP_CMD_LSUB, parse_list, 0},
    {"STATUS", IMAP_CMD_STATUS, parse_status, 0},
    {"APPEND", IMAP_CMD_APPEND, parse_append, 0},
    {"CHECK", IMAP_CMD_CHECK, NULL, 0},
    {"CLOSE", IMAP_CMD_CLOSE, NULL, 0},
    {"EXPUNGE", IMAP_CMD_EXPUNGE, parse_expunge, 1},
    {"SEARCH", IMAP_CMD_SEARCH, parse_search, 1},
    {"FETCH", IMAP_CMD_FETCH, parse_fetch, 1},
    {"STORE", IMAP_CMD_STORE, parse_store, 1},
    {"COPY", IMAP_CMD_COPY, parse_copy, 1},
    {"MOVE", IMAP_CMD_MOVE, parse_copy, 1},
    {"IDLE", IMAP_CMD_IDLE, NULL, 0},
    {"UNSELECT", IMAP_CMD_UNSELECT, NULL, 0},
    {"NAMESPACE", IMAP_CMD_NAMESPACE, NULL, 0},
    {"ENABLE", IMAP_CMD_ENABLE, parse_enable, 0},
    {"ID", IMAP_CMD_ID, parse_id, 0},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const char *imap_cmd_name(enum imap_cmd cmd)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].cmd == cmd)
            return commands[i].name;
    return "UNKNOWN";
}

static const struct command_def *find_command(const char *word, size_t len)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (imap_gram_word_is(word, len, commands[i].name))
            return &commands[i];
    return NULL;
}

/* Reads a command name: letters only, and it must end at a space or at
   the end of the line (so "FETCH(" is not FETCH). */
static const struct command_def *command_name(struct imap_gram *g)
{
    size_t start = g->pos;
    while (g->pos < g->len) {
        char c = g->buf[g->pos];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            break;
        g->pos++;
    }
    size_t len = g->pos - start;
    if (len == 0 || (g->pos < g->len && g->buf[g->pos] != ' '))
        return NULL;
    return find_command(g->buf + start, len);
}

enum imap_gram_outcome imap_gram_parse(struct imap_gram *g)
{
    g->cmd = imap_arena_alloc(g->arena, sizeof(*g->cmd));
    g->cmd->arena = g->arena;
    if (!imap_gram_peek_tag(g->buf, g->len, g->cmd->tag)) {
        /* "A1" alone: a tag without a command. */
        char probe[IMAP_TAG_MAX + 3];
        if (g->len <= IMAP_TAG_MAX) {
            memcpy(probe, g->buf, g->len);
            probe[g->len] = ' ';
            if (imap_gram_peek_tag(probe, g->len + 1, g->cmd->tag)) {
                imap_gram_error(g, "Missing command");
                return IMAP_GRAM_ERROR;
            }
        }
        int nul = memchr(g->buf, '\0', g->len < 80 ? g->len : 80) != NULL;
        imap_gram_fail(g, nul ? IMAP_PERR_NUL : IMAP_PERR_TAG, 0,
                       nul ? "NUL byte in command" : "Missing or invalid tag");
        return IMAP_GRAM_ERROR;
    }
    g->pos = strlen(g->cmd->tag) + 1;
    if (imap_gram_at_end(g)) {
        imap_gram_error(g, "Missing command");
        return IMAP_GRAM_ERROR;
    }
    const struct command_def *def = command_name(g);
    if (def != NULL && def->cmd == IMAP_CMD_UNKNOWN)
        def = NULL;
    int uid = 0;
    if (def == NULL && g->pos - (strlen(g->cmd->tag) + 1) == 3 &&
        strncasecmp(g->buf + strlen(g->cmd->tag) + 1, "UID", 3) == 0) {
        snprintf(g->cmd_name, sizeof(g->cmd_name), "UID");
        if (imap_gram_peek(g) != ' ') {
            imap_gram_error(g, "Missing UID command");
            return IMAP_GRAM_ERROR;
        }
        g->pos++;
        def = command_name(g);
        if (def == NULL || !def->uid_ok) {
            imap_gram_error(g, "Unknown UID command");
            return IMAP_GRAM_ERROR;
        }
        uid = 1;
    }
    if (def == NULL) {
        imap_gram_fail(g, IMAP_PERR_UNKNOWN_COMMAND, 0, "Unknown command");
        return IMAP_GRAM_ERROR;
    }
    g->cmd->cmd = def->cmd;
    g->cmd->uid = uid;
    snprintf(g->cmd_name, sizeof(g->cmd_name), "%s%s", uid ? "UID " : "", def->name);
    if (def->parse != NULL && def->parse(g) < 0)
        return g->partial ? IMAP_GRAM_PARTIAL : IMAP_GRAM_ERROR;
    if (!imap_gram_at_end(g)) {
        imap_gram_error(g, imap_gram_peek(g) == ')' ? "Unexpected ')'"
                                                    : "Unexpected extra arguments");
        return IMAP_GRAM_ERROR;
    }
    return IMAP_GRAM_OK;
}

/* Commands ---------------------------------------------------------- */

static int is_base64(const char *s, size_t len)
{
    size_t pad = 0;
    if (len == 0 || len % 4 != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0)
            return 0;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return pad <= 2;
}

static int parse_authenticate(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_atom(g, &cmd->u.authenticate.mechanism) < 0)
        return -1;
    for (char *p = cmd->u.authenticate.mechanism; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    if (imap_gram_peek(g) != ' ')
        return 0;
    if (imap_gram_sp(g) < 0)
        return -1;
    size_t start = g->pos;
    while (g->pos < g->len && g->buf[g->pos] != ' ')
        g->pos++;
    size_t len = g->pos - start;
    if (len == 1 && g->buf[start] == '=') {
        cmd->u.authenticate.initial_response = imap_arena_strndup(g->arena, "", 0);
        return 0;
    }
    if (!is_base64(g->buf + start, len))
        return imap_gram_error(g, "Invalid base64 initial response");
    cmd->u.authenticate.initial_response = imap_arena_strndup(g->arena, g->buf + start, len);
    return 0;
}

static int parse_login(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_astring(g, &cmd->u.login.user, NULL) < 0 ||
        imap_gram_sp(g) < 0 || imap_gram_astring(g, &cmd->u.login.password, NULL) < 0)
        return -1;
    return 0;
}

static int parse_select(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.select.mailbox) < 0)
        return -1;
    if (imap_gram_peek(g) != ' ')
        return 0;
    if (imap_gram_sp(g) < 0 || imap_gram_open(g) < 0)
        return -1;
    for (;;) {
        const char *w;
        size_t len;
        imap_gram_word(g, &w, &len);
        if (!imap_gram_word_is(w, len, "CONDSTORE"))
            return imap_gram_error(g, "Unknown select parameter");
        cmd->u.select.condstore = 1;
        if (imap_gram_peek(g) != ' ')
            break;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_char(g, ')', "')'");
}

static int parse_mailbox(struct imap_gram *g)
{
    if (imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &g->cmd->u.mailbox.mailbox) < 0)
        return -1;
    return 0;
}

static int parse_rename(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.rename.from) < 0 ||
        imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.rename.to) < 0)
        return -1;
    return 0;
}

static int parse_list(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_list_reference(g, &cmd->u.list.reference) < 0 ||
        imap_gram_sp(g) < 0 || imap_gram_list_mailbox(g, &cmd->u.list.pattern) < 0)
        return -1;
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} status_items[] = {
    {"MESSAGES", IMAP_STATUS_MESSAGES},         {"RECENT", IMAP_STATUS_RECENT},
    {"UIDNEXT", IMAP_STATUS_UIDNEXT},           {"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},
    {"UNSEEN", IMAP_STATUS_UNSEEN},             {"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
};

static int parse_status(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.status.mailbox) < 0 ||
        imap_gram_sp(g) < 0 || imap_gram_open(g) < 0)
        return -1;
    for (;;) {
        const char *w;
        size_t len;
        imap_gram_word(g, &w, &len);
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++)
            if (imap_gram_word_is(w, len, status_items[i].name))
                bit = status_items[i].bit;
        if (bit == 0)
            return imap_gram_error(g, imap_gram_at_end(g) && len == 0 ? "Missing ')'"
                                                                       : "Unknown status item");
        /* RFC 3501's example answers in the order asked. */
        if ((cmd->u.status.items & bit) == 0 && cmd->u.status.norder < 6)
            cmd->u.status.order[cmd->u.status.norder++] = bit;
        cmd->u.status.items |= bit;
        if (imap_gram_peek(g) != ' ')
            break;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_char(g, ')', "')'");
}

static int parse_append(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.append.mailbox) < 0 ||
        imap_gram_sp(g) < 0)
        return -1;
    if (imap_gram_peek(g) == '(') {
        if (imap_gram_flag_list(g, &cmd->u.append.flags, &cmd->u.append.nflags) < 0 ||
            imap_gram_sp(g) < 0)
            return -1;
    }
    if (imap_gram_peek(g) == '"') {
        if (imap_gram_datetime(g, &cmd->u.append.date) < 0 || imap_gram_sp(g) < 0)
            return -1;
        cmd->u.append.has_date = 1;
    }
    char *unused;
    size_t size;
    /* The size and sync kind come from the literal; in prefix mode the
       literal reader stops here and the framer fills them in. */
    if (imap_gram_string(g, IMAP_LITCTX_APPEND, &unused, &size) < 0)
        return -1;
    cmd->u.append.message_size = size;
    return 0;
}

static int parse_copy(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_seqset(g, &cmd->u.copy.set) < 0 ||
        imap_gram_sp(g) < 0 || imap_gram_mailbox(g, &cmd->u.copy.mailbox) < 0)
        return -1;
    return 0;
}

static int parse_expunge(struct imap_gram *g)
{
    if (!g->cmd->uid)
        return 0;
    if (imap_gram_sp(g) < 0 || imap_gram_seqset(g, &g->cmd->u.expunge.set) < 0)
        return -1;
    return 0;
}

static int parse_enable(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    size_t cap = 0;
    do {
        if (imap_gram_sp(g) < 0)
            return -1;
        cmd->u.enable.names = imap_arena_grow(g->arena, cmd->u.enable.names,
                                              cmd->u.enable.count, &cap, sizeof(char *));
        if (imap_gram_atom(g, &cmd->u.enable.names[cmd->u.enable.count]) < 0)
            return -1;
        cmd->u.enable.count++;
    } while (imap_gram_peek(g) == ' ');
    return 0;
}

/* RFC 2971 limits: 30 pairs, fields of 30 and values of 1024 octets. */
#define ID_PAIRS_MAX 30
#define ID_FIELD_MAX 30
#define ID_VALUE_MAX 1024

static int parse_id(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0)
        return -1;
    if (imap_gram_peek(g) != '(') {
        const char *w;
        size_t len;
        imap_gram_word(g, &w, &len);
        if (!imap_gram_word_is(w, len, "NIL"))
            return imap_gram_error(g, "Expected a parameter list or NIL");
        cmd->u.id.nil = 1;
        return 0;
    }
    if (imap_gram_open(g) < 0)
        return -1;
    if (imap_gram_peek(g) == ')') {
        g->pos++;
        return 0;
    }
    cmd->u.id.fields = imap_arena_alloc(g->arena, ID_PAIRS_MAX * sizeof(char *));
    cmd->u.id.values = imap_arena_alloc(g->arena, ID_PAIRS_MAX * sizeof(char *));
    for (;;) {
        size_t n = cmd->u.id.count, flen, vlen;
        if (n >= ID_PAIRS_MAX)
            return imap_gram_error(g, "Too many ID parameters");
        if (imap_gram_string(g, IMAP_LITCTX_STRING, &cmd->u.id.fields[n], &flen) < 0)
            return -1;
        if (flen > ID_FIELD_MAX)
            return imap_gram_error(g, "ID field name too long");
        if (imap_gram_sp(g) < 0 || imap_gram_nstring(g, &cmd->u.id.values[n], &vlen) < 0)
            return -1;
        if (vlen > ID_VALUE_MAX)
            return imap_gram_error(g, "ID value too long");
        cmd->u.id.count++;
        if (imap_gram_peek(g) != ' ')
            break;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_char(g, ')', "')'");
}

static int parse_search(struct imap_gram *g)
{
    return imap_gram_search(g);
}

static int parse_fetch(struct imap_gram *g)
{
    return imap_gram_fetch(g);
}

static int parse_store(struct imap_gram *g)
{
    return imap_gram_store(g);
}
