/* DUALSTACK_EXCLUDE: comma-separated names, networks and ports the shim
 * leaves alone.
 *
 *   name           that name (any case); ".example.org" or "*.example.org"
 *                  also every name under it
 *   192.0.2.0/24   IPv4 addresses in it: real A records of dual-stack names
 *                  are connected to directly, without a race
 *   2001:db8::/32  IPv6 addresses in it are not used: a name whose every
 *                  IPv6 address is excluded is treated as having none
 *   :PORT          connects to PORT are not raced (dual-stack names go to
 *                  their IPv4 address as asked) and binds to PORT are not
 *                  widened
 *
 * An address without /LEN is a single address. A bad item is reported in
 * the trace (a "passthrough" event naming it) and ignored.
 */
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EX_MAX 32

static struct {
  char *names[EX_MAX];
  int nnames;
  struct {
    ds_addr a;
    unsigned len;
  } nets[EX_MAX];
  int nnets;
  uint16_t ports[EX_MAX];
  int nports;
} ex;

/* Traces an item of the list that means nothing. */
static void bad(const char *item, const char *why)
{
  shim_json j;
  char reason[200];
  snprintf(reason, sizeof reason, "DUALSTACK_EXCLUDE item '%.80s': %s", item,
           why);
  shim__json_begin(&j, "passthrough", shim__next_id());
  shim__json_str(&j, "reason", reason);
  shim__json_emit(&j);
}

/* Adds one item; returns nothing, reports bad ones. */
static void add(char *item)
{
  char *slash, *end;
  ds_addr a;
  long n;
  if (*item == '\0')
    return;
  if (*item == ':') {
    n = strtol(item + 1, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535 || item[1] == '\0')
      bad(item, "not a port from 1 to 65535");
    else if (ex.nports < EX_MAX)
      ex.ports[ex.nports++] = (uint16_t)n;
    return;
  }
  slash = strchr(item, '/');
  if (slash != NULL)
    *slash = '\0';
  if (ds_addr_parse(&a, item, 0, NULL, 0) == 0) {
    unsigned max = a.family == AF_INET6 ? 128 : 32;
    n = max;
    if (slash != NULL) {
      n = strtol(slash + 1, &end, 10);
      if (*end != '\0' || slash[1] == '\0' || n < 0 || n > (long)max) {
        *slash = '/';
        bad(item, "bad prefix length");
        return;
      }
    }
    if (ex.nnets < EX_MAX) {
      ex.nets[ex.nnets].a = a;
      ex.nets[ex.nnets++].len = (unsigned)n;
    }
    return;
  }
  if (slash != NULL) {
    *slash = '/';
    bad(item, "not an address/length");
    return;
  }
  if (strstr(item, "..") != NULL ||
      !ds__looks_like_hostname(item[0] == '*' && item[1] == '.' ? item + 2
                               : item[0] == '.'                 ? item + 1
                                                                : item)) {
    bad(item, "not a name, a network or :PORT");
    return;
  }
  if (ex.nnames < EX_MAX && (ex.names[ex.nnames] = strdup(item)) != NULL)
    ex.nnames++;
}

void shim__exclude_init(const char *list)
{
  char *copy, *item, *save = NULL;
  if (list == NULL || *list == '\0' || (copy = strdup(list)) == NULL)
    return;
  for (item = strtok_r(copy, ", ", &save); item != NULL;
       item = strtok_r(NULL, ", ", &save))
    add(item);
  free(copy);
}

int shim__excluded_name(const char *name)
{
  size_t nl, sl;
  int i;
  if (name == NULL)
    return 0;
  nl = strlen(name);
  if (nl > 0 && name[nl - 1] == '.')
    nl--; /* "host." is host */
  for (i = 0; i < ex.nnames; i++) {
    const char *s = ex.names[i];
    if (s[0] == '*')
      s++;
    sl = strlen(s);
    if (s[0] == '.') {
      /* Under the domain: "a.example.org" for ".example.org". */
      if (nl > sl && strncasecmp(name + nl - sl, s, sl) == 0)
        return 1;
      continue;
    }
    if (nl == sl && strncasecmp(name, s, nl) == 0)
      return 1;
  }
  return 0;
}

/* Returns 1 if the first len bits of a and b agree. */
static int same_prefix(const unsigned char *a, const unsigned char *b,
                       unsigned len)
{
  unsigned full = len / 8, rest = len % 8;
  if (memcmp(a, b, full) != 0)
    return 0;
  return rest == 0 ||
         ((a[full] ^ b[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

int shim__excluded_addr(const ds_addr *a)
{
  int i;
  for (i = 0; i < ex.nnets; i++)
    if (ex.nets[i].a.family == a->family &&
        same_prefix(ex.nets[i].a.ip.bytes, a->ip.bytes, ex.nets[i].len))
      return 1;
  return 0;
}

int shim__excluded_port(uint16_t port)
{
  int i;
  for (i = 0; i < ex.nports; i++)
    if (ex.ports[i] == port)
      return 1;
  return 0;
}
