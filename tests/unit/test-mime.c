/* Unit tests for lib/mime*.c: the part tree, CRLF sizes and lines,
   section numbers and byte ranges, HEADER.FIELDS, ENVELOPE, BODY and
   BODYSTRUCTURE text (expected strings checked against RFC 3501 and,
   where the choices agree, Dovecot 2.3), broken input and the limits.
   Every parse is followed by a walk that checks each range lies inside
   the buffer and inside its parent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "mime.h"
#include "xalloc.h"

/* ---- helpers ---- */

static void check_part(const struct mime_message *msg, const struct mime_part *part)
{
    assert_true(part->header_offset + part->header_size == part->body_offset);
    assert_true(part->body_offset + part->body_size <= msg->size);
    assert_true(part->header_crlf_size >= part->header_size);
    assert_true(part->body_crlf_size >= part->body_size);
    assert_int_equal(part->body_crlf_size,
                     mime_crlf_size(msg->data + part->body_offset, part->body_size));
    assert_int_equal(part->header_crlf_size,
                     mime_crlf_size(msg->data + part->header_offset, part->header_size));
    size_t lines = 0;
    for (size_t i = 0; i < part->body_size; i++)
        lines += msg->data[part->body_offset + i] == '\n';
    assert_int_equal(lines, part->body_lines);
    assert_non_null(part->type);
    assert_non_null(part->subtype);
    if (part->parent != NULL) {
        const struct mime_part *pp = part->parent;
        assert_true(part->header_offset >= pp->body_offset);
        assert_true(part->body_offset + part->body_size <= pp->body_offset + pp->body_size);
        assert_int_equal(part->depth, pp->depth + 1);
    }
    unsigned n = 0;
    for (const struct mime_part *c = part->children; c != NULL; c = c->next, n++) {
        assert_ptr_equal(c->parent, part);
        check_part(msg, c);
    }
    assert_int_equal(n, part->nchildren);
    if (part->flags & MIME_PART_MESSAGE) {
        assert_int_equal(n, 1);
        assert_int_equal(part->children->header_offset, part->body_offset);
    }
}

static struct mime_message *parse_len(const char *text, size_t len,
                                      const struct mime_limits *limits)
{
    struct mime_message *msg = mime_message_parse(text, len, limits);
    assert_non_null(msg);
    check_part(msg, msg->root);
    assert_int_equal(msg->crlf_size, mime_crlf_size(text, len));
    return msg;
}

static struct mime_message *parse(const char *text)
{
    return parse_len(text, strlen(text), NULL);
}

static char *bodystructure(const struct mime_message *msg, int ext)
{
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_imap_bodystructure(msg, msg->root, ext, &b), 0);
    return buf_steal(&b);
}

static char *envelope(const struct mime_message *msg)
{
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_imap_envelope(msg, msg->root, &b), 0);
    return buf_steal(&b);
}

static void assert_bs(const char *text, int ext, const char *expected)
{
    struct mime_message *msg = parse(text);
    char *s = bodystructure(msg, ext);
    assert_string_equal(s, expected);
    free(s);
    mime_message_destroy(&msg);
    assert_null(msg);
}

static void assert_env(const char *text, const char *expected)
{
    struct mime_message *msg = parse(text);
    char *s = envelope(msg);
    assert_string_equal(s, expected);
    free(s);
    mime_message_destroy(&msg);
}

/* The bytes of BODY[section] as the client gets them (CRLF form). */
static char *section(const struct mime_message *msg, const char *numbers,
                     enum mime_section_kind kind)
{
    struct mime_range r;
    const char *error = NULL;
    if (mime_section_range(msg, numbers, kind, &r, &error) < 0) {
        assert_non_null(error);
        return NULL;
    }
    assert_true(r.offset + r.size <= msg->size);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_append_crlf(&b, msg->data + r.offset, r.size), 0);
    assert_int_equal(b.len, r.crlf_size);
    return buf_steal(&b);
}

static void assert_section(const struct mime_message *msg, const char *numbers,
                           enum mime_section_kind kind, const char *expected)
{
    char *s = section(msg, numbers, kind);
    if (expected == NULL) {
        assert_null(s);
        return;
    }
    assert_non_null(s);
    assert_string_equal(s, expected);
    free(s);
}

static char *to_crlf(const char *text)
{
    struct buf b;
    buf_init(&b, 0);
    mime_append_crlf(&b, text, strlen(text));
    return buf_steal(&b);
}

static char *header_fields(const struct mime_message *msg, const char *numbers,
                           const char *const *names, size_t n, int exclude)
{
    struct mime_range r;
    const char *error;
    assert_int_equal(mime_section_range(msg, numbers, exclude ? MIME_SECTION_HEADER_FIELDS_NOT
                                                              : MIME_SECTION_HEADER_FIELDS,
                                        &r, &error),
                     0);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_header_filter(msg, &r, names, n, exclude, &b), 0);
    return buf_steal(&b);
}

/* ---- simple messages ---- */

static const char simple[] = "From: Alice <alice@example.org>\n"
                             "To: bob@example.net\n"
                             "Subject: Hello\n"
                             "\n"
                             "Hello Bob,\n"
                             "bye.\n";

static void test_simple_text_lf_and_crlf_same_structure(void **state)
{
    const char *expected = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 2 "
                           "NIL NIL NIL NIL)";
    assert_bs(simple, 1, expected);
    char *crlf = to_crlf(simple);
    assert_bs(crlf, 1, expected);
    assert_bs(crlf, 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 2)");

    struct mime_message *a = parse(simple), *b = parse(crlf);
    assert_int_equal(a->root->header_crlf_size, b->root->header_size);
    assert_int_equal(a->root->body_crlf_size, b->root->body_size);
    assert_int_equal(a->crlf_size, b->size);
    assert_int_equal(a->lines, b->lines);
    assert_int_equal(a->root->header_lines, 4);
    assert_int_equal(a->nparts, 1);
    assert_string_equal(a->root->type, "text");
    assert_true(a->root->flags & MIME_PART_DEFAULT_TYPE);
    /* a non-multipart message's only part is 1 */
    assert_ptr_equal(mime_part_find(a->root, "1"), a->root);
    assert_null(mime_part_find(a->root, "2"));
    assert_section(a, "1", MIME_SECTION_BODY, "Hello Bob,\r\nbye.\r\n");
    assert_section(a, "", MIME_SECTION_TEXT, "Hello Bob,\r\nbye.\r\n");
    assert_section(b, "", MIME_SECTION_BODY, crlf);
    assert_section(a, "", MIME_SECTION_BODY, crlf);
    assert_section(a, "", MIME_SECTION_HEADER,
                   "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
                   "Subject: Hello\r\n\r\n");
    free(crlf);
    mime_message_destroy(&a);
    mime_message_destroy(&b);
}

static void test_content_fields_and_case(void **state)
{
    assert_bs("Content-Type: TEXT/HTML; CHARSET=\"UTF-8\" (comment); Format=flowed\n"
              "Content-Transfer-Encoding: QUOTED-PRINTABLE\n"
              "Content-ID: <id1@x>\n"
              "Content-Description: a \"nice\"\n  part\n"
              "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
              "Content-Language: en-US\n"
              "Content-Location: http://example.org/a\n"
              "\n"
              "<p>x</p>\n",
              1,
              "(\"text\" \"html\" (\"charset\" \"UTF-8\" \"format\" \"flowed\") \"<id1@x>\" "
              "\"a \\\"nice\\\"  part\" \"quoted-printable\" 10 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
              "NIL \"en-US\" \"http://example.org/a\")");
    /* text with parameters but no charset: us-ascii is added */
    assert_bs("Content-Type: text/plain; format=flowed\n\nx", 0,
              "(\"text\" \"plain\" (\"format\" \"flowed\" \"charset\" \"us-ascii\") NIL NIL "
              "\"7bit\" 1 0)");
    /* non-text without parameters: NIL, no lines */
    assert_bs("Content-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBO\n", 1,
              "(\"image\" \"png\" NIL NIL NIL \"base64\" 6 NIL NIL NIL NIL)");
    /* several languages are a list */
    assert_bs("Content-Type: text/plain; charset=utf-8\nContent-Language: en, de (German)\n\n", 1,
              "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 0 0 NIL NIL "
              "(\"en\" \"de\") NIL)");
}

/* ---- multiparts ---- */

static const char alternative[] = "From: a@example.org\n"
                                  "Content-Type: multipart/alternative; boundary=\"=_b1\"\n"
                                  "\n"
                                  "This is a preamble.\n"
                                  "--=_b1\n"
                                  "Content-Type: text/plain; charset=utf-8\n"
                                  "\n"
                                  "plain\n"
                                  "text\n"
                                  "--=_b1\n"
                                  "Content-Type: text/html; charset=utf-8\n"
                                  "\n"
                                  "<b>html</b>\n"
                                  "\n"
                                  "--=_b1--\n"
                                  "epilogue\n";

static void test_multipart_alternative(void **state)
{
    const char *expected =
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL)"
        "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 13 1 NIL NIL NIL NIL) "
        "\"alternative\" (\"boundary\" \"=_b1\") NIL NIL NIL)";
    assert_bs(alternative, 1, expected);
    assert_bs(alternative, 0,
              "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 1)"
              "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 13 1) \"alternative\")");
    char *crlf = to_crlf(alternative);
    assert_bs(crlf, 1, expected);
    free(crlf);

    struct mime_message *msg = parse(alternative);
    assert_int_equal(msg->nparts, 3);
    assert_true(msg->root->flags & MIME_PART_MULTIPART);
    assert_false(msg->root->flags & MIME_PART_UNTERMINATED);
    assert_section(msg, "1", MIME_SECTION_BODY, "plain\r\ntext");
    assert_section(msg, "2", MIME_SECTION_BODY, "<b>html</b>\r\n");
    assert_section(msg, "1", MIME_SECTION_MIME, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
    assert_section(msg, "2", MIME_SECTION_MIME, "Content-Type: text/html; charset=utf-8\r\n\r\n");
    assert_section(msg, "3", MIME_SECTION_BODY, NULL);
    assert_section(msg, "1", MIME_SECTION_HEADER, NULL);  /* not message/rfc822 */
    assert_section(msg, "1", MIME_SECTION_TEXT, NULL);
    assert_section(msg, "", MIME_SECTION_MIME, NULL);
    assert_null(mime_part_find(msg->root, "1.1"));  /* a leaf has no subparts */
    mime_message_destroy(&msg);
}

static const char mixed[] =
    "From: a@example.org\n"
    "Subject: report\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed;\n"
    "\tboundary=\"outer\"\n"
    "\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "\n"
    "plain body\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<i>html</i>\n"
    "--inner--\n"
    "\n"
    "--outer\n"
    "Content-Type: application/pdf; name=\"report.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment;\n"
    " filename*0*=utf-8''%E2%82%AC%20rates;\n"
    " filename*1=\" 2024.pdf\"; size=9\n"
    "\n"
    "JVBERi0x\n"
    "LjQK\n"
    "--outer--\n";

static void test_multipart_mixed_attachment_rfc2231(void **state)
{
    struct mime_message *msg = parse(mixed);
    assert_int_equal(msg->nparts, 5);
    const struct mime_part *att = mime_part_find(msg->root, "2");
    assert_non_null(att);
    assert_string_equal(att->type, "application");
    assert_string_equal(att->encoding, "base64");
    assert_string_equal(att->disposition, "attachment");
    const struct mime_param *fn =
        mime_param_find(att->disposition_params, att->ndisposition_params, "filename");
    assert_non_null(fn);
    assert_string_equal(fn->value, "\xe2\x82\xac rates 2024.pdf");
    assert_string_equal(fn->charset, "utf-8");
    assert_string_equal(fn->language, "");
    const struct mime_param *name = mime_param_find(att->params, att->nparams, "NAME");
    assert_non_null(name);
    assert_string_equal(name->value, "report.pdf");
    assert_null(name->charset);

    char *bs = bodystructure(msg, 1);
    assert_string_equal(
        bs, "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)"
            "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) "
            "\"alternative\" (\"boundary\" \"inner\") NIL NIL NIL)"
            "(\"application\" \"pdf\" (\"name\" \"report.pdf\") NIL NIL \"base64\" 14 NIL "
            "(\"attachment\" (\"filename*\" \"utf-8''%E2%82%AC%20rates%202024.pdf\" \"size\" \"9\")) "
            "NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)");
    free(bs);
    /* nested multipart numbering */
    assert_ptr_equal(mime_part_find(msg->root, "1"), msg->root->children);
    assert_section(msg, "1.1", MIME_SECTION_BODY, "plain body");
    assert_section(msg, "1.2", MIME_SECTION_BODY, "<i>html</i>");
    assert_section(msg, "1.2", MIME_SECTION_MIME, "Content-Type: text/html\r\n\r\n");
    assert_section(msg, "1", MIME_SECTION_BODY,
                   "--inner\r\n\r\nplain body\r\n--inner\r\nContent-Type: text/html\r\n\r\n"
                   "<i>html</i>\r\n--inner--\r\n");
    assert_section(msg, "2", MIME_SECTION_BODY, "JVBERi0x\r\nLjQK");
    assert_null(mime_part_find(msg->root, "1.3"));
    assert_null(mime_part_find(msg->root, "3"));
    mime_message_destroy(&msg);
}

static const char forwarded[] = "From: a@example.org\n"
                                "Subject: fwd\n"
                                "Content-Type: multipart/mixed; boundary=b\n"
                                "\n"
                                "--b\n"
                                "\n"
                                "see attached\n"
                                "--b\n"
                                "Content-Type: message/rfc822\n"
                                "Content-Description: the original\n"
                                "\n"
                                "From: \"Carol C.\" <carol@example.com>\n"
                                "Subject: orig\n"
                                "Message-ID: <orig@example.com>\n"
                                "Content-Type: multipart/mixed; boundary=in\n"
                                "\n"
                                "--in\n"
                                "\n"
                                "one\n"
                                "--in\n"
                                "Content-Type: text/x-two\n"
                                "\n"
                                "two\n"
                                "--in--\n"
                                "--b--\n";

static void test_message_rfc822_with_multipart(void **state)
{
    struct mime_message *msg = parse(forwarded);
    assert_int_equal(msg->nparts, 6);
    const struct mime_part *p2 = mime_part_find(msg->root, "2");
    assert_non_null(p2);
    assert_true(p2->flags & MIME_PART_MESSAGE);
    assert_ptr_equal(mime_part_find(msg->root, "2.1"), p2->children->children);
    assert_section(msg, "2.1", MIME_SECTION_BODY, "one");
    assert_section(msg, "2.2", MIME_SECTION_BODY, "two");
    assert_section(msg, "2.2", MIME_SECTION_MIME, "Content-Type: text/x-two\r\n\r\n");
    assert_section(msg, "2.3", MIME_SECTION_BODY, NULL);
    assert_section(msg, "2.HEADER", MIME_SECTION_BODY, NULL);  /* not a number */
    assert_section(msg, "2", MIME_SECTION_HEADER,
                   "From: \"Carol C.\" <carol@example.com>\r\nSubject: orig\r\n"
                   "Message-ID: <orig@example.com>\r\n"
                   "Content-Type: multipart/mixed; boundary=in\r\n\r\n");
    assert_section(msg, "2", MIME_SECTION_TEXT,
                   "--in\r\n\r\none\r\n--in\r\nContent-Type: text/x-two\r\n\r\ntwo\r\n--in--");
    assert_section(msg, "2", MIME_SECTION_MIME,
                   "Content-Type: message/rfc822\r\nContent-Description: the original\r\n\r\n");
    char *whole = section(msg, "2", MIME_SECTION_BODY);
    assert_non_null(whole);
    assert_true(strncmp(whole, "From: \"Carol C.\"", 16) == 0);
    assert_int_equal(strlen(whole), p2->body_crlf_size);
    free(whole);
    const char *names[] = {"subject"};
    char *hf = header_fields(msg, "2", names, 1, 0);
    assert_string_equal(hf, "Subject: orig\r\n\r\n");
    free(hf);

    char *bs = bodystructure(msg, 1);
    assert_string_equal(
        bs,
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0 NIL NIL NIL NIL)"
        "(\"message\" \"rfc822\" NIL NIL \"the original\" \"7bit\" 189 "
        "(NIL \"orig\" ((\"Carol C.\" NIL \"carol\" \"example.com\")) "
        "((\"Carol C.\" NIL \"carol\" \"example.com\")) "
        "((\"Carol C.\" NIL \"carol\" \"example.com\")) NIL NIL NIL NIL \"<orig@example.com>\") "
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)"
        "(\"text\" \"x-two\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) "
        "\"mixed\" (\"boundary\" \"in\") NIL NIL NIL) 12 NIL NIL NIL NIL) "
        "\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
    free(bs);
    /* the ENVELOPE of part 2 is the encapsulated message's */
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_imap_envelope(msg, p2, &b), 0);
    assert_true(strncmp(b.data, "(NIL \"orig\" ", 12) == 0);
    buf_free(&b);
    mime_message_destroy(&msg);
}

static void test_message_rfc822_single_part(void **state)
{
    static const char text[] = "Subject: outer\n"
                               "Content-Type: multipart/mixed; boundary=b\n"
                               "\n"
                               "--b\n"
                               "Content-Type: message/rfc822\n"
                               "\n"
                               "Subject: inner\n"
                               "\n"
                               "inner body\n"
                               "--b--\n";
    struct mime_message *msg = parse(text);
    assert_section(msg, "1.1", MIME_SECTION_BODY, "inner body");
    assert_section(msg, "1.1", MIME_SECTION_MIME, "Subject: inner\r\n\r\n");
    assert_section(msg, "1.2", MIME_SECTION_BODY, NULL);
    assert_section(msg, "1", MIME_SECTION_TEXT, "inner body");
    assert_section(msg, "1", MIME_SECTION_BODY, "Subject: inner\r\n\r\ninner body");
    mime_message_destroy(&msg);
    /* a top-level message/rfc822: part 1 is its body, 1.1 the inner body */
    msg = parse("Subject: x\nContent-Type: message/rfc822\n\nSubject: in\n\nbody\n");
    char *bs = bodystructure(msg, 0);
    assert_string_equal(bs, "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 "
                            "(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) "
                            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) 3)");
    free(bs);
    char *env = envelope(msg);
    assert_string_equal(env, "(NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(env);
    assert_section(msg, "1.1", MIME_SECTION_BODY, "body\r\n");
    assert_section(msg, "1", MIME_SECTION_HEADER, "Subject: in\r\n\r\n");
    mime_message_destroy(&msg);
}

static void test_multipart_digest_default_type(void **state)
{
    static const char text[] = "Content-Type: multipart/digest; boundary=d\n"
                               "\n"
                               "--d\n"
                               "\n"
                               "Subject: inner\n"
                               "\n"
                               "hi\n"
                               "--d\n"
                               "Content-Type: text/plain\n"
                               "\n"
                               "plain in digest\n"
                               "--d--\n";
    assert_bs(text, 1,
              "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 "
              "(NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) "
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0 NIL NIL NIL NIL) "
              "2 NIL NIL NIL NIL)"
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL) "
              "\"digest\" (\"boundary\" \"d\") NIL NIL NIL)");
    struct mime_message *msg = parse(text);
    assert_true(msg->root->children->flags & MIME_PART_DEFAULT_TYPE);
    assert_section(msg, "1.1", MIME_SECTION_BODY, "hi");
    assert_section(msg, "1", MIME_SECTION_HEADER, "Subject: inner\r\n\r\n");
    mime_message_destroy(&msg);
}

static void test_boundary_exact_match_and_padding(void **state)
{
    /* "--b1" is not a delimiter of "b"; "--b \t" is (transport padding);
       "--b--x" is not a close delimiter */
    static const char text[] = "Content-Type: multipart/mixed; boundary=b\n"
                               "\n"
                               "--b \t\n"
                               "\n"
                               "--b1\n"
                               "--b--x\n"
                               "--b--  \n"
                               "epilogue\n"
                               "--b\n"
                               "still epilogue\n";
    struct mime_message *msg = parse(text);
    assert_int_equal(msg->root->nchildren, 1);
    assert_section(msg, "1", MIME_SECTION_BODY, "--b1\r\n--b--x");
    assert_false(msg->root->flags & MIME_PART_UNTERMINATED);
    mime_message_destroy(&msg);
}

static void test_outer_boundary_ends_inner_parts(void **state)
{
    static const char text[] = "Content-Type: multipart/mixed; boundary=b\n"
                               "\n"
                               "--b\n"
                               "Content-Type: multipart/mixed; boundary=c\n"
                               "\n"
                               "--c\n"
                               "\n"
                               "in c\n"
                               "--b\n"
                               "\n"
                               "after\n";
    assert_bs(text, 0,
              "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) \"mixed\")"
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1) \"mixed\")");
    struct mime_message *msg = parse(text);
    assert_true(msg->root->children->flags & MIME_PART_UNTERMINATED);
    assert_true(msg->root->flags & MIME_PART_UNTERMINATED);
    assert_section(msg, "2", MIME_SECTION_BODY, "after\r\n");
    mime_message_destroy(&msg);
}

/* ---- broken input ---- */

static void test_broken_multipart_without_boundary(void **state)
{
    struct mime_message *msg = parse("Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n");
    assert_string_equal(msg->root->type, "text");
    assert_string_equal(msg->root->subtype, "plain");
    assert_true(msg->root->flags & MIME_PART_DEFAULT_TYPE);
    assert_int_equal(msg->nparts, 1);
    mime_message_destroy(&msg);
    assert_bs("Content-Type: multipart/mixed; boundary=\"\"\n\nx\n", 0,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
}

static void test_broken_boundary_never_appears(void **state)
{
    static const char text[] = "Content-Type: multipart/mixed; boundary=never\n\nonly preamble\n";
    struct mime_message *msg = parse(text);
    assert_true(msg->root->flags & MIME_PART_MULTIPART);
    assert_int_equal(msg->root->nchildren, 0);
    assert_null(mime_part_find(msg->root, "1"));
    assert_section(msg, "", MIME_SECTION_TEXT, "only preamble\r\n");
    mime_message_destroy(&msg);
    assert_bs(text, 1,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
              "\"mixed\" (\"boundary\" \"never\") NIL NIL NIL)");
}

static void test_broken_unterminated_multipart(void **state)
{
    static const char text[] = "Content-Type: multipart/mixed; boundary=b\n"
                               "\n"
                               "--b\n"
                               "\n"
                               "first\n"
                               "--b\n"
                               "Content-Type: text/plain\n"
                               "\n"
                               "last runs\n"
                               "to the end";
    struct mime_message *msg = parse(text);
    assert_true(msg->root->flags & MIME_PART_UNTERMINATED);
    assert_int_equal(msg->root->nchildren, 2);
    assert_section(msg, "2", MIME_SECTION_BODY, "last runs\r\nto the end");
    mime_message_destroy(&msg);
    /* a delimiter on the last line, nothing after it */
    msg = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b");
    assert_int_equal(msg->root->nchildren, 2);
    assert_section(msg, "1", MIME_SECTION_BODY, "x");
    assert_section(msg, "2", MIME_SECTION_BODY, "");
    assert_section(msg, "2", MIME_SECTION_MIME, "");
    mime_message_destroy(&msg);
}

static void test_broken_header_without_body(void **state)
{
    static const char text[] = "Subject: no body\nFrom: a@b";
    struct mime_message *msg = parse(text);
    assert_true(msg->root->flags & MIME_PART_NO_BLANK_LINE);
    assert_int_equal(msg->root->header_size, strlen(text));
    assert_int_equal(msg->root->body_size, 0);
    assert_section(msg, "", MIME_SECTION_HEADER, "Subject: no body\r\nFrom: a@b");
    assert_section(msg, "", MIME_SECTION_TEXT, "");
    char *env = envelope(msg);
    assert_string_equal(env, "(NIL \"no body\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) "
                             "((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
    free(env);
    mime_message_destroy(&msg);
    /* empty message */
    msg = parse_len("", 0, NULL);
    assert_int_equal(msg->nparts, 1);
    char *bs = bodystructure(msg, 0);
    assert_string_equal(bs, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
    free(bs);
    mime_message_destroy(&msg);
    /* a part whose header runs into the next delimiter */
    msg = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b--\n");
    assert_int_equal(msg->root->nchildren, 1);
    assert_string_equal(msg->root->children->subtype, "html");
    assert_section(msg, "1", MIME_SECTION_BODY, "");
    mime_message_destroy(&msg);
    /* an encapsulated header running into the boundary: the part keeps
       the line ending its child kept (found by fuzz-mime) */
    msg = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                "Content-Type: message/rfc822\n\nSubject: x\n--b--\n");
    assert_section(msg, "1", MIME_SECTION_BODY, "Subject: x\r\n");
    assert_section(msg, "1", MIME_SECTION_HEADER, "Subject: x\r\n");
    assert_section(msg, "1", MIME_SECTION_TEXT, "");
    mime_message_destroy(&msg);
}

static void test_broken_bare_cr_and_nul(void **state)
{
    static const char text[] = "Subject: a\0b\rc\nX: y\n\nx\0y\rz\n";
    size_t len = sizeof(text) - 1;
    struct mime_message *msg = parse_len(text, len, NULL);
    /* a bare CR does not end a line */
    assert_int_equal(msg->root->header_lines, 3);
    assert_int_equal(msg->root->body_size, 6);
    assert_int_equal(msg->root->body_crlf_size, 7);
    assert_int_equal(msg->root->body_lines, 1);
    char *env = envelope(msg);
    assert_string_equal(env, "(NIL {4}\r\nab\rc NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(env);
    struct mime_range r;
    const char *error;
    assert_int_equal(mime_section_range(msg, "1", MIME_SECTION_BODY, &r, &error), 0);
    struct buf b;
    buf_init(&b, 0);
    mime_append_crlf(&b, text + r.offset, r.size);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "x\x80y\rz\r\n", 7);
    buf_free(&b);
    mime_message_destroy(&msg);
}

static void test_broken_overlong_lines(void **state)
{
    size_t n = 1 << 20;
    char *text = xmalloc(n + 200);
    size_t len = 0;
    len += (size_t)snprintf(text, 200, "Subject: ");
    memset(text + len, 'a', n / 2);
    len += n / 2;
    memcpy(text + len, "\nContent-Type: text/plain; name=\"", 33);
    len += 33;
    memset(text + len, 'b', n / 4);  /* over max_field: the field is ignored */
    len += n / 4;
    memcpy(text + len, "\"\n\n", 3);
    len += 3;
    memset(text + len, 'c', n / 8);
    len += n / 8;
    struct mime_message *msg = parse_len(text, len, NULL);
    assert_int_equal(msg->root->body_size, n / 8);
    assert_int_equal(msg->root->nparams, 0);
    assert_true(msg->root->flags & MIME_PART_DEFAULT_TYPE);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(mime_imap_envelope(msg, msg->root, &b), 0);
    assert_true(b.len > n / 2);
    buf_free(&b);
    mime_message_destroy(&msg);
    free(text);
}

static void test_broken_duplicate_content_type_and_garbage(void **state)
{
    /* the first Content-Type wins */
    assert_bs("Content-Type: text/html\nContent-Type: image/gif\n\nx", 0,
              "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    /* unusable types become text/plain */
    assert_bs("Content-Type: garbage\n\nx", 0,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    assert_bs("Content-Type: /plain\n\nx", 0,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    assert_bs("Content-Type: text/\n\nx", 0,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    /* garbage parameters are skipped; an unquoted value with blanks is
       taken to the ';'; an unterminated quote runs to the end */
    assert_bs("Content-Type: text/plain; ;; =x; junk; a=\"q;uoted\"; name=my file.txt;"
              " b = (c) v (d) ; c=\"open\n\nx",
              0,
              "(\"text\" \"plain\" (\"a\" \"q;uoted\" \"name\" \"my file.txt\" \"b\" \"v\" "
              "\"c\" \"open\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    /* RFC 2231 oddities: a gap ends the continuations; no *0 at all drops
       the name; a missing charset quote keeps the whole value; %00 stays */
    struct mime_message *msg = parse("Content-Type: application/x; a*0=one; a*2=three; "
                                     "b*1=orphan; c*=noquotes%41; d*=utf-8'en'x%00y%zz\n\n");
    const struct mime_part *r = msg->root;
    assert_string_equal(mime_param_find(r->params, r->nparams, "a")->value, "one");
    assert_null(mime_param_find(r->params, r->nparams, "b"));
    assert_string_equal(mime_param_find(r->params, r->nparams, "c")->value, "noquotesA");
    assert_string_equal(mime_param_find(r->params, r->nparams, "c")->charset, "");
    assert_string_equal(mime_param_find(r->params, r->nparams, "d")->value, "x%00y%zz");
    assert_string_equal(mime_param_find(r->params, r->nparams, "d")->language, "en");
    mime_message_destroy(&msg);
    /* plain next to extended: both kept, extended first */
    assert_bs("Content-Type: application/x; name=plain.txt; name*=utf-8''%C3%A9.txt\n\n", 0,
              "(\"application\" \"x\" (\"name*\" \"utf-8''%C3%A9.txt\" \"name\" \"plain.txt\") "
              "NIL NIL \"7bit\" 0)");
    /* a comment-only or empty Content-Disposition is absent */
    assert_bs("Content-Type: image/gif\nContent-Disposition: (nothing)\n\n", 1,
              "(\"image\" \"gif\" NIL NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
}

static void test_broken_8bit_parameter_is_literal(void **state)
{
    assert_bs("Content-Type: text/plain; name=\"caf\xc3\xa9.txt\"\n\n", 0,
              "(\"text\" \"plain\" (\"name\" {9}\r\ncaf\xc3\xa9.txt \"charset\" \"us-ascii\") NIL "
              "NIL \"7bit\" 0 0)");
}

/* ---- ENVELOPE ---- */

static void test_envelope_full(void **state)
{
    assert_env("Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
               "Subject: =?utf-8?q?caf=C3=A9?=\n"
               "From: \"Doe, John\" <john@example.org>\n"
               "Sender: list-owner@example.org\n"
               "Reply-To: list@example.org\n"
               "To: A <a@x>, b@y (Bee)\n"
               "Cc: c@z\n"
               "Bcc: d@w\n"
               "In-Reply-To: <parent@x>\n"
               "Message-ID: <id@x>\n"
               "\n",
               "(\"Mon, 1 Jan 2024 00:00:00 +0000\" \"=?utf-8?q?caf=C3=A9?=\" "
               "((\"Doe, John\" NIL \"john\" \"example.org\")) "
               "((NIL NIL \"list-owner\" \"example.org\")) "
               "((NIL NIL \"list\" \"example.org\")) "
               "((\"A\" NIL \"a\" \"x\")(\"Bee\" NIL \"b\" \"y\")) "
               "((NIL NIL \"c\" \"z\")) ((NIL NIL \"d\" \"w\")) \"<parent@x>\" \"<id@x>\")");
}

static void test_envelope_defaults_and_missing_from(void **state)
{
    /* absent or empty Sender / Reply-To take From's value */
    assert_env("From: a@b\nSender:  \nSubject:\n\n",
               "(NIL \"\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) "
               "((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
    /* no From: everything NIL */
    assert_env("To: c@d\n\nbody\n",
               "(NIL NIL NIL NIL NIL ((NIL NIL \"c\" \"d\")) NIL NIL NIL NIL)");
    /* a From with no addresses is NIL; duplicate fields: the first counts */
    assert_env("From: ,\nSubject: one\nSubject: two\n\n",
               "(NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void test_envelope_groups_quotes_comments(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    struct {
        const char *in, *out;
    } cases[] = {
        {"undisclosed-recipients:;", "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"},
        {"Team: a@b, \"C D\" <c@d>; , e@f",
         "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"b\")(\"C D\" NIL \"c\" \"d\")(NIL NIL NIL NIL)"
         "(NIL NIL \"e\" \"f\"))"},
        {"Open: a@b", "((NIL NIL \"Open\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))"},
        {"\"q\\\"x\\\\\" <\"a b\"@c>", "((\"q\\\"x\\\\\" NIL \"a b\" \"c\"))"},
        {"John   Q.  Public <jqp@x>", "((\"John Q. Public\" NIL \"jqp\" \"x\"))"},
        {"jane@y.org (Jane (the) Roe)", "((\"Jane (the) Roe\" NIL \"jane\" \"y.org\"))"},
        {"Name (comment) <n@x> (other)", "((\"Name\" NIL \"n\" \"x\"))"},
        {"<@r1,@r2:u@h>", "((NIL \"@r1,@r2\" \"u\" \"h\"))"},
        {"foo", "((NIL NIL \"foo\" \"MISSING_DOMAIN\"))"},
        {"<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
        {"u@[192.0.2.1]", "((NIL NIL \"u\" \"[192.0.2.1]\"))"},
        {"a@b\n c", "((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"MISSING_DOMAIN\"))"},
        {"a@x .org", "((NIL NIL \"a\" \"x.org\"))"},
        /* unbalanced quotes, comments and angle brackets */
        {"Bad <unterminated@x", "((\"Bad\" NIL \"unterminated\" \"x\"))"},
        {"\"open quote <a@b>", "((NIL NIL \"open quote <a@b>\" \"MISSING_DOMAIN\"))"},
        {"a@b (open comment", "((\"open comment\" NIL \"a\" \"b\"))"},
        {"a@b>, >c@d<", "((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")"
                        "(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
        {"@@@,,,;;;:::", "NIL"},
        {"", "NIL"},
        {"caf\xc3\xa9 <x@y>", "(({5}\r\ncaf\xc3\xa9 NIL \"x\" \"y\"))"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        assert_int_equal(mime_imap_address_list(&b, cases[i].in, strlen(cases[i].in)), 0);
        if (strcmp(b.data, cases[i].out) != 0)
            fail_msg("case %zu: %s\n  got  %s\n  want %s", i, cases[i].in, b.data, cases[i].out);
    }
    buf_free(&b);
}

/* ---- the address walker ---- */

static void walk_record(void *ctx, const struct mime_address *a)
{
    struct buf *b = ctx;
    switch (a->kind) {
    case MIME_ADDRESS_GROUP_START:
        buf_printf(b, "[G %.*s]", (int)a->name_len, a->name);
        break;
    case MIME_ADDRESS_GROUP_END:
        assert_null(a->name);
        buf_append_str(b, "[E]");
        break;
    case MIME_ADDRESS_MAILBOX:
        assert_non_null(a->adl);
        assert_non_null(a->mailbox);
        assert_non_null(a->host);
        if (a->name != NULL)
            buf_printf(b, "[%.*s|", (int)a->name_len, a->name);
        else
            buf_append_str(b, "[-|");
        buf_printf(b, "%.*s|%.*s|%.*s]", (int)a->adl_len, a->adl, (int)a->mailbox_len,
                   a->mailbox, (int)a->host_len, a->host);
        break;
    }
}

static void test_address_walk(void **state)
{
    struct {
        const char *in, *out;
        size_t count;
    } cases[] = {
        /* comments and blanks inside the address are dropped; the last
           comment names an address without a display name */
        {"<user-from (comment)@ (comment) domain.org>", "[comment||user-from|domain.org]", 1},
        {"Ann Example <ann@remote.test>, bob@b.test",
         "[Ann Example||ann|remote.test][-||bob|b.test]", 2},
        {"=?UTF-8?Q?J=C3=B6rg?= <j@x>", "[=?UTF-8?Q?J=C3=B6rg?=||j|x]", 1},
        {"Team: a@b, \"C D\" <c@d>;", "[G Team][-||a|b][C D||c|d][E]", 4},
        {"Open: a@b", "[G Open][-||a|b][E]", 3},
        {"<@r1,@r2:u@h>", "[-|@r1,@r2|u|h]", 1},
        {"foo, <>", "[-||foo|][-|||]", 2},
        {"", "", 0},
    };
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        buf_append(&b, "", 0);
        size_t n = mime_address_walk(cases[i].in, strlen(cases[i].in), walk_record, &b);
        if (strcmp(b.data ? b.data : "", cases[i].out) != 0 || n != cases[i].count)
            fail_msg("case %zu: %s\n  got  %s (%zu)\n  want %s (%zu)", i, cases[i].in,
                     b.data, n, cases[i].out, cases[i].count);
    }
    /* the limit: 1000 elements, and an open group still ends */
    struct buf many;
    buf_init(&many, 0);
    for (int i = 0; i < 1200; i++)
        buf_printf(&many, "u%d@h, ", i);
    buf_reset(&b);
    assert_int_equal(mime_address_walk(many.data, many.len, walk_record, &b), 1000);
    assert_non_null(strstr(b.data, "[-||u999|h]"));
    assert_null(strstr(b.data, "u1000"));
    buf_reset(&many);
    buf_append_str(&many, "G: ");
    for (int i = 0; i < 1200; i++)
        buf_printf(&many, "u%d@h, ", i);
    buf_reset(&b);
    assert_int_equal(mime_address_walk(many.data, many.len, walk_record, &b), 1001);
    assert_true(b.len >= 3 && strcmp(b.data + b.len - 3, "[E]") == 0);
    buf_free(&many);
    buf_free(&b);
}

/* ---- header fields ---- */

static const char fields_msg[] = "Received: from x\n"
                                 "\tby y\n"
                                 "From: a@b\n"
                                 "Subject: folded\n"
                                 " subject line\n"
                                 "subject:second\n"
                                 "X-Other: z\n"
                                 "not a field line\n"
                                 "\n"
                                 "body\n";

static void test_header_fields_and_not(void **state)
{
    const char *names[] = {"FROM", "Subject"};
    for (int crlf = 0; crlf <= 1; crlf++) {
        char *text = crlf ? to_crlf(fields_msg) : xstrdup(fields_msg);
        struct mime_message *msg = parse(text);
        char *s = header_fields(msg, "", names, 2, 0);
        assert_string_equal(s, "From: a@b\r\nSubject: folded\r\n subject line\r\n"
                               "subject:second\r\n\r\n");
        free(s);
        s = header_fields(msg, "", names, 2, 1);
        assert_string_equal(s, "Received: from x\r\n\tby y\r\nX-Other: z\r\n\r\n");
        free(s);
        const char *none[] = {"x-nothing"};
        s = header_fields(msg, "", none, 1, 0);
        assert_string_equal(s, "\r\n");
        free(s);
        struct mime_field f;
        assert_int_equal(mime_header_find(text, 0, msg->root->header_size, "subject", &f), 1);
        struct buf b;
        buf_init(&b, 0);
        mime_header_unfold(&b, text + f.value_offset, f.value_len);
        assert_string_equal(b.data, "folded subject line");
        buf_free(&b);
        assert_int_equal(mime_header_find(text, 0, msg->root->header_size, "not a field", &f), 0);
        mime_message_destroy(&msg);
        free(text);
    }
    /* a last field without a line ending still ends with CRLF */
    struct mime_message *msg = parse("Subject: x\nFrom: y");
    const char *from[] = {"from"};
    char *s = header_fields(msg, "", from, 1, 0);
    assert_string_equal(s, "From: y\r\n\r\n");
    free(s);
    mime_message_destroy(&msg);
}

/* ---- section numbers and ranges ---- */

static void test_section_numbers_malformed(void **state)
{
    struct mime_message *msg = parse(mixed);
    const char *bad[] = {"0", "01", "1.", ".1", "1..2", "1a", "-1", "1.0", "99999999999", "2.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (mime_part_find(msg->root, bad[i]) != NULL)
            fail_msg("section %s resolved", bad[i]);
    assert_ptr_equal(mime_part_find(msg->root, ""), msg->root);
    struct mime_range r;
    const char *error = NULL;
    assert_int_equal(mime_section_range(msg, "7", MIME_SECTION_BODY, &r, &error), -1);
    assert_string_equal(error, "no such section");
    mime_message_destroy(&msg);
}

static void test_crlf_helpers(void **state)
{
    assert_int_equal(mime_crlf_size("", 0), 0);
    assert_int_equal(mime_crlf_size("\n", 1), 2);
    assert_int_equal(mime_crlf_size("a\r\nb\nc\r", 7), 8);
    struct buf b;
    buf_init(&b, 4);
    assert_int_equal(mime_append_crlf(&b, "a\nb\n", 4), -1);  /* 6 bytes > limit 4 */
    assert_int_equal(b.len, 0);
    assert_int_equal(mime_append_crlf(&b, "a\nb", 3), 0);
    assert_string_equal(b.data, "a\r\nb");
    buf_free(&b);
    buf_init(&b, 0);
    mime_imap_string(&b, "a\"b\\c", 5);
    buf_append_char(&b, ' ');
    mime_imap_string(&b, "x\ny", 3);
    buf_append_char(&b, ' ');
    mime_imap_nstring(&b, NULL);
    buf_append_char(&b, ' ');
    mime_imap_string(&b, "", 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\" {3}\r\nx\ny NIL \"\"");
    buf_free(&b);
}

static void test_bounded_output_buffer(void **state)
{
    struct mime_message *msg = parse(forwarded);
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(mime_imap_bodystructure(msg, msg->root, 1, &b), -1);
    assert_true(b.len <= 64);
    buf_free(&b);
    mime_message_destroy(&msg);
}

/* ---- limits ---- */

static char *nested_multiparts(unsigned levels)
{
    struct buf b;
    buf_init(&b, 0);
    for (unsigned i = 0; i < levels; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=l%u\n\n--l%u\n", i, i);
    buf_append_str(&b, "\ninnermost\n");
    for (unsigned i = levels; i-- > 0;)
        buf_printf(&b, "--l%u--\n", i);
    return buf_steal(&b);
}

static void test_depth_limit(void **state)
{
    char *text = nested_multiparts(40);
    struct mime_message *msg = parse(text);
    assert_true(msg->flags & MIME_MESSAGE_DEPTH_LIMIT);
    const struct mime_part *p = msg->root;
    unsigned depth = 0;
    while (p->children != NULL) {
        p = p->children;
        depth++;
    }
    assert_int_equal(depth, 32);
    assert_true(p->flags & MIME_PART_OPAQUE);
    assert_string_equal(p->type, "application");
    assert_string_equal(p->subtype, "octet-stream");
    char *bs = bodystructure(msg, 1);
    assert_non_null(strstr(bs, "\"application\" \"octet-stream\" (\"boundary\" \"l32\")"));
    free(bs);
    mime_message_destroy(&msg);
    free(text);
    /* below the limit nothing is opaque */
    text = nested_multiparts(10);
    msg = parse(text);
    assert_int_equal(msg->flags, 0);
    assert_int_equal(msg->nparts, 11);
    mime_message_destroy(&msg);
    free(text);
    /* a chain of message/rfc822 parts, with a small custom limit */
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 10; i++)
        buf_append_str(&b, "Content-Type: message/rfc822\n\n");
    buf_append_str(&b, "\nend\n");
    struct mime_limits lim;
    mime_limits_default(&lim);
    lim.max_depth = 3;
    msg = parse_len(b.data, b.len, &lim);
    assert_int_equal(msg->nparts, 4);
    assert_true(msg->flags & MIME_MESSAGE_DEPTH_LIMIT);
    assert_non_null(mime_part_find(msg->root, "1.1.1"));
    assert_null(mime_part_find(msg->root, "1.1.1.1.1"));
    bs = bodystructure(msg, 0);
    assert_non_null(strstr(bs, "(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\""));
    free(bs);
    mime_message_destroy(&msg);
    buf_free(&b);
}

static void test_part_count_limit(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\n\n");
    for (int i = 0; i < 6000; i++)
        buf_printf(&b, "--p\n\npart %d\n", i);
    buf_append_str(&b, "--p--\n");
    struct mime_message *msg = parse_len(b.data, b.len, NULL);
    assert_int_equal(msg->nparts, 5000);
    assert_int_equal(msg->root->nchildren, 4999);
    assert_true(msg->flags & MIME_MESSAGE_PART_LIMIT);
    assert_non_null(mime_part_find(msg->root, "4999"));
    assert_null(mime_part_find(msg->root, "5000"));
    /* the last listed part ends at the next delimiter, not at the end */
    assert_section(msg, "4999", MIME_SECTION_BODY, "part 4998");
    mime_message_destroy(&msg);

    struct mime_limits lim;
    mime_limits_default(&lim);
    lim.max_parts = 2;
    msg = parse(forwarded);
    mime_message_destroy(&msg);
    msg = parse_len(forwarded, strlen(forwarded), &lim);
    assert_int_equal(msg->nparts, 2);
    assert_true(msg->flags & MIME_MESSAGE_PART_LIMIT);
    mime_message_destroy(&msg);
    buf_free(&b);

    /* max_params */
    lim.max_parts = 10;
    lim.max_params = 2;
    msg = parse_len("Content-Type: text/plain; a=1; b=2; c=3\n\n", 41, &lim);
    assert_int_equal(msg->root->nparams, 2);
    mime_message_destroy(&msg);
}

/* ---- whole-tree properties ---- */

static void compare_trees(const struct mime_part *a, const struct mime_part *b)
{
    assert_int_equal(a->header_crlf_size, b->header_crlf_size);
    assert_int_equal(a->body_crlf_size, b->body_crlf_size);
    assert_int_equal(a->body_lines, b->body_lines);
    assert_int_equal(a->header_lines, b->header_lines);
    assert_int_equal(a->nchildren, b->nchildren);
    assert_int_equal(a->flags, b->flags);
    for (a = a->children, b = b->children; a != NULL; a = a->next, b = b->next)
        compare_trees(a, b);
}

static void test_lf_and_crlf_give_the_same_tree(void **state)
{
    const char *texts[] = {simple, alternative, mixed, forwarded, fields_msg};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *crlf = to_crlf(texts[i]);
        struct mime_message *a = parse(texts[i]), *b = parse(crlf);
        compare_trees(a->root, b->root);
        char *sa = bodystructure(a, 1), *sb = bodystructure(b, 1);
        assert_string_equal(sa, sb);
        free(sa);
        free(sb);
        sa = envelope(a);
        sb = envelope(b);
        assert_string_equal(sa, sb);
        free(sa);
        free(sb);
        mime_message_destroy(&a);
        mime_message_destroy(&b);
        free(crlf);
    }
}

/* Every prefix of the test messages parses, and every range stays
   inside the prefix (check_part). */
static void test_every_truncation(void **state)
{
    const char *texts[] = {alternative, mixed, forwarded};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t len = strlen(texts[i]);
        for (size_t n = 0; n <= len; n++) {
            char *copy = xmalloc(n + 1);
            memcpy(copy, texts[i], n);
            struct mime_message *msg = parse_len(copy, n, NULL);
            struct buf b;
            buf_init(&b, 0);
            assert_int_equal(mime_imap_bodystructure(msg, msg->root, 1, &b), 0);
            assert_int_equal(mime_imap_envelope(msg, msg->root, &b), 0);
            buf_free(&b);
            mime_message_destroy(&msg);
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_text_lf_and_crlf_same_structure),
        cmocka_unit_test(test_content_fields_and_case),
        cmocka_unit_test(test_multipart_alternative),
        cmocka_unit_test(test_multipart_mixed_attachment_rfc2231),
        cmocka_unit_test(test_message_rfc822_with_multipart),
        cmocka_unit_test(test_message_rfc822_single_part),
        cmocka_unit_test(test_multipart_digest_default_type),
        cmocka_unit_test(test_boundary_exact_match_and_padding),
        cmocka_unit_test(test_outer_boundary_ends_inner_parts),
        cmocka_unit_test(test_broken_multipart_without_boundary),
        cmocka_unit_test(test_broken_boundary_never_appears),
        cmocka_unit_test(test_broken_unterminated_multipart),
        cmocka_unit_test(test_broken_header_without_body),
        cmocka_unit_test(test_broken_bare_cr_and_nul),
        cmocka_unit_test(test_broken_overlong_lines),
        cmocka_unit_test(test_broken_duplicate_content_type_and_garbage),
        cmocka_unit_test(test_broken_8bit_parameter_is_literal),
        cmocka_unit_test(test_envelope_full),
        cmocka_unit_test(test_envelope_defaults_and_missing_from),
        cmocka_unit_test(test_envelope_groups_quotes_comments),
        cmocka_unit_test(test_address_walk),
        cmocka_unit_test(test_header_fields_and_not),
        cmocka_unit_test(test_section_numbers_malformed),
        cmocka_unit_test(test_crlf_helpers),
        cmocka_unit_test(test_bounded_output_buffer),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_part_count_limit),
        cmocka_unit_test(test_lf_and_crlf_give_the_same_tree),
        cmocka_unit_test(test_every_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
