/* Socket options the application set before connect or bind, carried
 * over to the socket the shim puts in its place (a race's attempts and
 * winner, a UDP socket moved to IPv6, a widened listener).
 *
 * Nothing is recorded when the application sets an option, so setsockopt
 * costs nothing extra: when a socket is replaced, each option of a known
 * list is read back from the application's socket and compared with a
 * fresh socket of the same kind; those that differ are set on the new one.
 * This also catches options set while a non-blocking race ran.
 *
 * On an IPv6 socket an IPPROTO_IP option is set twice: as its IPv6 twin
 * (IP_TOS -> IPV6_TCLASS, ...), which governs IPv6 traffic, and as itself,
 * which Linux keeps for IPv4-mapped traffic and reports back through
 * getsockopt, so the application reads what it wrote.
 */
#include "shim.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <string.h>

/* How a value is carried over. */
enum { COPY, HALF /* the kernel doubles what is set: set half */ };

static const struct {
  int level, name, how;
} known_opts[] = {
    {SOL_SOCKET, SO_REUSEADDR, COPY},
    {SOL_SOCKET, SO_REUSEPORT, COPY},
    {SOL_SOCKET, SO_KEEPALIVE, COPY},
    {SOL_SOCKET, SO_RCVBUF, HALF},
    {SOL_SOCKET, SO_SNDBUF, HALF},
    {SOL_SOCKET, SO_RCVLOWAT, COPY},
    {SOL_SOCKET, SO_LINGER, COPY},
    {SOL_SOCKET, SO_RCVTIMEO, COPY},
    {SOL_SOCKET, SO_SNDTIMEO, COPY},
    {SOL_SOCKET, SO_PRIORITY, COPY},
    {SOL_SOCKET, SO_MARK, COPY},
    {SOL_SOCKET, SO_BROADCAST, COPY},
    {SOL_SOCKET, SO_OOBINLINE, COPY},
    {SOL_SOCKET, SO_DONTROUTE, COPY},
    {SOL_SOCKET, SO_TIMESTAMP, COPY},
    {SOL_SOCKET, SO_TIMESTAMPNS, COPY},
    {SOL_SOCKET, SO_BINDTODEVICE, COPY},
    {IPPROTO_TCP, TCP_NODELAY, COPY},
    {IPPROTO_TCP, TCP_CORK, COPY},
    {IPPROTO_TCP, TCP_KEEPIDLE, COPY},
    {IPPROTO_TCP, TCP_KEEPINTVL, COPY},
    {IPPROTO_TCP, TCP_KEEPCNT, COPY},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, COPY},
    {IPPROTO_TCP, TCP_MAXSEG, COPY},
    {IPPROTO_TCP, TCP_CONGESTION, COPY},
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, COPY},
    {IPPROTO_TCP, TCP_FASTOPEN, COPY},
    {IPPROTO_TCP, TCP_NOTSENT_LOWAT, COPY},
    {IPPROTO_TCP, TCP_WINDOW_CLAMP, COPY},
    {IPPROTO_TCP, TCP_LINGER2, COPY},
    {IPPROTO_TCP, TCP_SYNCNT, COPY},
    {IPPROTO_IP, IP_TOS, COPY},
    {IPPROTO_IP, IP_TTL, COPY},
    {IPPROTO_IP, IP_MULTICAST_TTL, COPY},
    {IPPROTO_IP, IP_MULTICAST_LOOP, COPY},
    {IPPROTO_IP, IP_MULTICAST_ALL, COPY},
    {IPPROTO_IP, IP_PKTINFO, COPY},
    {IPPROTO_IP, IP_RECVTOS, COPY},
    {IPPROTO_IP, IP_RECVTTL, COPY},
    {IPPROTO_IP, IP_MTU_DISCOVER, COPY},
    {IPPROTO_IP, IP_RECVERR, COPY},
    {IPPROTO_IP, IP_FREEBIND, COPY},
    {IPPROTO_IP, IP_TRANSPARENT, COPY},
    {IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, COPY},
    {IPPROTO_UDP, UDP_CORK, COPY},
    {IPPROTO_UDP, UDP_SEGMENT, COPY},
};

int shim__opt_twin(int name, int *name6)
{
  switch (name) {
  case IP_TOS:
    *name6 = IPV6_TCLASS;
    return 1;
  case IP_TTL:
    *name6 = IPV6_UNICAST_HOPS;
    return 1;
  case IP_MULTICAST_TTL:
    *name6 = IPV6_MULTICAST_HOPS;
    return 1;
  case IP_MULTICAST_LOOP:
    *name6 = IPV6_MULTICAST_LOOP;
    return 1;
  case IP_PKTINFO:
    *name6 = IPV6_RECVPKTINFO;
    return 1;
  case IP_RECVTOS:
    *name6 = IPV6_RECVTCLASS;
    return 1;
  case IP_RECVTTL:
    *name6 = IPV6_RECVHOPLIMIT;
    return 1;
  case IP_MTU_DISCOVER:
    *name6 = IPV6_MTU_DISCOVER;
    return 1;
  case IP_RECVERR:
    *name6 = IPV6_RECVERR;
    return 1;
  case IP_FREEBIND:
    *name6 = IPV6_FREEBIND;
    return 1;
  case IP_TRANSPARENT:
    *name6 = IPV6_TRANSPARENT;
    return 1;
  default:
    return 0;
  }
}

/* Sets one option read from the application's socket on to; returns 0
 * or a negative errno that matters (see shim__opt_replay). */
static int set_one(int to, int family, int dual, int level, int name,
                   int how, unsigned char *val, socklen_t len)
{
  int name6, v;
  if (how == HALF && len == sizeof(int)) {
    memcpy(&v, val, sizeof v);
    v /= 2;
    memcpy(val, &v, sizeof v);
  }
  if (level != IPPROTO_IP || family != AF_INET6)
    return ds__sys.setsockopt(to, level, name, val, len) == 0 ? 0 : -errno;
  /* As itself, for IPv4-mapped traffic: the kernel takes IPPROTO_IP
   * options on IPv6 sockets; its refusal only matters without a twin on
   * a dual-stack socket. */
  if (ds__sys.setsockopt(to, level, name, val, len) != 0 &&
      !shim__opt_twin(name, &name6))
    return dual ? -errno : 0;
  if (!shim__opt_twin(name, &name6))
    return 0;
  return ds__sys.setsockopt(to, IPPROTO_IPV6, name6, val, len) == 0 ? 0
                                                                     : -errno;
}

/* Returns a fresh socket of fd's type and protocol, of family (0: fd's
 * own), or -1. */
static int fresh_like(int fd, int family)
{
  int type = shim__sock_int(fd, SO_TYPE), proto = shim__sock_int(fd, SO_PROTOCOL);
  if (family == 0)
    family = shim__sock_int(fd, SO_DOMAIN);
  if (family < 0 || type < 0 || proto < 0)
    return -1;
  return ds__sys.socket(family, type | SOCK_CLOEXEC, proto);
}

int shim__opt_replay(int from, int to, int family, int dual)
{
  unsigned char a[64], b[64];
  socklen_t la, lb;
  size_t i;
  int ref, rc = 0, e;

  /* A fresh socket of the same kind says what the defaults are. */
  ref = fresh_like(from, 0);
  if (ref < 0)
    return 0; /* no descriptor to spare: the options are not carried */
  for (i = 0; i < sizeof known_opts / sizeof known_opts[0]; i++) {
    la = sizeof a;
    lb = sizeof b;
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    if (ds__sys.getsockopt(from, known_opts[i].level, known_opts[i].name, a,
                           &la) != 0 ||
        ds__sys.getsockopt(ref, known_opts[i].level, known_opts[i].name, b,
                           &lb) != 0)
      continue; /* not an option of this kind of socket */
    if (la == lb && memcmp(a, b, la) == 0)
      continue;
    /* Strings: set as long as they are (SO_LINGER has TCP_CONGESTION's
     * number: the level tells them apart). */
    if ((known_opts[i].level == SOL_SOCKET &&
         known_opts[i].name == SO_BINDTODEVICE) ||
        (known_opts[i].level == IPPROTO_TCP &&
         known_opts[i].name == TCP_CONGESTION))
      la = (socklen_t)strnlen((char *)a, la);
    e = set_one(to, family, dual, known_opts[i].level, known_opts[i].name,
                known_opts[i].how, a, la);
    if (e != 0 && rc == 0)
      rc = e;
  }
  ds__sys.close(ref);
  return rc;
}

int shim__opt_as_inet(int fd, int set, int level, int name, void *val,
                      socklen_t *len)
{
  int rc, e = errno, ref = fresh_like(fd, AF_INET);
  if (ref < 0) {
    errno = e; /* no socket to ask (out of fds): the caller decides */
    return -2;
  }
  rc = set ? ds__sys.setsockopt(ref, level, name, val, *len)
           : ds__sys.getsockopt(ref, level, name, val, len);
  e = errno;
  ds__sys.close(ref);
  errno = e;
  return rc;
}

int shim__opt_fail_as_inet(int fd, int set, int level, int name, void *val,
                           socklen_t *len)
{
  int e = errno;
  socklen_t l = *len;
  unsigned char scratch[256];
  /* The fresh socket's value is never the application's: read it into
   * a scratch buffer, and keep only its errno. */
  if (!set) {
    if (l > sizeof scratch)
      l = sizeof scratch;
    val = scratch;
    len = &l;
  }
  if (shim__opt_as_inet(fd, set, level, name, val, len) == -1)
    return -1; /* errno: the AF_INET socket's */
  errno = e;   /* it took it, or none could ask: the failure's own */
  return -1;
}

int shim__opt_ipv6_as_inet(int fd, int set, int name, void *val,
                           socklen_t *len)
{
  int rc = shim__opt_as_inet(fd, set, IPPROTO_IPV6, name, val, len);
  if (rc == -2) {
    /* What an AF_INET socket says of IPPROTO_IPV6. */
    errno = set ? ENOPROTOOPT : EOPNOTSUPP;
    return -1;
  }
  return rc;
}
