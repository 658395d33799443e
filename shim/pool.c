/* Synthetic IPv4 addresses (RFC 6535 section 4.4): the destination pool
 * stands for names that have only IPv6 addresses (or IPv6 literals given
 * where IPv4 was expected), and a registry remembers the real IPv4
 * addresses handed out for dual-stack names, so that connect() can race
 * the name's IPv6 and IPv4 addresses.
 *
 * Addresses are allocated in order, one per name, stable while the process
 * lives; when the pool is full the least recently used entry is recycled.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DUAL_MAX 256

typedef struct entry {
  char name[256];
  uint64_t used;
  int has_v6;         /* v6 was chosen (UDP clients) */
  struct in6_addr v6; /* the IPv6 address datagrams to it go to */
} entry;

static struct {
  pthread_mutex_t lock;
  uint32_t base, size; /* host order; size addresses from base */
  entry *e;            /* e[i] stands for base + i; name "" = free */
  uint32_t next;
  uint64_t tick;
  struct {
    uint32_t ip;
    char name[256];
  } dual[DUAL_MAX];
  unsigned ndual;
  atomic_int any_dual; /* a dual-stack address was ever recorded */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

int shim__parse_cidr(const char *s, uint32_t *base, uint32_t *size)
{
  char buf[32];
  const char *slash = strchr(s, '/');
  struct in_addr a;
  long len;
  char *end;
  if (slash == NULL || (size_t)(slash - s) >= sizeof buf)
    return -1;
  memcpy(buf, s, (size_t)(slash - s));
  buf[slash - s] = '\0';
  if (inet_pton(AF_INET, buf, &a) != 1)
    return -1;
  len = strtol(slash + 1, &end, 10);
  if (slash[1] == '\0' || *end != '\0' || len < 8 || len > 30)
    return -1;
  *size = (uint32_t)1 << (32 - len);
  *base = ntohl(a.s_addr) & ~(*size - 1);
  return 0;
}

int shim__pool_init(const char *cidr)
{
  uint32_t base, size;
  if (shim__parse_cidr(cidr ? cidr : "10.170.160.0/20", &base, &size) != 0)
    return -1;
  /* The network and broadcast-looking ends are left out. */
  pool.base = base + 1;
  pool.size = size - 2;
  pool.e = calloc(pool.size, sizeof *pool.e);
  return pool.e == NULL ? -1 : 0;
}

int shim__pool_contains(uint32_t ip)
{
  return pool.e != NULL && ip >= pool.base - 1 && ip <= pool.base + pool.size;
}

uint32_t shim__pool_synthesize(const char *name)
{
  uint32_t i, victim = 0;
  uint32_t ip = 0;
  if (pool.e == NULL)
    return 0;
  pthread_mutex_lock(&pool.lock);
  for (i = 0; i < pool.size; i++)
    if (pool.e[i].name[0] != '\0' && strcasecmp(pool.e[i].name, name) == 0) {
      pool.e[i].used = ++pool.tick;
      ip = pool.base + i;
      goto done;
    }
  if (pool.next < pool.size) {
    victim = pool.next++;
  } else {
    for (i = 1; i < pool.size; i++)
      if (pool.e[i].used < pool.e[victim].used)
        victim = i;
  }
  snprintf(pool.e[victim].name, sizeof pool.e[victim].name, "%s", name);
  pool.e[victim].used = ++pool.tick;
  pool.e[victim].has_v6 = 0;
  ip = pool.base + victim;
done:
  pthread_mutex_unlock(&pool.lock);
  return ip;
}

int shim__pool_maybe(uint32_t ip)
{
  return shim__pool_contains(ip) ||
         atomic_load_explicit(&pool.any_dual, memory_order_relaxed);
}

int shim__pool_name(uint32_t ip, char *name, size_t len)
{
  int found = 0;
  unsigned i;
  pthread_mutex_lock(&pool.lock);
  if (pool.e != NULL && ip >= pool.base && ip < pool.base + pool.size &&
      pool.e[ip - pool.base].name[0] != '\0') {
    snprintf(name, len, "%s", pool.e[ip - pool.base].name);
    pool.e[ip - pool.base].used = ++pool.tick;
    found = 1;
  }
  for (i = 0; !found && i < pool.ndual && i < DUAL_MAX; i++)
    if (pool.dual[i].ip == ip) {
      snprintf(name, len, "%s", pool.dual[i].name);
      found = 2;
    }
  pthread_mutex_unlock(&pool.lock);
  return found;
}

void shim__pool_dual(uint32_t ip, const char *name)
{
  unsigned i, slot;
  pthread_mutex_lock(&pool.lock);
  for (i = 0; i < pool.ndual && i < DUAL_MAX; i++)
    if (pool.dual[i].ip == ip)
      break;
  slot = i < DUAL_MAX && i < pool.ndual ? i : pool.ndual++ % DUAL_MAX;
  atomic_store(&pool.any_dual, 1);
  pool.dual[slot].ip = ip;
  snprintf(pool.dual[slot].name, sizeof pool.dual[slot].name, "%s", name);
  pthread_mutex_unlock(&pool.lock);
}

int shim__pool_v6(uint32_t ip, struct in6_addr *out)
{
  char name[256];
  shim_answer ans;
  entry *e;
  int n, ok = 0;
  if (shim__pool_name(ip, name, sizeof name) != 1)
    return 0;
  pthread_mutex_lock(&pool.lock);
  e = &pool.e[ip - pool.base];
  if (e->has_v6 && strcasecmp(e->name, name) == 0) {
    *out = e->v6;
    ok = 1;
  }
  pthread_mutex_unlock(&pool.lock);
  if (ok)
    return 1;
  /* First use: the name's first IPv6 address in RFC 6724 order. */
  if (shim__resolve_both(name, &ans) != 0 || ans.n6 == 0)
    return 0;
  n = ans.n6 < 16 ? ans.n6 : 16;
  ds_sort_destinations(ans.a6, (size_t)n);
  pthread_mutex_lock(&pool.lock);
  if (strcasecmp(e->name, name) == 0) {
    memcpy(&e->v6, ans.a6[0].ip.bytes, sizeof e->v6);
    e->has_v6 = 1;
    *out = e->v6;
    ok = 1;
  }
  pthread_mutex_unlock(&pool.lock);
  return ok;
}

uint32_t shim__pool_from_v6(const struct in6_addr *a)
{
  uint32_t i, ip = 0;
  if (pool.e == NULL)
    return 0;
  pthread_mutex_lock(&pool.lock);
  for (i = 0; i < pool.next && i < pool.size; i++)
    if (pool.e[i].has_v6 && memcmp(&pool.e[i].v6, a, sizeof *a) == 0) {
      ip = pool.base + i;
      break;
    }
  pthread_mutex_unlock(&pool.lock);
  return ip;
}

void shim__pool_fork(int phase)
{
  ds__fork_mutex(&pool.lock, phase, 0);
}
