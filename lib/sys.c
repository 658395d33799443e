/* The table of real socket calls (see internal.h) and small shared helpers. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

ds__sockfns ds__sys = {
    .socket = socket,
    .connect = connect,
    .bind = bind,
    .listen = listen,
    .accept4 = accept4,
    .close = close,
    .recv = recv,
    .send = send,
    .sendmsg = sendmsg,
    .recvmsg = recvmsg,
    .recvmmsg = recvmmsg,
    .sendto = sendto,
    .recvfrom = recvfrom,
    .getsockname = getsockname,
    .getpeername = getpeername,
    .setsockopt = setsockopt,
    .getsockopt = getsockopt,
    .shutdown = shutdown,
    .epoll_ctl = epoll_ctl,
};

int ds__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
  va_list ap;
  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

int ds__move_high(int fd)
{
  int hi;
  if (ds__sys.fd_floor <= 0 || fd >= ds__sys.fd_floor)
    return fd;
  hi = fcntl(fd, F_DUPFD_CLOEXEC, ds__sys.fd_floor);
  if (hi < 0)
    return fd;
  ds__sys.close(fd);
  return hi;
}
