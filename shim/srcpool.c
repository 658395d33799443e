/* The source pool (DESIGN: DUALSTACK_SOURCE_POOL, 172.21.112.0/20): one
 * IPv4 address per IPv6 peer or local IPv6 address the application would
 * otherwise have to be shown. Minimal version: allocated in order, never
 * recycled. */
#include "shim.h"

#include <pthread.h>
#include <string.h>

#define SRC_MAX 4094

static struct {
  struct in6_addr a[SRC_MAX];
  unsigned n;
  pthread_mutex_t lock;
} src = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const uint32_t base = (172u << 24) | (21u << 16) | (112u << 8);

uint32_t shim__source_address(const struct in6_addr *a)
{
  uint32_t ip = 0;
  unsigned i;
  pthread_mutex_lock(&src.lock);
  for (i = 0; i < src.n; i++)
    if (memcmp(&src.a[i], a, sizeof *a) == 0)
      break;
  if (i == src.n && src.n < SRC_MAX)
    src.a[src.n++] = *a;
  if (i < src.n)
    ip = base + 1 + i;
  pthread_mutex_unlock(&src.lock);
  return ip;
}

int shim__source_lookup(uint32_t ip, struct in6_addr *out)
{
  int ok = 0;
  pthread_mutex_lock(&src.lock);
  if (ip > base && ip - base - 1 < src.n) {
    *out = src.a[ip - base - 1];
    ok = 1;
  }
  pthread_mutex_unlock(&src.lock);
  return ok;
}

void shim__source_hold(uint32_t ip, int delta)
{
  (void)ip;
  (void)delta;
}

void shim__source_fork(int phase)
{
  shim__fork_mutex(&src.lock, phase, 0);
}
