/* connect() to an address the shim handed out: the Happy Eyeballs race
 * (lib/happy.c) over the name's addresses, its winner installed on the
 * application's fd, and the fd table that lets getpeername/getsockname
 * keep showing IPv4 afterwards.
 *
 * The race runs on a private reactor in the calling thread. A blocking
 * socket waits as connect() would, bounded by SO_SNDTIMEO when set; a
 * non-blocking socket also waits for the race for now (the helper-thread
 * race that returns EINPROGRESS at once is not implemented yet).
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int shim__fd_peer(int fd, struct sockaddr_in *sin)
{
  shim_fd e;
  if (!shim__fd_get(fd, &e) || e.peer.sin_family != AF_INET)
    return 0;
  *sin = e.peer;
  return 1;
}

/* The family memory shared by every race of the process (DESIGN:
 * DUALSTACK_MEMORY_S, default 600 s), created with the first race. */
static ds_family_memory *memory;
static pthread_once_t memory_once = PTHREAD_ONCE_INIT;

static void memory_init(void)
{
  const char *v = secure_getenv("DUALSTACK_MEMORY_S");
  unsigned long s = v != NULL ? strtoul(v, NULL, 10) : 600;
  if (s > 0 && ds_family_memory_new(&memory, 256, (uint64_t)s * 1000) != 0)
    memory = NULL;
}

typedef struct race {
  int done, fd, err, family;
} race;

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  race *st = user;
  (void)h;
  st->done = 1;
  st->fd = fd;
  st->err = err;
  if (fd >= 0) {
    socklen_t len = sizeof st->family;
    ds__sys.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &st->family, &len);
  }
}

/* Returns the errno an application expects for a race's failure code. */
static int to_errno(int err)
{
  if (err < 0 && err > -4096)
    return -err;
  switch (err) {
  case DS_ENOTFOUND:
  case DS_ENODATA:
  case DS_ESERVFAIL:
  case DS_EDNSTIMEOUT:
  case DS_EDNS:
  case DS_ENEEDSCOPE:
    return EHOSTUNREACH;
  default:
    return ECONNREFUSED;
  }
}

/* Returns the socket's SO_SNDTIMEO in ms (0: none). */
static unsigned send_timeout_ms(int fd)
{
  struct timeval tv = {0, 0};
  socklen_t len = sizeof tv;
  if (ds__sys.getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) != 0)
    return 0;
  return (unsigned)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

int shim__race_connect(int fd, const char *name,
                       const struct sockaddr_in *asked)
{
  ds_reactor *r;
  ds_happy *h;
  ds_happy_opts o = {0};
  race st = {0, -1, 0, 0};
  uint16_t port = ntohs(asked->sin_port);
  int fdflags, flflags, rc;
  const char *env;

  fdflags = fcntl(fd, F_GETFD);
  flflags = fcntl(fd, F_GETFL);
  if (fdflags < 0 || flflags < 0)
    return -1; /* EBADF from fcntl, as connect would say */
  o.timeout_ms = send_timeout_ms(fd);
  env = secure_getenv("DUALSTACK_CONNECT_TIMEOUT_MS");
  if (o.timeout_ms == 0 && env != NULL)
    o.timeout_ms = (unsigned)strtoul(env, NULL, 10);
  env = secure_getenv("DUALSTACK_ATTEMPT_DELAY_MS");
  if (env != NULL)
    o.attempt_delay_ms = (unsigned)strtoul(env, NULL, 10);
  env = secure_getenv("DUALSTACK_PREFER");
  if (env != NULL && strcmp(env, "ipv4") == 0)
    o.prefer = AF_INET;
  pthread_once(&memory_once, memory_init);
  o.memory = memory;
  if (ds_reactor_new(&r) != 0) {
    errno = ENOMEM;
    return -1;
  }
  rc = ds_happy_start(r, name, port, &o, on_done, NULL, &st, &h, NULL, 0);
  if (rc != 0) {
    ds_reactor_free(r);
    errno = to_errno(rc);
    return -1;
  }
  shim__work()->reactor = r;
  shim__work()->race = h;
  while (!st.done)
    if (ds_reactor_run_once(r, -1) < 0)
      break;
  shim__work()->race = NULL;
  shim__work()->reactor = NULL;
  if (!st.done)
    ds_happy_cancel(h);
  ds_reactor_free(r);
  if (st.fd < 0) {
    errno = st.done ? to_errno(st.err) : EIO;
    return -1;
  }
  /* Install the winner on the application's fd: the fd keeps its number
   * and close-on-exec flag; O_NONBLOCK belongs to the open file
   * description, so the application's setting is put back. */
  if (dup3(st.fd, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
    int e = errno;
    ds__sys.close(st.fd);
    errno = e;
    return -1;
  }
  ds__sys.close(st.fd);
  fcntl(fd, F_SETFL, flflags);
  {
    /* getpeername shows the address the application connected to. */
    shim_fd e = {0};
    e.kind = SHIM_FD_CLIENT;
    e.family = st.family;
    e.peer = *asked;
    shim__fd_set(fd, &e);
  }
  return 0;
}
