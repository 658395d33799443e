/* Unit tests of the address module (lib/addr.c): parsing, canonical text,
 * round trips, sockaddr conversions, order, classes and scopes. */
#include "test.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdint.h>

/* Parses text (port 0) and formats it with flags into buf; fails the test
 * unless both work. */
static void parse_format(const char *text, int flags, char *buf, size_t len)
{
  ds_addr a;
  char err[256] = "";
  int rc = ds_addr_parse(&a, text, 0, err, sizeof err);
  CHECK_MSG(rc == 0, "parse '%s': %s (%s)", text, ds_err_name(rc), err);
  rc = ds_addr_format(&a, buf, len, flags);
  CHECK_MSG(rc > 0, "format '%s': %s", text, ds_err_name(rc));
}

/* Returns the index of "lo", skipping the test if there is none. */
static unsigned lo_index(void)
{
  unsigned idx = if_nametoindex("lo");
  if (idx == 0)
    SKIP("no interface named lo");
  return idx;
}

/* A small deterministic generator (xorshift64*), so failures repeat. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

/* Fills a with a random address biased towards zero fields, v4-mapped and
 * scope ids (including lo's), so that every compression case and the
 * mixed notation come up often. */
static void random_addr(ds_addr *a, unsigned lo)
{
  int i;
  memset(a, 0, sizeof *a);
  a->port = (uint16_t)rng();
  if (rng() % 4 == 0) {
    a->family = AF_INET;
    for (i = 0; i < 4; i++)
      a->ip.bytes[i] = (uint8_t)(rng() % 3 == 0 ? 0 : rng());
    return;
  }
  a->family = AF_INET6;
  for (i = 0; i < 8; i++) {
    uint64_t r = rng();
    uint16_t w = (r % 2) ? 0
                         : (r % 5 == 0 ? (uint16_t)(r >> 40) & 0xf
                                       : (uint16_t)(r >> 32));
    a->ip.bytes[2 * i] = (uint8_t)(w >> 8);
    a->ip.bytes[2 * i + 1] = (uint8_t)w;
  }
  if (rng() % 8 == 0) {
    memset(a->ip.bytes, 0, 10);
    a->ip.bytes[10] = a->ip.bytes[11] = 0xff;
  }
  switch (rng() % 5) {
  case 0:
    a->scope_id = lo;
    break;
  case 1:
    a->scope_id = (uint32_t)rng();
    break;
  case 2:
    a->scope_id = 1 + (uint32_t)(rng() % 100);
    break;
  default:
    break;
  }
}

/* ------------------------------------------------------------ parsing */

static const struct {
  const char *in, *out; /* input, canonical text */
  int family;
} valid[] = {
    {"192.0.2.1", "192.0.2.1", AF_INET},
    {"0.0.0.0", "0.0.0.0", AF_INET},
    {"255.255.255.255", "255.255.255.255", AF_INET},
    {"10.0.0.1", "10.0.0.1", AF_INET},
    {"1.20.100.200", "1.20.100.200", AF_INET},
    {"2001:db8::1", "2001:db8::1", AF_INET6},
    {"2001:DB8::1", "2001:db8::1", AF_INET6},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", AF_INET6},
    {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", AF_INET6},
    {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1", AF_INET6},
    {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", AF_INET6},
    {"2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::", AF_INET6},
    {"1:0:0:2:0:0:3:4", "1::2:0:0:3:4", AF_INET6},
    {"2001:db8::0:1", "2001:db8::1", AF_INET6},
    {"::", "::", AF_INET6},
    {"0:0:0:0:0:0:0:0", "::", AF_INET6},
    {"::1", "::1", AF_INET6},
    {"1::", "1::", AF_INET6},
    {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0", AF_INET6},
    {"::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8", AF_INET6},
    {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", AF_INET6},
    {"ABCD:EF01:2345:6789:ABCD:EF01:2345:6789",
     "abcd:ef01:2345:6789:abcd:ef01:2345:6789", AF_INET6},
    {"::ffff:192.0.2.1", "::ffff:192.0.2.1", AF_INET6},
    {"::FFFF:c000:0201", "::ffff:192.0.2.1", AF_INET6},
    {"0:0:0:0:0:ffff:192.0.2.1", "::ffff:192.0.2.1", AF_INET6},
    {"::ffff:0.0.0.0", "::ffff:0.0.0.0", AF_INET6},
    {"::192.0.2.1", "::c000:201", AF_INET6},
    {"::1:0", "::1:0", AF_INET6},
    {"64:ff9b::192.0.2.1", "64:ff9b::c000:201", AF_INET6},
    {"::ffff:0:192.0.2.1", "::ffff:0:c000:201", AF_INET6},
    {"fe80::1%lo", "fe80::1%lo", AF_INET6},
    {"fe80::1%999999", "fe80::1%999999", AF_INET6},
    {"fe80::1%4294967295", "fe80::1%4294967295", AF_INET6},
    {"2001:db8::1%lo", "2001:db8::1%lo", AF_INET6},
    {"ff02::1%lo", "ff02::1%lo", AF_INET6},
    {"::ffff:192.0.2.1%lo", "::ffff:192.0.2.1%lo", AF_INET6},
    {"FE80::ABCD%lo", "fe80::abcd%lo", AF_INET6},
};

TEST(addr_parse_valid)
{
  size_t i;
  lo_index();
  for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    ds_addr a;
    char err[256] = "", buf[DS_ADDR_STRLEN];
    int rc = ds_addr_parse(&a, valid[i].in, 4321, err, sizeof err);
    CHECK_MSG(rc == 0, "'%s': %s (%s)", valid[i].in, ds_err_name(rc), err);
    CHECK_EQ(a.family, valid[i].family);
    CHECK_EQ(a.port, 4321);
    CHECK_EQ(a.flowinfo, 0);
    rc = ds_addr_format(&a, buf, sizeof buf, 0);
    CHECK_EQ(rc, (int)strlen(valid[i].out));
    CHECK_STR(buf, valid[i].out);
  }
}

TEST(addr_parse_bytes)
{
  ds_addr a;
  static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                 0,    0,    0,    0,    0, 0, 0, 1};
  CHECK_EQ(ds_addr_parse(&a, "192.0.2.1", 80, NULL, 0), 0);
  CHECK_EQ(a.family, AF_INET);
  CHECK_EQ(a.ip.v4.s_addr, htonl(0xc0000201));
  CHECK_EQ(a.scope_id, 0);
  CHECK_EQ(ds_addr_parse(&a, "2001:db8::1", 0, NULL, 0), 0);
  CHECK(memcmp(a.ip.bytes, v6, 16) == 0);
  CHECK_EQ(a.scope_id, 0);
  CHECK_EQ(ds_addr_parse(&a, "fe80::1%2", 0, NULL, 0), 0);
  CHECK_EQ(a.scope_id, 2);
  CHECK_EQ(ds_addr_parse(&a, "fe80::1%lo", 0, NULL, 0), 0);
  CHECK_EQ(a.scope_id, lo_index());
}

static const struct {
  const char *in;
  int code;
  const char *msg; /* a substring of the message */
} invalid[] = {
    {"", DS_EBADADDR, "empty address"},
    {"1.2.3", DS_EBADADDR, "has 3 parts"},
    {"1", DS_EBADADDR, "has 1 part;"},
    {"1.2.3.4.5", DS_EBADADDR, "more than 4 parts"},
    {"1.2.3.4.", DS_EBADADDR, "more than 4 parts"},
    {"010.1.1.1", DS_EBADADDR, "leading zero in '010'"},
    {"1.2.3.04", DS_EBADADDR, "leading zero in '04'"},
    {"00.1.1.1", DS_EBADADDR, "octal"},
    {"256.1.1.1", DS_EBADADDR, "'256' in IPv4 address '256.1.1.1' is out of"},
    {"1.2.3.1000", DS_EBADADDR, "out of range 0-255"},
    {"1.2.3.99999999999999999999", DS_EBADADDR, "out of range"},
    {"+1.2.3.4", DS_EBADADDR, "unexpected character '+'"},
    {"-1.2.3.4", DS_EBADADDR, "unexpected character '-'"},
    {"1.-2.3.4", DS_EBADADDR, "unexpected character '-'"},
    {" 1.2.3.4", DS_EBADADDR, "unexpected character ' '"},
    {"1.2.3.4 ", DS_EBADADDR, "unexpected ' ' after IPv4 address '1.2.3.4'"},
    {"1. 2.3.4", DS_EBADADDR, "unexpected character ' '"},
    {"0x1.2.3.4", DS_EBADADDR, "unexpected character 'x'"},
    {"1.2.3.0x4", DS_EBADADDR, "unexpected 'x4' after"},
    {"1..2.3", DS_EBADADDR, "empty part"},
    {".1.2.3", DS_EBADADDR, "empty part"},
    {"192.0.2.1x", DS_EBADADDR, "unexpected 'x' after IPv4 address"},
    {"192.0.2.1:80", DS_EBADADDR, "a port is not accepted here"},
    {"1.2.3.4::", DS_EBADADDR, "after IPv4 address"},
    {"1.2::3", DS_EBADADDR, "unexpected character ':'"},
    {"192.0.2.1%eth0", DS_EBADADDR, "scope ids are for IPv6 only"},
    {"192.0.2.1%lo", DS_EBADADDR, "scope id '%lo' on IPv4 address"},
    {"192.0.2.1%", DS_EBADADDR, "IPv6 only"},
    {"fe80::1%", DS_EBADADDR, "empty scope id"},
    {"::1%", DS_EBADADDR, "empty scope id"},
    {"%eth0", DS_EBADADDR, "missing address before '%eth0'"},
    {"%", DS_EBADADDR, "missing address"},
    {":%eth0", DS_EBADADDR, "':' starts with a single ':'"},
    {"hello%eth0", DS_EBADADDR, "'hello' is not an IP address literal"},
    {"hello", DS_EBADADDR, "not an IP address literal"},
    {"localhost", DS_EBADADDR, "host names are not accepted"},
    {"fe80::1%nosuch", -ENODEV, "no interface named 'nosuch'"},
    {"[fe80::1%nosuch]", DS_EBADADDR, "brackets"},
    {"fe80::1%0", DS_EBADADDR, "scope id 0"},
    {"fe80::1%4294967296", DS_EBADADDR, "out of range 1-4294967295"},
    {"fe80::1%99999999999999999999999", DS_EBADADDR, "out of range"},
    {"fe80::1%01", DS_EBADADDR, "leading zero in scope id '01'"},
    {"fe80::1%eth0%x", DS_EBADADDR, "unexpected character '%' in scope id"},
    {"fe80::1%a b", DS_EBADADDR, "unexpected character ' ' in scope id"},
    {"fe80::1%lo/64", DS_EBADADDR, "unexpected character '/'"},
    {"fe80::1%abcdefghijklmnop", DS_EBADADDR, "longer than an interface"},
    {"fe80::1%-1", -ENODEV, "no interface named '-1'"},
    {"fe80::1%\x01", DS_EBADADDR, "'\\x01'"},
    {"2001:db8::1::1", DS_EBADADDR, "more than one '::'"},
    {"2001:db8:::1", DS_EBADADDR, "':::'"},
    {":::", DS_EBADADDR, "':::'"},
    {":1::", DS_EBADADDR, "starts with a single ':'"},
    {":", DS_EBADADDR, "single ':'"},
    {"1::2:", DS_EBADADDR, "ends with a single ':'"},
    {"2001:db8:12345::1", DS_EBADADDR, "group '12345'"},
    {"00000::1", DS_EBADADDR, "more than 4 hex digits"},
    {"1:2:3:4:5:6:7", DS_EBADADDR, "has 7 groups"},
    {"1:2:3:4:5:6:7:8:9", DS_EBADADDR, "has 9 groups"},
    {"1:2:3:4:5:6:7:8::", DS_EBADADDR, "too many with '::'"},
    {"1:2:3:4:5:6:7::8", DS_EBADADDR, "too many"},
    {"1:2:3:4:5:6:7:1.2.3.4", DS_EBADADDR, "has 9 groups"},
    {"::ffff:1.2.3", DS_EBADADDR, "embedded IPv4 part '1.2.3' has 3 parts"},
    {"::ffff:01.2.3.4", DS_EBADADDR, "leading zero in '01'"},
    {"::ffff:256.2.3.4", DS_EBADADDR, "out of range"},
    {"::ffff:1.2.3.4.5", DS_EBADADDR, "more than 4 parts"},
    {"1::2.3:4.5.6.7", DS_EBADADDR, "'.' in group '2.3'"},
    {"::1.2.3.4:5", DS_EBADADDR, "embedded IPv4 part '5'"},
    {"2001:db8::g", DS_EBADADDR, "unexpected character 'g'"},
    {"2001:db8::1 ", DS_EBADADDR, "unexpected character ' '"},
    {"2001:db8::1/64", DS_EBADADDR, "unexpected character '/'"},
    {"hello:world", DS_EBADADDR, "unexpected character 'h'"},
    {"[2001:db8::1]", DS_EBADADDR, "brackets"},
    {"[2001:db8::1]:80", DS_EBADADDR, "brackets"},
    {"\x01", DS_EBADADDR, "\\x01"},
    {"1.2.3.4\n", DS_EBADADDR, "'\\x0a'"},
    {"::\xff", DS_EBADADDR, "'\\xff'"},
    {"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", DS_EBADADDR,
     "longer than"},
    {"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000",
     DS_EBADADDR, "longer than 61 characters"},
};

TEST(addr_parse_invalid)
{
  size_t i;
  lo_index();
  for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    ds_addr a;
    char err[256] = "";
    int rc;
    memset(&a, 0xa5, sizeof a);
    rc = ds_addr_parse(&a, invalid[i].in, 80, err, sizeof err);
    CHECK_MSG(rc == invalid[i].code, "'%s': %s, expected %s (%s)",
              invalid[i].in, ds_err_name(rc), ds_err_name(invalid[i].code),
              err);
    CHECK_MSG(strstr(err, invalid[i].msg) != NULL,
              "'%s': message \"%s\" lacks \"%s\"", invalid[i].in, err,
              invalid[i].msg);
    CHECK_MSG(strchr(err, '\n') == NULL, "'%s': two lines", invalid[i].in);
    CHECK_EQ(a.family, 0); /* cleared on failure */
    /* Without an error buffer the code is the same. */
    CHECK_EQ(ds_addr_parse(&a, invalid[i].in, 80, NULL, 0), invalid[i].code);
    CHECK_EQ(ds_addr_parse(&a, invalid[i].in, 80, err, 0), invalid[i].code);
  }
}

TEST(addr_parse_too_long)
{
  char text[4096], err[256] = "";
  ds_addr a;
  memset(text, '1', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  CHECK_EQ(ds_addr_parse(&a, text, 0, err, sizeof err), DS_EBADADDR);
  CHECK(strstr(err, "longer than") != NULL);
  CHECK(strlen(err) < 200); /* the input is shown shortened */
  CHECK_EQ(ds_addr_parse_hostport(&a, text, err, sizeof err), DS_EBADADDR);
  CHECK(strstr(err, "longer than") != NULL);
  /* The longest literal that can be valid: 45 address characters, '%' and
   * a 15-character scope (here numeric: digits, then no interface). */
  CHECK_EQ(ds_addr_parse(&a, "0000:0000:0000:0000:0000:ffff:255.255.255.255", 0,
                         err, sizeof err),
           0);
  CHECK_EQ(ds_addr_parse(&a,
                         "0000:0000:0000:0000:0000:ffff:255.255.255.255"
                         "%abcdefghijklmno",
                         0, err, sizeof err),
           -ENODEV);
  CHECK(strstr(err, "abcdefghijklmno") != NULL);
}

TEST(addr_parse_null)
{
  ds_addr a;
  char err[64] = "";
  CHECK_EQ(ds_addr_parse(&a, NULL, 0, err, sizeof err), -EINVAL);
  CHECK(strstr(err, "address text") != NULL);
  CHECK_EQ(ds_addr_parse(NULL, "::1", 0, err, sizeof err), -EINVAL);
  CHECK_EQ(ds_addr_parse_hostport(&a, NULL, NULL, 0), -EINVAL);
  CHECK_EQ(ds_addr_parse_hostport(NULL, "[::1]:1", NULL, 0), -EINVAL);
  /* A one-byte buffer gets an empty, terminated message. */
  err[0] = 'x';
  CHECK_EQ(ds_addr_parse(&a, "bad", 0, err, 1), DS_EBADADDR);
  CHECK_EQ(err[0], '\0');
}

TEST(addr_scope_numeric_kept)
{
  /* A number is an index as given, even with no such interface. */
  ds_addr a;
  char buf[DS_ADDR_STRLEN];
  CHECK_EQ(ds_addr_parse(&a, "fe80::1%123456", 0, NULL, 0), 0);
  CHECK_EQ(a.scope_id, 123456);
  CHECK(ds_addr_format(&a, buf, sizeof buf, 0) > 0);
  CHECK_STR(buf, "fe80::1%123456");
}

TEST(addr_scope_by_name)
{
  unsigned lo = lo_index();
  char buf[DS_ADDR_STRLEN], want[64];
  ds_addr a;

  CHECK_EQ(ds_addr_parse(&a, "fe80::1%lo", 0, NULL, 0), 0);
  CHECK_EQ(a.scope_id, lo);
  CHECK_EQ(ds_addr_format(&a, buf, sizeof buf, 0), 10);
  CHECK_STR(buf, "fe80::1%lo");
  snprintf(want, sizeof want, "fe80::1%%%u", lo);
  CHECK_EQ(ds_addr_format(&a, buf, sizeof buf, DS_ADDR_FMT_SCOPE_NUMERIC),
           (int)strlen(want));
  CHECK_STR(buf, want);
  /* A number naming lo's index comes out by name. */
  CHECK_EQ(ds_addr_parse(&a, want, 0, NULL, 0), 0);
  CHECK_EQ(a.scope_id, lo);
  parse_format(want, 0, buf, sizeof buf);
  CHECK_STR(buf, "fe80::1%lo");
  snprintf(want, sizeof want, "[fe80::1%%%u]:80", lo);
  CHECK_EQ(ds_addr_parse(&a, "fe80::1%lo", 80, NULL, 0), 0);
  ds_addr_format(&a, buf, sizeof buf,
                 DS_ADDR_FMT_PORT | DS_ADDR_FMT_SCOPE_NUMERIC);
  CHECK_STR(buf, want);
}

/* ----------------------------------------------------------- hostport */

static const struct {
  const char *in, *out; /* input, DS_ADDR_FMT_PORT text */
  int family;
  unsigned port;
} hp_valid[] = {
    {"192.0.2.1:80", "192.0.2.1:80", AF_INET, 80},
    {"0.0.0.0:0", "0.0.0.0:0", AF_INET, 0},
    {"255.255.255.255:65535", "255.255.255.255:65535", AF_INET, 65535},
    {"[2001:db8::1]:80", "[2001:db8::1]:80", AF_INET6, 80},
    {"[2001:DB8:0::1]:8080", "[2001:db8::1]:8080", AF_INET6, 8080},
    {"[::]:443", "[::]:443", AF_INET6, 443},
    {"[::1]:0", "[::1]:0", AF_INET6, 0},
    {"[::ffff:192.0.2.1]:53", "[::ffff:192.0.2.1]:53", AF_INET6, 53},
    {"[fe80::1%lo]:80", "[fe80::1%lo]:80", AF_INET6, 80},
    {"[fe80::1%77]:1", "[fe80::1%77]:1", AF_INET6, 1},
};

TEST(addr_hostport_valid)
{
  size_t i;
  lo_index();
  for (i = 0; i < sizeof hp_valid / sizeof hp_valid[0]; i++) {
    ds_addr a;
    char err[256] = "", buf[DS_ADDR_STRLEN];
    int rc = ds_addr_parse_hostport(&a, hp_valid[i].in, err, sizeof err);
    CHECK_MSG(rc == 0, "'%s': %s (%s)", hp_valid[i].in, ds_err_name(rc), err);
    CHECK_EQ(a.family, hp_valid[i].family);
    CHECK_EQ(a.port, hp_valid[i].port);
    rc = ds_addr_format(&a, buf, sizeof buf, DS_ADDR_FMT_PORT);
    CHECK_EQ(rc, (int)strlen(hp_valid[i].out));
    CHECK_STR(buf, hp_valid[i].out);
  }
}

static const struct {
  const char *in;
  int code;
  const char *msg;
} hp_invalid[] = {
    {"", DS_EBADADDR, "empty address"},
    {"2001:db8::1:80", DS_EBADADDR, "without brackets"},
    {"2001:db8::1", DS_EBADADDR, "[ADDRESS]:PORT"},
    {"fe80::1%lo:80", DS_EBADADDR, "brackets"},
    {"::1", DS_EBADADDR, "brackets"},
    {"192.0.2.1", DS_EBADADDR, "missing port"},
    {"192.0.2.1:", DS_EBADADDR, "missing port after ':'"},
    {"[2001:db8::1]", DS_EBADADDR, "missing port"},
    {"[2001:db8::1]:", DS_EBADADDR, "missing port after ':'"},
    {"[2001:db8::1]80", DS_EBADADDR, "unexpected '80' after ']'"},
    {"[2001:db8::1] :80", DS_EBADADDR, "unexpected ' :80' after ']'"},
    {"[2001:db8::1:80", DS_EBADADDR, "missing ']'"},
    {"[]:80", DS_EBADADDR, "empty brackets"},
    {"192.0.2.1:65536", DS_EBADADDR, "out of range 0-65535"},
    {"192.0.2.1:99999999999", DS_EBADADDR, "out of range"},
    {"192.0.2.1:080", DS_EBADADDR, "leading zero in port '080'"},
    {"192.0.2.1:00", DS_EBADADDR, "leading zero"},
    {"192.0.2.1:+80", DS_EBADADDR, "not a decimal number"},
    {"192.0.2.1:-1", DS_EBADADDR, "not a decimal number"},
    {"192.0.2.1:0x50", DS_EBADADDR, "not a decimal number"},
    {"192.0.2.1:80 ", DS_EBADADDR, "not a decimal number"},
    {"192.0.2.1:http", DS_EBADADDR, "'http'"},
    {"[192.0.2.1]:80", DS_EBADADDR, "only for IPv6"},
    {"[fe80::1%nosuch]:80", -ENODEV, "no interface named 'nosuch'"},
    {"[fe80::1%]:80", DS_EBADADDR, "empty scope id"},
    {"[fe80::1%0]:80", DS_EBADADDR, "scope id 0"},
    {"[192.0.2.1%lo]:80", DS_EBADADDR, "IPv6 only"},
    {"192.0.2.1%lo:80", DS_EBADADDR, "IPv6 only"},
    {":80", DS_EBADADDR, "missing address before ':'"},
    {"hello:80", DS_EBADADDR, "'hello' is not an IP address literal"},
    {"[hello]:80", DS_EBADADDR, "not an IP address literal"},
    {"[[::1]]:80", DS_EBADADDR, "unexpected ']:80' after ']'"},
    {"[::1]]:80", DS_EBADADDR, "after ']'"},
    {"1.2.3:80", DS_EBADADDR, "has 3 parts"},
    {"010.0.0.1:80", DS_EBADADDR, "leading zero in '010'"},
    {"[2001:db8::g]:80", DS_EBADADDR, "unexpected character 'g'"},
};

TEST(addr_hostport_invalid)
{
  size_t i;
  lo_index();
  for (i = 0; i < sizeof hp_invalid / sizeof hp_invalid[0]; i++) {
    ds_addr a;
    char err[256] = "";
    int rc;
    memset(&a, 0xa5, sizeof a);
    rc = ds_addr_parse_hostport(&a, hp_invalid[i].in, err, sizeof err);
    CHECK_MSG(rc == hp_invalid[i].code, "'%s': %s, expected %s (%s)",
              hp_invalid[i].in, ds_err_name(rc),
              ds_err_name(hp_invalid[i].code), err);
    CHECK_MSG(strstr(err, hp_invalid[i].msg) != NULL,
              "'%s': message \"%s\" lacks \"%s\"", hp_invalid[i].in, err,
              hp_invalid[i].msg);
    CHECK_EQ(a.family, 0);
    CHECK_EQ(ds_addr_parse_hostport(&a, hp_invalid[i].in, NULL, 0),
             hp_invalid[i].code);
  }
}

/* --------------------------------------------------------- formatting */

TEST(addr_format_enospc)
{
  static const char *texts[] = {"192.0.2.1", "2001:db8::1", "fe80::1%lo",
                                "::ffff:192.0.2.1", "::"};
  size_t t;
  lo_index();
  for (t = 0; t < sizeof texts / sizeof texts[0]; t++) {
    ds_addr a;
    int flags;
    CHECK_EQ(ds_addr_parse(&a, texts[t], 65535, NULL, 0), 0);
    for (flags = 0; flags < 4; flags++) {
      char full[DS_ADDR_STRLEN];
      int n = ds_addr_format(&a, full, sizeof full, flags);
      size_t len;
      CHECK(n > 0);
      for (len = 0; len <= (size_t)n + 1; len++) {
        char buf[DS_ADDR_STRLEN + 8];
        size_t k;
        memset(buf, 'Z', sizeof buf);
        if (len <= (size_t)n) {
          CHECK_EQ(ds_addr_format(&a, buf, len, flags), -ENOSPC);
          if (len > 0)
            CHECK_EQ(buf[0], '\0');
          else
            CHECK_EQ(buf[0], 'Z');
        } else {
          CHECK_EQ(ds_addr_format(&a, buf, len, flags), n);
          CHECK_STR(buf, full);
        }
        for (k = len; k < sizeof buf; k++)
          CHECK_MSG(buf[k] == 'Z', "'%s' flags %d len %zu: wrote byte %zu",
                    texts[t], flags, len, k);
      }
    }
    CHECK_EQ(ds_addr_format(&a, NULL, 0, 0), -ENOSPC);
  }
}

TEST(addr_format_invalid)
{
  ds_addr a;
  char buf[DS_ADDR_STRLEN] = "x";
  memset(&a, 0, sizeof a);
  CHECK_EQ(ds_addr_format(&a, buf, sizeof buf, 0), -EINVAL);
  CHECK_EQ(buf[0], '\0');
  a.family = AF_UNIX;
  CHECK_EQ(ds_addr_format(&a, buf, sizeof buf, 0), -EINVAL);
  CHECK_EQ(ds_addr_format(NULL, buf, sizeof buf, 0), -EINVAL);
  a.family = AF_INET;
  CHECK_EQ(ds_addr_format(&a, NULL, 10, 0), -EINVAL);
}

TEST(addr_format_longest)
{
  /* DS_ADDR_STRLEN holds the longest text: eight full fields, the longest
   * numeric scope and the longest port. */
  ds_addr a;
  char buf[DS_ADDR_STRLEN];
  int n;
  memset(&a, 0, sizeof a);
  a.family = AF_INET6;
  memset(a.ip.bytes, 0xff, 16);
  a.scope_id = UINT32_MAX;
  a.port = 65535;
  n = ds_addr_format(&a, buf, sizeof buf,
                     DS_ADDR_FMT_PORT | DS_ADDR_FMT_SCOPE_NUMERIC);
  CHECK_EQ(n, 58);
  CHECK_STR(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535");
}

TEST(addr_format_ipv4_ignores_v6_fields)
{
  ds_addr a;
  char buf[DS_ADDR_STRLEN];
  CHECK_EQ(ds_addr_parse(&a, "192.0.2.1", 80, NULL, 0), 0);
  a.scope_id = 3;
  a.flowinfo = 7;
  CHECK_EQ(ds_addr_format(&a, buf, sizeof buf, DS_ADDR_FMT_PORT), 12);
  CHECK_STR(buf, "192.0.2.1:80");
}

/* Compares ds_addr_format() with glibc's inet_ntop() over many random
 * addresses. They agree but where glibc writes the deprecated
 * IPv4-compatible form (the first six fields zero, the seventh not). */
TEST(addr_format_matches_inet_ntop)
{
  int i, compared = 0;
  for (i = 0; i < 200000; i++) {
    ds_addr a;
    char mine[DS_ADDR_STRLEN], libc[INET6_ADDRSTRLEN];
    struct in6_addr back;
    random_addr(&a, 0);
    if (a.family != AF_INET6)
      continue;
    a.scope_id = 0;
    CHECK(ds_addr_format(&a, mine, sizeof mine, 0) > 0);
    CHECK(inet_pton(AF_INET6, mine, &back) == 1);
    CHECK(memcmp(&back, a.ip.bytes, 16) == 0);
    CHECK(inet_ntop(AF_INET6, a.ip.bytes, libc, sizeof libc) != NULL);
    {
      static const uint8_t zero[12];
      if (memcmp(a.ip.bytes, zero, 12) == 0 &&
          (a.ip.bytes[12] | a.ip.bytes[13]) != 0)
        continue;
    }
    CHECK_MSG(strcmp(mine, libc) == 0, "mine %s, glibc %s", mine, libc);
    compared++;
  }
  CHECK(compared > 100000);
}

/* --------------------------------------------------------- round trips */

TEST(addr_roundtrip_valid_table)
{
  size_t i;
  lo_index();
  for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    ds_addr a, b;
    char buf[DS_ADDR_STRLEN];
    int flags;
    CHECK_EQ(ds_addr_parse(&a, valid[i].in, 8080, NULL, 0), 0);
    for (flags = 0; flags < 4; flags++) {
      char err[256] = "";
      int rc;
      CHECK(ds_addr_format(&a, buf, sizeof buf, flags) > 0);
      if (flags & DS_ADDR_FMT_PORT)
        rc = ds_addr_parse_hostport(&b, buf, err, sizeof err);
      else
        rc = ds_addr_parse(&b, buf, 8080, err, sizeof err);
      CHECK_MSG(rc == 0, "'%s': %s", buf, err);
      CHECK_MSG(ds_addr_compare(&a, &b) == 0, "'%s' -> '%s' differs",
                valid[i].in, buf);
    }
  }
}

TEST(addr_roundtrip_random)
{
  unsigned lo = lo_index();
  int i;
  for (i = 0; i < 100000; i++) {
    ds_addr a, b;
    char buf[DS_ADDR_STRLEN], again[DS_ADDR_STRLEN], err[256] = "";
    int flags = (int)(rng() % 4), rc, n;
    random_addr(&a, lo);
    n = ds_addr_format(&a, buf, sizeof buf, flags);
    CHECK(n > 0 && n < DS_ADDR_STRLEN);
    if (flags & DS_ADDR_FMT_PORT) {
      rc = ds_addr_parse_hostport(&b, buf, err, sizeof err);
    } else {
      rc = ds_addr_parse(&b, buf, a.port, err, sizeof err);
    }
    CHECK_MSG(rc == 0, "'%s': %s (%s)", buf, ds_err_name(rc), err);
    CHECK_MSG(ds_addr_compare(&a, &b) == 0, "'%s' changed", buf);
    /* Canonical text is a fixed point. */
    CHECK(ds_addr_format(&b, again, sizeof again, flags) == n);
    CHECK_STR(again, buf);
  }
}

/* ------------------------------------------------------------ sockaddr */

TEST(addr_to_sockaddr_v4)
{
  ds_addr a;
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  socklen_t len = 0;
  memset(&ss, 0xa5, sizeof ss);
  CHECK_EQ(ds_addr_parse(&a, "192.0.2.1", 0x1234, NULL, 0), 0);
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, &len), 0);
  CHECK_EQ(len, sizeof(struct sockaddr_in));
  CHECK_EQ(sin->sin_family, AF_INET);
  CHECK_EQ(sin->sin_port, htons(0x1234));
  CHECK_EQ(sin->sin_addr.s_addr, htonl(0xc0000201));
  CHECK_EQ(((unsigned char *)&ss)[sizeof ss - 1], 0); /* rest zeroed */
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, NULL), 0);
}

TEST(addr_to_sockaddr_v6)
{
  ds_addr a;
  struct sockaddr_storage ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  struct in6_addr want;
  socklen_t len = 0;
  CHECK_EQ(ds_addr_parse(&a, "fe80::1%7", 443, NULL, 0), 0);
  a.flowinfo = 0x12345;
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, &len), 0);
  CHECK_EQ(len, sizeof(struct sockaddr_in6));
  CHECK_EQ(sin6->sin6_family, AF_INET6);
  CHECK_EQ(sin6->sin6_port, htons(443));
  CHECK_EQ(sin6->sin6_flowinfo, htonl(0x12345));
  CHECK_EQ(sin6->sin6_scope_id, 7);
  inet_pton(AF_INET6, "fe80::1", &want);
  CHECK(memcmp(&sin6->sin6_addr, &want, 16) == 0);
}

TEST(addr_to_sockaddr_invalid)
{
  ds_addr a;
  struct sockaddr_storage ss;
  memset(&a, 0, sizeof a);
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, NULL), -EINVAL);
  CHECK_EQ(ds_addr_to_sockaddr(NULL, &ss, NULL), -EINVAL);
  a.family = AF_INET;
  CHECK_EQ(ds_addr_to_sockaddr(&a, NULL, NULL), -EINVAL);
}

TEST(addr_from_sockaddr)
{
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr_un_like {
    sa_family_t family;
    char path[30];
  } un = {AF_UNIX, "x"};
  unsigned char unaligned[sizeof sin6 + 1];
  ds_addr a, b;

  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(8080);
  sin.sin_addr.s_addr = htonl(0x7f000001);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof sin), 0);
  CHECK_EQ(a.family, AF_INET);
  CHECK_EQ(a.port, 8080);
  CHECK_EQ(a.ip.v4.s_addr, htonl(0x7f000001));
  CHECK_EQ(a.flowinfo, 0);
  CHECK_EQ(a.scope_id, 0);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof sin - 1),
           -EINVAL);
  CHECK_EQ(a.family, 0);

  memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(53);
  sin6.sin6_flowinfo = htonl(0xabcde);
  sin6.sin6_scope_id = 9;
  inet_pton(AF_INET6, "fe80::2", &sin6.sin6_addr);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6), 0);
  CHECK_EQ(a.family, AF_INET6);
  CHECK_EQ(a.port, 53);
  CHECK_EQ(a.flowinfo, 0xabcde);
  CHECK_EQ(a.scope_id, 9);
  CHECK(memcmp(a.ip.bytes, &sin6.sin6_addr, 16) == 0);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6 - 1),
           -EINVAL);

  /* An unaligned buffer works (sanitizer builds would catch a cast). */
  memcpy(unaligned + 1, &sin6, sizeof sin6);
  CHECK_EQ(ds_addr_from_sockaddr(&b, (struct sockaddr *)(unaligned + 1),
                                 sizeof sin6),
           0);
  CHECK_EQ(b.scope_id, 9);

  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&un, sizeof un),
           -EAFNOSUPPORT);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&un, 1), -EINVAL);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&un, 0), -EINVAL);
  CHECK_EQ(ds_addr_from_sockaddr(&a, NULL, sizeof sin), -EINVAL);
  CHECK_EQ(ds_addr_from_sockaddr(NULL, (struct sockaddr *)&sin, sizeof sin),
           -EINVAL);
}

TEST(addr_sockaddr_roundtrip)
{
  unsigned lo = lo_index();
  int i;
  for (i = 0; i < 10000; i++) {
    ds_addr a, b;
    struct sockaddr_storage ss;
    socklen_t len;
    random_addr(&a, lo);
    if (a.family == AF_INET6)
      a.flowinfo = (uint32_t)rng() & 0xfffff;
    CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, &len), 0);
    CHECK_EQ(ds_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
    CHECK_EQ(ds_addr_compare(&a, &b), 0);
  }
}

TEST(addr_sockaddr_real_socket)
{
  /* What the kernel reports for a bound socket reads back right. */
  struct sockaddr_storage ss;
  socklen_t len;
  ds_addr a, b;
  char buf[DS_ADDR_STRLEN];
  int fd;

  CHECK_EQ(ds_addr_parse(&a, "127.0.0.1", 0, NULL, 0), 0);
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, &len), 0);
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
  len = sizeof ss;
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  close(fd);
  CHECK_EQ(ds_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ(b.family, AF_INET);
  CHECK(b.port != 0);
  CHECK(ds_addr_format(&b, buf, sizeof buf, 0) > 0);
  CHECK_STR(buf, "127.0.0.1");

  ds_test_require_ipv6();
  CHECK_EQ(ds_addr_parse(&a, "::1", 0, NULL, 0), 0);
  CHECK_EQ(ds_addr_to_sockaddr(&a, &ss, &len), 0);
  fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
  len = sizeof ss;
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  close(fd);
  CHECK_EQ(ds_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ(b.family, AF_INET6);
  CHECK(b.port != 0);
  CHECK(ds_addr_format(&b, buf, sizeof buf, 0) > 0);
  CHECK_STR(buf, "::1");
}

/* ------------------------------------------------------ order and map */

TEST(addr_compare_order)
{
  /* Ascending: unset, IPv4 by bytes then port, IPv6 by bytes, port, scope,
   * flow info. */
  ds_addr list[12];
  int i, j, n = 0;
  memset(list, 0, sizeof list);
  n++; /* unset */
  ds_addr_parse(&list[n++], "0.0.0.0", 0, NULL, 0);
  ds_addr_parse(&list[n++], "10.0.0.1", 0, NULL, 0);
  ds_addr_parse(&list[n++], "10.0.0.1", 1, NULL, 0);
  ds_addr_parse(&list[n++], "10.0.0.1", 65535, NULL, 0);
  ds_addr_parse(&list[n++], "255.0.0.0", 0, NULL, 0);
  ds_addr_parse(&list[n++], "::", 9, NULL, 0);
  ds_addr_parse(&list[n++], "::1", 0, NULL, 0);
  ds_addr_parse(&list[n++], "fe80::1", 80, NULL, 0);
  ds_addr_parse(&list[n++], "fe80::1%1", 80, NULL, 0);
  ds_addr_parse(&list[n], "fe80::1%1", 80, NULL, 0);
  list[n++].flowinfo = 1;
  ds_addr_parse(&list[n++], "fe80::1%2", 80, NULL, 0);
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) {
      int c = ds_addr_compare(&list[i], &list[j]);
      int want = (i > j) - (i < j);
      CHECK_MSG(c == want, "compare(%d, %d) = %d, want %d", i, j, c, want);
    }
  CHECK_EQ(ds_addr_compare(NULL, NULL), 0);
  CHECK_EQ(ds_addr_compare(NULL, &list[0]), -1);
  CHECK_EQ(ds_addr_compare(&list[0], NULL), 1);
}

TEST(addr_compare_v4_ignores_padding)
{
  /* Bytes past the IPv4 address are not part of its value. */
  ds_addr a, b;
  ds_addr_parse(&a, "192.0.2.1", 80, NULL, 0);
  b = a;
  memset(b.ip.bytes + 4, 0xee, 12);
  CHECK_EQ(ds_addr_compare(&a, &b), 0);
}

TEST(addr_v4mapped_unmap)
{
  ds_addr a, b;
  char buf[DS_ADDR_STRLEN];
  CHECK_EQ(ds_addr_parse(&a, "::ffff:192.0.2.1%3", 8080, NULL, 0), 0);
  a.flowinfo = 5;
  CHECK_EQ(ds_addr_is_v4mapped(&a), 1);
  CHECK_EQ(ds_addr_unmap(&b, &a), 0);
  CHECK_EQ(b.family, AF_INET);
  CHECK_EQ(b.port, 8080);
  CHECK_EQ(b.scope_id, 0);
  CHECK_EQ(b.flowinfo, 0);
  CHECK(ds_addr_format(&b, buf, sizeof buf, DS_ADDR_FMT_PORT) > 0);
  CHECK_STR(buf, "192.0.2.1:8080");
  /* In place. */
  CHECK_EQ(ds_addr_unmap(&a, &a), 0);
  CHECK_EQ(ds_addr_compare(&a, &b), 0);
  /* Not v4-mapped: out stays as it was. */
  CHECK_EQ(ds_addr_is_v4mapped(&a), 0);
  CHECK_EQ(ds_addr_unmap(&a, &a), -EINVAL);
  CHECK_EQ(ds_addr_compare(&a, &b), 0);
  static const char *not_mapped[] = {"::192.0.2.1", "::ffff:0:192.0.2.1",
                                     "64:ff9b::192.0.2.1", "::1",
                                     "1::ffff:192.0.2.1"};
  size_t i;
  for (i = 0; i < sizeof not_mapped / sizeof not_mapped[0]; i++) {
    CHECK_EQ(ds_addr_parse(&a, not_mapped[i], 0, NULL, 0), 0);
    CHECK_MSG(!ds_addr_is_v4mapped(&a), "%s", not_mapped[i]);
    CHECK_EQ(ds_addr_unmap(&b, &a), -EINVAL);
  }
  CHECK_EQ(ds_addr_is_v4mapped(NULL), 0);
  CHECK_EQ(ds_addr_unmap(NULL, &b), -EINVAL);
  CHECK_EQ(ds_addr_unmap(&b, NULL), -EINVAL);
}

/* ------------------------------------------------------ class and scope */

static const struct {
  const char *in;
  ds_addr_class cls;
  int scope;
} classes[] = {
    {"0.0.0.0", DS_ADDR_UNSPECIFIED, 0xe},
    {"::", DS_ADDR_UNSPECIFIED, 0xe},
    {"127.0.0.1", DS_ADDR_LOOPBACK, 0x2},
    {"127.255.255.254", DS_ADDR_LOOPBACK, 0x2},
    {"::1", DS_ADDR_LOOPBACK, 0x2},
    {"169.254.0.1", DS_ADDR_LINKLOCAL, 0x2},
    {"169.255.0.1", DS_ADDR_GLOBAL, 0xe},
    {"fe80::1", DS_ADDR_LINKLOCAL, 0x2},
    {"febf:ffff::1", DS_ADDR_LINKLOCAL, 0x2},
    {"fec0::1", DS_ADDR_SITELOCAL, 0x5},
    {"feff::1", DS_ADDR_SITELOCAL, 0x5},
    {"fc00::1", DS_ADDR_ULA, 0xe},
    {"fd12:3456::1", DS_ADDR_ULA, 0xe},
    {"fe00::1", DS_ADDR_GLOBAL, 0xe},
    {"10.1.2.3", DS_ADDR_PRIVATE, 0xe},
    {"172.16.0.1", DS_ADDR_PRIVATE, 0xe},
    {"172.31.255.255", DS_ADDR_PRIVATE, 0xe},
    {"172.15.0.1", DS_ADDR_GLOBAL, 0xe},
    {"172.32.0.1", DS_ADDR_GLOBAL, 0xe},
    {"192.168.1.1", DS_ADDR_PRIVATE, 0xe},
    {"192.169.1.1", DS_ADDR_GLOBAL, 0xe},
    {"::ffff:192.0.2.1", DS_ADDR_V4MAPPED, 0xe},
    {"::ffff:127.0.0.1", DS_ADDR_V4MAPPED, 0x2},
    {"::ffff:169.254.1.1", DS_ADDR_V4MAPPED, 0x2},
    {"::ffff:224.0.0.1", DS_ADDR_V4MAPPED, 0x2},
    {"::ffff:0.0.0.0", DS_ADDR_V4MAPPED, 0xe},
    {"224.0.0.1", DS_ADDR_MULTICAST, 0x2},
    {"224.0.0.255", DS_ADDR_MULTICAST, 0x2},
    {"224.0.1.1", DS_ADDR_MULTICAST, 0xe},
    {"232.1.1.1", DS_ADDR_MULTICAST, 0xe},
    {"239.255.255.250", DS_ADDR_MULTICAST, 0x5},
    {"239.192.0.1", DS_ADDR_MULTICAST, 0x8},
    {"239.195.255.255", DS_ADDR_MULTICAST, 0x8},
    {"239.196.0.1", DS_ADDR_MULTICAST, 0xe},
    {"239.1.1.1", DS_ADDR_MULTICAST, 0xe},
    {"239.255.0.0", DS_ADDR_MULTICAST, 0x5},
    {"223.255.255.255", DS_ADDR_GLOBAL, 0xe},
    {"240.0.0.1", DS_ADDR_GLOBAL, 0xe},
    {"255.255.255.255", DS_ADDR_GLOBAL, 0xe},
    {"ff01::1", DS_ADDR_MULTICAST, 0x1},
    {"ff02::1", DS_ADDR_MULTICAST, 0x2},
    {"ff12::1", DS_ADDR_MULTICAST, 0x2},
    {"ff03::1", DS_ADDR_MULTICAST, 0x3},
    {"ff04::1", DS_ADDR_MULTICAST, 0x4},
    {"ff05::1:3", DS_ADDR_MULTICAST, 0x5},
    {"ff08::1", DS_ADDR_MULTICAST, 0x8},
    {"ff0e::1", DS_ADDR_MULTICAST, 0xe},
    {"ff3e::8000:1", DS_ADDR_MULTICAST, 0xe},
    {"ff0f::1", DS_ADDR_MULTICAST, 0xe},
    {"ff00::1", DS_ADDR_MULTICAST, 0x0},
    {"2001:db8::1", DS_ADDR_GLOBAL, 0xe},
    {"2001:db8::1%lo", DS_ADDR_GLOBAL, 0xe},
    {"::192.0.2.1", DS_ADDR_GLOBAL, 0xe},
    {"64:ff9b::192.0.2.1", DS_ADDR_GLOBAL, 0xe},
    {"192.0.2.1", DS_ADDR_GLOBAL, 0xe},
    {"8.8.8.8", DS_ADDR_GLOBAL, 0xe},
};

TEST(addr_classify_and_scope)
{
  size_t i;
  ds_addr a;
  lo_index();
  for (i = 0; i < sizeof classes / sizeof classes[0]; i++) {
    CHECK_EQ(ds_addr_parse(&a, classes[i].in, 0, NULL, 0), 0);
    CHECK_MSG(ds_addr_classify(&a) == classes[i].cls, "%s: class %d, want %d",
              classes[i].in, ds_addr_classify(&a), classes[i].cls);
    CHECK_MSG(ds_addr_scope(&a) == classes[i].scope, "%s: scope %#x, want %#x",
              classes[i].in, ds_addr_scope(&a), classes[i].scope);
  }
  memset(&a, 0, sizeof a);
  CHECK_EQ(ds_addr_classify(&a), DS_ADDR_UNSPECIFIED);
  CHECK_EQ(ds_addr_classify(NULL), DS_ADDR_UNSPECIFIED);
  CHECK_EQ(ds_addr_scope(&a), -EINVAL);
  CHECK_EQ(ds_addr_scope(NULL), -EINVAL);
  a.family = AF_UNIX;
  CHECK_EQ(ds_addr_classify(&a), DS_ADDR_UNSPECIFIED);
  CHECK_EQ(ds_addr_scope(&a), -EINVAL);
}

/* ------------------------------------------------- fuzzer regressions */

/* Inputs the fuzzer (tests/fuzz/fuzz_addr.c) turned up, or that probe the
 * same edges; each must be refused cleanly or round-trip. */
TEST(addr_fuzz_regressions)
{
  static const char *inputs[] = {
      "::ffff:1.2.3.4%1",
      "::%4294967295",
      "1:2:3:4:5:6:7::%9",
      "::1.2.3.4",
      "::0.0.0.0",
      "0::ffff:0.0.0.0",
      "[::1%lo]:65535",
      "fe80::%\x80\x81",
      "\xff\xfe\xfd",
      "[\x01]:1",
      "::1%%",
      "1.2.3.4%%",
      "[::1]:",
      "[::1",
      "]",
      "[",
      ":",
      "::1]:80",
      "1.1.1.1:1:1",
  };
  size_t i;
  for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    ds_addr a, b;
    char err[256] = "", buf[DS_ADDR_STRLEN];
    int rc = ds_addr_parse(&a, inputs[i], 7, err, sizeof err);
    if (rc == 0) {
      CHECK(ds_addr_format(&a, buf, sizeof buf, 0) > 0);
      CHECK_EQ(ds_addr_parse(&b, buf, 7, NULL, 0), 0);
      CHECK_EQ(ds_addr_compare(&a, &b), 0);
    } else {
      CHECK(rc == DS_EBADADDR || rc == -ENODEV);
      CHECK(err[0] != '\0');
    }
    rc = ds_addr_parse_hostport(&a, inputs[i], err, sizeof err);
    if (rc == 0) {
      CHECK(ds_addr_format(&a, buf, sizeof buf, DS_ADDR_FMT_PORT) > 0);
      CHECK_EQ(ds_addr_parse_hostport(&b, buf, NULL, 0), 0);
      CHECK_EQ(ds_addr_compare(&a, &b), 0);
    } else {
      CHECK(rc == DS_EBADADDR || rc == -ENODEV);
      CHECK(err[0] != '\0');
    }
  }
}
