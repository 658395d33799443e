/* The exported hooks: initialise lazily, translate what is the shim's
 * business (names with only IPv6 addresses, dual-stack names, pool
 * addresses), pass everything else to libc, and trace when a trace is on.
 * With DUALSTACK_OBSERVE=1 nothing is translated, only traced.
 */
#include "shim.h"
#include "table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Recent lookup answers (address -> name), so that a traced connect names
 * the host the application looked up: a small table (lib/table.c) whose
 * least recently used entries go, which only costs a missing name in the
 * trace. The most recent lookup of an address names it. */
#define NAMES 256

typedef struct name_key {
  int family;
  uint32_t scope_id, flowinfo;
  uint8_t ip[16];
} name_key;

typedef struct name_val {
  unsigned long id; /* the lookup's trace id, shared with its connects */
  char name[256];
} name_val;

static ds__table *names;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void names_setup(void)
{
  if (ds__table_new(&names, NAMES, sizeof(name_val), 0) != 0)
    names = NULL;
}

void shim__names_fork(int phase)
{
  ds__table_fork(names, phase);
}

/* Fills k with what identifies a, whatever its port. */
static void name_key_of(const ds_addr *a, name_key *k)
{
  memset(k, 0, sizeof *k);
  k->family = a->family;
  k->scope_id = a->scope_id;
  k->flowinfo = a->flowinfo;
  memcpy(k->ip, a->ip.bytes, a->family == AF_INET ? 4 : 16);
}

/* Remembers that a came from looking up name (trace id). */
static void remember(const ds_addr *a, const char *name, unsigned long id)
{
  name_key k;
  name_val v;
  pthread_once(&names_once, names_setup);
  if (names == NULL)
    return;
  name_key_of(a, &k);
  memset(&v, 0, sizeof v);
  v.id = id;
  snprintf(v.name, sizeof v.name, "%s", name);
  ds__table_put(names, &k, sizeof k, &v, 0, 0, NULL, NULL);
}

/* Copies the name a was last looked up under into buf ("" if unknown)
 * and returns that lookup's trace id (0 if unknown). */
static unsigned long name_of(const ds_addr *a, char *buf, size_t len)
{
  name_key k;
  name_val v;
  buf[0] = '\0';
  pthread_once(&names_once, names_setup);
  name_key_of(a, &k);
  if (names == NULL || ds__table_get(names, &k, sizeof k, 0, &v, NULL) != 1)
    return 0;
  snprintf(buf, len, "%s", v.name);
  return v.id;
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

void shim__trace_pool_full(const char *name, int family, const char *via,
                           const char *error, double t0)
{
  shim_json j;
  if (shim__cfg.trace_fd < 0)
    return;
  shim__json_begin(&j, "lookup", shim__next_id());
  shim__json_str(&j, "name", name ? name : "");
  shim__json_str(&j, "family", family_text(family));
  shim__json_str(&j, "via", via);
  shim__json_array_begin(&j, "result");
  shim__json_array_end(&j);
  shim__json_str(&j, "error", error);
  shim__json_str(&j, "reason",
                 "destination pool full: every address is in use");
  shim__json_num(&j, "ms", ds__mono_ms() - t0);
  shim__json_emit(&j);
}

/* An AF_UNSPEC answer with IPv6 addresses and no IPv4 one (an IPv6-only
 * name, an IPv6 literal) gains, after the real entries, the synthetic
 * IPv4 address an AF_INET lookup would give: a program that asks for both
 * families and keeps only AF_INET ones still gets one, and one that uses
 * both sees glibc's entries first, unchanged. Answers with IPv4 addresses
 * are left as they are (a dual-stack-aware program's own fallback to IPv4
 * is not raced again). Writes the address appended into synth. */
static void unspec_extend(const char *node, const char *service,
                          const struct addrinfo *hints, struct addrinfo *list,
                          char *synth, size_t synthlen)
{
  struct addrinfo h, *e, *extra = NULL, *last = NULL;
  struct in_addr a;
  shim_names nm;
  uint32_t ip;
  int has6 = 0, flags = hints ? hints->ai_flags : AI_V4MAPPED | AI_ADDRCONFIG;

  for (e = list; e != NULL; last = e, e = e->ai_next) {
    if (e->ai_family == AF_INET)
      return;
    has6 |= e->ai_family == AF_INET6;
  }
  if (!has6 || shim__decide(node, AF_INET, flags, &ip, &nm) != SHIM_SYNTH)
    return;
  a.s_addr = htonl(ip);
  inet_ntop(AF_INET, &a, synth, (socklen_t)synthlen);
  memset(&h, 0, sizeof h);
  h.ai_family = AF_INET;
  h.ai_socktype = hints ? hints->ai_socktype : 0;
  h.ai_protocol = hints ? hints->ai_protocol : 0;
  h.ai_flags = AI_NUMERICHOST | (flags & (AI_PASSIVE | AI_NUMERICSERV));
  if (ds__sys.getaddrinfo(synth, service, &h, &extra) != 0) {
    synth[0] = '\0';
    return;
  }
  /* libc made both lists entry by entry, so its freeaddrinfo frees the
   * joined one. */
  for (e = extra; e != NULL; e = e->ai_next)
    e->ai_flags = flags;
  last->ai_next = extra;
}

DS_HOOK int getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
  const struct addrinfo *ai;
  struct addrinfo h2;
  shim_json j;
  unsigned long id;
  char synth[INET_ADDRSTRLEN] = "";
  shim_names nm;
  const char *ask = node;
  int dual = 0, rc, saved, want_canon = 0, flags = hints ? hints->ai_flags : 0;
  double t0;

  if (shim__init() != 0)
    return EAI_SYSTEM;
  if (!shim__active())
    return ds__sys.getaddrinfo(node, service, hints, res);
  t0 = ds__mono_ms();
  if (hints != NULL) {
    uint32_t ip;
    int what = shim__decide(node, hints->ai_family, hints->ai_flags, &ip, &nm);
    dual = what == SHIM_DUAL; /* real A records, all of them (RFC 6535) */
    if (what == SHIM_FULL) {
      shim__trace_pool_full(node, hints->ai_family, "getaddrinfo", "EAI_AGAIN",
                            t0);
      shim__leave();
      return EAI_AGAIN;
    }
    if (what == SHIM_SYNTH) {
      struct in_addr a = {htonl(ip)};
      /* libc builds the list, so its own freeaddrinfo frees it. */
      inet_ntop(AF_INET, &a, synth, sizeof synth);
      h2 = *hints;
      h2.ai_flags |= AI_NUMERICHOST;
      h2.ai_flags &= ~AI_CANONNAME;
      want_canon = (hints->ai_flags & AI_CANONNAME) != 0;
      hints = &h2;
      ask = synth;
    }
  }
  rc = ds__sys.getaddrinfo(ask, service, hints, res);
  saved = errno;
  if (rc == 0 && (hints == NULL || hints->ai_family == AF_UNSPEC) &&
      node != NULL && !(flags & AI_NUMERICHOST))
    unspec_extend(node, service, hints, *res, synth, sizeof synth);
  /* As glibc's, each entry carries the flags asked, not the numeric
   * lookup's. */
  if (rc == 0 && ask != node) {
    struct addrinfo *e;
    for (e = *res; e != NULL; e = e->ai_next)
      e->ai_flags = flags;
  }
  if (rc == 0 && want_canon) {
    /* As glibc: the first entry carries the canonical name, which its
     * freeaddrinfo frees with the entry. */
    (*res)->ai_canonname = strdup(nm.canon);
    if ((*res)->ai_canonname == NULL) {
      ds__sys.freeaddrinfo(*res);
      *res = NULL;
      rc = EAI_MEMORY;
    }
  }
  for (ai = rc == 0 && dual ? *res : NULL; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET)
      shim__pool_dual(
          ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr), nm.key);
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
    shim__json_num(&j, "ms", ds__mono_ms() - t0);
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
  ds__sys.freeaddrinfo(res);
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
  shim__json_num(&j, "ms", ds__mono_ms() - t0);
  shim__json_emit(&j);
}

/* Per-thread storage for a synthesized answer, as glibc's own
 * gethostbyname uses. */
static _Thread_local struct {
  struct hostent he;
  char buf[1024];
} tls_he;

/* The shared body of gethostbyname and gethostbyname2: real A records
 * when the name has them (remembered as dual-stack when it also has AAAA),
 * else a synthetic address when it has only AAAA. */
static struct hostent *lookup_hostent(const char *name, int af, const char *via)
{
  struct hostent *he = NULL;
  double t0 = ds__mono_ms();
  uint32_t ip;
  shim_names nm;
  int saved, what = shim__decide(name, af, 0, &ip, &nm);

  if (what == SHIM_FULL) {
    shim__trace_pool_full(name, af, via, "TRY_AGAIN", t0);
    h_errno = TRY_AGAIN;
    return NULL;
  }
  if (what == SHIM_SYNTH &&
      shim__fill_hostent(&tls_he.he, tls_he.buf, sizeof tls_he.buf, nm.canon,
                         nm.alias[0] ? nm.alias : NULL, ip) == 0) {
    he = &tls_he.he;
    h_errno = NETDB_SUCCESS;
  } else if (af == AF_INET && strcmp(via, "gethostbyname") == 0)
    he = ds__sys.gethostbyname(name);
  else
    he = ds__sys.gethostbyname2(name, af);
  saved = errno;
  if (what == SHIM_DUAL)
    shim__remember_dual_hostent(he, nm.key);
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
    return ds__sys.gethostbyname(name);
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
    return ds__sys.gethostbyname2(name, af);
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
    shim__json_host(&j, "name", name);
  } else {
    shim__json_begin(&j, event, shim__next_id());
  }
  shim__json_str(&j, "addr", text);
  shim__json_int(&j, "port", a.port);
  shim__json_str(&j, "family", family_text(a.family));
  if (strcmp(event, "bind") == 0)
    shim__json_bool(&j, "widened", 0);
  shim__json_str(&j, "result", rc == 0 ? "ok" : shim__errname(err));
  shim__json_num(&j, "ms", ds__mono_ms() - t0);
  shim__json_emit(&j);
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

/* Traces a refusal to let pool address sa out, saying why. Takes no
 * lock: it also runs in a signal handler. */
static void trace_refused(const struct sockaddr *sa, socklen_t len,
                          const char *reason)
{
  shim_json j;
  ds_addr a;
  char text[DS_ADDR_STRLEN];
  if (shim__cfg.trace_fd < 0 || ds_addr_from_sockaddr(&a, sa, len) != 0)
    return;
  ds_addr_format(&a, text, sizeof text, DS_ADDR_FMT_PORT);
  shim__json_begin(&j, "passthrough", shim__next_id());
  shim__json_str(&j, "reason", reason);
  shim__json_str(&j, "addr", text);
  shim__json_emit(&j);
}

void shim__trace_unmapped(const struct sockaddr *sa, socklen_t len)
{
  trace_refused(sa, len, "pool address without mapping: ENETUNREACH");
}

/* Returns the trace id of the lookup that gave sa's address (0: none). */
static unsigned long connect_id(const struct sockaddr *sa, socklen_t len)
{
  ds_addr a;
  char name[256];
  unsigned long id = 0;
  if (ds_addr_from_sockaddr(&a, sa, len) == 0)
    id = name_of(&a, name, sizeof name);
  return id != 0 ? id : shim__next_id();
}

/* connect() on a datagram socket the shim moved to IPv6: the destination
 * is translated and remembered as the peer the application sees. */
static int connect_dgram(int fd, const struct sockaddr *sa, socklen_t len,
                         shim_fd *e)
{
  struct sockaddr_in6 s6;
  int rc;
  if (sa->sa_family != AF_INET || len < sizeof(struct sockaddr_in))
    return ds__sys.connect(fd, sa, len);
  if (shim__peer_to_v6((const struct sockaddr_in *)sa, &s6) != 0)
    return -1;
  rc = ds__sys.connect(fd, (struct sockaddr *)&s6, sizeof s6);
  if (rc == 0) {
    e->peer = *(const struct sockaddr_in *)sa;
    shim__fd_set(fd, e);
  }
  return rc;
}

/* Returns 1 if a real IPv4 address of a dual-stack name is to be
 * connected to as asked (DUALSTACK_EXCLUDE: its network or port). */
static int excluded_dual(const struct sockaddr_in *sin)
{
  ds_addr a;
  if (shim__excluded_port(ntohs(sin->sin_port)))
    return 1;
  return ds_addr_from_sockaddr(&a, (const struct sockaddr *)sin, sizeof *sin) ==
             0 &&
         shim__excluded_addr(&a);
}

/* connect() on a socket the shim widened at bind (a client that bound
 * 0.0.0.0 first, or a UDP server connecting to its peer): the IPv4
 * destination is translated for the IPv6 socket (IPv4-mapped, or a
 * synthetic address's IPv6 address), and the fd is then a client. */
static int connect_wide(int fd, const struct sockaddr *sa, socklen_t len,
                        shim_fd *e)
{
  struct sockaddr_in6 s6;
  int rc, err;
  if (sa->sa_family != AF_INET || len < sizeof(struct sockaddr_in))
    return ds__sys.connect(fd, sa, len);
  if (shim__peer_to_v6((const struct sockaddr_in *)sa, &s6) != 0)
    return -1;
  rc = ds__sys.connect(fd, (struct sockaddr *)&s6, sizeof s6);
  err = errno;
  if (rc == 0 || err == EINPROGRESS) {
    e->kind = shim__sock_int(fd, SO_TYPE) == SOCK_DGRAM ? SHIM_FD_DGRAM
                                                        : SHIM_FD_CLIENT;
    e->peer = *(const struct sockaddr_in *)sa;
    shim__fd_set(fd, e);
  }
  errno = err;
  return rc;
}

/* Set by do_connect when a race went on in the helper thread. */
static _Thread_local int async_started;

/* Starts a race for fd to name (in the helper thread for a non-blocking
 * socket, else here): returns as connect() does. */
static int race(int fd, const char *name, const struct sockaddr_in *sin,
                unsigned long id)
{
  int fl = ds__sys.fcntl(fd, F_GETFL), blocking, rc;
  /* A vfork child runs in its parent's memory: no race there (its state,
   * the helper thread's jobs, would be the parent's). A real address is
   * connected as asked; a synthetic one cannot be reached. The check is a
   * system call: here, not on every hook's way in. */
  if (ds__fork_vforked())
    return shim__connect_as_asked(fd, sin, -ENETUNREACH);
  /* The race runs in the helper thread (shim__async_connect connects as
   * asked, or fails at once, when it cannot race). A non-blocking socket
   * gets EINPROGRESS; a blocking one waits as the kernel's connect waits
   * (shim__async_wait). */
  blocking = fl >= 0 && !(fl & O_NONBLOCK);
  rc = shim__async_connect(fd, name, sin, id, blocking, &async_started);
  if (rc != 0 && errno == EINPROGRESS && async_started && blocking)
    return shim__async_wait(fd, 1);
  return rc;
}

/* connect() of an IPv4 address that is no business of the pool: as
 * asked, unless the host has no route to it (ENETUNREACH: an IPv6-only
 * host) and a NAT64 prefix is configured or discovered; then through
 * NAT64 (DUALSTACK_NAT64). */
static int connect_literal(int fd, const struct sockaddr_in *sin, socklen_t len)
{
  char text[INET_ADDRSTRLEN];
  ds_addr prefix;
  unsigned plen;
  int rc = ds__sys.connect(fd, (const struct sockaddr *)sin, len), saved;
  if (rc == 0 || errno != ENETUNREACH)
    return rc;
  saved = errno;
  if (shim__sock_int(fd, SO_TYPE) != SOCK_STREAM ||
      !shim__nat64_prefix(&prefix, &plen) ||
      inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text) == NULL) {
    errno = saved;
    return rc;
  }
  return race(fd, text, sin, shim__next_id());
}

/* Returns fd's socket type when a pool address given to fd could reach
 * the network (an AF_INET socket, or an AF_INET6 datagram socket, which
 * the kernel lets send to IPv4 addresses), 0 when the kernel refuses an
 * IPv4 address on fd by itself (another family, an IPv6 stream socket),
 * or -1 with connect's errno when fd is no socket (EBADF, ENOTSOCK). */
static int pool_socket(int fd)
{
  int domain = shim__sock_int(fd, SO_DOMAIN), type;
  if (domain < 0)
    return -1;
  type = shim__sock_int(fd, SO_TYPE);
  if (type < 0)
    return -1;
  if (domain == AF_INET || (domain == AF_INET6 && type == SOCK_DGRAM))
    return type;
  return 0;
}

/* Puts a fresh TCP socket, with fd's recorded options and flags, under
 * fd, which holds a stand-in this process has no race for, and forgets
 * fd's entry. */
static void orphaned(int fd)
{
  int nfd = ds__sys.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (nfd >= 0) {
    shim__opt_replay(fd, nfd, AF_INET, 0);
    if (shim__install(nfd, fd) != 0)
      ds__sys.close(nfd);
  }
  shim__fd_clear(fd);
}

/* The body of connect() once the shim has decided to look: fd is the
 * application's, sa an AF_INET or AF_INET6 address. */
static int do_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  char name[256];
  shim_fd e;
  int kind, type, rc;

  if (shim__fd_known(fd) && shim__fd_get(fd, &e)) {
    if (e.kind == SHIM_FD_PENDING && e.err == 0) {
      int fl = ds__sys.fcntl(fd, F_GETFL);
      /* A connect in progress (a blocking one interrupted by a signal, or
       * a non-blocking one): a blocking socket waits again for the race,
       * a non-blocking one says EALREADY, as the kernel's. */
      if (shim__async_running(fd)) {
        /* The race of fd, or of the fd this one is a copy of. */
        if (fl >= 0 && !(fl & O_NONBLOCK)) {
          async_started = 1; /* traced by the race */
          return shim__async_wait(fd, 0);
        }
        errno = EALREADY;
        return -1;
      }
      /* The race's helper thread found lost meanwhile (its fds closed
       * behind the shim's back): its error, once. */
      if (shim__fd_get(fd, &e) && e.kind == SHIM_FD_PENDING && e.err != 0) {
        shim__fd_clear(fd);
        errno = e.err;
        return -1;
      }
      /* No race of this process for its socket: a forked child's copy of
       * its parent's stand-in, whose winner goes onto the parent's fd only.
       * A clear error, once (README). The child gets a fresh socket of
       * its own under the fd (the application's options and flags kept),
       * so its next connect starts afresh without touching the stand-in
       * its parent may still be waiting on. */
      orphaned(fd);
      errno = ECONNRESET;
      return -1;
    }
    if (e.kind == SHIM_FD_PENDING) {
      /* A failed race: like the kernel after a failed non-blocking
       * connect, this connect reports the error, and the next one starts
       * afresh. */
      shim__fd_clear(fd);
      errno = e.err;
      return -1;
    }
    if (e.kind == SHIM_FD_DGRAM)
      return connect_dgram(fd, sa, len, &e);
    if (e.kind == SHIM_FD_WIDE)
      return connect_wide(fd, sa, len, &e);
    /* Connected already (a race's winner, an accepted connection): the
     * kernel says EISCONN. */
    return ds__sys.connect(fd, sa, len);
  }
  if (sa->sa_family != AF_INET || len < sizeof *sin)
    return ds__sys.connect(fd, sa, len);
  if (!shim__pool_maybe(ntohl(sin->sin_addr.s_addr)))
    return connect_literal(fd, sin, len);
  /* What is no socket, or a socket that cannot take an IPv4 address out,
   * is the kernel's to refuse, with its errno. */
  type = pool_socket(fd);
  if (type < 0)
    return -1;
  if (type == 0)
    return ds__sys.connect(fd, sa, len);
  kind = shim__pool_name(ntohl(sin->sin_addr.s_addr), name, sizeof name);
  if (kind == 0 && !unmapped_pool_address(sa, len))
    return connect_literal(fd, sin, len);
  if (kind == 2 && excluded_dual(sin))
    return ds__sys.connect(fd, sa, len);
  if (type == SOCK_STREAM && kind != 0)
    return race(fd, name, sin, connect_id(sa, len));
  if (type == SOCK_DGRAM && kind == 1) {
    rc = shim__dgram_move(fd, sin);
    if (rc < 0)
      return -1;
    if (rc == 0 && shim__fd_get(fd, &e))
      return connect_dgram(fd, sa, len, &e);
  }
  if (kind != 2) {
    /* A synthetic address (or a pool address without mapping) the shim cannot
     * translate here is refused rather than let out to the network. */
    shim__trace_unmapped(sa, len);
    if (type == SOCK_DGRAM)
      shim__autobind(fd); /* as the kernel's, before its route lookup */
    errno = ENETUNREACH;
    return -1;
  }
  return ds__sys.connect(fd, sa, len);
}

int shim__nested_refuse(int fd, const struct sockaddr *sa, socklen_t len)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  uint32_t ip;
  int type;
  if (sa == NULL || len < sizeof *sin || sa->sa_family != AF_INET ||
      shim__cfg.disabled || shim__cfg.observe || !shim__nested())
    return 0;
  ip = ntohl(sin->sin_addr.s_addr);
  if (!shim__pool_contains(ip) && !shim__source_contains(ip))
    return 0;
  type = pool_socket(fd);
  if (type < 0)
    return -1; /* no socket: EBADF or ENOTSOCK, as the kernel says */
  if (type == 0)
    return 0;
  trace_refused(sa, len,
                "nested call (a hook inside another, as in a signal "
                "handler): pool address refused: ENETUNREACH");
  errno = ENETUNREACH;
  return -1;
}

DS_HOOK int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  double t0;
  int rc, saved, entry = errno;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
    return ds__sys.connect(fd, sa, len);
  if (!shim__active()) {
    /* Disabled, or a hook reached inside another (a signal handler):
     * straight to libc, but never to a pool address. */
    if (shim__nested_refuse(fd, sa, len) != 0)
      return -1;
    return ds__sys.connect(fd, sa, len);
  }
  t0 = ds__mono_ms();
  async_started = 0;
  if (translating())
    rc = do_connect(fd, sa, len);
  else
    rc = ds__sys.connect(fd, sa, len);
  saved = errno;
  /* A race left running in the helper thread traces its own end. */
  if (shim__cfg.trace_fd >= 0 && !async_started)
    shim__trace_sockaddr("connect", sa, len, rc, saved, t0);
  shim__leave();
  /* Success leaves errno as the application had it, whatever the race
   * and the shim's own calls did to it. */
  errno = rc == 0 ? entry : saved;
  return rc;
}

/* Copies sin into the application's buffer as the kernel would. */
static void give_v4(struct sockaddr *sa, socklen_t *len,
                    const struct sockaddr_in *sin)
{
  memcpy(sa, sin, *len < sizeof *sin ? *len : sizeof *sin);
  *len = sizeof *sin;
}

/* get(peer|sock)name through real(): an IPv6 answer the application's
 * sockaddr_in-sized buffer cannot hold (an IPv6 socket it inherited, or
 * one the shim moved) is given as the IPv4 address standing for it. */
static int name_v4(int fd, struct sockaddr *sa, socklen_t *len,
                   int (*real)(int, struct sockaddr *, socklen_t *))
{
  struct sockaddr_in6 s6;
  struct sockaddr_in sin;
  socklen_t l6 = sizeof s6, asked = *len;
  int rc = real(fd, sa, len);
  if (rc != 0 || *len <= asked || asked < sizeof sin || asked >= sizeof s6 ||
      sa->sa_family != AF_INET6)
    return rc;
  if (real(fd, (struct sockaddr *)&s6, &l6) != 0 ||
      s6.sin6_family != AF_INET6 || shim__peer_to_v4(fd, &s6, &sin) != 0)
    return rc;
  give_v4(sa, len, &sin);
  return 0;
}

/* The local address of a socket the shim moved to IPv6, as IPv4. */
static int local_v4(int fd, const shim_fd *e, struct sockaddr_in *out)
{
  struct sockaddr_in6 s6;
  socklen_t l6 = sizeof s6;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&s6, &l6) != 0 ||
      s6.sin6_family != AF_INET6)
    return -1;
  if (e->kind == SHIM_FD_WIDE && IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr)) {
    *out = e->local;
    out->sin_family = AF_INET;
    out->sin_port = s6.sin6_port;
    return 0;
  }
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = s6.sin6_port;
  if (IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr))
    return 0;
  if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
    memcpy(&out->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
    return 0;
  }
  out->sin_addr.s_addr = htonl(shim__source_address(&s6.sin6_addr));
  return 0;
}

/* The body of getpeername(); returns as getpeername() does, errno aside (the
 * hook keeps it on success). */
static int peer_name(int fd, struct sockaddr *sa, socklen_t *len)
{
  shim_fd e;
  int got;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (shim__cfg.disabled || sa == NULL || len == NULL)
    return ds__sys.getpeername(fd, sa, len);
  if (shim__fd_known(fd) && (got = shim__fd_get(fd, &e)) != 0 &&
      e.kind != SHIM_FD_PENDING && e.peer.sin_family == AF_INET) {
    struct sockaddr_in6 s6;
    socklen_t l6 = sizeof s6;
    /* No longer connected (reset, or an unconnected datagram socket):
     * the kernel's error, as without the shim. An entry checked by its
     * peer was just found connected. */
    if (got != 2 && ds__sys.getpeername(fd, (struct sockaddr *)&s6, &l6) != 0)
      return -1;
    give_v4(sa, len, &e.peer);
    return 0;
  }
  return name_v4(fd, sa, len, ds__sys.getpeername);
}

DS_HOOK int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
  return SHIM_KEEP_ERRNO(peer_name(fd, sa, len));
}

/* The body of getsockname(); returns as getsockname() does, errno aside (the
 * hook keeps it on success). */
static int sock_name(int fd, struct sockaddr *sa, socklen_t *len)
{
  struct sockaddr_in sin;
  shim_fd e;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (shim__cfg.disabled || sa == NULL || len == NULL)
    return ds__sys.getsockname(fd, sa, len);
  if (shim__fd_known(fd) && shim__fd_get(fd, &e) && e.family == AF_INET6 &&
      local_v4(fd, &e, &sin) == 0) {
    give_v4(sa, len, &sin);
    return 0;
  }
  return name_v4(fd, sa, len, ds__sys.getsockname);
}

DS_HOOK int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
  return SHIM_KEEP_ERRNO(sock_name(fd, sa, len));
}

/* The body of getsockopt(); returns as getsockopt() does, errno aside (the
 * hook keeps it on success). */
static int sock_opt(int fd, int level, int opt, void *val, socklen_t *len)
{
  shim_fd e;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  /* SO_DOMAIN, SO_ERROR and IPPROTO_IPV6 are all that need the fd's
   * entry, and a failure's errno on a moved socket. */
  if (shim__cfg.disabled || val == NULL || len == NULL ||
      !shim__fd_known(fd))
    return ds__sys.getsockopt(fd, level, opt, val, len);
  if (level == SOL_SOCKET ? opt != SO_DOMAIN && opt != SO_ERROR
                          : level != IPPROTO_IPV6) {
    /* An unknown level, or TCP's options on UDP: EOPNOTSUPP for AF_INET,
     * ENOPROTOOPT for AF_INET6. */
    int rc = ds__sys.getsockopt(fd, level, opt, val, len);
    if (rc != 0 && shim__fd_get(fd, &e) && e.family == AF_INET6)
      rc = shim__opt_fail_as_inet(fd, 0, level, opt, val, len);
    return rc;
  }
  if (!shim__fd_get(fd, &e))
    return ds__sys.getsockopt(fd, level, opt, val, len);
  /* An AF_INET socket, as the application made it, has no IPPROTO_IPV6
   * options: the kernel's answer for one. */
  if (level == IPPROTO_IPV6)
    return e.family == AF_INET6
               ? shim__opt_ipv6_as_inet(fd, 0, opt, val, len)
               : ds__sys.getsockopt(fd, level, opt, val, len);
  if (opt == SO_DOMAIN) {
    /* The kernel copies as much of the int as fits. */
    int v = AF_INET;
    if (*len > sizeof v)
      *len = sizeof v;
    memcpy(val, &v, *len);
    return 0;
  }
  if (*len < sizeof(int))
    return ds__sys.getsockopt(fd, level, opt, val, len);
  if (opt == SO_ERROR && e.kind == SHIM_FD_PENDING && e.err != 0) {
    /* The race's error, not the stand-in's; read once, like the
     * kernel's. */
    int ignored;
    socklen_t l = sizeof ignored;
    ds__sys.getsockopt(fd, level, opt, &ignored, &l);
    *(int *)val = e.err;
    *len = sizeof(int);
    shim__fd_clear(fd);
    return 0;
  }
  return ds__sys.getsockopt(fd, level, opt, val, len);
}

DS_HOOK int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
  return SHIM_KEEP_ERRNO(sock_opt(fd, level, opt, val, len));
}
