/* Addresses of datagrams and peers on sockets the shim moved to IPv6. */
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
  if ((ip = shim__pool_from_v6(&s6->sin6_addr)) != 0) {
    out->sin_addr.s_addr = htonl(ip);
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
  if (shim__pool_contains(ntohl(sin->sin_addr.s_addr))) {
    if (!shim__pool_v6(ntohl(sin->sin_addr.s_addr), &a)) {
      errno = ENETUNREACH;
      return -1;
    }
    out->sin6_addr = a;
    return 0;
  }
  if (shim__source_lookup(ntohl(sin->sin_addr.s_addr), &a)) {
    out->sin6_addr = a;
    return 0;
  }
  out->sin6_addr.s6_addr[10] = 0xff;
  out->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&out->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
  return 0;
}
