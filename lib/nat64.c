/* NAT64 addresses (RFC 6052) and prefix discovery (RFC 7050). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Returns the byte positions, in an IPv6 address, of the four IPv4 bytes
 * for a prefix length, skipping bits 64-71 (the "u" octet), or NULL for a
 * length RFC 6052 does not define. */
static const uint8_t *positions(unsigned len)
{
  static const uint8_t p32[4] = {4, 5, 6, 7}, p40[4] = {5, 6, 7, 9},
                       p48[4] = {6, 7, 9, 10}, p56[4] = {7, 9, 10, 11},
                       p64[4] = {9, 10, 11, 12}, p96[4] = {12, 13, 14, 15};
  switch (len) {
  case 32:
    return p32;
  case 40:
    return p40;
  case 48:
    return p48;
  case 56:
    return p56;
  case 64:
    return p64;
  case 96:
    return p96;
  default:
    return NULL;
  }
}

int ds_nat64_synthesize(ds_addr *out, const ds_addr *prefix, unsigned len,
                        const ds_addr *v4)
{
  const uint8_t *pos = positions(len);
  ds_addr r;
  int i;
  if (pos == NULL || prefix == NULL || v4 == NULL ||
      prefix->family != AF_INET6 || v4->family != AF_INET)
    return -EINVAL;
  memset(&r, 0, sizeof r);
  r.family = AF_INET6;
  r.port = v4->port;
  memcpy(r.ip.bytes, prefix->ip.bytes, len / 8);
  for (i = 0; i < 4; i++)
    r.ip.bytes[pos[i]] = v4->ip.bytes[i];
  *out = r;
  return 0;
}

int ds_nat64_extract(ds_addr *out, const ds_addr *v6, unsigned len)
{
  const uint8_t *pos = positions(len);
  ds_addr r;
  int i;
  if (pos == NULL || v6 == NULL || v6->family != AF_INET6)
    return -EINVAL;
  memset(&r, 0, sizeof r);
  r.family = AF_INET;
  r.port = v6->port;
  for (i = 0; i < 4; i++)
    r.ip.bytes[i] = v6->ip.bytes[pos[i]];
  *out = r;
  return 0;
}

/* Returns 1 if a NAT64 prefix must never be applied to IPv4 address a:
 * 0/8, 127/8 and 169.254/16 (never synthesized). */
static int nat64_forbidden(const ds_addr *a)
{
  const uint8_t *b = a->ip.bytes;
  return b[0] == 0 || b[0] == 127 || (b[0] == 169 && b[1] == 254);
}

/* Returns 1 if the host has a route to the IPv4 address a (a UDP connect,
 * which sends nothing). */
static int ipv4_routable(const ds_addr *a)
{
  struct sockaddr_storage ss;
  socklen_t len;
  ds_addr p = *a;
  int fd, ok;
  if (p.port == 0)
    p.port = 9;
  fd = ds__sys.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 1;
  ds_addr_to_sockaddr(&p, &ss, &len);
  ok = ds__sys.connect(fd, (struct sockaddr *)&ss, len) == 0 ||
       (errno != ENETUNREACH && errno != EHOSTUNREACH);
  ds__sys.close(fd);
  return ok;
}

int ds__nat64_needed(const ds_addr *a)
{
  return a->family == AF_INET && !nat64_forbidden(a) && !ipv4_routable(a);
}

struct ds_nat64_query {
  ds_lookup *lookup;
  ds_nat64_cb cb;
  void *user;
  int in_cb; /* the callback runs: a cancel from it changes nothing */
};

/* The AAAA answer for ipv4only.arpa: the first address that embeds a
 * well-known IPv4 address at some RFC 6052 length gives the prefix. The
 * longest length is tried first, since /96 is by far the most common and a
 * shorter one could match by accident only if the /96 did not. */
static void discovered(ds_lookup *l, int family, int status,
                       const ds_addr *addrs, size_t n, void *user)
{
  static const unsigned lens[] = {96, 64, 56, 48, 40, 32};
  ds_nat64_query *q = user;
  size_t i, k;
  (void)l;
  (void)family;
  q->in_cb = 1;
  for (i = 0; status == 0 && i < n; i++)
    for (k = 0; k < sizeof lens / sizeof lens[0]; k++) {
      ds_addr v4, prefix;
      const uint8_t *b;
      ds_nat64_extract(&v4, &addrs[i], lens[k]);
      b = v4.ip.bytes;
      if (!(b[0] == 192 && b[1] == 0 && b[2] == 0 &&
            (b[3] == 170 || b[3] == 171)))
        continue;
      /* For lengths below 64, bits 64-71 must be zero (RFC 6052 2.2). */
      if (lens[k] < 96 && addrs[i].ip.bytes[8] != 0)
        continue;
      memset(&prefix, 0, sizeof prefix);
      prefix.family = AF_INET6;
      memcpy(prefix.ip.bytes, addrs[i].ip.bytes, lens[k] / 8);
      q->cb(0, &prefix, lens[k], q->user);
      free(q);
      return;
    }
  q->cb(status != 0 ? status : DS_ENODATA, NULL, 0, q->user);
  free(q);
}

int ds_nat64_discover(ds_reactor *r, const ds_resolver_opts *opts,
                      ds_nat64_cb cb, void *user, ds_nat64_query **out,
                      char *err, size_t errlen)
{
  ds_nat64_query *q;
  int rc;
  *out = NULL;
  if (cb == NULL)
    return ds__fail(err, errlen, -EINVAL, "no callback");
  q = calloc(1, sizeof *q);
  if (q == NULL)
    return ds__fail(err, errlen, -ENOMEM, "out of memory");
  q->cb = cb;
  q->user = user;
  rc = ds_lookup_start(r, "ipv4only.arpa", DS_LOOKUP_AAAA, opts, discovered, q,
                       &q->lookup, err, errlen);
  if (rc != 0) {
    free(q);
    return rc;
  }
  *out = q;
  return 0;
}

void ds_nat64_cancel(ds_nat64_query *q)
{
  if (q == NULL || q->in_cb)
    return;
  ds_lookup_cancel(q->lookup);
  free(q);
}
