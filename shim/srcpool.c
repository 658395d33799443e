/* The source pool (DESIGN: DUALSTACK_SOURCE_POOL, 172.21.112.0/20): one
 * IPv4 address per IPv6 peer, or local IPv6 address, that an IPv4-only
 * application would otherwise have to be shown.
 *
 * Addresses are handed out in order (the network and broadcast-looking
 * ends left out), one per IPv6 address, and stay the same while the
 * address is in use. A socket holds the address of its peer (accepted
 * connections); when every address has been handed out, the least
 * recently used one that no open socket holds is recycled. If all are
 * held, none can be had (0).
 *
 * A bad DUALSTACK_SOURCE_POOL leaves the pool empty: IPv6 peers then
 * cannot be shown to the application, so listening sockets are not
 * widened (server.c) and nothing else changes.
 *
 * The addresses are the numbered entries of one table (lib/table.c) keyed
 * by IPv6 address: memory follows the peers seen, whatever the pool's
 * size, and a hold keeps an entry from being recycled.
 */
#include "shim.h"
#include "table.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* What an entry keeps besides its IPv6 peer (the key): the local address
 * the peer last sent to on a widened UDP socket (all zero: none seen), so
 * that replies leave from it. */
typedef struct src_local {
  struct in6_addr addr;
  uint32_t ifindex;
} src_local;

static struct {
  pthread_once_t once;
  uint32_t base, size; /* entry i stands for base + i (host order) */
  ds__table *t;        /* NULL: no pool (bad configuration) */
} src = {.once = PTHREAD_ONCE_INIT};

static void src_init(void)
{
  const char *v = secure_getenv("DUALSTACK_SOURCE_POOL");
  uint32_t base, size;
  if (shim__parse_cidr(v != NULL && *v != '\0' ? v : "172.21.112.0/20", &base,
                       &size) != 0)
    return;
  src.base = base + 1;
  src.size = size - 2;
  if (ds__table_new(&src.t, src.size, sizeof(src_local), DS__TABLE_NUMBERED) !=
      0)
    src.t = NULL;
}

/* Returns 1 when the pool is usable (configured and allocated). */
int shim__source_ok(void)
{
  pthread_once(&src.once, src_init);
  return src.t != NULL;
}

int shim__source_contains(uint32_t ip)
{
  return shim__source_ok() && ip >= src.base && ip - src.base < src.size;
}

uint32_t shim__source_get_at(const struct in6_addr *a,
                             const struct in6_addr *local, unsigned ifindex,
                             int *fresh)
{
  src_local v;
  uint32_t num;
  if (fresh != NULL)
    *fresh = 0;
  if (local != NULL) {
    v.addr = *local;
    v.ifindex = ifindex;
  }
  if (a == NULL || !shim__source_ok() ||
      ds__table_put(src.t, a, sizeof *a, local != NULL ? &v : NULL, 0,
                    ds__mono_ms_u64(), &num, fresh) != 0)
    return 0; /* -EAGAIN: every address is held by an open socket */
  return src.base + num;
}

uint32_t shim__source_get(const struct in6_addr *a, int *fresh)
{
  return shim__source_get_at(a, NULL, 0, fresh);
}

uint32_t shim__source_address(const struct in6_addr *a)
{
  return shim__source_get(a, NULL);
}

int shim__source_lookup(uint32_t ip, struct in6_addr *out)
{
  unsigned char key[sizeof *out + 1]; /* the table adds a NUL */
  if (!shim__source_contains(ip) ||
      ds__table_get_num(src.t, ip - src.base, ds__mono_ms_u64(), key,
                        sizeof key, NULL, NULL) != 1)
    return 0;
  memcpy(out, key, sizeof *out);
  return 1;
}

int shim__source_local(uint32_t ip, struct in6_addr *local, unsigned *ifindex)
{
  unsigned char key[sizeof(struct in6_addr) + 1];
  src_local v;
  if (!shim__source_contains(ip) ||
      ds__table_get_num(src.t, ip - src.base, ds__mono_ms_u64(), key,
                        sizeof key, NULL, &v) != 1 ||
      IN6_IS_ADDR_UNSPECIFIED(&v.addr))
    return 0;
  *local = v.addr;
  *ifindex = v.ifindex;
  return 1;
}

void shim__source_hold(uint32_t ip, int delta)
{
  /* A release counts as a use, so the entry is recycled last among the
   * idle ones that went idle before it. */
  if (shim__source_contains(ip))
    ds__table_hold(src.t, ip - src.base, delta);
}

int shim__source_reverse(uint32_t ip, char *host, size_t len)
{
  struct sockaddr_in6 s6;
  char text[INET6_ADDRSTRLEN];
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  if (host == NULL || len == 0 || !shim__source_lookup(ip, &s6.sin6_addr))
    return 0;
  /* The IPv6 address's own name, through libc (hosts file, DNS, NSS). */
  if (ds__sys.getnameinfo != NULL &&
      ds__sys.getnameinfo((struct sockaddr *)&s6, sizeof s6, host,
                          (socklen_t)len, NULL, 0, NI_NAMEREQD) == 0)
    return 1;
  if (inet_ntop(AF_INET6, &s6.sin6_addr, text, sizeof text) == NULL ||
      strlen(text) >= len)
    return 0;
  memcpy(host, text, strlen(text) + 1);
  return 1;
}

/* fork() while another thread holds the table's lock would leave the
 * child's copy locked for ever: it is taken around fork with the others. */
void shim__source_fork(int phase)
{
  ds__table_fork(src.t, phase);
}
