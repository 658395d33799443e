/* Hooks that keep the fd table true: close, close_range, dup, dup2, dup3
 * and fcntl's F_DUPFD forget or copy what the shim knows of an fd;
 * setsockopt gives IPPROTO_IP options their IPv6 twins on sockets the
 * shim moved to IPv6; epoll_ctl records
 * registrations that must follow a socket swapped under its fd.
 *
 * These run on every such call of the process, so an fd the shim knows
 * nothing about costs one lock-free table read.
 *
 * In a vfork child (Python's subprocess closes and dups fds there before
 * exec) they pass straight through: the table, the recorded registrations
 * and the lock are the parent's, the fds the child's own. Whether the
 * caller is one costs a system call, so it is asked only where a hook
 * would change shared state (fd.c's writers ask too).
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <unistd.h>

DS_HOOK int close(int fd)
{
  int entry = errno, rc;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (shim__fd_known(fd)) {
    if (shim__fd_is_private(fd))
      return 0; /* the shim's own: it stays, as if it were not there */
    /* From a signal handler inside a hook: closed, and the entry left
     * (entries are checked against the socket before they are used). */
    if (shim__enter()) {
      shim__server_closing(fd);
      shim__fd_clear(fd);
      shim__leave();
    }
  }
  rc = ds__sys.close(fd);
  if (rc == 0)
    errno = entry; /* whatever forgetting fd did to it */
  return rc;
}

/* close_range() of [first, last] without the shim's own fds. */
static int close_range_around(unsigned first, unsigned last, int flags)
{
  unsigned fd, from = first, top = last < SHIM_FD_MAX ? last : SHIM_FD_MAX - 1;
  int rc;
  for (fd = first; fd <= top && fd >= first; fd++) {
    if (!shim__fd_is_private((int)fd))
      continue;
    if (fd > from && (rc = ds__sys.close_range(from, fd - 1, flags)) != 0)
      return rc;
    from = fd + 1;
  }
  if (from > last || from < first)
    return 0;
  return ds__sys.close_range(from, last, flags);
}

DS_HOOK int close_range(unsigned first, unsigned last, int flags)
{
  unsigned fd;
  int rc, e, own;
  if (shim__init() != 0 || ds__sys.close_range == NULL) {
    errno = ENOSYS;
    return -1;
  }
  /* What the kernel refuses (EINVAL) it refuses before closing anything. */
  if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)))
    return ds__sys.close_range(first, last, flags);
  /* Not in a vfork child, nor from a signal handler inside a hook:
   * there only the fds are closed (the shim's own stay). */
  own = !ds__fork_vforked() && shim__enter();
  if (own && !(flags & CLOSE_RANGE_CLOEXEC))
    /* Forgotten first: a racing fd's stand-in is disconnected before it
     * closes (async.c). */
    for (fd = first; fd <= last && fd < SHIM_FD_MAX; fd++)
      if (shim__fd_known((int)fd) && !shim__fd_is_private((int)fd))
        shim__fd_clear((int)fd);
  if (own)
    shim__async_lock(); /* no swap in the middle of it */
  rc = close_range_around(first, last, flags);
  e = errno;
  if (own) {
    shim__async_unlock();
    shim__leave();
  }
  errno = e;
  return rc;
}

/* closefrom() (glibc 2.34): as close_range(lowfd, ~0U, 0) through the
 * hook above, so the shim's own fds stay and its table stays true;
 * glibc's own makes the system call itself. Where close_range() is
 * missing (a kernel before 5.9), glibc's, which closes fd by fd. */
DS_HOOK void closefrom(int lowfd)
{
  static void (*next)(int);
  if (lowfd < 0)
    lowfd = 0;
  if (shim__init() == 0 && ds__sys.close_range != NULL &&
      close_range((unsigned)lowfd, ~0U, 0) == 0)
    return;
  if (next == NULL)
    next = (void (*)(int))dlsym(RTLD_NEXT, "closefrom");
  if (next != NULL)
    next(lowfd);
}

DS_HOOK int dup(int fd)
{
  int nfd, e;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  nfd = ds__sys.dup(fd);
  e = errno;
  if (nfd >= 0 && shim__fd_known(fd) && shim__enter()) {
    shim__fd_copy(fd, nfd);
    shim__leave();
  }
  errno = e;
  return nfd;
}

/* After newfd was made a copy of fd: newfd's old state is gone, and it
 * gets fd's. */
static void duped(int fd, int newfd)
{
  if (fd == newfd)
    return;
  if (shim__fd_known(newfd))
    shim__fd_clear(newfd);
  if (shim__fd_known(fd))
    shim__fd_copy(fd, newfd);
}

/* The shared body of dup2 and dup3 (dup2 when flags is -1). A newfd the
 * shim knows may be in the middle of a swap: the real call then waits
 * for it. */
static int dup_onto(int fd, int newfd, int flags)
{
  int rc, e, known, own;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  known = shim__fd_known(newfd);
  /* Not in a vfork child, nor from a signal handler inside a hook. */
  if (known || shim__fd_known(fd))
    own = !ds__fork_vforked() && shim__enter();
  else
    own = 0;
  if (known && own)
    shim__async_lock();
  rc = flags < 0 ? ds__sys.dup2(fd, newfd) : ds__sys.dup3(fd, newfd, flags);
  e = errno;
  if (known && own)
    shim__async_unlock();
  if (rc >= 0 && own)
    duped(fd, newfd);
  if (own)
    shim__leave();
  errno = e;
  return rc;
}

DS_HOOK int dup2(int fd, int newfd)
{
  return dup_onto(fd, newfd, -1);
}

DS_HOOK int dup3(int fd, int newfd, int flags)
{
  return dup_onto(fd, newfd, flags);
}

/* The shared body of fcntl and fcntl64 (libc's fcntl64 when is64 and
 * libc has one): the argument is passed on as it came (an int or a
 * pointer, as glibc's own fcntl does). */
static int fcntl_common(int is64, int fd, int cmd, void *arg)
{
  int rc, e;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  rc = is64 && ds__sys.fcntl64 != NULL ? ds__sys.fcntl64(fd, cmd, arg)
                                       : ds__sys.fcntl(fd, cmd, arg);
  e = errno;
  if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) &&
      shim__fd_known(fd) && shim__enter()) {
    shim__fd_copy(fd, rc);
    shim__leave();
  }
  errno = e;
  return rc;
}

DS_HOOK int fcntl(int fd, int cmd, ...)
{
  va_list ap;
  void *arg;
  va_start(ap, cmd);
  arg = va_arg(ap, void *);
  va_end(ap);
  return fcntl_common(0, fd, cmd, arg);
}

DS_HOOK int fcntl64(int fd, int cmd, ...)
{
  va_list ap;
  void *arg;
  va_start(ap, cmd);
  arg = va_arg(ap, void *);
  va_end(ap);
  return fcntl_common(1, fd, cmd, arg);
}

/* setsockopt() on an fd the shim knows. */
static int set_known(int fd, int level, int name, const void *val,
                     socklen_t len, int entry)
{
  shim_fd e;
  int name6, rc;
  if (level != IPPROTO_IP && level != IPPROTO_IPV6) {
    /* Another level fails alike on both families, but for its errno: an
     * unknown level, or TCP's options on UDP, is EOPNOTSUPP for AF_INET
     * and ENOPROTOOPT for AF_INET6. */
    rc = ds__sys.setsockopt(fd, level, name, val, len);
    if (rc != 0 && shim__fd_get(fd, &e) && e.family == AF_INET6)
      rc = shim__opt_fail_as_inet(fd, 1, level, name, (void *)val, &len);
    return rc;
  }
  if (!shim__fd_get(fd, &e) || e.family != AF_INET6)
    return ds__sys.setsockopt(fd, level, name, val, len);
  /* A socket moved to IPv6 that the application made AF_INET. It has no
   * IPPROTO_IPV6 options: the AF_INET socket's answer. An IPPROTO_IP
   * option is set as itself, and its result is the application's (the
   * kernel applies IPv4's sizes, ranges and state to it, on an IPv6
   * socket too, and keeps it for IPv4-mapped traffic: multicast
   * memberships, what getsockopt reads back); then, when it took, as its
   * IPv6 twin, which governs IPv6 traffic. */
  if (level == IPPROTO_IPV6)
    return shim__opt_ipv6_as_inet(fd, 1, name, (void *)val, &len);
  rc = ds__sys.setsockopt(fd, level, name, val, len);
  if (rc != 0)
    return rc;
  if (name == IP_PKTINFO && e.kind == SHIM_FD_WIDE) {
    /* The shim keeps IPV6_RECVPKTINFO on for the replies' source (server.c):
     * the application's choice only says what it is shown. */
    int v = 0;
    memcpy(&v, val, len < sizeof v ? len : sizeof v);
    e.pktinfo = v != 0;
    shim__fd_set(fd, &e);
    errno = entry;
    return 0;
  }
  if (shim__opt_twin(name, &name6) && val != NULL) {
    int v;
    const void *v6 = val;
    socklen_t l6 = len;
    if (len == 1) {
      v = *(const unsigned char *)val;
      v6 = &v;
      l6 = sizeof v;
    }
    ds__sys.setsockopt(fd, IPPROTO_IPV6, name6, v6, l6);
  }
  errno = entry;
  return 0;
}

DS_HOOK int setsockopt(int fd, int level, int name, const void *val,
                       socklen_t len)
{
  int rc, entry = errno;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (shim__cfg.disabled || !shim__fd_known(fd) || !shim__enter())
    return ds__sys.setsockopt(fd, level, name, val, len);
  rc = set_known(fd, level, name, val, len, entry);
  shim__leave();
  return rc;
}

DS_HOOK int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  int rc, e = errno;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  /* From a signal handler inside a hook: not recorded. */
  if (shim__cfg.disabled || shim__cfg.observe || ds__fork_vforked() ||
      !shim__enter())
    return ds__sys.epoll_ctl(epfd, op, fd, ev);
  shim__async_lock();
  rc = ds__sys.epoll_ctl(epfd, op, fd, ev);
  if (rc == 0)
    shim__epoll_record(epfd, op, fd, ev);
  else
    e = errno;
  shim__async_unlock();
  shim__leave();
  errno = e;
  return rc;
}
