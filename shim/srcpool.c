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
 * widened (server.c) and nothing else changes. Pools larger than
 * SRC_CAP addresses use their first SRC_CAP addresses.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SRC_CAP 65534u

typedef struct src_entry {
  struct in6_addr a;
  uint64_t used;  /* last use (a tick); 0: never handed out */
  uint32_t holds; /* open sockets holding this address */
  int32_t next;   /* next entry in the same hash chain, or -1 */
} src_entry;

static struct {
  pthread_mutex_t lock;
  pthread_once_t once;
  uint32_t base, size; /* entry i stands for base + i (host order) */
  uint32_t fresh;      /* entries [0, fresh) have been handed out */
  uint64_t tick;
  src_entry *e;        /* NULL: no pool (bad configuration) */
  int32_t *bucket;
  uint32_t mask; /* buckets - 1 */
} src = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};


static void src_init(void)
{
  const char *v = secure_getenv("DUALSTACK_SOURCE_POOL");
  uint32_t base, size, nb = 1;
  if (shim__parse_cidr(v != NULL && *v != '\0' ? v : "172.21.112.0/20", &base,
                 &size) != 0)
    return;
  src.base = base + 1;
  src.size = size - 2 > SRC_CAP ? SRC_CAP : size - 2;
  while (nb < src.size)
    nb <<= 1;
  src.e = calloc(src.size, sizeof *src.e);
  src.bucket = malloc(nb * sizeof *src.bucket);
  if (src.e == NULL || src.bucket == NULL) {
    free(src.e);
    free(src.bucket);
    src.e = NULL;
    return;
  }
  memset(src.bucket, 0xff, nb * sizeof *src.bucket); /* all -1 */
  src.mask = nb - 1;
}

/* Returns 1 when the pool is usable (configured and allocated). */
int shim__source_ok(void)
{
  pthread_once(&src.once, src_init);
  return src.e != NULL;
}

int shim__source_contains(uint32_t ip)
{
  return shim__source_ok() && ip >= src.base && ip - src.base < src.size;
}

/* Returns the hash bucket of a. */
static uint32_t hash6(const struct in6_addr *a)
{
  uint32_t w[4], h;
  memcpy(w, a, sizeof w);
  h = w[0] * 0x9e3779b1u;
  h = (h ^ w[1]) * 0x85ebca6bu;
  h = (h ^ w[2]) * 0xc2b2ae35u;
  h = (h ^ w[3]) * 0x27d4eb2fu;
  return (h ^ (h >> 15)) & src.mask;
}

/* Removes entry i from its hash chain (under the lock). */
static void unlink_entry(uint32_t i)
{
  int32_t *p = &src.bucket[hash6(&src.e[i].a)];
  while (*p >= 0 && (uint32_t)*p != i)
    p = &src.e[*p].next;
  if (*p >= 0)
    *p = src.e[i].next;
}

uint32_t shim__source_get(const struct in6_addr *a, int *fresh)
{
  uint32_t h, i, victim = UINT32_MAX, ip = 0;
  int32_t k;
  if (fresh != NULL)
    *fresh = 0;
  if (a == NULL || !shim__source_ok())
    return 0;
  pthread_mutex_lock(&src.lock);
  h = hash6(a);
  for (k = src.bucket[h]; k >= 0; k = src.e[k].next)
    if (memcmp(&src.e[k].a, a, sizeof *a) == 0) {
      src.e[k].used = ++src.tick;
      ip = src.base + (uint32_t)k;
      goto done;
    }
  if (src.fresh < src.size) {
    victim = src.fresh++;
  } else {
    /* Full: the least recently used entry no open socket holds. */
    for (i = 0; i < src.size; i++)
      if (src.e[i].holds == 0 &&
          (victim == UINT32_MAX || src.e[i].used < src.e[victim].used))
        victim = i;
    if (victim == UINT32_MAX)
      goto done;
    unlink_entry(victim);
  }
  src.e[victim].a = *a;
  src.e[victim].used = ++src.tick;
  src.e[victim].holds = 0;
  src.e[victim].next = src.bucket[h];
  src.bucket[h] = (int32_t)victim;
  ip = src.base + victim;
  if (fresh != NULL)
    *fresh = 1;
done:
  pthread_mutex_unlock(&src.lock);
  return ip;
}

uint32_t shim__source_address(const struct in6_addr *a)
{
  return shim__source_get(a, NULL);
}

int shim__source_lookup(uint32_t ip, struct in6_addr *out)
{
  int ok = 0;
  if (!shim__source_contains(ip))
    return 0;
  pthread_mutex_lock(&src.lock);
  if (ip - src.base < src.fresh && src.e[ip - src.base].used != 0) {
    *out = src.e[ip - src.base].a;
    src.e[ip - src.base].used = ++src.tick;
    ok = 1;
  }
  pthread_mutex_unlock(&src.lock);
  return ok;
}

void shim__source_hold(uint32_t ip, int delta)
{
  src_entry *e;
  if (!shim__source_contains(ip))
    return;
  pthread_mutex_lock(&src.lock);
  e = &src.e[ip - src.base];
  if (delta > 0)
    e->holds++;
  else if (e->holds > 0)
    e->holds--;
  /* Released: counts as a use, so the entry is recycled last among the
   * idle ones that went idle before it. */
  e->used = ++src.tick;
  pthread_mutex_unlock(&src.lock);
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

/* fork() while another thread holds the lock would leave the child's copy
 * locked for ever: init.c takes it around fork with the others. */
void shim__source_fork(int phase)
{
  ds__fork_mutex(&src.lock, phase, 0);
}
