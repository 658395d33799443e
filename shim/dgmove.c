/* UDP clients (DESIGN.md, "UDP clients"): an AF_INET datagram socket that
 * sends to or connects to a synthetic address becomes, on the same fd, an
 * IPv6 dual-stack socket, so that the datagram can go to the name's IPv6
 * address while IPv4 destinations keep working (as IPv4-mapped). The
 * options the application set and its bind are kept; the datagram hooks
 * (dgram.c) translate addresses both ways from then on. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

/* Binds nfd (IPv6) where the application bound fd (IPv4), if it did.
 * Returns 0 or -1. */
static int rebind(int fd, int nfd)
{
  struct sockaddr_in sin;
  struct sockaddr_in6 s6;
  socklen_t len = sizeof sin;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&sin, &len) != 0 ||
      sin.sin_family != AF_INET)
    return -1;
  if (sin.sin_port == 0 && sin.sin_addr.s_addr == htonl(INADDR_ANY))
    return 0;
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  s6.sin6_port = sin.sin_port;
  if (sin.sin_addr.s_addr != htonl(INADDR_ANY)) {
    /* A specific IPv4 address stays one (IPv6 sends then fail, as they
     * would from that address). */
    s6.sin6_addr.s6_addr[10] = 0xff;
    s6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6.sin6_addr.s6_addr[12], &sin.sin_addr, 4);
  }
  return ds__sys.bind(nfd, (struct sockaddr *)&s6, sizeof s6);
}

/* Traces the move: the synthetic destination and the IPv6 address it
 * goes to. */
static void trace_move(const struct sockaddr_in *dst, const struct in6_addr *a,
                       int err)
{
  shim_json j;
  char name[256], v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN];
  if (shim__cfg.trace_fd < 0)
    return;
  if (shim__pool_name(ntohl(dst->sin_addr.s_addr), name, sizeof name) != 1)
    name[0] = '\0';
  inet_ntop(AF_INET, &dst->sin_addr, v4, sizeof v4);
  shim__json_begin(&j, "connect", shim__next_id());
  shim__json_host(&j, "name", name);
  shim__json_str(&j, "addr", v4);
  shim__json_int(&j, "port", ntohs(dst->sin_port));
  shim__json_str(&j, "family", "ipv6");
  shim__json_str(&j, "proto", "udp");
  if (a != NULL) {
    inet_ntop(AF_INET6, a, v6, sizeof v6);
    shim__json_str(&j, "via", v6);
  }
  shim__json_str(&j, "result", shim__errname(err));
  shim__json_emit(&j);
}

int shim__dgram_move(int fd, const struct sockaddr_in *dst)
{
  struct in6_addr a;
  shim_fd e = {0};
  int proto, nfd, off = 0, err;

  if (shim__fd_get(fd, &e) || shim__sock_int(fd, SO_DOMAIN) != AF_INET ||
      shim__sock_int(fd, SO_TYPE) != SOCK_DGRAM)
    return 1;
  proto = shim__sock_int(fd, SO_PROTOCOL);
  if (proto < 0)
    return 1;
  if (!shim__pool_v6(ntohl(dst->sin_addr.s_addr), &a)) {
    trace_move(dst, NULL, EHOSTUNREACH);
    errno = EHOSTUNREACH; /* the name has no IPv6 address (any more) */
    return -1;
  }
  nfd = ds__sys.socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, proto);
  if (nfd < 0)
    goto fail;
  if (ds__sys.setsockopt(nfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) !=
          0 ||
      rebind(fd, nfd) != 0)
    goto fail;
  shim__opt_replay(fd, nfd, AF_INET6, 1);
  if (shim__install(nfd, fd) != 0)
    goto fail;
  e.kind = SHIM_FD_DGRAM;
  e.family = AF_INET6;
  shim__fd_set(fd, &e);
  trace_move(dst, &a, 0);
  return 0;
fail:
  err = errno;
  if (nfd >= 0)
    ds__sys.close(nfd);
  trace_move(dst, &a, err);
  errno = err;
  return -1;
}
