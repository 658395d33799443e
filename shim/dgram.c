/* Addresses of datagrams and peers on sockets the shim moved to IPv6, and
 * the datagram hooks (sendto, sendmsg): a destination-pool address that
 * stands for nothing is never sent anywhere. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

int shim__peer_to_v4(int fd, const struct sockaddr_in6 *s6,
                     struct sockaddr_in *out)
{
  uint32_t ip;
  (void)fd;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = s6->sin6_port;
  if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
    memcpy(&out->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    return 0;
  }
  ip = shim__source_address(&s6->sin6_addr);
  if (ip == 0)
    return -1;
  out->sin_addr.s_addr = htonl(ip);
  return 0;
}

int shim__peer_to_v6(const struct sockaddr_in *sin, struct sockaddr_in6 *out)
{
  struct in6_addr a;
  memset(out, 0, sizeof *out);
  out->sin6_family = AF_INET6;
  out->sin6_port = sin->sin_port;
  if (shim__source_lookup(ntohl(sin->sin_addr.s_addr), &a)) {
    out->sin6_addr = a;
    return 0;
  }
  out->sin6_addr.s6_addr[10] = 0xff;
  out->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&out->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
  return 0;
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

DS_HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                       const struct sockaddr *sa, socklen_t len)
{
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa != NULL && !shim__cfg.disabled && !shim__cfg.observe &&
      unmapped_pool_address(sa, len)) {
    errno = ENETUNREACH;
    return -1;
  }
  return shim__real.sendto(fd, buf, n, flags, sa, len);
}

DS_HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (msg != NULL && msg->msg_name != NULL && !shim__cfg.disabled &&
      !shim__cfg.observe &&
      unmapped_pool_address(msg->msg_name, msg->msg_namelen)) {
    errno = ENETUNREACH;
    return -1;
  }
  return shim__real.sendmsg(fd, msg, flags);
}
