/* The exported hooks. Each is a few lines: initialise lazily, pass the
 * call to libc, and trace what happened when a trace is on.
 *
 * State of the shim: every call passes through unchanged. Lookups,
 * connects and binds are traced (the "observe" instrument of
 * tools/dualstack-compare); the translation described in DESIGN.md is not
 * implemented yet, so DUALSTACK_OBSERVE=1 and the default mode behave the
 * same for now.
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

/* Returns 1 when calls should be traced: initialised, enabled, a trace
 * open, and not a call the shim itself makes. Takes the guard. */
static int tracing(void)
{
  if (shim__init() != 0 || shim__cfg.disabled || shim__cfg.trace_fd < 0)
    return 0;
  return shim__enter();
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
  shim_json j;
  unsigned long id;
  double t0;
  int rc, saved;

  if (shim__init() != 0)
    return EAI_SYSTEM;
  if (!tracing())
    return shim__real.getaddrinfo(node, service, hints, res);
  t0 = shim__mono_ms();
  rc = shim__real.getaddrinfo(node, service, hints, res);
  saved = errno;
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
  if (rc != 0)
    shim__json_str(&j, "error", gai_strerror(rc));
  shim__json_num(&j, "ms", shim__mono_ms() - t0);
  shim__json_emit(&j);
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

DS_HOOK struct hostent *gethostbyname(const char *name)
{
  struct hostent *he;
  double t0;
  int saved;
  if (shim__init() != 0) {
    h_errno = NO_RECOVERY;
    return NULL;
  }
  if (!tracing())
    return shim__real.gethostbyname(name);
  t0 = shim__mono_ms();
  he = shim__real.gethostbyname(name);
  saved = errno;
  trace_hostent(name, AF_INET, "gethostbyname", he, t0);
  shim__leave();
  errno = saved;
  return he;
}

DS_HOOK struct hostent *gethostbyname2(const char *name, int af)
{
  struct hostent *he;
  double t0;
  int saved;
  if (shim__init() != 0) {
    h_errno = NO_RECOVERY;
    return NULL;
  }
  if (!tracing())
    return shim__real.gethostbyname2(name, af);
  t0 = shim__mono_ms();
  he = shim__real.gethostbyname2(name, af);
  saved = errno;
  trace_hostent(name, af, "gethostbyname2", he, t0);
  shim__leave();
  errno = saved;
  return he;
}

/* Traces a connect or bind of an IPv4 or IPv6 socket. */
static void trace_sockaddr(const char *event, const struct sockaddr *sa,
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

DS_HOOK int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  double t0;
  int rc, saved;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      !tracing())
    return shim__real.connect(fd, sa, len);
  t0 = shim__mono_ms();
  rc = shim__real.connect(fd, sa, len);
  saved = errno;
  trace_sockaddr("connect", sa, len, rc, saved, t0);
  shim__leave();
  errno = saved;
  return rc;
}

DS_HOOK int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
  double t0;
  int rc, saved;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      !tracing())
    return shim__real.bind(fd, sa, len);
  t0 = shim__mono_ms();
  rc = shim__real.bind(fd, sa, len);
  saved = errno;
  trace_sockaddr("bind", sa, len, rc, saved, t0);
  shim__leave();
  errno = saved;
  return rc;
}
