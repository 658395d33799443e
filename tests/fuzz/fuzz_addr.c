/* libFuzzer target for the address module (built by `make fuzz`).
 *
 * Besides "never crash" (ASan and UBSan are on), it checks properties and
 * aborts when one fails:
 * - parse and parse_hostport return 0, DS_EBADADDR or a negative errno,
 *   with a one-line message on failure;
 * - whatever parses formats (with every flag combination) to text that
 *   parses back to the same address, and formatting that again gives the
 *   same text (canonical text is a fixed point);
 * - format never writes past len, and says -ENOSPC when len is short;
 * - the strict IPv4 parser accepts exactly what glibc's inet_pton(AF_INET)
 *   accepts (both refuse leading zeros, short forms and garbage), and
 *   every IPv6 literal inet_pton() accepts is accepted with the same
 *   bytes;
 * - the input's bytes read as a raw address (any family byte, any scope)
 *   format and parse back.
 */
#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PORT 4242

/* Aborts with what went wrong and the text involved. */
static void fail(const char *what, const char *text)
{
  fprintf(stderr, "fuzz_addr: %s: \"%s\"\n", what, text);
  abort();
}

/* Checks the result of a failed parse of text. */
static void check_error(int rc, const char *err, const char *text)
{
  if (rc >= 0)
    fail("positive error code", text);
  if (rc != DS_EBADADDR && rc > -4096 && rc != -ENODEV && rc != -EMFILE &&
      rc != -ENFILE && rc != -ENOMEM)
    fail("unexpected error code", text);
  if (rc < -4096 && rc != DS_EBADADDR)
    fail("unexpected DS_E code", text);
  if (err[0] == '\0')
    fail("no message", text);
  if (strchr(err, '\n') != NULL)
    fail("message with a newline", text);
}

/* Formats a with every flag combination and checks the text parses back
 * to a and is a fixed point; also checks -ENOSPC and bounds. */
static void check_roundtrip(const ds_addr *a, const char *origin)
{
  int flags;

  for (flags = 0; flags < 4; flags++) {
    char buf[DS_ADDR_STRLEN + 8], again[DS_ADDR_STRLEN], err[256];
    ds_addr b;
    int n, rc;

    memset(buf, 'Z', sizeof buf);
    n = ds_addr_format(a, buf, DS_ADDR_STRLEN, flags);
    if (n <= 0 || n >= DS_ADDR_STRLEN || (size_t)n != strlen(buf))
      fail("format failed or bad length", origin);
    if (buf[DS_ADDR_STRLEN] != 'Z')
      fail("format wrote past len", origin);
    if (flags & DS_ADDR_FMT_PORT)
      rc = ds_addr_parse_hostport(&b, buf, err, sizeof err);
    else
      rc = ds_addr_parse(&b, buf, a->port, err, sizeof err);
    if (rc != 0) {
      fprintf(stderr, "fuzz_addr: '%s' -> %s\n", buf, err);
      fail("formatted text does not parse", origin);
    }
    /* Flow info has no text form, and IPv4 drops scope and flow info. */
    {
      ds_addr want = *a;
      want.flowinfo = 0;
      if (want.family == AF_INET) {
        want.scope_id = 0;
        memset(want.ip.bytes + 4, 0, 12);
      }
      if (ds_addr_compare(&want, &b) != 0) {
        fprintf(stderr, "fuzz_addr: formatted as '%s'\n", buf);
        fail("round trip changed the address", origin);
      }
    }
    if (ds_addr_format(&b, again, sizeof again, flags) != n ||
        strcmp(again, buf) != 0)
      fail("canonical text is not a fixed point", buf);
    {
      char small[DS_ADDR_STRLEN];
      memset(small, 'Z', sizeof small);
      if (ds_addr_format(a, small, (size_t)n, flags) != -ENOSPC)
        fail("short buffer not -ENOSPC", buf);
      if (small[0] != '\0' || ((size_t)n < sizeof small && small[n] != 'Z'))
        fail("short buffer overwritten", buf);
    }
  }
}

/* Compares ds_addr_parse() of text with inet_pton(). */
static void check_against_libc(const char *text, int rc, const ds_addr *a)
{
  unsigned char bytes[16];

  if (strchr(text, '%') != NULL)
    return;
  if (inet_pton(AF_INET, text, bytes) == 1) {
    if (rc != 0 || a->family != AF_INET || memcmp(a->ip.bytes, bytes, 4) != 0)
      fail("inet_pton(AF_INET) accepts, ds_addr_parse differs", text);
  } else if (inet_pton(AF_INET6, text, bytes) == 1) {
    if (rc != 0 || a->family != AF_INET6 || memcmp(a->ip.bytes, bytes, 16) != 0)
      fail("inet_pton(AF_INET6) accepts, ds_addr_parse differs", text);
  } else if (rc == 0) {
    fail("ds_addr_parse accepts what inet_pton refuses", text);
  }
}

/* Reads the input as a raw address and checks it round-trips. */
static void check_raw(const uint8_t *data, size_t size)
{
  ds_addr a;

  if (size < 1 + 2 + 4 + 16)
    return;
  memset(&a, 0, sizeof a);
  a.family = (data[0] & 1) ? AF_INET6 : AF_INET;
  a.port = (uint16_t)(data[1] << 8 | data[2]);
  memcpy(&a.scope_id, data + 3, 4);
  memcpy(a.ip.bytes, data + 7, 16);
  if (a.family == AF_INET)
    a.scope_id = 0;
  check_roundtrip(&a, "(raw bytes)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char text[512], err[256];
  ds_addr a;
  int rc;

  if (size >= sizeof text)
    size = sizeof text - 1;
  memcpy(text, data, size);
  text[size] = '\0';

  err[0] = '\0';
  rc = ds_addr_parse(&a, text, PORT, err, sizeof err);
  if (rc == 0) {
    if (a.family != AF_INET && a.family != AF_INET6)
      fail("parse gave no family", text);
    if (a.port != PORT)
      fail("parse lost the port", text);
    check_roundtrip(&a, text);
  } else {
    check_error(rc, err, text);
    if (a.family != 0)
      fail("failed parse left an address", text);
  }
  check_against_libc(text, rc, &a);

  err[0] = '\0';
  rc = ds_addr_parse_hostport(&a, text, err, sizeof err);
  if (rc == 0)
    check_roundtrip(&a, text);
  else
    check_error(rc, err, text);

  /* Classification and scope must hold for anything parsed. */
  if (rc == 0) {
    int s = ds_addr_scope(&a);
    if (s < 0 || s > 0xf || (int)ds_addr_classify(&a) > DS_ADDR_GLOBAL)
      fail("bad scope or class", text);
  }

  check_raw(data, size);
  return 0;
}
