/* The library's system-call layer: the table of real libc functions (see
 * internal.h), the monotonic clock, moving fds high, and small shared
 * helpers. The fork handler chain is in fork.c. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* glibc's fortified recvfrom; its header declares it only under
 * _FORTIFY_SOURCE. */
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                       struct sockaddr *sa, socklen_t *len);

ds__sysfns ds__sys = {
    .socket = socket,
    .connect = connect,
    .bind = bind,
    .listen = listen,
    .accept = accept,
    .accept4 = accept4,
    .recv = recv,
    .send = send,
    .sendmsg = sendmsg,
    .recvmsg = recvmsg,
    .recvmmsg = recvmmsg,
    .sendmmsg = sendmmsg,
    .sendto = sendto,
    .recvfrom = recvfrom,
    .recvfrom_chk = __recvfrom_chk,
    .getsockname = getsockname,
    .getpeername = getpeername,
    .setsockopt = setsockopt,
    .getsockopt = getsockopt,
    .shutdown = shutdown,
    .epoll_ctl = epoll_ctl,
    .close = close,
    .close_range = close_range,
    .dup = dup,
    .dup2 = dup2,
    .dup3 = dup3,
    .fcntl = fcntl,
    .fcntl64 = fcntl64,
    /* libc's name lookups stay NULL here: the library never calls them
     * (c-ares resolves), and naming them would pull glibc's NSS, with its
     * link-time warnings, into every static program that links the
     * library. The shim, whose hooks pass lookups on, fills them. */
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

uint64_t ds__mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Returns a close-on-exec copy of fd at ds__sys.fd_floor or above, or -1
 * when there is no floor or no room there. Through the table: inside the
 * shim, fcntl is a hook. */
static int dup_at_floor(int fd)
{
  if (ds__sys.fd_floor <= 0)
    return -1;
  return ds__sys.fcntl(fd, F_DUPFD_CLOEXEC, ds__sys.fd_floor);
}

int ds__dup_high(int fd)
{
  int nfd = dup_at_floor(fd);
  /* Never 0, 1 or 2: a program that closed its stdin expects its next
   * open() to be its new stdin, not to find the shim's fd there. */
  if (nfd < 0)
    nfd = ds__sys.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return nfd;
}

int ds__move_high(int fd)
{
  int hi;
  if (fd > STDERR_FILENO && (ds__sys.fd_floor <= 0 || fd >= ds__sys.fd_floor))
    return fd;
  /* Below the floor, no copy at a lower number: it would gain nothing;
   * but never keep 0, 1 or 2 (see ds__dup_high). */
  hi = fd > STDERR_FILENO ? dup_at_floor(fd) : ds__dup_high(fd);
  if (hi < 0)
    return fd;
  ds__sys.close(fd);
  return hi;
}
