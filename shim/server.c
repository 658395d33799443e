/* The server side: a legacy server's AF_INET socket bound to 0.0.0.0
 * becomes an IPv6 dual-stack socket bound to [::] on the same port and
 * fd (DESIGN.md, "Server side"). Not written yet: bind is only traced. */
#include "shim.h"

#include <errno.h>

DS_HOOK int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
  double t0;
  int rc, saved;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      shim__cfg.trace_fd < 0 || !shim__active())
    return shim__real.bind(fd, sa, len);
  t0 = shim__mono_ms();
  rc = shim__real.bind(fd, sa, len);
  saved = errno;
  shim__trace_sockaddr("bind", sa, len, rc, saved, t0);
  shim__leave();
  errno = saved;
  return rc;
}
