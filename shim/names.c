/* Name lookups for the shim: both families through the library's resolver
 * (hosts file first, then DNS), on a private reactor in the calling
 * thread, with a small cache in front.
 *
 * The cache keeps what shim__resolve_both() found per name, so that an
 * application looking the same name up again does not run the resolver
 * again (a reactor, a hosts-file read, a c-ares channel and two queries).
 * How long an answer stays:
 * - from DNS: the smallest TTL of its records, both families together
 *   (a TTL of 0 is not kept);
 * - NXDOMAIN or NODATA from DNS: SHIM_NEGATIVE_MS (c-ares 1.18's search
 *   does not pass the SOA on, so its minimum is not known);
 * - from the hosts file (or a literal): until the hosts file changes.
 * Every lookup compares /etc/hosts and /etc/resolv.conf (device, inode,
 * size, mtime, ctime: two stat() calls, well under a microsecond each
 * here) with what they were when the cache was filled, and empties the
 * cache when either changed, so an edit is seen by the next lookup. An
 * edit that keeps size and inode within one tick of the file system's
 * clock (about 4 ms) can go unseen until the entry expires or the file
 * changes again.
 * Not kept: answers cut short by the Resolution Delay (a family still
 * unknown), SERVFAIL, timeouts and other failures.
 * With an answer goes until when its AAAA records' TTL runs: a synthetic
 * address is leased for at least that long (pool.c).
 * At most SHIM_CACHE_SIZE names in one table (lib/table.c); when full
 * the least recently used goes. Thread-safe (a mutex for the files'
 * identity and the table's generation, and the table's own, each held
 * only to copy in or out), and fork-safe (both are taken around fork, so
 * the child gets the table unlocked and whole). */
#include "shim.h"
#include "table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SHIM_CACHE_SIZE 256
#define SHIM_NEGATIVE_MS 5000.0
#define SHIM_HOSTS_PATH "/etc/hosts"
#define SHIM_RESOLV_PATH "/etc/resolv.conf"

/* A cached answer, and until when (monotonic ms) its AAAA records' TTL
 * runs (0: they have none, from the hosts file, or there are none): what
 * a synthetic address's lease needs. */
typedef struct cached {
  shim_answer a;
  uint64_t until6;
} cached;

/* What identifies a version of a file: a missing file is all zero. */
typedef struct stamp {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim, ctim;
} stamp;

static struct {
  pthread_mutex_t lock; /* for what follows, and around cache.t's changes */
  ds__table *t;         /* name -> shim_answer; NULL: no cache */
  unsigned long gen;    /* bumped whenever the table is emptied */
  stamp hosts, resolv;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_setup(void)
{
  if (ds__table_new(&cache.t, SHIM_CACHE_SIZE, sizeof(cached),
                    DS__TABLE_NOCASE) != 0)
    cache.t = NULL;
}

void shim__cache_fork(int phase)
{
  ds__fork_mutex(&cache.lock, phase, 0);
  ds__table_fork(cache.t, phase);
}

/* Fills s with path's identity (all zero when it cannot be read). */
static void stamp_of(const char *path, stamp *s)
{
  struct stat st;
  memset(s, 0, sizeof *s);
  if (stat(path, &st) != 0)
    return;
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->size = st.st_size;
  s->mtim = st.st_mtim;
  s->ctim = st.st_ctim;
}

/* Returns 1 if a and b are the same version of a file. */
static int stamp_same(const stamp *a, const stamp *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtim.tv_sec == b->mtim.tv_sec &&
         a->mtim.tv_nsec == b->mtim.tv_nsec &&
         a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Looks name up in the cache, first emptying it if the hosts file or
 * resolv.conf changed. Returns 1 with *out filled on a hit, else 0; *gen
 * is the table's generation, for cache_store(). */
static int cache_find(const char *name, cached *out, unsigned long *gen)
{
  stamp hs, rs;

  pthread_once(&cache_once, cache_setup);
  if (cache.t == NULL)
    return 0;
  /* Outside the lock: stat() may take a while on a slow file system. */
  stamp_of(SHIM_HOSTS_PATH, &hs);
  stamp_of(SHIM_RESOLV_PATH, &rs);
  pthread_mutex_lock(&cache.lock);
  if (!stamp_same(&hs, &cache.hosts) || !stamp_same(&rs, &cache.resolv)) {
    ds__table_clear(cache.t);
    cache.hosts = hs;
    cache.resolv = rs;
    cache.gen++;
  }
  *gen = cache.gen;
  pthread_mutex_unlock(&cache.lock);
  return ds__table_get(cache.t, name, strlen(name), ds__mono_ms_u64(), out,
                       NULL);
}

/* Keeps ans for name for keep_ms (INFINITY: until the files change),
 * unless the table was emptied since cache_find() gave gen: then the
 * files changed while the lookup ran, and its answer may be from before
 * the change. */
static void cache_store(const char *name, const cached *ans, double keep_ms,
                        unsigned long gen)
{
  uint64_t now = ds__mono_ms_u64();
  /* 0 is the table's "never": a finite keep is at least 1. */
  uint64_t expires = isinf(keep_ms) ? 0 : now + (uint64_t)keep_ms + 1;
  if (cache.t == NULL)
    return;
  pthread_mutex_lock(&cache.lock);
  if (gen == cache.gen)
    ds__table_put(cache.t, name, strlen(name), ans, expires, now, NULL, NULL);
  pthread_mutex_unlock(&cache.lock);
}

typedef struct both {
  shim_answer *out;
  int pending;
  int positive;          /* a family answered with addresses */
  double first_positive; /* when, monotonic ms */
  double keep_ms;        /* how long the answer may be cached so far */
  int keep;              /* 0: not to be cached */
  double ttl6_ms;        /* the AAAA answer's TTL (0: none, or local) */
} both;

/* Returns how long (ms) one family's answer may be cached, or -1 for not
 * at all. */
static double keep_for(ds_lookup *l, int family, int status)
{
  int ttl = ds_lookup_ttl(l, family);
  if (ttl == DS_TTL_LOCAL)
    return INFINITY; /* until the hosts file changes */
  if (status == 0)
    return ttl > 0 ? ttl * 1000.0 : -1;
  if (status == DS_ENOTFOUND || status == DS_ENODATA)
    return SHIM_NEGATIVE_MS;
  return -1;
}

/* One family's answer. */
static void on_answer(ds_lookup *l, int family, int status,
                      const ds_addr *addrs, size_t n, void *user)
{
  both *b = user;
  double keep = keep_for(l, family, status);
  size_t i;
  b->pending--;
  if (keep < 0)
    b->keep = 0;
  else if (keep < b->keep_ms)
    b->keep_ms = keep;
  if (status != 0)
    return;
  if (family == AF_INET6 && ds_lookup_ttl(l, family) > 0)
    b->ttl6_ms = ds_lookup_ttl(l, family) * 1000.0;
  if (family == AF_INET6) {
    snprintf(b->out->qname, sizeof b->out->qname, "%s",
             ds__lookup_name(l, family, DS__NAME_ANSWERED));
    snprintf(b->out->canon, sizeof b->out->canon, "%s",
             ds__lookup_name(l, family, DS__NAME_CANON));
    snprintf(b->out->aliases, sizeof b->out->aliases, "%s",
             ds__lookup_name(l, family, DS__NAME_ALIASES));
  }
  if (!b->positive) {
    b->positive = 1;
    b->first_positive = ds__mono_ms();
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

/* Runs the resolver for name into out. Returns 0 or -1 as
 * shim__resolve_both(); *keep_ms is how long out may be cached (-1: not
 * at all), *ttl6_ms the AAAA answer's TTL (0: none). */
static int resolve_uncached(const char *name, shim_answer *out, double *keep_ms,
                            double *ttl6_ms)
{
  ds_reactor *r;
  ds_lookup *l;
  both b = {out, 2, 0, 0, INFINITY, 1, 0};
  int rc;

  *keep_ms = -1;
  *ttl6_ms = 0;
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
      double left =
          b.first_positive +
          (shim__cfg.resolution_delay_ms ? shim__cfg.resolution_delay_ms : 50) -
          ds__mono_ms();
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
  else if (b.keep)
    *keep_ms = b.keep_ms;
  *ttl6_ms = b.ttl6_ms;
  ds_reactor_run_once(r, 0);
  ds_reactor_free(r);
  return 0;
}

/* As shim__resolve_both(); *ttl6_ms is what is left of the AAAA
 * answer's TTL (0: none, as for the hosts file). */
static int resolve_ttl(const char *name, shim_answer *out, uint64_t *ttl6_ms)
{
  unsigned long gen = 0;
  double keep_ms, ttl6;
  uint64_t now;
  cached c;

  memset(&c, 0, sizeof c);
  *ttl6_ms = 0;
  if (cache_find(name, &c, &gen)) {
    now = ds__mono_ms_u64();
    *ttl6_ms = c.until6 > now ? c.until6 - now : 0;
    *out = c.a;
    return 0;
  }
  if (resolve_uncached(name, &c.a, &keep_ms, &ttl6) != 0) {
    *out = c.a;
    return -1;
  }
  *out = c.a;
  *ttl6_ms = (uint64_t)ttl6;
  if (ttl6 > 0)
    c.until6 = ds__mono_ms_u64() + *ttl6_ms;
  if (keep_ms > 0)
    cache_store(name, &c, keep_ms, gen);
  return 0;
}

int shim__resolve_both(const char *name, shim_answer *out)
{
  uint64_t ttl6_ms;
  return resolve_ttl(name, out, &ttl6_ms);
}

int shim__eligible(const char *node, int family, int flags)
{
  struct in_addr a;
  if (node == NULL || *node == '\0' || family != AF_INET)
    return 0;
  if (flags & AI_NUMERICHOST)
    return 0;
  if (inet_aton(node, &a) != 0)
    return 0; /* "10", "1.2.3": numbers, passed through */
  return 1;
}

/* Fills names from ans, an answer for name. */
static void names_of(const char *name, const shim_answer *ans,
                     shim_names *names)
{
  size_t n;
  snprintf(names->key, sizeof names->key, "%s",
           ans->qname[0] ? ans->qname : name);
  snprintf(names->canon, sizeof names->canon, "%s",
           ans->canon[0] ? ans->canon : name);
  snprintf(names->alias, sizeof names->alias, "%s", names->key);
  n = strlen(names->alias);
  if (n > 1 && names->alias[n - 1] == '.')
    names->alias[n - 1] = '\0';
  if (strcasecmp(names->alias, names->canon) == 0)
    names->alias[0] = '\0';
  /* A hosts file line: glibc's aliases are its other names. */
  if (ans->aliases[0])
    snprintf(names->alias, sizeof names->alias, "%s", ans->aliases);
}

int shim__decide(const char *name, int family, int flags, uint32_t *synth,
                 shim_names *names)
{
  shim_answer ans;
  uint64_t ttl6_ms;
  *synth = 0;
  if (shim__cfg.observe || !shim__eligible(name, family, flags) ||
      shim__excluded_name(name) || resolve_ttl(name, &ans, &ttl6_ms) != 0)
    return SHIM_PASS;
  if (ans.n6 > 0 && ans.n6 <= 16) {
    /* IPv6 addresses in excluded networks do not count, nor IPv4-mapped
     * ones (glibc answers `::ffff:192.0.2.1` with its IPv4 address), nor,
     * for a name, ::1 (glibc's hosts file answers a name on a `::1` line
     * with 127.0.0.1: a loopback name, left alone). */
    struct in6_addr a6;
    int i, kept = 0,
           literal =
               inet_pton(AF_INET6, name, &a6) == 1 || strchr(name, '%') != NULL;
    for (i = 0; i < ans.n6; i++)
      if (!shim__excluded_addr(&ans.a6[i]) &&
          !IN6_IS_ADDR_V4MAPPED(&ans.a6[i].ip.v6) &&
          (literal || !IN6_IS_ADDR_LOOPBACK(&ans.a6[i].ip.v6)))
        ans.a6[kept++] = ans.a6[i];
    ans.n6 = kept;
  }
  names_of(name, &ans, names);
  if (ans.n4 > 0 && !ans.loopback4)
    return ans.n6 > 0 ? SHIM_DUAL : SHIM_PASS;
  if (ans.n4 == 0 && ans.n6 > 0) {
    /* Each lookup renews the address's lease (DESIGN.md, "Synthetic
     * addresses"); with every address in use the name gets none rather
     * than another name's. Leased to the name that answered: `name`,
     * `name.` and, through a search list, a shorter name get one address,
     * and the race asks exactly that name. */
    int rc = shim__pool_synthesize(names->key, ttl6_ms, synth);
    if (rc == 0)
      return SHIM_SYNTH;
    if (rc == -EAGAIN)
      return SHIM_FULL;
  }
  return SHIM_PASS;
}

int shim__fill_hostent(struct hostent *he, char *buf, size_t len,
                       const char *name, const char *alias, uint32_t ip)
{
  /* Layout in buf: two pointers (addr list), the alias pointers and a
   * NULL, the address, the name, the aliases; pointers aligned. alias
   * holds them separated by spaces. */
  size_t nlen = strlen(name) + 1, alen = alias != NULL ? strlen(alias) + 1 : 0;
  size_t nal = 0, i;
  uintptr_t p = (uintptr_t)buf, end = p + len;
  struct in_addr *addr;
  char **addrs, **aliases, *n, *q;

  for (i = 0; i + 1 < alen; i++)
    if (alias[i] != ' ' && (i == 0 || alias[i - 1] == ' '))
      nal++;
  p = (p + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
  addrs = (char **)p;
  p += 2 * sizeof(char *);
  aliases = (char **)p;
  p += (nal + 1) * sizeof(char *);
  addr = (struct in_addr *)p;
  p += sizeof *addr;
  n = (char *)p;
  p += nlen + alen;
  if (p > end || p < (uintptr_t)buf)
    return ERANGE;
  addr->s_addr = htonl(ip);
  addrs[0] = (char *)addr;
  addrs[1] = NULL;
  memcpy(n, name, nlen);
  nal = 0;
  if (alen > 0) {
    q = n + nlen;
    memcpy(q, alias, alen);
    for (i = 0; i + 1 < alen; i++) {
      if (q[i] == ' ')
        q[i] = '\0';
      else if (i == 0 || q[i - 1] == '\0')
        aliases[nal++] = q + i;
    }
  }
  aliases[nal] = NULL;
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
