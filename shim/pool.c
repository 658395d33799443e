/* Synthetic IPv4 addresses (RFC 6535 section 4.4): the destination pool
 * stands for names that have only IPv6 addresses (or IPv6 literals given
 * where IPv4 was expected), and a registry remembers the real IPv4
 * addresses handed out for dual-stack names, so that connect() can race
 * the name's IPv6 and IPv4 addresses.
 *
 * Three tables (lib/table.c): names to pool addresses (an entry's number
 * is its address's offset in the pool), the IPv6 address chosen for a
 * synthetic address back to it, and real IPv4 addresses of dual-stack
 * names to the name. Addresses go one per name, stable while the process
 * lives; when the pool is full the least recently used entry not in use
 * is recycled. Memory follows the names in use, whatever the pool's size.
 *
 * In use (DESIGN.md, "Synthetic addresses"): held by an open socket
 * connected or sending to the address (fd.c holds it, and releases it
 * when the fd closes), or within its lease: the larger of the AAAA
 * answer's TTL and the floor, renewed by each lookup, connect and send.
 * The floor is DUALSTACK_POOL_LEASE_S seconds (default 60): a program that
 * resolves then connects has a minute to do it, and one-shot lookups of
 * thousands of names free the addresses they took within a minute. When
 * every address is in use a new name gets none (the table's -EAGAIN),
 * never someone else's; the table finds a free one without scanning.
 */
#include "shim.h"
#include "table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUAL_MAX 256

/* What a synthetic address knows besides its name. */
typedef struct synth {
  int has_v6;         /* v6 was chosen (UDP clients) */
  struct in6_addr v6; /* the IPv6 address datagrams to it go to */
} synth;

static struct {
  uint32_t base, size; /* host order; size addresses from base */
  ds__table *names;    /* name -> synth; number: ip - base */
  ds__table *byv6;     /* chosen IPv6 address -> ip */
  ds__table *dual;     /* real IPv4 address (host order) -> name */
  atomic_int any_dual; /* a dual-stack address was ever recorded */
} pool;

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
  if (ds__table_new(&pool.names, pool.size, sizeof(synth),
                    DS__TABLE_NOCASE | DS__TABLE_NUMBERED) != 0 ||
      ds__table_new(&pool.byv6, pool.size, sizeof(uint32_t), 0) != 0 ||
      ds__table_new(&pool.dual, DUAL_MAX, 256, 0) != 0) {
    ds__table_free(pool.names);
    ds__table_free(pool.byv6);
    pool.names = pool.byv6 = NULL;
    return -1;
  }
  return 0;
}

int shim__pool_contains(uint32_t ip)
{
  return pool.names != NULL && ip >= pool.base - 1 &&
         ip <= pool.base + pool.size;
}

/* Returns when a lease given now (monotonic ms) for at least ms ends: the
 * larger of ms and the floor (DUALSTACK_POOL_LEASE_S). */
static uint64_t lease_end(uint64_t now, uint64_t ms)
{
  uint64_t floor = shim__cfg.pool_lease_s * 1000ull;
  return now + (ms > floor ? ms : floor);
}

int shim__pool_synthesize(const char *name, uint64_t ttl_ms, uint32_t *ip)
{
  uint64_t now = ds__mono_ms_u64();
  uint32_t num;
  int rc;
  *ip = 0;
  if (pool.names == NULL)
    return -EINVAL;
  rc = ds__table_put_leased(pool.names, name, strlen(name),
                            lease_end(now, ttl_ms), now, &num);
  if (rc == 0)
    *ip = pool.base + num;
  return rc; /* -EAGAIN: every address is in use */
}

int shim__pool_claim(uint32_t ip, const char *name)
{
  uint64_t now = ds__mono_ms_u64();
  if (pool.names == NULL || ip < pool.base || ip - pool.base >= pool.size)
    return -EINVAL;
  return ds__table_put_leased_at(pool.names, name, strlen(name), ip - pool.base,
                                 lease_end(now, 0), now);
}

int shim__pool_hold(uint32_t ip, int delta)
{
  uint32_t num = ip - pool.base;
  if (pool.names == NULL || ip < pool.base || num >= pool.size)
    return 0;
  /* A hold (connect, send) renews the lease: the address stays its
   * name's for a floor's time after the socket is gone. */
  if (delta > 0 &&
      ds__table_lease(pool.names, num, lease_end(ds__mono_ms_u64(), 0)) != 1)
    return 0;
  return ds__table_hold(pool.names, num, delta);
}

void shim__pool_renew(uint32_t ip)
{
  if (pool.names != NULL && ip >= pool.base && ip - pool.base < pool.size)
    ds__table_lease(pool.names, ip - pool.base,
                    lease_end(ds__mono_ms_u64(), 0));
}

int shim__pool_maybe(uint32_t ip)
{
  return shim__pool_contains(ip) ||
         atomic_load_explicit(&pool.any_dual, memory_order_relaxed);
}

int shim__pool_name(uint32_t ip, char *name, size_t len)
{
  char buf[DS__TABLE_KEY_MAX + 1];
  if (pool.names == NULL)
    return 0;
  if (ip >= pool.base && ip < pool.base + pool.size &&
      ds__table_get_num(pool.names, ip - pool.base, ds__mono_ms_u64(), buf,
                        sizeof buf, NULL, NULL) == 1) {
    snprintf(name, len, "%s", buf);
    return 1;
  }
  if (ds__table_get(pool.dual, &ip, sizeof ip, 0, buf, NULL) == 1) {
    snprintf(name, len, "%s", buf);
    return 2;
  }
  return 0;
}

void shim__pool_dual(uint32_t ip, const char *name)
{
  char buf[256];
  if (pool.dual == NULL)
    return;
  snprintf(buf, sizeof buf, "%s", name);
  atomic_store(&pool.any_dual, 1);
  ds__table_put(pool.dual, &ip, sizeof ip, buf, 0, ds__mono_ms_u64(), NULL,
                NULL);
}

int shim__pool_v6(uint32_t ip, struct in6_addr *out)
{
  char name[256];
  shim_answer ans;
  synth v;
  uint32_t num;
  int n;
  if (shim__pool_name(ip, name, sizeof name) != 1 ||
      ds__table_get_num(pool.names, ip - pool.base, ds__mono_ms_u64(), NULL, 0,
                        NULL, &v) != 1)
    return 0;
  if (v.has_v6) {
    *out = v.v6;
    return 1;
  }
  /* First use: the name's first IPv6 address in RFC 6724 order. */
  if (shim__resolve_both(name, &ans) != 0 || ans.n6 == 0)
    return 0;
  n = ans.n6 < 16 ? ans.n6 : 16;
  ds_sort_destinations(ans.a6, (size_t)n);
  memset(&v, 0, sizeof v);
  memcpy(&v.v6, ans.a6[0].ip.bytes, sizeof v.v6);
  v.has_v6 = 1;
  /* Only if the address still stands for the name (it may have been
   * recycled while the lookup ran). */
  if (ds__table_set(pool.names, name, strlen(name), &v, 0, &num) != 1 ||
      num != ip - pool.base)
    return 0;
  /* Two names may choose the same IPv6 address: the first one that still
   * has it keeps the way back. */
  if (shim__pool_from_v6(&v.v6) == 0)
    ds__table_put(pool.byv6, &v.v6, sizeof v.v6, &ip, 0, ds__mono_ms_u64(),
                  NULL, NULL);
  *out = v.v6;
  return 1;
}

uint32_t shim__pool_from_v6(const struct in6_addr *a)
{
  uint32_t ip;
  synth v;
  if (pool.names == NULL ||
      ds__table_get(pool.byv6, a, sizeof *a, 0, &ip, NULL) != 1)
    return 0;
  /* The reverse entry is a hint: the address must still have chosen a. */
  if (ip < pool.base || ip - pool.base >= pool.size ||
      ds__table_get_num(pool.names, ip - pool.base, ds__mono_ms_u64(), NULL, 0,
                        NULL, &v) != 1 ||
      !v.has_v6 || memcmp(&v.v6, a, sizeof *a) != 0)
    return 0;
  return ip;
}

void shim__pool_fork(int phase)
{
  ds__table_fork(pool.names, phase);
  ds__table_fork(pool.byv6, phase);
  ds__table_fork(pool.dual, phase);
}
