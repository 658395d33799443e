/* The exported hooks: initialise lazily, translate what is the shim's
 * business (names with only IPv6 addresses, dual-stack names, pool
 * addresses), pass everything else to libc, and trace when a trace is on.
 * With DUALSTACK_OBSERVE=1 nothing is translated, only traced.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Recent lookup answers (address -> name), so that a traced connect names
 * the host the application looked up. A small ring: old entries are
 * overwritten, which only costs a missing name in the trace. */
#define NAMES 256
static struct {
  ds_addr a;
  unsigned long id; /* the lookup's trace id, shared with its connects */
  char name[256];
} names[NAMES];
static unsigned names_next;
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

/* Remembers that a came from looking up name (trace id). */
static void remember(const ds_addr *a, const char *name, unsigned long id)
{
  unsigned i;
  pthread_mutex_lock(&names_lock);
  i = names_next++ % NAMES;
  names[i].a = *a;
  names[i].a.port = 0;
  names[i].id = id;
  snprintf(names[i].name, sizeof names[i].name, "%s", name);
  pthread_mutex_unlock(&names_lock);
}

/* Copies the name a was last looked up under into buf ("" if unknown)
 * and returns that lookup's trace id (0 if unknown). */
static unsigned long name_of(const ds_addr *a, char *buf, size_t len)
{
  ds_addr k = *a;
  unsigned long id = 0;
  unsigned i, n;
  k.port = 0;
  buf[0] = '\0';
  pthread_mutex_lock(&names_lock);
  /* Newest first: the most recent lookup of an address names it. */
  for (n = 0; n < NAMES; n++) {
    i = (names_next - 1 - n) % NAMES;
    if (names[i].a.family != 0 && ds_addr_compare(&names[i].a, &k) == 0) {
      snprintf(buf, len, "%s", names[i].name);
      id = names[i].id;
      break;
    }
  }
  pthread_mutex_unlock(&names_lock);
  return id;
}

int shim__active(void)
{
  if (shim__init() != 0 || shim__cfg.disabled)
    return 0;
  return shim__enter();
}

/* Returns 1 when the shim translates (not observe mode). */
static int translating(void)
{
  return !shim__cfg.observe;
}

/* Returns the family name used in the trace. */
static const char *family_text(int family)
{
  switch (family) {
  case AF_INET:
    return "ipv4";
  case AF_INET6:
    return "ipv6";
  default:
    return "any";
  }
}

DS_HOOK int getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
  const struct addrinfo *ai;
  struct addrinfo h2;
  shim_json j;
  unsigned long id;
  char synth[INET_ADDRSTRLEN] = "";
  const char *ask = node;
  int dual = 0, rc, saved;
  double t0;

  if (shim__init() != 0)
    return EAI_SYSTEM;
  if (!shim__active())
    return shim__real.getaddrinfo(node, service, hints, res);
  t0 = shim__mono_ms();
  if (hints != NULL) {
    uint32_t ip;
    int what = shim__decide(node, hints->ai_family, hints->ai_flags, &ip);
    dual = what == SHIM_DUAL; /* real A records, all of them (RFC 6535) */
    if (what == SHIM_SYNTH) {
      struct in_addr a = {htonl(ip)};
      /* libc builds the list, so its own freeaddrinfo frees it. */
      inet_ntop(AF_INET, &a, synth, sizeof synth);
      h2 = *hints;
      h2.ai_flags |= AI_NUMERICHOST;
      h2.ai_flags &= ~AI_CANONNAME;
      hints = &h2;
      ask = synth;
    }
  }
  rc = shim__real.getaddrinfo(ask, service, hints, res);
  saved = errno;
  for (ai = rc == 0 && dual ? *res : NULL; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET)
      shim__pool_dual(
          ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr), node);
  if (shim__cfg.trace_fd >= 0) {
    id = shim__next_id();
    shim__json_begin(&j, "lookup", id);
    shim__json_str(&j, "name", node ? node : "");
    shim__json_str(&j, "family", family_text(hints ? hints->ai_family : 0));
    shim__json_str(&j, "via", "getaddrinfo");
    shim__json_array_begin(&j, "result");
    for (ai = rc == 0 ? *res : NULL; ai != NULL; ai = ai->ai_next) {
      ds_addr a;
      char text[DS_ADDR_STRLEN];
      /* getaddrinfo lists each address once per socket type. */
      if (ai->ai_socktype != 0 && ai->ai_socktype != SOCK_STREAM &&
          !(hints && hints->ai_socktype == ai->ai_socktype))
        continue;
      if (ds_addr_from_sockaddr(&a, ai->ai_addr, ai->ai_addrlen) != 0)
        continue;
      ds_addr_format(&a, text, sizeof text, 0);
      shim__json_item(&j, text);
      if (node != NULL)
        remember(&a, node, id);
    }
    shim__json_array_end(&j);
    if (synth[0])
      shim__json_str(&j, "synthetic", synth);
    if (rc != 0)
      shim__json_str(&j, "error", gai_strerror(rc));
    shim__json_num(&j, "ms", shim__mono_ms() - t0);
    shim__json_emit(&j);
  }
  shim__leave();
  errno = saved;
  return rc;
}

DS_HOOK void freeaddrinfo(struct addrinfo *res)
{
  if (shim__init() != 0)
    return; /* nothing to free with: leaking beats crashing */
  shim__real.freeaddrinfo(res);
}

/* Traces a gethostbyname-style answer. */
static void trace_hostent(const char *name, int family, const char *via,
                          const struct hostent *he, double t0)
{
  shim_json j;
  char **p;
  unsigned long id = shim__next_id();
  shim__json_begin(&j, "lookup", id);
  shim__json_str(&j, "name", name ? name : "");
  shim__json_str(&j, "family", family_text(family));
  shim__json_str(&j, "via", via);
  shim__json_array_begin(&j, "result");
  for (p = he ? he->h_addr_list : NULL; p != NULL && *p != NULL; p++) {
    ds_addr a = {0};
    char text[DS_ADDR_STRLEN];
    a.family = he->h_addrtype;
    memcpy(a.ip.bytes, *p, he->h_addrtype == AF_INET6 ? 16 : 4);
    ds_addr_format(&a, text, sizeof text, 0);
    shim__json_item(&j, text);
    if (name != NULL)
      remember(&a, name, id);
  }
  shim__json_array_end(&j);
  if (he == NULL)
    shim__json_str(&j, "error", hstrerror(h_errno));
  shim__json_num(&j, "ms", shim__mono_ms() - t0);
  shim__json_emit(&j);
}

/* Per-thread storage for a synthesized answer, as glibc's own
 * gethostbyname uses. */
static _Thread_local struct {
  struct hostent he;
  char buf[512];
} tls_he;

/* The shared body of gethostbyname and gethostbyname2: real A records
 * when the name has them (remembered as dual-stack when it also has AAAA),
 * else a synthetic address when it has only AAAA. */
static struct hostent *lookup_hostent(const char *name, int af, const char *via)
{
  struct hostent *he = NULL;
  double t0 = shim__mono_ms();
  uint32_t ip;
  int saved, what = shim__decide(name, af, 0, &ip);

  if (what == SHIM_SYNTH &&
      shim__fill_hostent(&tls_he.he, tls_he.buf, sizeof tls_he.buf, name, ip) ==
          0)
    he = &tls_he.he;
  else if (af == AF_INET && strcmp(via, "gethostbyname") == 0)
    he = shim__real.gethostbyname(name);
  else
    he = shim__real.gethostbyname2(name, af);
  saved = errno;
  if (what == SHIM_DUAL)
    shim__remember_dual_hostent(he, name);
  if (shim__cfg.trace_fd >= 0)
    trace_hostent(name, af, via, he, t0);
  errno = saved;
  return he;
}

DS_HOOK struct hostent *gethostbyname(const char *name)
{
  struct hostent *he;
  if (shim__init() != 0) {
    h_errno = NO_RECOVERY;
    return NULL;
  }
  if (!shim__active())
    return shim__real.gethostbyname(name);
  he = lookup_hostent(name, AF_INET, "gethostbyname");
  shim__leave();
  return he;
}

DS_HOOK struct hostent *gethostbyname2(const char *name, int af)
{
  struct hostent *he;
  if (shim__init() != 0) {
    h_errno = NO_RECOVERY;
    return NULL;
  }
  if (!shim__active())
    return shim__real.gethostbyname2(name, af);
  he = lookup_hostent(name, af, "gethostbyname2");
  shim__leave();
  return he;
}

void shim__trace_sockaddr(const char *event, const struct sockaddr *sa,
                           socklen_t len, int rc, int err, double t0)
{
  shim_json j;
  ds_addr a;
  char text[DS_ADDR_STRLEN], name[256];
  if (ds_addr_from_sockaddr(&a, sa, len) != 0)
    return;
  ds_addr_format(&a, text, sizeof text, 0);
  if (strcmp(event, "connect") == 0) {
    unsigned long id = name_of(&a, name, sizeof name);
    shim__json_begin(&j, event, id != 0 ? id : shim__next_id());
    shim__json_str(&j, "name", name);
  } else {
    shim__json_begin(&j, event, shim__next_id());
  }
  shim__json_str(&j, "addr", text);
  shim__json_int(&j, "port", a.port);
  shim__json_str(&j, "family", family_text(a.family));
  if (strcmp(event, "bind") == 0)
    shim__json_bool(&j, "widened", 0);
  shim__json_str(&j, "result", rc == 0 ? "ok" : shim__errname(err));
  shim__json_num(&j, "ms", shim__mono_ms() - t0);
  shim__json_emit(&j);
}

/* Returns the socket type of fd (SOCK_STREAM, ...), or -1. */
static int socket_type(int fd)
{
  int type = -1;
  socklen_t len = sizeof type;
  if (ds__sys.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
    return -1;
  return type;
}

/* Returns 1 if sa is an IPv4 address in the destination pool that stands
 * for nothing (stale, or another process's): never to be sent anywhere. */
static int unmapped_pool_address(const struct sockaddr *sa, socklen_t len)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  char name[256];
  uint32_t ip;
  if (sa == NULL || len < sizeof *sin || sa->sa_family != AF_INET)
    return 0;
  ip = ntohl(sin->sin_addr.s_addr);
  return shim__pool_contains(ip) && shim__pool_name(ip, name, sizeof name) != 1;
}

/* Traces a refusal to send to a pool address without mapping. */
static void trace_unmapped(const struct sockaddr *sa, socklen_t len)
{
  shim_json j;
  ds_addr a;
  char text[DS_ADDR_STRLEN];
  if (shim__cfg.trace_fd < 0 || ds_addr_from_sockaddr(&a, sa, len) != 0)
    return;
  ds_addr_format(&a, text, sizeof text, DS_ADDR_FMT_PORT);
  shim__json_begin(&j, "passthrough", shim__next_id());
  shim__json_str(&j, "reason", "pool address without mapping: ENETUNREACH");
  shim__json_str(&j, "addr", text);
  shim__json_emit(&j);
}

DS_HOOK int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  double t0;
  int rc, saved;
  char name[256];
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      !shim__active())
    return shim__real.connect(fd, sa, len);
  t0 = shim__mono_ms();
  if (translating() && sa->sa_family == AF_INET &&
      len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    int kind = shim__pool_name(ntohl(sin->sin_addr.s_addr), name, sizeof name);
    if (kind != 0 && socket_type(fd) == SOCK_STREAM) {
      rc = shim__race_connect(fd, name, sin);
      saved = errno;
      if (shim__cfg.trace_fd >= 0)
        shim__trace_sockaddr("connect", sa, len, rc, saved, t0);
      shim__leave();
      errno = saved;
      return rc;
    }
    if (kind != 2 && unmapped_pool_address(sa, len)) {
      /* UDP to a synthetic address is not translated yet: refuse it
       * rather than let it leave for the network. */
      trace_unmapped(sa, len);
      shim__leave();
      errno = ENETUNREACH;
      return -1;
    }
  }
  rc = shim__real.connect(fd, sa, len);
  saved = errno;
  if (shim__cfg.trace_fd >= 0)
    shim__trace_sockaddr("connect", sa, len, rc, saved, t0);
  shim__leave();
  errno = saved;
  return rc;
}

DS_HOOK int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
  struct sockaddr_in sin;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (!shim__cfg.disabled && sa != NULL && len != NULL &&
      shim__fd_peer(fd, &sin)) {
    memcpy(sa, &sin, *len < sizeof sin ? *len : sizeof sin);
    *len = sizeof sin;
    return 0;
  }
  return shim__real.getpeername(fd, sa, len);
}

DS_HOOK int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
  struct sockaddr_in sin, peer;
  struct sockaddr_in6 s6;
  socklen_t l6 = sizeof s6;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (!shim__cfg.disabled && sa != NULL && len != NULL &&
      shim__fd_peer(fd, &peer) &&
      shim__real.getsockname(fd, (struct sockaddr *)&s6, &l6) == 0 &&
      s6.sin6_family == AF_INET6) {
    /* The local IPv6 address, as the source-pool address standing for
     * it, with the real port. */
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = s6.sin6_port;
    sin.sin_addr.s_addr = htonl(shim__source_address(&s6.sin6_addr));
    memcpy(sa, &sin, *len < sizeof sin ? *len : sizeof sin);
    *len = sizeof sin;
    return 0;
  }
  return shim__real.getsockname(fd, sa, len);
}

DS_HOOK int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
  struct sockaddr_in peer;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (!shim__cfg.disabled && level == SOL_SOCKET && opt == SO_DOMAIN &&
      val != NULL && len != NULL && *len >= sizeof(int) &&
      shim__fd_peer(fd, &peer)) {
    *(int *)val = AF_INET;
    *len = sizeof(int);
    return 0;
  }
  return shim__real.getsockopt(fd, level, opt, val, len);
}
