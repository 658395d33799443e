/* What the shim knows per fd: which sockets it changed (a race's winner,
 * a UDP socket moved to IPv6, a widened listener and what it accepted),
 * the IPv4 addresses the application sees for them, and whether an fd
 * may hold any of the shim's state at all.
 *
 * Entries are indexed by fd number, and a close the shim never saw (a raw
 * syscall, a close inside libc such as fclose's or closefrom's) leaves a
 * stale entry behind: an entry is trusted only while it still describes
 * the socket under its fd. Most entries carry the socket's device and
 * inode (an fstat when recorded, one when read). An IPv4 client's
 * connection accepted on a widened listener is checked by its peer
 * instead: the kernel must still report the IPv4-mapped address and port
 * the entry shows. Such an entry holds nothing the kernel does not say
 * (only that the application sees it as IPv4), so accepting an IPv4
 * client costs no system call beyond accept's, and reading the entry
 * costs one, as an fstat would.
 *
 * A vfork child shares this table (and the source pool's holds) with its
 * parent but has fds of its own: there nothing is written (the entries
 * are the parent's, for the parent's fds), and its closes and dups only
 * change its own fds.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

typedef struct slot {
  dev_t dev;
  ino_t ino;
  int by_peer; /* checked by its peer (shim__fd_set_peer), not its inode */
  shim_fd e;
} slot;

static slot fds[SHIM_FD_MAX];
/* Nonzero when fds[fd] or the options recorded for fd may be in use: read
 * without the lock by the close and dup hooks. */
static atomic_uchar known[SHIM_FD_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Set while this thread holds the lock: a signal handler's hook that
 * lands meanwhile finds the table busy and passes through (the lock is
 * not recursive, and the entry may be half-written). */
static _Thread_local int holding;

static void lock_table(void)
{
  pthread_mutex_lock(&lock);
  holding = 1;
}

static void unlock_table(void)
{
  holding = 0;
  pthread_mutex_unlock(&lock);
}

int shim__fd_known(int fd)
{
  return fd >= 0 && fd < SHIM_FD_MAX &&
         atomic_load_explicit(&known[fd], memory_order_relaxed) != 0;
}

/* Returns 1 if sa (len bytes) is an IPv4-mapped IPv6 address with port
 * port, and addr's address unless addr is NULL. */
static int mapped_is(const struct sockaddr_in6 *sa, socklen_t len,
                     const struct in_addr *addr, in_port_t port)
{
  return sa->sin6_family == AF_INET6 && len >= sizeof *sa &&
         IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr) && sa->sin6_port == port &&
         (addr == NULL || memcmp(&sa->sin6_addr.s6_addr[12], addr, 4) == 0);
}

/* Returns 2 if the socket under fd is still the IPv4 client's connection
 * whose entry is e (shim__fd_set_peer) and still connected, 1 if it is
 * that connection but reset or closed, else 0: an IPv4-mapped local address on
 * the widened listener's port, and e's peer, both as the kernel reports
 * them. Once the connection is reset or closed (ENOTCONN) the peer is
 * gone: then a TCP socket that is not listening and has received
 * segments, i.e. was once connected, on that local port. A socket of the
 * program's own that took the number after a close the shim never saw
 * (connected out, or a UDP socket, or a listener) fails one of these.
 * Keeps errno. */
static int same_peer(int fd, const shim_fd *e)
{
  /* glibc's struct tcp_info stops short of the kernel's tcpi_segs_in;
   * the fields in between are the kernel's ABI (linux/tcp.h). */
  struct {
    struct tcp_info ti;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
    uint32_t segs_out, segs_in;
  } ti;
  struct sockaddr_in6 s6;
  socklen_t len = sizeof s6;
  int saved = errno, ok = 0;
  if (e->local.sin_port == 0 ||
      ds__sys.getsockname(fd, (struct sockaddr *)&s6, &len) != 0 ||
      !mapped_is(&s6, len, NULL, e->local.sin_port))
    goto done;
  len = sizeof s6;
  if (ds__sys.getpeername(fd, (struct sockaddr *)&s6, &len) == 0) {
    ok = mapped_is(&s6, len, &e->peer.sin_addr, e->peer.sin_port) ? 2 : 0;
  } else if (errno == ENOTCONN) {
    len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    ok = ds__sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
         len >= offsetof(__typeof__(ti), segs_in) + sizeof ti.segs_in &&
         ti.ti.tcpi_state != TCP_LISTEN && ti.segs_in > 0;
  }
done:
  errno = saved;
  return ok;
}

/* Copies fd's slot into *out and returns non-zero (2: checked by its
 * peer, which the kernel reports as connected) if it holds an entry that
 * still describes the socket under fd; else returns 0. */
static int get_slot(int fd, slot *out)
{
  struct stat st = {0};
  slot s;
  int ok = 0, valid;
  if (!shim__fd_known(fd) || holding)
    return 0;
  lock_table();
  s = fds[fd];
  unlock_table();
  if (s.e.kind == SHIM_FD_NONE)
    return 0;
  valid = s.by_peer ? same_peer(fd, &s.e) : fstat(fd, &st) == 0;
  if (!valid)
    return 0;
  /* Checked against the slot as it is now: another thread may have
   * recorded a new entry for fd meanwhile. */
  lock_table();
  if (fds[fd].e.kind != SHIM_FD_NONE && fds[fd].by_peer == s.by_peer &&
      (s.by_peer ? memcmp(&fds[fd].e.peer, &s.e.peer, sizeof s.e.peer) == 0
                 : fds[fd].ino == st.st_ino && fds[fd].dev == st.st_dev)) {
    *out = fds[fd];
    ok = valid;
  }
  unlock_table();
  return ok;
}

int shim__fd_get(int fd, shim_fd *out)
{
  slot s;
  int got = get_slot(fd, &s);
  if (got)
    *out = s.e;
  return got;
}

/* Returns the synthetic address entry e stands for, held (the peer's,
 * else the last destination of a UDP socket), or 0 when it has none or
 * it stands for no name any more. */
static uint32_t hold_dest(const shim_fd *e)
{
  uint32_t peer = ntohl(e->peer.sin_addr.s_addr);
  if (e->kind != SHIM_FD_CLIENT && e->kind != SHIM_FD_PENDING &&
      e->kind != SHIM_FD_DGRAM)
    return 0;
  if (e->peer.sin_family == AF_INET && shim__pool_contains(peer) &&
      shim__pool_hold(peer, 1))
    return peer;
  if (e->dest != 0 && e->dest != peer && shim__pool_hold(e->dest, 1))
    return e->dest;
  return 0;
}

/* Puts slot s in fd's place. Every entry holds its source-pool address
 * and its destination-pool address: the new entry's are held and the old
 * one's released, also when they are the same address (a stale entry
 * replaced by a new connection from the same client holds it once, not
 * twice), the hold first, so that the address is never free in between. */
static void put(int fd, const slot *in)
{
  uint32_t old, old_dest;
  slot s = *in;
  /* A vfork child shares its parent's memory: it changes nothing. */
  if (ds__fork_vforked() || holding)
    return;
  s.e.dest = hold_dest(&s.e);
  lock_table();
  old = fds[fd].e.source;
  old_dest = fds[fd].e.dest;
  fds[fd] = s;
  if (!shim__fd_is_private(fd))
    atomic_store(&known[fd], 1);
  unlock_table();
  if (s.e.source != 0)
    shim__source_hold(s.e.source, 1);
  if (old != 0)
    shim__source_hold(old, -1);
  if (old_dest != 0)
    shim__pool_hold(old_dest, -1);
}

void shim__fd_set(int fd, const shim_fd *e)
{
  shim__fd_set_as(fd, fd, e);
}

void shim__fd_set_as(int fd, int like, const shim_fd *e)
{
  struct stat st;
  slot s;
  if (fd < 0 || fd >= SHIM_FD_MAX || fstat(like, &st) != 0)
    return;
  memset(&s, 0, sizeof s);
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.e = *e;
  put(fd, &s);
}

void shim__fd_set_peer(int fd, const shim_fd *e)
{
  slot s;
  if (fd < 0 || fd >= SHIM_FD_MAX)
    return;
  memset(&s, 0, sizeof s);
  s.by_peer = 1;
  s.e = *e;
  put(fd, &s);
}

void shim__fd_clear(int fd)
{
  uint32_t source = 0, dest = 0;
  if (!shim__fd_known(fd) || shim__fd_is_private(fd) || ds__fork_vforked() ||
      holding)
    return;
  lock_table();
  source = fds[fd].e.source;
  dest = fds[fd].e.dest;
  memset(&fds[fd], 0, sizeof fds[fd]);
  atomic_store(&known[fd], 0);
  unlock_table();
  shim__epoll_forget(fd);
  shim__async_cancel(fd);
  if (source != 0)
    shim__source_hold(source, -1);
  if (dest != 0)
    shim__pool_hold(dest, -1);
}

void shim__fd_send_to(int fd, uint32_t ip)
{
  uint32_t old = 0;
  int same;
  if (!shim__fd_known(fd) || ds__fork_vforked() || holding)
    return;
  lock_table();
  /* A connected socket keeps its peer's hold. */
  same = fds[fd].e.kind == SHIM_FD_DGRAM &&
         (fds[fd].e.dest == ip ||
          (fds[fd].e.dest != 0 &&
           fds[fd].e.dest == ntohl(fds[fd].e.peer.sin_addr.s_addr)));
  unlock_table();
  if (same) {
    shim__pool_renew(ip);
    return;
  }
  /* The new address held first, then swapped in if the entry is still a
   * UDP socket's (a close may have cleared it meanwhile). */
  if (!shim__pool_hold(ip, 1))
    return;
  lock_table();
  if (fds[fd].e.kind == SHIM_FD_DGRAM) {
    old = fds[fd].e.dest;
    fds[fd].e.dest = ip;
  } else {
    old = ip;
  }
  unlock_table();
  if (old != 0)
    shim__pool_hold(old, -1);
}

int shim__fd_next_known(int after)
{
  int fd;
  for (fd = after < 0 ? 0 : after + 1; fd < SHIM_FD_MAX; fd++)
    if (atomic_load_explicit(&known[fd], memory_order_relaxed) == 1)
      return fd;
  return -1;
}

/* Marks fd as possibly holding state (recorded options). */
void shim__fd_mark(int fd)
{
  if (fd >= 0 && fd < SHIM_FD_MAX && !shim__fd_is_private(fd) &&
      !ds__fork_vforked())
    atomic_store(&known[fd], 1);
}

void shim__fd_copy(int from, int to)
{
  slot s;
  if (to < 0 || to >= SHIM_FD_MAX || ds__fork_vforked() || !get_slot(from, &s))
    return;
  if (s.by_peer) /* the same socket, so the same peer */
    put(to, &s);
  else
    shim__fd_set(to, &s.e);
}

void shim__fd_fork(int phase)
{
  ds__fork_mutex(&lock, phase, 0);
}

/* The inode of each of the shim's own fds: a close the shim never saw
 * (glibc's closefrom, a raw close_range) gives the number away, and the
 * program's socket or file then under it is not the shim's. */
static ino_t private_ino[SHIM_FD_MAX];

void shim__fd_private(int fd)
{
  struct stat st;
  if (fd < 0 || fd >= SHIM_FD_MAX)
    return;
  private_ino[fd] = fstat(fd, &st) == 0 ? st.st_ino : 0;
  atomic_store(&known[fd], 2);
}

void shim__fd_public(int fd)
{
  if (fd >= 0 && fd < SHIM_FD_MAX)
    atomic_store(&known[fd], 0);
}

int shim__fd_is_private(int fd)
{
  struct stat st;
  int saved;
  if (fd < 0 || fd >= SHIM_FD_MAX ||
      atomic_load_explicit(&known[fd], memory_order_relaxed) != 2)
    return 0;
  saved = errno;
  if (fstat(fd, &st) == 0 && st.st_ino == private_ino[fd]) {
    errno = saved;
    return 1;
  }
  /* Closed behind the shim's back: the number is the program's. */
  atomic_store(&known[fd], 0);
  errno = saved;
  return 0;
}

in_port_t shim__fd_wide_port_hint(int fd)
{
  in_port_t port = 0;
  if (!shim__fd_known(fd) || holding)
    return 0;
  lock_table();
  if (fds[fd].e.kind == SHIM_FD_WIDE)
    port = fds[fd].e.local.sin_port;
  unlock_table();
  return port;
}

int shim__fd_find_wide(uint16_t port, int except, int *count)
{
  shim_fd e;
  int fd, first = -1, n = 0;
  for (fd = 0; fd < SHIM_FD_MAX; fd++)
    if (atomic_load_explicit(&known[fd], memory_order_relaxed) == 1 &&
        shim__fd_get(fd, &e) && e.kind == SHIM_FD_WIDE &&
        ntohs(e.local.sin_port) == port) {
      n++;
      if (fd != except && first < 0) {
        first = fd;
        if (count == NULL)
          break;
      }
    }
  if (count != NULL)
    *count = n;
  return first;
}

void shim__autobind(int fd)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  if (ds__sys.getsockname(fd, (struct sockaddr *)&sin, &len) != 0 ||
      sin.sin_family != AF_INET || sin.sin_port != 0)
    return;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  ds__sys.bind(fd, (struct sockaddr *)&sin, sizeof sin);
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
  int fdflags = ds__sys.fcntl(fd, F_GETFD);
  int flflags = ds__sys.fcntl(fd, F_GETFL);
  if (fdflags < 0 || flflags < 0 ||
      ds__sys.dup3(nfd, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
    return -1;
  ds__sys.close(nfd);
  /* O_NONBLOCK and the other status flags belong to the open file
   * description: the application's are put back. */
  ds__sys.fcntl(fd, F_SETFL, flflags);
  return 0;
}
