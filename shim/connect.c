/* connect() to an address the shim handed out: what a Happy Eyeballs
 * race (lib/happy.c) over the name's addresses needs on behalf of the
 * application's fd (its options, its bind, the settings), its trace, and
 * the errno a failed race gives. The race itself runs in the helper
 * thread (async.c), for blocking and non-blocking sockets alike. Each
 * attempt socket gets the options the application set on its fd before
 * connect, and the application's bind (its port, and its address for
 * IPv4 attempts).
 *
 * Out of fds (docs/race.md): when the race cannot run, or fails because
 * no attempt could get a socket (EMFILE, ENFILE), a real IPv4 address of
 * a dual-stack name is connected as asked on the application's own
 * socket, which needs no fd, as the kernel would without the shim; a
 * synthetic address fails with the kernel's errno.
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

int shim__race_setup(shim_race *rs, int fd)
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

int shim__connect_as_asked(int fd, const struct sockaddr_in *asked, int err)
{
  if (!shim__pool_contains(ntohl(asked->sin_addr.s_addr)))
    return ds__sys.connect(fd, (const struct sockaddr *)asked, sizeof *asked);
  errno = err != 0 ? shim__race_errno(err) : EIO;
  return -1;
}
