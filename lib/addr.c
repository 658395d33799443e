/* Addresses as plain values: strict literal parsing (IPv4, and IPv6 with
 * scope ids), RFC 5952 canonical text, sockaddr conversions, a total order,
 * and the RFC 6724 classes and scopes that sorting and policy need.
 *
 * Parsing is strict on purpose. Every number in a literal is plain decimal
 * without leading zeros, so that no text means one thing here and another
 * to inet_aton() (which reads 010 as octal 8 and 1.2.3 as 1.2.0.3); IPv4
 * has exactly four parts; an interface name that does not exist is an
 * error, never scope 0. IPv6 goes through inet_pton(), which is strict in
 * glibc; this module only checks first what it would reject without saying
 * why, so that every error names the bad part of the input.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

/* The longest IPv6 text inet_pton() takes, and the longest interface
 * name, each without the NUL. */
#define V6_TEXT_MAX (INET6_ADDRSTRLEN - 1)
#define IFNAME_MAX (IF_NAMESIZE - 1)
/* The longest literal ds_addr_parse() takes: address, '%', scope. */
#define LITERAL_MAX (V6_TEXT_MAX + 1 + IFNAME_MAX)
/* The longest text ds_addr_parse_hostport() takes. */
#define HOSTPORT_MAX (DS_ADDR_STRLEN - 1)
/* Room for one quoted piece of input in an error message. */
#define QUOTE_LEN 96

/* Returns 1 if c is an ASCII decimal digit. (isdigit() and friends depend
 * on the locale and are undefined for negative chars.) */
static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* Returns 1 if c is an ASCII hex digit. */
static int is_xdigit(char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Returns 1 if c is an ASCII letter. */
static int is_alpha(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Returns 1 if c may appear in an interface name as this module reads
 * one: no control character or space and none of the '/' and ':' that
 * Linux forbids, no '%' (the scope separator) and no brackets (which end
 * a [literal]:port). Bytes above ASCII pass, as Linux allows them. */
static int is_ifname_char(char ch)
{
  unsigned char c = (unsigned char)ch;
  if (c >= 0x80)
    return 1;
  return c > 0x20 && c < 0x7f && c != '/' && c != ':' && c != '%' && c != '[' &&
         c != ']';
}

/* Returns 1 if the n bytes at s are all decimal digits (n > 0). */
static int all_digits(const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (!is_digit(s[i]))
      return 0;
  return n > 0;
}

/* Returns 1 if the n bytes at s read back as an interface name in a scope
 * id: 1 to 15 name characters and not all digits (digits are an index). */
static int scope_name_ok(const char *s, size_t n)
{
  size_t i;
  if (n == 0 || n > IFNAME_MAX || all_digits(s, n))
    return 0;
  for (i = 0; i < n; i++)
    if (!is_ifname_char(s[i]))
      return 0;
  return 1;
}

/* Returns dst (QUOTE_LEN bytes), holding the first n bytes of s (or up to
 * its NUL) as one printable line: bytes outside printable ASCII become
 * \xNN, and text that does not fit ends with "...". Input reaches error
 * messages this way, so a message never carries a control character. */
static const char *quote(char *dst, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i, o = 0;

  for (i = 0; i < n && s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    int plain = c >= 0x20 && c < 0x7f;
    /* Keep room for "..." and the NUL. */
    if (o + (plain ? 1 : 4) + 4 > QUOTE_LEN) {
      memcpy(dst + o, "...", 3);
      o += 3;
      break;
    }
    if (plain) {
      dst[o++] = (char)c;
    } else {
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[c >> 4];
      dst[o++] = hex[c & 15];
    }
  }
  dst[o] = '\0';
  return dst;
}

/* Parses s[0..n) as exactly four decimal parts 0-255, without leading
 * zeros, into out[4]; what names s in messages ("IPv4 address", "embedded
 * IPv4 part"). Returns 0 or DS_EBADADDR with err set. */
static int parse_v4(uint8_t *out, const char *s, size_t n, const char *what,
                    char *err, size_t errlen)
{
  char q[QUOTE_LEN], qs[QUOTE_LEN];
  size_t pos = 0;
  int part;

  quote(qs, s, n);
  for (part = 0; part < 4; part++) {
    size_t start = pos, digits;
    unsigned v = 0;
    while (pos < n && is_digit(s[pos])) {
      /* Stop accumulating past 4 digits: the part is out of range anyway,
       * and v must not overflow. */
      if (pos - start < 4)
        v = v * 10 + (unsigned)(s[pos] - '0');
      pos++;
    }
    digits = pos - start;
    if (digits == 0) {
      if (pos == n || s[pos] == '.')
        return ds__fail(err, errlen, DS_EBADADDR, "empty part in %s '%s'", what,
                        qs);
      return ds__fail(err, errlen, DS_EBADADDR,
                      "unexpected character '%s' in %s '%s' (only decimal "
                      "digits and '.')",
                      quote(q, s + pos, 1), what, qs);
    }
    if (digits > 1 && s[start] == '0')
      return ds__fail(err, errlen, DS_EBADADDR,
                      "leading zero in '%s' of %s '%s' (ambiguous: octal to "
                      "some parsers)",
                      quote(q, s + start, digits), what, qs);
    if (digits > 3 || v > 255)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "'%s' in %s '%s' is out of range 0-255",
                      quote(q, s + start, digits), what, qs);
    out[part] = (uint8_t)v;
    if (part == 3)
      break;
    if (pos == n)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "%s '%s' has %d part%s; it needs exactly 4", what, qs,
                      part + 1, part == 0 ? "" : "s");
    if (s[pos] != '.')
      return ds__fail(err, errlen, DS_EBADADDR,
                      "unexpected character '%s' in %s '%s' (only decimal "
                      "digits and '.')",
                      quote(q, s + pos, 1), what, qs);
    pos++;
  }
  if (pos < n) {
    char qa[QUOTE_LEN];
    if (s[pos] == '.')
      return ds__fail(err, errlen, DS_EBADADDR, "%s '%s' has more than 4 parts",
                      what, qs);
    return ds__fail(err, errlen, DS_EBADADDR, "unexpected '%s' after %s '%s'%s",
                    quote(q, s + pos, n - pos), what, quote(qa, s, pos),
                    s[pos] == ':' ? " (a port is not accepted here)" : "");
  }
  return 0;
}

/* Explains why inet_pton() rejected s[0..n), which holds only hex digits,
 * ':' and '.' and whose embedded IPv4 part (if any) is valid. Returns
 * DS_EBADADDR with err set to the most specific reason found. */
static int diagnose_v6(const char *s, size_t n, char *err, size_t errlen)
{
  char q[QUOTE_LEN], g[QUOTE_LEN];
  size_t i, start, groups = 0, dcolons = 0;

  quote(q, s, n);
  for (i = 0; i + 2 < n; i++)
    if (s[i] == ':' && s[i + 1] == ':' && s[i + 2] == ':')
      return ds__fail(err, errlen, DS_EBADADDR, "':::' in IPv6 address '%s'",
                      q);
  for (i = 0; i + 1 < n; i++)
    if (s[i] == ':' && s[i + 1] == ':') {
      dcolons++;
      i++;
    }
  if (dcolons > 1)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "more than one '::' in IPv6 address '%s'", q);
  if (s[0] == ':' && (n < 2 || s[1] != ':'))
    return ds__fail(err, errlen, DS_EBADADDR,
                    "IPv6 address '%s' starts with a single ':'", q);
  if (s[n - 1] == ':' && (n < 2 || s[n - 2] != ':'))
    return ds__fail(err, errlen, DS_EBADADDR,
                    "IPv6 address '%s' ends with a single ':'", q);
  for (start = 0; start <= n;) {
    size_t end = start;
    while (end < n && s[end] != ':')
      end++;
    if (end > start) {
      if (memchr(s + start, '.', end - start) != NULL) {
        if (end != n)
          return ds__fail(err, errlen, DS_EBADADDR,
                          "'.' in group '%s' of IPv6 address '%s' (only a "
                          "last IPv4 part may have dots)",
                          quote(g, s + start, end - start), q);
        groups += 2;
      } else {
        if (end - start > 4)
          return ds__fail(err, errlen, DS_EBADADDR,
                          "group '%s' of IPv6 address '%s' has more than 4 "
                          "hex digits",
                          quote(g, s + start, end - start), q);
        groups++;
      }
    }
    start = end + 1;
  }
  if (dcolons == 0 && groups != 8)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "IPv6 address '%s' has %zu groups; it needs 8, or '::' "
                    "for a run of zeros",
                    q, groups);
  if (groups > 7)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "IPv6 address '%s' has %zu groups, too many with '::'", q,
                    groups);
  return ds__fail(err, errlen, DS_EBADADDR, "'%s' is not a valid IPv6 address",
                  q);
}

/* Parses s[0..n) (no scope, at least one ':') as an IPv6 address into
 * out. Returns 0 or DS_EBADADDR with err set. */
static int parse_v6(struct in6_addr *out, const char *s, size_t n, char *err,
                    size_t errlen)
{
  char buf[V6_TEXT_MAX + 1], q[QUOTE_LEN], qs[QUOTE_LEN];
  size_t i;

  quote(qs, s, n);
  if (n > V6_TEXT_MAX)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "IPv6 address '%s' is longer than %d characters", qs,
                    V6_TEXT_MAX);
  for (i = 0; i < n; i++)
    if (!is_xdigit(s[i]) && s[i] != ':' && s[i] != '.')
      return ds__fail(err, errlen, DS_EBADADDR,
                      "unexpected character '%s' in IPv6 address '%s' (only "
                      "hex digits, ':' and '.')",
                      quote(q, s + i, 1), qs);
  /* An embedded IPv4 part goes through the same strict parser as plain
   * IPv4 (glibc's is as strict, but other libcs need not be), which also
   * gives a precise message. */
  if (memchr(s, '.', n) != NULL) {
    const char *colon = memrchr(s, ':', n);
    uint8_t v4[4];
    int rc;
    if (colon != NULL) {
      rc = parse_v4(v4, colon + 1, n - (size_t)(colon + 1 - s),
                    "embedded IPv4 part", err, errlen);
      if (rc != 0)
        return rc;
    }
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (inet_pton(AF_INET6, buf, out) == 1)
    return 0;
  return diagnose_v6(s, n, err, errlen);
}

/* Parses the scope id text s[0..n) (what follows '%' in the literal whole
 * of wn bytes) into *id. Decimal digits are an index as they stand (an
 * interface need not exist); anything else is an interface name, looked
 * up now. Returns 0, DS_EBADADDR, -ENODEV for a name no interface has, or
 * another negative errno when the lookup itself fails. */
static int parse_scope(uint32_t *id, const char *s, size_t n, const char *whole,
                       size_t wn, char *err, size_t errlen)
{
  char q[QUOTE_LEN], qw[QUOTE_LEN], name[IF_NAMESIZE];
  unsigned idx;
  size_t i;

  quote(qw, whole, wn);
  if (n == 0)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "empty scope id after '%%' in '%s'", qw);
  quote(q, s, n);
  if (all_digits(s, n)) {
    uint64_t v = 0;
    if (n > 1 && s[0] == '0')
      return ds__fail(err, errlen, DS_EBADADDR,
                      "leading zero in scope id '%s' of '%s'", q, qw);
    for (i = 0; i < n; i++) {
      v = v * 10 + (uint64_t)(s[i] - '0');
      if (v > UINT32_MAX)
        return ds__fail(err, errlen, DS_EBADADDR,
                        "scope id '%s' of '%s' is out of range 1-%" PRIu32, q,
                        qw, UINT32_MAX);
    }
    if (v == 0)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "scope id 0 in '%s' means no scope: leave out the '%%0'",
                      qw);
    *id = (uint32_t)v;
    return 0;
  }
  for (i = 0; i < n; i++)
    if (!is_ifname_char(s[i])) {
      char qc[QUOTE_LEN];
      return ds__fail(err, errlen, DS_EBADADDR,
                      "unexpected character '%s' in scope id '%s' of '%s'",
                      quote(qc, s + i, 1), q, qw);
    }
  if (n > IFNAME_MAX)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "scope id '%s' is longer than an interface name can be "
                    "(%d characters)",
                    q, IFNAME_MAX);
  memcpy(name, s, n);
  name[n] = '\0';
  errno = 0;
  idx = if_nametoindex(name);
  if (idx == 0) {
    int e = errno;
    if (e == 0 || e == ENODEV || e == ENXIO)
      return ds__fail(err, errlen, -ENODEV,
                      "no interface named '%s' (scope id of '%s')", q, qw);
    return ds__fail(err, errlen, -e, "cannot look up interface '%s': %s", q,
                    ds_strerror(-e));
  }
  *id = idx;
  return 0;
}

/* Parses the literal s[0..n) (no port, no brackets) into *out, port 0;
 * *out is written only on success. Returns 0, DS_EBADADDR, or a negative
 * errno from the scope lookup. */
static int parse_literal(ds_addr *out, const char *s, size_t n, char *err,
                         size_t errlen)
{
  char q[QUOTE_LEN], q2[QUOTE_LEN];
  const char *pct, *colon, *dot;
  size_t an;
  ds_addr a;
  int rc;

  memset(&a, 0, sizeof a);
  if (n == 0)
    return ds__fail(err, errlen, DS_EBADADDR, "empty address");
  quote(q, s, n);
  if (n > LITERAL_MAX)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "address '%s' is longer than %d characters", q,
                    LITERAL_MAX);
  if (s[0] == '[')
    return ds__fail(err, errlen, DS_EBADADDR,
                    "brackets in '%s': they belong only around an IPv6 "
                    "address followed by a port",
                    q);
  pct = memchr(s, '%', n);
  an = pct != NULL ? (size_t)(pct - s) : n;
  if (an == 0)
    return ds__fail(err, errlen, DS_EBADADDR, "missing address before '%s'", q);
  /* A ':' before any '.' means IPv6 (its dots only come at the end); a '.'
   * first is IPv4, perhaps followed by a port that does not belong here. */
  colon = memchr(s, ':', an);
  dot = memchr(s, '.', an);
  if (colon != NULL && (dot == NULL || colon < dot)) {
    rc = parse_v6(&a.ip.v6, s, an, err, errlen);
    if (rc != 0)
      return rc;
    a.family = AF_INET6;
    /* A scope is kept on any IPv6 address, link-local or not: the kernel
     * accepts sin6_scope_id everywhere and uses it where it matters. */
    if (pct != NULL) {
      rc = parse_scope(&a.scope_id, pct + 1, n - an - 1, s, n, err, errlen);
      if (rc != 0)
        return rc;
    }
  } else {
    if (is_alpha(s[0]))
      return ds__fail(err, errlen, DS_EBADADDR,
                      "'%s' is not an IP address literal (host names are "
                      "not accepted here)",
                      quote(q2, s, an));
    rc = parse_v4(a.ip.bytes, s, an, "IPv4 address", err, errlen);
    if (rc != 0)
      return rc;
    if (pct != NULL)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "scope id '%s' on IPv4 address '%s': scope ids are for "
                      "IPv6 only",
                      quote(q, pct, n - an), quote(q2, s, an));
    a.family = AF_INET;
  }
  *out = a;
  return 0;
}

/* Parses the decimal port s[0..n) of the text whole (wn bytes) into
 * *port. Returns 0 or DS_EBADADDR with err set. */
static int parse_port(uint16_t *port, const char *s, size_t n,
                      const char *whole, size_t wn, char *err, size_t errlen)
{
  char q[QUOTE_LEN], qw[QUOTE_LEN];
  unsigned v = 0;
  size_t i;

  quote(qw, whole, wn);
  if (n == 0)
    return ds__fail(err, errlen, DS_EBADADDR, "missing port after ':' in '%s'",
                    qw);
  quote(q, s, n);
  if (!all_digits(s, n))
    return ds__fail(err, errlen, DS_EBADADDR,
                    "port '%s' in '%s' is not a decimal number", q, qw);
  if (n > 1 && s[0] == '0')
    return ds__fail(err, errlen, DS_EBADADDR,
                    "leading zero in port '%s' of '%s'", q, qw);
  for (i = 0; i < n && i < 6; i++)
    v = v * 10 + (unsigned)(s[i] - '0');
  if (n > 5 || v > 65535)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "port '%s' in '%s' is out of range 0-65535", q, qw);
  *port = (uint16_t)v;
  return 0;
}

int ds_addr_parse(ds_addr *out, const char *text, uint16_t port, char *err,
                  size_t errlen)
{
  int rc;

  if (out == NULL || text == NULL)
    return ds__fail(err, errlen, -EINVAL, "no %s given",
                    out == NULL ? "output address" : "address text");
  memset(out, 0, sizeof *out);
  /* strnlen: one character past the limit is enough to refuse. */
  rc = parse_literal(out, text, strnlen(text, LITERAL_MAX + 1), err, errlen);
  if (rc == 0)
    out->port = port;
  return rc;
}

int ds_addr_parse_hostport(ds_addr *out, const char *text, char *err,
                           size_t errlen)
{
  char q[QUOTE_LEN];
  const char *host, *colon;
  size_t n, hn;
  uint16_t port = 0;
  ds_addr a;
  int rc;

  if (out == NULL || text == NULL)
    return ds__fail(err, errlen, -EINVAL, "no %s given",
                    out == NULL ? "output address" : "address text");
  memset(out, 0, sizeof *out);
  n = strnlen(text, HOSTPORT_MAX + 1);
  if (n == 0)
    return ds__fail(err, errlen, DS_EBADADDR, "empty address");
  quote(q, text, n);
  if (n > HOSTPORT_MAX)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "address '%s' is longer than %d characters", q,
                    HOSTPORT_MAX);
  if (text[0] == '[') {
    const char *close = memchr(text, ']', n);
    if (close == NULL)
      return ds__fail(err, errlen, DS_EBADADDR, "missing ']' in '%s'", q);
    host = text + 1;
    hn = (size_t)(close - host);
    if (hn == 0)
      return ds__fail(err, errlen, DS_EBADADDR, "empty brackets in '%s'", q);
    colon = close + 1;
    if (*colon == '\0')
      return ds__fail(err, errlen, DS_EBADADDR,
                      "missing port in '%s' (expected [ADDRESS]:PORT)", q);
    if (*colon != ':') {
      char qr[QUOTE_LEN];
      return ds__fail(err, errlen, DS_EBADADDR,
                      "unexpected '%s' after ']' in '%s' (expected ':' and a "
                      "port)",
                      quote(qr, colon, n - (size_t)(colon - text)), q);
    }
  } else {
    host = text;
    colon = memchr(text, ':', n);
    if (colon == NULL)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "missing port in '%s' (expected ADDRESS:PORT)", q);
    if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - text)) != NULL)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "'%s' looks like IPv6 without brackets: with a port, "
                      "write [ADDRESS]:PORT, as in [2001:db8::1]:80",
                      q);
    hn = (size_t)(colon - text);
    if (hn == 0)
      return ds__fail(err, errlen, DS_EBADADDR,
                      "missing address before ':' in '%s'", q);
  }
  /* The port first: it is cheap, and a bad one need not cost an
   * interface lookup. */
  rc = parse_port(&port, colon + 1, n - (size_t)(colon + 1 - text), text, n,
                  err, errlen);
  if (rc != 0)
    return rc;
  rc = parse_literal(&a, host, hn, err, errlen);
  if (rc != 0)
    return rc;
  if (host != text && a.family != AF_INET6)
    return ds__fail(err, errlen, DS_EBADADDR,
                    "brackets around IPv4 address in '%s': they are only for "
                    "IPv6",
                    q);
  a.port = port;
  *out = a;
  return 0;
}

/* Writes the RFC 5952 text of the IPv6 address b (16 bytes) into dst,
 * which has room for INET6_ADDRSTRLEN bytes, and returns its length. */
static size_t format_v6(char *dst, const uint8_t *b)
{
  static const char hex[] = "0123456789abcdef";
  unsigned w[8];
  int i, best = -1, bestlen = 0, run = 0;
  char *p = dst;

  for (i = 0; i < 8; i++)
    w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
  /* Section 5: mixed notation only where a well-known prefix says the
   * low 32 bits are IPv4. Of those only v4-mapped is still in use
   * (IPv4-compatible ::/96 is deprecated by RFC 4291), and Go, Python and
   * the kernel's %pI6c agree; glibc alone writes ::/96 dotted. */
  if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 &&
      w[5] == 0xffff)
    return (size_t)snprintf(dst, INET6_ADDRSTRLEN, "::ffff:%u.%u.%u.%u", b[12],
                            b[13], b[14], b[15]);
  /* Section 4.2: compress the longest run of zero fields, the first of
   * equal runs, and never a single field. */
  for (i = 0; i < 8; i++) {
    run = w[i] == 0 ? run + 1 : 0;
    if (run > bestlen) {
      bestlen = run;
      best = i - run + 1;
    }
  }
  if (bestlen < 2) {
    best = -1;
    bestlen = 0;
  }
  for (i = 0; i < 8;) {
    int shift, started = 0;
    if (i == best) {
      *p++ = ':';
      *p++ = ':';
      i += bestlen;
      continue;
    }
    if (i > 0 && i != best + bestlen)
      *p++ = ':';
    /* Sections 4.1 and 4.3: no leading zeros, lowercase. */
    for (shift = 12; shift >= 0; shift -= 4) {
      unsigned d = (w[i] >> shift) & 15;
      if (d != 0 || started || shift == 0) {
        *p++ = hex[d];
        started = 1;
      }
    }
    i++;
  }
  *p = '\0';
  return (size_t)(p - dst);
}

/* Writes the scope id text of id into dst (room for IF_NAMESIZE bytes)
 * and returns its length: the interface's name when it has one that
 * ds_addr_parse() reads back as a name (an all-digit name would read back
 * as an index), else the number. */
static size_t format_scope(char *dst, uint32_t id, int numeric)
{
  char name[IF_NAMESIZE];

  if (!numeric && id <= INT_MAX && if_indextoname(id, name) != NULL) {
    size_t n = strnlen(name, sizeof name);
    if (scope_name_ok(name, n)) {
      memcpy(dst, name, n);
      dst[n] = '\0';
      return n;
    }
  }
  return (size_t)snprintf(dst, IF_NAMESIZE, "%" PRIu32, id);
}

int ds_addr_format(const ds_addr *a, char *buf, size_t len, int flags)
{
  /* Longer than any text written, so that building never truncates and
   * the length is known before buf is touched. */
  char tmp[DS_ADDR_STRLEN + 16];
  size_t n = 0;

  if (buf != NULL && len > 0)
    buf[0] = '\0';
  if (a == NULL || (buf == NULL && len > 0))
    return -EINVAL;
  if (a->family == AF_INET) {
    const uint8_t *b = a->ip.bytes;
    n = (size_t)snprintf(tmp, sizeof tmp, "%u.%u.%u.%u", b[0], b[1], b[2],
                         b[3]);
    if (flags & DS_ADDR_FMT_PORT)
      n += (size_t)snprintf(tmp + n, sizeof tmp - n, ":%u", a->port);
  } else if (a->family == AF_INET6) {
    if (flags & DS_ADDR_FMT_PORT)
      tmp[n++] = '[';
    n += format_v6(tmp + n, a->ip.bytes);
    if (a->scope_id != 0) {
      tmp[n++] = '%';
      n += format_scope(tmp + n, a->scope_id,
                        (flags & DS_ADDR_FMT_SCOPE_NUMERIC) != 0);
    }
    if (flags & DS_ADDR_FMT_PORT)
      n += (size_t)snprintf(tmp + n, sizeof tmp - n, "]:%u", a->port);
  } else {
    return -EINVAL;
  }
  if (n >= len)
    return -ENOSPC;
  memcpy(buf, tmp, n + 1);
  return (int)n;
}

int ds_addr_to_sockaddr(const ds_addr *a, struct sockaddr_storage *ss,
                        socklen_t *len)
{
  if (a == NULL || ss == NULL)
    return -EINVAL;
  if (a->family == AF_INET) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(a->port);
    memcpy(&sin.sin_addr, a->ip.bytes, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin, sizeof sin);
    if (len != NULL)
      *len = sizeof sin;
    return 0;
  }
  if (a->family == AF_INET6) {
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(a->port);
    /* sin6_flowinfo is in network byte order; sin6_scope_id, an interface
     * index, is in host order (RFC 3493 section 3.3). */
    sin6.sin6_flowinfo = htonl(a->flowinfo);
    sin6.sin6_scope_id = a->scope_id;
    memcpy(&sin6.sin6_addr, a->ip.bytes, 16);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin6, sizeof sin6);
    if (len != NULL)
      *len = sizeof sin6;
    return 0;
  }
  return -EINVAL;
}

int ds_addr_from_sockaddr(ds_addr *out, const struct sockaddr *sa,
                          socklen_t len)
{
  sa_family_t family;
  ds_addr a;

  if (out == NULL)
    return -EINVAL;
  memset(&a, 0, sizeof a);
  /* Copies, not casts: sa may be any buffer, aligned or not, and out may
   * even share its memory. */
  if (sa == NULL || len < offsetof(struct sockaddr, sa_family) + sizeof family)
    goto invalid;
  memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family),
         sizeof family);
  if (family == AF_INET) {
    struct sockaddr_in sin;
    if (len < sizeof sin)
      goto invalid;
    memcpy(&sin, sa, sizeof sin);
    a.family = AF_INET;
    a.port = ntohs(sin.sin_port);
    memcpy(a.ip.bytes, &sin.sin_addr, 4);
  } else if (family == AF_INET6) {
    struct sockaddr_in6 sin6;
    if (len < sizeof sin6)
      goto invalid;
    memcpy(&sin6, sa, sizeof sin6);
    a.family = AF_INET6;
    a.port = ntohs(sin6.sin6_port);
    a.flowinfo = ntohl(sin6.sin6_flowinfo);
    a.scope_id = sin6.sin6_scope_id;
    memcpy(a.ip.bytes, &sin6.sin6_addr, 16);
  } else {
    memset(out, 0, sizeof *out);
    return -EAFNOSUPPORT;
  }
  *out = a;
  return 0;

invalid:
  memset(out, 0, sizeof *out);
  return -EINVAL;
}

/* Returns -1, 0 or 1 as x is below, equal to or above y. */
static int cmp_u32(uint32_t x, uint32_t y)
{
  return (x > y) - (x < y);
}

int ds_addr_compare(const ds_addr *a, const ds_addr *b)
{
  int c;

  /* NULL sorts first, so that sorting an array with holes never
   * crashes. */
  if (a == b)
    return 0;
  if (a == NULL)
    return -1;
  if (b == NULL)
    return 1;
  if (a->family != b->family)
    return a->family < b->family ? -1 : 1;
  /* IPv4 uses only the first 4 bytes of the union; the rest may hold
   * anything and must not split equal addresses. */
  c = memcmp(a->ip.bytes, b->ip.bytes, a->family == AF_INET ? 4 : 16);
  if (c != 0)
    return c < 0 ? -1 : 1;
  if ((c = cmp_u32(a->port, b->port)) != 0)
    return c;
  if ((c = cmp_u32(a->scope_id, b->scope_id)) != 0)
    return c;
  return cmp_u32(a->flowinfo, b->flowinfo);
}

int ds_addr_is_v4mapped(const ds_addr *a)
{
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a != NULL && a->family == AF_INET6 &&
         memcmp(a->ip.bytes, prefix, sizeof prefix) == 0;
}

int ds_addr_unmap(ds_addr *out, const ds_addr *a)
{
  ds_addr v4;

  if (out == NULL || !ds_addr_is_v4mapped(a))
    return -EINVAL;
  /* Built aside, so that out may be a. */
  memset(&v4, 0, sizeof v4);
  v4.family = AF_INET;
  v4.port = a->port;
  memcpy(v4.ip.bytes, a->ip.bytes + 12, 4);
  *out = v4;
  return 0;
}

/* Returns the class of the IPv4 address b (4 bytes). */
static ds_addr_class classify_v4(const uint8_t *b)
{
  if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0)
    return DS_ADDR_UNSPECIFIED;
  if (b[0] == 127)
    return DS_ADDR_LOOPBACK;
  if (b[0] == 169 && b[1] == 254)
    return DS_ADDR_LINKLOCAL;
  if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
      (b[0] == 192 && b[1] == 168))
    return DS_ADDR_PRIVATE;
  if ((b[0] & 0xf0) == 224)
    return DS_ADDR_MULTICAST;
  return DS_ADDR_GLOBAL;
}

ds_addr_class ds_addr_classify(const ds_addr *a)
{
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t zero[16];
  const uint8_t *b;

  if (a == NULL)
    return DS_ADDR_UNSPECIFIED;
  b = a->ip.bytes;
  if (a->family == AF_INET)
    return classify_v4(b);
  if (a->family != AF_INET6)
    return DS_ADDR_UNSPECIFIED;
  if (memcmp(b, zero, 16) == 0)
    return DS_ADDR_UNSPECIFIED;
  if (memcmp(b, loopback, 16) == 0)
    return DS_ADDR_LOOPBACK;
  if (ds_addr_is_v4mapped(a))
    return DS_ADDR_V4MAPPED;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
    return DS_ADDR_LINKLOCAL;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
    return DS_ADDR_SITELOCAL;
  if ((b[0] & 0xfe) == 0xfc)
    return DS_ADDR_ULA;
  if (b[0] == 0xff)
    return DS_ADDR_MULTICAST;
  return DS_ADDR_GLOBAL;
}

/* Returns the RFC 6724 scope of the IPv4 address b (4 bytes). */
static int scope_v4(const uint8_t *b)
{
  /* RFC 6724 section 3.2: loopback and autoconfiguration addresses are
   * link-local, every other unicast address global. */
  if (b[0] == 127 || (b[0] == 169 && b[1] == 254))
    return 0x2;
  /* RFC 6724 says nothing of IPv4 multicast. These blocks are never
   * forwarded beyond their scope: 224.0.0/24 stays on the link (RFC 5771
   * section 4), 239.255/16 is the IPv4 Local Scope (RFC 2365 section 6.1,
   * the counterpart of IPv6 site-local) and 239.192/14 the Organization
   * Local Scope (section 6.2). The rest of 224/4 is global. */
  if (b[0] == 224 && b[1] == 0 && b[2] == 0)
    return 0x2;
  if (b[0] == 239 && b[1] == 255)
    return 0x5;
  if (b[0] == 239 && (b[1] & 0xfc) == 192)
    return 0x8;
  return 0xe;
}

int ds_addr_scope(const ds_addr *a)
{
  ds_addr_class c;
  unsigned nibble;

  if (a == NULL)
    return -EINVAL;
  if (a->family == AF_INET)
    return scope_v4(a->ip.bytes);
  if (a->family != AF_INET6)
    return -EINVAL;
  c = ds_addr_classify(a);
  switch (c) {
  case DS_ADDR_V4MAPPED:
    return scope_v4(a->ip.bytes + 12);
  case DS_ADDR_LOOPBACK:
  case DS_ADDR_LINKLOCAL:
    return 0x2;
  case DS_ADDR_SITELOCAL:
    return 0x5;
  case DS_ADDR_MULTICAST:
    /* RFC 4291 section 2.7: the low nibble of the second byte. Reserved
     * 0xf is to be treated as global; reserved 0 is returned as it is,
     * since no packet may be sent to it. */
    nibble = a->ip.bytes[1] & 0x0f;
    return nibble == 0xf ? 0xe : (int)nibble;
  default:
    /* Global, ULA (global scope per RFC 6724 section 3.1, with its own
     * label) and :: (which has no scope of its own). */
    return 0xe;
  }
}

int ds__looks_like_hostname(const char *text)
{
  const char *p;
  int alpha = 0;
  for (p = text; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-' ||
        *p == '_')
      alpha = 1;
    else if (!((*p >= '0' && *p <= '9') || *p == '.'))
      return 0;
  }
  return alpha && p != text;
}

int ds__parse_literal(ds_addr *a, const char *text, uint16_t port,
                      const char *what, char *err, size_t errlen)
{
  if (text == NULL)
    return ds__fail(err, errlen, -EINVAL, "%s: no address given", what);
  if (ds__looks_like_hostname(text))
    return ds__fail(err, errlen, DS_EHOSTNAME,
                    "%s '%s': a host name is not accepted here, give an "
                    "IPv4 or IPv6 literal",
                    what, text);
  return ds_addr_parse(a, text, port, err, errlen);
}
