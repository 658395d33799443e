/* What the shim knows per fd: which sockets it changed (a race's winner,
 * a UDP socket moved to IPv6, a widened listener and what it accepted),
 * the IPv4 addresses the application sees for them, and whether an fd
 * may hold any of the shim's state at all.
 *
 * Entries are indexed by fd number and carry the socket's device and
 * inode: a close the shim never saw (a raw syscall, a close inside libc)
 * leaves a stale entry that no longer matches, and is ignored.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

typedef struct slot {
  dev_t dev;
  ino_t ino;
  shim_fd e;
} slot;

static slot fds[SHIM_FD_MAX];
/* Nonzero when fds[fd] or the options recorded for fd may be in use: read
 * without the lock by the close and dup hooks. */
static atomic_uchar known[SHIM_FD_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int shim__fd_known(int fd)
{
  return fd >= 0 && fd < SHIM_FD_MAX &&
         atomic_load_explicit(&known[fd], memory_order_relaxed) != 0;
}

int shim__fd_get(int fd, shim_fd *out)
{
  struct stat st;
  int ok = 0;
  if (!shim__fd_known(fd) || fstat(fd, &st) != 0)
    return 0;
  pthread_mutex_lock(&lock);
  if (fds[fd].e.kind != SHIM_FD_NONE && fds[fd].ino == st.st_ino &&
      fds[fd].dev == st.st_dev) {
    *out = fds[fd].e;
    ok = 1;
  }
  pthread_mutex_unlock(&lock);
  return ok;
}

void shim__fd_set(int fd, const shim_fd *e)
{
  shim__fd_set_as(fd, fd, e);
}

void shim__fd_set_as(int fd, int like, const shim_fd *e)
{
  struct stat st;
  uint32_t old = 0;
  if (fd < 0 || fd >= SHIM_FD_MAX || fstat(like, &st) != 0)
    return;
  pthread_mutex_lock(&lock);
  if (fds[fd].e.source != e->source)
    old = fds[fd].e.source;
  fds[fd].dev = st.st_dev;
  fds[fd].ino = st.st_ino;
  fds[fd].e = *e;
  if (!shim__fd_is_private(fd))
    atomic_store(&known[fd], 1);
  pthread_mutex_unlock(&lock);
  if (e->source != 0 && e->source != old)
    shim__source_hold(e->source, 1);
  if (old != 0)
    shim__source_hold(old, -1);
}

void shim__fd_clear(int fd)
{
  uint32_t source = 0;
  if (!shim__fd_known(fd) || shim__fd_is_private(fd))
    return;
  pthread_mutex_lock(&lock);
  source = fds[fd].e.source;
  memset(&fds[fd], 0, sizeof fds[fd]);
  atomic_store(&known[fd], 0);
  pthread_mutex_unlock(&lock);
  shim__epoll_forget(fd);
  shim__async_cancel(fd);
  if (source != 0)
    shim__source_hold(source, -1);
}

/* Marks fd as possibly holding state (recorded options). */
void shim__fd_mark(int fd)
{
  if (fd >= 0 && fd < SHIM_FD_MAX && !shim__fd_is_private(fd))
    atomic_store(&known[fd], 1);
}

void shim__fd_copy(int from, int to)
{
  shim_fd e;
  if (shim__fd_get(from, &e))
    shim__fd_set(to, &e);
}

void shim__fd_fork(int phase)
{
  shim__fork_mutex(&lock, phase, 0);
}

void shim__fd_private(int fd)
{
  if (fd >= 0 && fd < SHIM_FD_MAX)
    atomic_store(&known[fd], 2);
}

int shim__fd_is_private(int fd)
{
  return fd >= 0 && fd < SHIM_FD_MAX &&
         atomic_load_explicit(&known[fd], memory_order_relaxed) == 2;
}

int shim__fd_find_wide(uint16_t port, int except)
{
  shim_fd e;
  int fd;
  for (fd = 0; fd < SHIM_FD_MAX; fd++)
    if (fd != except && atomic_load_explicit(&known[fd], memory_order_relaxed) ==
                            1 &&
        shim__fd_get(fd, &e) && e.kind == SHIM_FD_WIDE &&
        ntohs(e.local.sin_port) == port)
      return fd;
  return -1;
}

int shim__sock_int(int fd, int opt)
{
  int v = -1;
  socklen_t len = sizeof v;
  if (ds__sys.getsockopt(fd, SOL_SOCKET, opt, &v, &len) != 0)
    return -1;
  return v;
}

int shim__install(int nfd, int fd)
{
  int fdflags = shim__real.fcntl(fd, F_GETFD);
  int flflags = shim__real.fcntl(fd, F_GETFL);
  if (fdflags < 0 || flflags < 0 ||
      shim__real.dup3(nfd, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
    return -1;
  ds__sys.close(nfd);
  /* O_NONBLOCK and the other status flags belong to the open file
   * description: the application's are put back. */
  shim__real.fcntl(fd, F_SETFL, flflags);
  return 0;
}
