/* Name lookups for the shim: both families through the library's resolver
 * (hosts file first, then DNS), on a private reactor in the calling
 * thread. */
#include "shim.h"

#include <arpa/inet.h>
#include <string.h>

typedef struct both {
  shim_answer *out;
  int pending;
  int positive;         /* a family answered with addresses */
  double first_positive; /* when, monotonic ms */
} both;

/* One family's answer. */
static void on_answer(ds_lookup *l, int family, int status,
                      const ds_addr *addrs, size_t n, void *user)
{
  both *b = user;
  size_t i;
  (void)l;
  b->pending--;
  if (status != 0)
    return;
  if (!b->positive) {
    b->positive = 1;
    b->first_positive = shim__mono_ms();
  }
  for (i = 0; i < n; i++) {
    if (family == AF_INET6) {
      b->out->n6++;
      continue;
    }
    if (b->out->n4 < 16)
      b->out->a4[b->out->n4] = ntohl(addrs[i].ip.v4.s_addr);
    b->out->n4++;
    if (addrs[i].ip.bytes[0] == 127)
      b->out->loopback4 = 1;
  }
}

int shim__resolve_both(const char *name, shim_answer *out)
{
  ds_reactor *r;
  ds_lookup *l;
  both b = {out, 2, 0, 0};
  int rc;

  memset(out, 0, sizeof *out);
  if (ds_reactor_new(&r) != 0)
    return -1;
  rc = ds_lookup_start(r, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, NULL,
                       on_answer, &b, &l, NULL, 0);
  if (rc != 0) {
    ds_reactor_free(r);
    return rc == DS_EBADNAME ? 0 : -1; /* a bad name finds nothing */
  }
  while (b.pending > 0) {
    int wait = -1;
    if (b.positive) {
      double left = b.first_positive + 50 - shim__mono_ms();
      if (left <= 0)
        break;
      wait = (int)left + 1;
    }
    if (ds_reactor_run_once(r, wait) < 0)
      break;
  }
  if (b.pending > 0)
    ds_lookup_cancel(l);
  ds_reactor_run_once(r, 0);
  ds_reactor_free(r);
  return 0;
}

int shim__eligible(const char *node, int family, int flags)
{
  struct in_addr a;
  if (node == NULL || *node == '\0' || family != AF_INET)
    return 0;
  if (flags & (AI_PASSIVE | AI_NUMERICHOST))
    return 0;
  if (inet_aton(node, &a) != 0)
    return 0; /* "10", "1.2.3": numbers, passed through */
  return 1;
}
