/* The reentrant lookups (gethostbyname_r, gethostbyname2_r) and the
 * reverse ones (gethostbyaddr, gethostbyaddr_r, getnameinfo): a synthetic
 * address is written into the caller's buffer like glibc does, and a reverse
 * lookup of a synthetic address gives back the name it stands for, so `nc -v`
 * and access logs name the right host. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The shared body of the _r lookups (via: the one called, for the trace).
 * Returns what glibc's would. */
static int lookup_r(const char *name, int af, const char *via,
                    struct hostent *ret, char *buf, size_t buflen,
                    struct hostent **result, int *h_errnop,
                    int (*real2)(const char *, int, struct hostent *, char *,
                                 size_t, struct hostent **, int *))
{
  uint32_t ip;
  shim_names nm;
  double t0 = ds__mono_ms();
  int what = shim__decide(name, af, 0, &ip, &nm), rc;
  if (what == SHIM_FULL) {
    /* As glibc's for a lookup to be tried again: EAGAIN, TRY_AGAIN. */
    shim__trace_pool_full(name, af, via, "TRY_AGAIN", t0);
    *result = NULL;
    if (h_errnop != NULL)
      *h_errnop = TRY_AGAIN;
    return EAGAIN;
  }
  if (what == SHIM_SYNTH) {
    rc = shim__fill_hostent(ret, buf, buflen, nm.canon,
                            nm.alias[0] ? nm.alias : NULL, ip);
    *result = rc == 0 ? ret : NULL;
    if (h_errnop != NULL)
      *h_errnop = rc == 0 ? NETDB_SUCCESS : NETDB_INTERNAL;
    if (rc != 0)
      errno = rc;
    return rc;
  }
  rc = real2(name, af, ret, buf, buflen, result, h_errnop);
  if (rc == 0 && what == SHIM_DUAL)
    shim__remember_dual_hostent(*result, nm.key);
  return rc;
}

/* The shared body of gethostbyname_r (af AF_INET, libc's own
 * gethostbyname_r for a pass-through: real_r) and gethostbyname2_r. */
static int hostbyname_r(const char *name, int af, int real_r,
                        struct hostent *ret, char *buf, size_t buflen,
                        struct hostent **result, int *h_errnop)
{
  int rc;
  if (shim__init() != 0) {
    if (result != NULL)
      *result = NULL;
    return ENOSYS;
  }
  if (shim__cfg.disabled || !shim__enter())
    return real_r ? ds__sys.gethostbyname_r(name, ret, buf, buflen, result,
                                            h_errnop)
                  : ds__sys.gethostbyname2_r(name, af, ret, buf, buflen, result,
                                             h_errnop);
  rc = lookup_r(name, af, real_r ? "gethostbyname_r" : "gethostbyname2_r", ret,
                buf, buflen, result, h_errnop, ds__sys.gethostbyname2_r);
  shim__leave();
  return rc;
}

DS_HOOK int gethostbyname_r(const char *name, struct hostent *ret, char *buf,
                            size_t buflen, struct hostent **result,
                            int *h_errnop)
{
  return hostbyname_r(name, AF_INET, 1, ret, buf, buflen, result, h_errnop);
}

DS_HOOK int gethostbyname2_r(const char *name, int af, struct hostent *ret,
                             char *buf, size_t buflen, struct hostent **result,
                             int *h_errnop)
{
  return hostbyname_r(name, af, 0, ret, buf, buflen, result, h_errnop);
}

/* Copies the name IPv4 address ip (host order) stands for into name:
 * a synthetic destination's name, or for a source-pool address the name
 * of the IPv6 address it stands for (its reverse lookup), else that
 * address's literal. Returns SHIM_REV_NAME, SHIM_REV_LITERAL (a
 * source-pool address whose IPv6 address has no name: *why is what
 * glibc's getnameinfo said of it with NI_NAMEREQD, EAI_NONAME or
 * EAI_AGAIN), or 0 for an address that is neither. */
enum { SHIM_REV_NAME = 1, SHIM_REV_LITERAL = 2 };
static int reverse_name(uint32_t ip, char *name, size_t len, int *why)
{
  struct sockaddr_in6 s6;
  size_t n;
  if (shim__pool_name(ip, name, len) == 1) {
    /* Kept absolute for the race; a reverse name has no final dot. */
    n = strlen(name);
    if (n > 1 && name[n - 1] == '.')
      name[n - 1] = '\0';
    return SHIM_REV_NAME;
  }
  memset(&s6, 0, sizeof s6);
  if (!shim__source_lookup(ip, &s6.sin6_addr))
    return 0;
  s6.sin6_family = AF_INET6;
  *why = ds__sys.getnameinfo((struct sockaddr *)&s6, sizeof s6, name,
                             (socklen_t)len, NULL, 0, NI_NAMEREQD);
  if (*why == 0)
    return SHIM_REV_NAME;
  return inet_ntop(AF_INET6, &s6.sin6_addr, name, (socklen_t)len) != NULL
             ? SHIM_REV_LITERAL
             : 0;
}

/* Returns 1 and the name in name if gethostbyaddr and gethostbyaddr_r
 * answer for addr themselves (a pool address of IPv4), else 0. */
static int reverse_of(const void *addr, socklen_t len, int type, char *name,
                      size_t namelen, uint32_t *ip)
{
  if (shim__cfg.disabled || shim__cfg.observe || addr == NULL ||
      type != AF_INET || len != 4)
    return 0;
  int why;
  memcpy(ip, addr, 4);
  *ip = ntohl(*ip);
  return reverse_name(*ip, name, namelen, &why) != 0;
}

/* Per-thread storage for gethostbyaddr's answer. */
static _Thread_local struct {
  struct hostent he;
  char buf[512];
} tls_rev;

DS_HOOK struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
  char name[256];
  uint32_t ip;
  if (shim__init() != 0) {
    h_errno = NO_RECOVERY;
    return NULL;
  }
  if (reverse_of(addr, len, type, name, sizeof name, &ip) &&
      shim__fill_hostent(&tls_rev.he, tls_rev.buf, sizeof tls_rev.buf, name,
                         NULL, ip) == 0) {
    h_errno = NETDB_SUCCESS;
    return &tls_rev.he;
  }
  return ds__sys.gethostbyaddr(addr, len, type);
}

/* libperl and CPython's socket.gethostbyaddr call this one. */
DS_HOOK int gethostbyaddr_r(const void *addr, socklen_t len, int type,
                            struct hostent *ret, char *buf, size_t buflen,
                            struct hostent **result, int *h_errnop)
{
  char name[256];
  uint32_t ip;
  int rc;
  if (shim__init() != 0) {
    if (result != NULL)
      *result = NULL;
    return ENOSYS;
  }
  if (!reverse_of(addr, len, type, name, sizeof name, &ip))
    return ds__sys.gethostbyaddr_r(addr, len, type, ret, buf, buflen, result,
                                   h_errnop);
  /* As glibc's: ERANGE for a buffer too small, to be tried larger. */
  rc = shim__fill_hostent(ret, buf, buflen, name, NULL, ip);
  *result = rc == 0 ? ret : NULL;
  if (h_errnop != NULL)
    *h_errnop = rc == 0 ? NETDB_SUCCESS : NETDB_INTERNAL;
  if (rc != 0)
    errno = rc;
  return rc;
}

DS_HOOK int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                        socklen_t hostlen, char *serv, socklen_t servlen,
                        int flags)
{
  char name[256];
  int rc, kind, why = EAI_NONAME;
  if (shim__init() != 0)
    return EAI_SYSTEM;
  if (shim__cfg.disabled || shim__cfg.observe || sa == NULL ||
      sa->sa_family != AF_INET || salen < sizeof(struct sockaddr_in) ||
      host == NULL || hostlen == 0 || (flags & NI_NUMERICHOST) ||
      (kind = reverse_name(
           ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr), name,
           sizeof name, &why)) == 0)
    return ds__sys.getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
  /* An IPv6 client without a name: what glibc says of its address
   * (EAI_NONAME, or EAI_AGAIN when its reverse lookup could not run). */
  if (kind == SHIM_REV_LITERAL && (flags & NI_NAMEREQD))
    return why;
  /* libc fills the service (asked for it alone, so that the pool
   * address's text never has to fit host); the host is the name the
   * address stands for. */
  if (serv != NULL && servlen > 0) {
    rc = ds__sys.getnameinfo(sa, salen, NULL, 0, serv, servlen,
                             flags & ~NI_NAMEREQD);
    if (rc != 0)
      return rc;
  }
  if (strlen(name) >= hostlen)
    return EAI_OVERFLOW;
  memcpy(host, name, strlen(name) + 1);
  return 0;
}
