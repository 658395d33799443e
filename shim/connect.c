/* connect() to an address the shim handed out: the Happy Eyeballs race
 * (lib/happy.c) over the name's addresses, its winner installed on the
 * application's fd, and what getpeername/getsockname need to keep showing
 * IPv4 afterwards.
 *
 * A blocking socket races on a private reactor in the calling thread and
 * waits as connect() would, bounded by SO_SNDTIMEO when set (its expiry
 * shows EINPROGRESS, as the kernel's does). A non-blocking socket gets
 * EINPROGRESS at once and the race runs in the helper thread (async.c).
 * Each attempt socket gets the options the application set on its fd
 * before connect, and the application's bind (its port, and its address
 * for IPv4 attempts).
 *
 * Out of fds (docs/race.md): when the race cannot have its reactor, or
 * fails because no attempt could get a socket (EMFILE, ENFILE), a real
 * IPv4 address of a dual-stack name is connected as asked on the
 * application's own socket, which needs no fd, as the kernel would
 * without the shim; a synthetic address fails with the kernel's errno.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The family memory shared by every race of the process (DESIGN:
 * DUALSTACK_MEMORY_S, default 600 s), created with the first race. */
static ds_family_memory *memory;
static int memory_tried;
static pthread_mutex_t memory_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns the family memory, made on first use (NULL: none). */
static ds_family_memory *family_memory(void)
{
  ds_family_memory *m;
  unsigned s = shim__cfg.memory_s;
  pthread_mutex_lock(&memory_lock);
  if (!memory_tried) {
    memory_tried = 1;
    if (s > 0 && ds_family_memory_new(&memory, 256, (uint64_t)s * 1000) != 0)
      memory = NULL;
  }
  m = memory;
  pthread_mutex_unlock(&memory_lock);
  return m;
}

void shim__connect_fork(int phase)
{
  ds__fork_mutex(&memory_lock, phase, 0);
  /* The memory's own lock may have been held by another thread: the child
   * starts a new memory (the old one is left, not freed). */
  if (phase == DS__FORK_CHILD) {
    memory = NULL;
    memory_tried = 0;
  }
}

int shim__race_errno(int err)
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

/* Gives each attempt socket the application's options. */
static int prepare(int fd, int family, void *user)
{
  shim_race *rs = user;
  int on = 1;
  /* An attempt bound to the application's port must not take the IPv4
   * port too (both families race with the same port). */
  if (family == AF_INET6 && rs->b6.family == AF_INET6 && rs->b6.port != 0)
    ds__sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  return shim__opt_replay(rs->app_fd, fd, family, 0);
}

int shim__race_setup(shim_race *rs, int fd, int blocking)
{
  struct sockaddr_in local;
  socklen_t len = sizeof local;

  memset(&rs->o, 0, sizeof rs->o);
  rs->app_fd = fd;
  rs->natt = 0;
  rs->t0 = ds__mono_ms();
  rs->o.attempt_delay_ms = shim__cfg.attempt_delay_ms;
  rs->o.resolution_delay_ms = shim__cfg.resolution_delay_ms;
  rs->o.first_family_count = shim__cfg.family_count;
  rs->o.prefer = shim__cfg.prefer;
  rs->o.timeout_ms = blocking ? send_timeout_ms(fd) : 0;
  if (rs->o.timeout_ms == 0)
    rs->o.timeout_ms = shim__cfg.connect_timeout_ms;
  rs->o.memory = family_memory();
  rs->o.prepare = prepare;
  rs->o.prepare_user = rs;
  /* Used by the race only for IPv4 addresses the host cannot route. */
  if (shim__nat64_known(&rs->nat64, &rs->o.nat64_prefix_len))
    rs->o.nat64_prefix = &rs->nat64;
  /* The application's bind: its address for IPv4 attempts, its port for
   * both families. */
  memset(&rs->b4, 0, sizeof rs->b4);
  memset(&rs->b6, 0, sizeof rs->b6);
  if (ds__sys.getsockname(fd, (struct sockaddr *)&local, &len) != 0)
    return -1; /* EBADF or ENOTSOCK, as connect would say */
  if (local.sin_family == AF_INET &&
      (local.sin_port != 0 || local.sin_addr.s_addr != htonl(INADDR_ANY))) {
    ds_addr_from_sockaddr(&rs->b4, (struct sockaddr *)&local, sizeof local);
    rs->o.bind4 = &rs->b4;
    if (local.sin_port != 0) {
      rs->b6.family = AF_INET6;
      rs->b6.port = ntohs(local.sin_port);
      rs->o.bind6 = &rs->b6;
    }
  }
  return 0;
}

void shim__race_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  shim_race *rs = user;
  int i;
  (void)h;
  if (ev->type == DS_HE_ATTEMPT && rs->natt < SHIM_RACE_ATTEMPTS) {
    i = rs->natt++;
    rs->att[i].index = ev->index;
    rs->att[i].t = ev->t_ms;
    rs->att[i].addr = ev->addr;
    rs->att[i].open = 1;
    return;
  }
  if (ev->type != DS_HE_RESULT)
    return;
  for (i = 0; i < rs->natt; i++)
    if (rs->att[i].index == ev->index && rs->att[i].open) {
      rs->att[i].open = 0;
      shim__race_trace_attempt(rs, i, ev->t_ms, ev->result);
    }
}

void shim__race_trace_attempt(shim_race *rs, int i, double end, int result)
{
  shim_json j;
  char text[DS_ADDR_STRLEN];
  if (shim__cfg.trace_fd < 0)
    return;
  ds_addr_format(&rs->att[i].addr, text, sizeof text, 0);
  shim__json_begin(&j, "attempt", rs->id);
  shim__json_str(&j, "family",
                 rs->att[i].addr.family == AF_INET6 ? "ipv6" : "ipv4");
  shim__json_str(&j, "addr", text);
  shim__json_int(&j, "port", rs->att[i].addr.port);
  shim__json_num(&j, "t_ms", rs->att[i].t);
  shim__json_num(&j, "ms", end - rs->att[i].t);
  shim__json_str(&j, "result", shim__errname(result < 0 ? -result : 0));
  shim__json_emit(&j);
}

void shim__race_trace_rest(shim_race *rs)
{
  double now = ds__mono_ms() - rs->t0;
  int i;
  for (i = 0; i < rs->natt; i++)
    if (rs->att[i].open) {
      rs->att[i].open = 0;
      shim__race_trace_attempt(rs, i, now, -ECANCELED);
    }
}

typedef struct race {
  int done, fd, err;
} race;

int shim__connect_as_asked(int fd, const struct sockaddr_in *asked, int err)
{
  if (!shim__pool_contains(ntohl(asked->sin_addr.s_addr)))
    return ds__sys.connect(fd, (const struct sockaddr *)asked, sizeof *asked);
  errno = err != 0 ? shim__race_errno(err) : EIO;
  return -1;
}

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  shim_race *rs = user;
  race *st = rs->result;
  (void)h;
  st->done = 1;
  st->fd = fd;
  st->err = err;
}

int shim__race_connect(int fd, const char *name,
                       const struct sockaddr_in *asked, unsigned long id)
{
  ds_reactor *r;
  ds_happy *h;
  shim_race rs;
  race st = {0, -1, 0};
  uint16_t port = ntohs(asked->sin_port);
  shim_fd e = {0};
  int rc;

  if (shim__race_setup(&rs, fd, 1) != 0)
    return -1; /* EBADF or ENOTSOCK, as connect would say */
  rs.id = id;
  rs.result = &st;
  rc = ds_reactor_new(&r);
  if (rc != 0)
    return shim__connect_as_asked(fd, asked, rc);
  rc = ds_happy_start(r, name, port, &rs.o, on_done, shim__race_event, &rs, &h,
                      NULL, 0);
  if (rc != 0) {
    /* Out of fds for the race's lookup, or anything else: as without the
     * shim for a real address. */
    ds_reactor_free(r);
    return shim__connect_as_asked(fd, asked, rc);
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
  shim__race_trace_rest(&rs);
  ds_reactor_free(r);
  if (st.fd < 0 && st.done && (st.err == -EMFILE || st.err == -ENFILE))
    return shim__connect_as_asked(fd, asked, st.err);
  if (st.fd < 0) {
    errno = st.done ? shim__race_errno(st.err) : EIO;
    /* SO_SNDTIMEO ran out: the kernel says EINPROGRESS then. */
    if (st.err == -ETIMEDOUT && rs.o.timeout_ms != 0 &&
        rs.o.timeout_ms == send_timeout_ms(fd))
      errno = EINPROGRESS;
    return -1;
  }
  /* Install the winner on the application's fd: the fd keeps its number
   * and close-on-exec flag; O_NONBLOCK belongs to the open file
   * description, so the application's setting is put back. */
  e.kind = SHIM_FD_CLIENT;
  e.family = shim__sock_int(st.fd, SO_DOMAIN);
  e.peer = *asked;
  {
    /* The winner connected without blocking; one more connect() marks it
     * connected, so the application's next connect() says EISCONN as
     * after a blocking connect. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (ds__sys.getpeername(st.fd, (struct sockaddr *)&ss, &sl) == 0)
      ds__sys.connect(st.fd, (struct sockaddr *)&ss, sl);
  }
  if (shim__install(st.fd, fd) != 0) {
    int err = errno;
    ds__sys.close(st.fd);
    errno = err;
    return -1;
  }
  /* getpeername shows the address the application connected to. */
  shim__fd_set(fd, &e);
  return 0;
}
