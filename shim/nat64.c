/* DUALSTACK_NAT64 in the shim: an IPv4 literal the host cannot route (its
 * connect fails with ENETUNREACH: an IPv6-only host) is reached through
 * NAT64, at the address RFC 6052 embeds it in. Never otherwise: a host
 * with an IPv4 route connects as asked.
 *
 *   auto (default)  the prefix is discovered (RFC 7050, ipv4only.arpa) the
 *                   first time it is needed; a failed discovery is tried
 *                   again after 30 s
 *   off             never
 *   PREFIX/LEN      that prefix (LEN 32, 40, 48, 56, 64 or 96)
 */
#include "shim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NAT64_AUTO, NAT64_OFF, NAT64_FIXED };

static struct {
  pthread_mutex_t lock;
  int mode;
  int known;     /* prefix holds a configured or discovered prefix */
  double failed; /* when discovery last failed (monotonic ms), or 0 */
  ds_addr prefix;
  unsigned len;
} nat = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Traces a DUALSTACK_NAT64 value the shim cannot use. */
static void bad(const char *value, const char *why)
{
  shim_json j;
  char reason[200];
  snprintf(reason, sizeof reason, "DUALSTACK_NAT64=%.60s: %s; NAT64 off",
           value, why);
  shim__json_begin(&j, "passthrough", shim__next_id());
  shim__json_str(&j, "reason", reason);
  shim__json_emit(&j);
}

void shim__nat64_init(const char *v)
{
  char buf[80], *slash, *end;
  long len;
  if (v == NULL || *v == '\0' || strcmp(v, "auto") == 0) {
    nat.mode = NAT64_AUTO;
    return;
  }
  nat.mode = NAT64_OFF;
  if (strcmp(v, "off") == 0)
    return;
  snprintf(buf, sizeof buf, "%s", v);
  slash = strchr(buf, '/');
  len = 96;
  if (slash != NULL) {
    *slash = '\0';
    len = strtol(slash + 1, &end, 10);
    if (*end != '\0' || slash[1] == '\0') {
      bad(v, "the length is not a number");
      return;
    }
  }
  if (ds_addr_parse(&nat.prefix, buf, 0, NULL, 0) != 0 ||
      nat.prefix.family != AF_INET6) {
    bad(v, "not auto, off or an IPv6 prefix");
    return;
  }
  if (len != 32 && len != 40 && len != 48 && len != 56 && len != 64 &&
      len != 96) {
    bad(v, "the length must be 32, 40, 48, 56, 64 or 96");
    return;
  }
  nat.len = (unsigned)len;
  nat.known = 1;
  nat.mode = NAT64_FIXED;
}

int shim__nat64_known(ds_addr *prefix, unsigned *len)
{
  int ok;
  pthread_mutex_lock(&nat.lock);
  ok = nat.known && nat.mode != NAT64_OFF;
  if (ok) {
    *prefix = nat.prefix;
    *len = nat.len;
  }
  pthread_mutex_unlock(&nat.lock);
  return ok;
}

typedef struct discovery {
  int done, status;
  ds_addr prefix;
  unsigned len;
} discovery;

static void on_prefix(int status, const ds_addr *prefix, unsigned len,
                      void *user)
{
  discovery *d = user;
  d->done = 1;
  d->status = status;
  if (status == 0) {
    d->prefix = *prefix;
    d->len = len;
  }
}

int shim__nat64_prefix(ds_addr *prefix, unsigned *len)
{
  ds_reactor *r;
  ds_nat64_query *q;
  discovery d = {0};
  double failed;
  if (shim__nat64_known(prefix, len))
    return 1;
  pthread_mutex_lock(&nat.lock);
  failed = nat.failed;
  pthread_mutex_unlock(&nat.lock);
  if (nat.mode != NAT64_AUTO || (failed != 0 && ds__mono_ms() - failed < 30000))
    return 0;
  if (ds_reactor_new(&r) != 0)
    return 0;
  if (ds_nat64_discover(r, NULL, on_prefix, &d, &q, NULL, 0) != 0) {
    ds_reactor_free(r);
    return 0;
  }
  shim__work()->reactor = r;
  while (!d.done)
    if (ds_reactor_run_once(r, -1) < 0)
      break;
  shim__work()->reactor = NULL;
  if (!d.done)
    ds_nat64_cancel(q);
  ds_reactor_run_once(r, 0);
  ds_reactor_free(r);
  pthread_mutex_lock(&nat.lock);
  if (d.done && d.status == 0) {
    nat.prefix = d.prefix;
    nat.len = d.len;
    nat.known = 1;
  } else {
    nat.failed = ds__mono_ms();
  }
  pthread_mutex_unlock(&nat.lock);
  return shim__nat64_known(prefix, len);
}

void shim__nat64_fork(int phase)
{
  ds__fork_mutex(&nat.lock, phase, 0);
}
