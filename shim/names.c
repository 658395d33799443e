/* Name lookups for the shim: both families through the library's resolver
 * (hosts file first, then DNS), on a private reactor in the calling
 * thread. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

typedef struct both {
  shim_answer *out;
  int pending;
  int positive;          /* a family answered with addresses */
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
      if (b->out->n6 < 16)
        b->out->a6[b->out->n6] = addrs[i];
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
  rc = ds_lookup_start(r, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, NULL, on_answer,
                       &b, &l, NULL, 0);
  if (rc != 0) {
    ds_reactor_free(r);
    return rc == DS_EBADNAME ? 0 : -1; /* a bad name finds nothing */
  }
  shim__work()->reactor = r;
  shim__work()->lookup = l;
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
  shim__work()->lookup = NULL;
  shim__work()->reactor = NULL;
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

int shim__decide(const char *name, int family, int flags, uint32_t *synth)
{
  shim_answer ans;
  *synth = 0;
  if (shim__cfg.observe || !shim__eligible(name, family, flags) ||
      shim__resolve_both(name, &ans) != 0)
    return SHIM_PASS;
  if (ans.n4 > 0 && !ans.loopback4)
    return ans.n6 > 0 ? SHIM_DUAL : SHIM_PASS;
  if (ans.n4 == 0 && ans.n6 > 0) {
    *synth = shim__pool_synthesize(name);
    if (*synth != 0)
      return SHIM_SYNTH;
  }
  return SHIM_PASS;
}

int shim__fill_hostent(struct hostent *he, char *buf, size_t len,
                       const char *name, uint32_t ip)
{
  /* Layout in buf: the address, two pointers (addr list), one pointer
   * (aliases), then the name; pointers aligned. */
  size_t nlen = strlen(name) + 1;
  uintptr_t p = (uintptr_t)buf, end = p + len;
  struct in_addr *addr;
  char **addrs, **aliases, *n;

  p = (p + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
  addrs = (char **)p;
  p += 2 * sizeof(char *);
  aliases = (char **)p;
  p += sizeof(char *);
  addr = (struct in_addr *)p;
  p += sizeof *addr;
  n = (char *)p;
  p += nlen;
  if (p > end)
    return ERANGE;
  addr->s_addr = htonl(ip);
  addrs[0] = (char *)addr;
  addrs[1] = NULL;
  aliases[0] = NULL;
  memcpy(n, name, nlen);
  he->h_name = n;
  he->h_aliases = aliases;
  he->h_addrtype = AF_INET;
  he->h_length = 4;
  he->h_addr_list = addrs;
  return 0;
}

void shim__remember_dual_hostent(const struct hostent *he, const char *name)
{
  char **p;
  if (he == NULL || he->h_addrtype != AF_INET)
    return;
  for (p = he->h_addr_list; p != NULL && *p != NULL; p++) {
    struct in_addr a;
    memcpy(&a, *p, 4);
    shim__pool_dual(ntohl(a.s_addr), name);
  }
}
