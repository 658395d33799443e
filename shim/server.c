/* The server side (DESIGN.md, "Server side"): a legacy server's AF_INET
 * socket bound to 0.0.0.0 becomes, at bind time and on the same fd, an
 * IPv6 dual-stack socket bound to [::] on the same port; accept and
 * accept4 then show IPv4 clients as themselves and IPv6 clients as a
 * source-pool address (srcpool.c), held while the connection is open.
 *
 * A bind to a specific address, DUALSTACK_LISTEN=off, a port listed in
 * DUALSTACK_EXCLUDE, observe mode and a bad DUALSTACK_SOURCE_POOL leave
 * the bind alone. Any failure before the
 * new socket is installed (no IPv6: EAFNOSUPPORT, an option the IPv6
 * socket refuses, [::]:PORT taken by a V6ONLY socket) closes the new
 * socket and makes the original bind, as if the shim were absent.
 *
 * Inherited sockets. A program the shim widened a listener in may hand
 * that listener, or what it accepted, to a program it execs (inetd and
 * its services, a supervisor's socket activation, a binary upgrade that
 * keeps its listeners). Without the shim that program would get an
 * AF_INET socket; with it, it must see one too. So each widening notes
 * "tcp:PORT" or "udp:PORT" in DUALSTACK_WIDENED (setenv, under a lock; a
 * narrowing takes it out again), and puts the shim back into LD_PRELOAD
 * if the program took it out (openbsd-inetd drops every LD_ variable).
 * A program exec'd with that variable adopts, when the shim initialises
 * (its first hooked call, before it can have bound or connected a socket
 * of its own), the open sockets that are IPv6, TCP or UDP, not
 * IPV6_V6ONLY, with a local port the variable names for their protocol:
 * a listener (or a UDP socket on [::]) as a widened one, a connection as
 * an accepted one (IPv4 clients as themselves, IPv6 clients as a
 * source-pool address of this process, whose reverse lookup names them).
 *
 * An IPv6 socket of the program's own is never adopted: the variable
 * exists only in descendants of a process that widened, names only ports
 * widened there (the kernel gives no other socket of the namespace that
 * port while the widened listener holds it, SO_REUSEPORT groups of the
 * same user aside), and IPV6_V6ONLY sockets and
 * sockets opened after initialisation are left alone; an IPv6-aware
 * daemon started by systemd or by an inetd without the shim never has
 * it. Limits: a program that clears its environment for its children
 * (execle with its own, env -i, xinetd) loses both variables, and its
 * children see IPv6 sockets, as DESIGN's rule for inherited sockets then
 * covers only sockaddr_in-sized buffers; setenv while another thread
 * reads the environment is the program's race as much as the shim's (a
 * widening happens at bind, usually before threads); a vfork child's
 * first hooked call adopts nothing.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>

static pthread_once_t listen_once = PTHREAD_ONCE_INIT;
static int listen_dual;          /* DUALSTACK_LISTEN is dual (default) */
static const char *listen_value; /* its value when not understood */

static void listen_init(void)
{
  const char *v = secure_getenv("DUALSTACK_LISTEN");
  listen_dual = v == NULL || *v == '\0' || strcmp(v, "dual") == 0;
  if (!listen_dual && strcmp(v, "off") != 0)
    listen_value = v; /* unknown: not widening is the safe reading */
}

/* Returns why a wildcard bind is not widened, or NULL when it may be. */
static const char *no_widening(void)
{
  pthread_once(&listen_once, listen_init);
  if (shim__cfg.observe)
    return "observe";
  if (listen_value != NULL)
    return "DUALSTACK_LISTEN not understood (dual or off): not widening";
  if (!listen_dual)
    return NULL; /* off: not even a reason worth tracing */
  if (!shim__source_ok())
    return "DUALSTACK_SOURCE_POOL is not a CIDR (a.b.c.d/8-30): not "
           "widening";
  return NULL;
}

/* Traces a bind of 0.0.0.0:port: widened, or not with the reason (or
 * reason NULL). */
static void trace_bind(uint16_t port, int widened, const char *reason, int rc,
                       int err, double t0)
{
  shim_json j;
  if (shim__cfg.trace_fd < 0)
    return;
  shim__json_begin(&j, "bind", shim__next_id());
  shim__json_str(&j, "addr", "0.0.0.0");
  shim__json_int(&j, "port", port);
  shim__json_str(&j, "family", "ipv4");
  shim__json_bool(&j, "widened", widened);
  if (widened)
    shim__json_str(&j, "bound", "::");
  if (reason != NULL)
    shim__json_str(&j, "reason", reason);
  shim__json_str(&j, "result", rc == 0 ? "ok" : shim__errname(err));
  shim__json_num(&j, "ms", ds__mono_ms() - t0);
  shim__json_emit(&j);
}

/* DUALSTACK_WIDENED: the listening ports this process (or an ancestor)
 * widened, "tcp:8086,udp:69", for the programs it execs (see
 * shim__server_adopt). Changed under widened_lock, by setenv: the
 * environment is the one thing that crosses exec. */
#define WIDENED_VAR "DUALSTACK_WIDENED"
#define WIDENED_MAX 512 /* about 50 ports; past that, more are not noted */
static pthread_mutex_t widened_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns 1 if list names port (host order) of protocol proto ("tcp" or
 * "udp"), else 0. Bad entries never match. */
static int widened_has(const char *list, const char *proto, unsigned port)
{
  char key[16];
  size_t kl, n;
  const char *p, *end;
  kl = (size_t)snprintf(key, sizeof key, "%s:%u", proto, port);
  for (p = list; p != NULL && *p != '\0'; p = end != NULL ? end + 1 : NULL) {
    end = strchr(p, ',');
    n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n == kl && memcmp(p, key, kl) == 0)
      return 1;
  }
  return 0;
}

static void preload_keep(void);

/* For widened UDP socket fd: turns IPV6_RECVPKTINFO on, so that the
 * address each IPv6 datagram came to is known and replies leave from it
 * (dgram.c; on a host with several IPv6 addresses the kernel would pick
 * its own source, and the client drops the reply). Returns whether the
 * application itself asked for IP_PKTINFO. */
static int recv_pktinfo(int fd)
{
  int on = 1, asked = 0;
  socklen_t len = sizeof asked;
  ds__sys.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  if (ds__sys.getsockopt(fd, IPPROTO_IP, IP_PKTINFO, &asked, &len) != 0)
    asked = 0;
  return asked != 0;
}

/* Notes in DUALSTACK_WIDENED that port (host order) of socket type type
 * is widened (add 1) or no longer (add 0: narrowed back). */
static void widened_note(int type, unsigned port, int add)
{
  const char *proto = type == SOCK_STREAM ? "tcp" : "udp", *cur;
  char buf[WIDENED_MAX], key[16];
  size_t len = 0, n, kl;
  const char *p, *end;
  /* A vfork child's environment is its parent's memory. */
  if (ds__fork_vforked())
    return;
  kl = (size_t)snprintf(key, sizeof key, "%s:%u", proto, port);
  pthread_mutex_lock(&widened_lock);
  cur = getenv(WIDENED_VAR);
  if (cur == NULL)
    cur = "";
  if (add == widened_has(cur, proto, port))
    goto done;
  /* The list again, without key (removing) or with it (adding). */
  buf[0] = '\0';
  for (p = cur; *p != '\0'; p = end != NULL ? end + 1 : "") {
    end = strchr(p, ',');
    n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n == 0 || (n == kl && memcmp(p, key, kl) == 0))
      continue;
    if (len + n + 2 > sizeof buf)
      goto done; /* too long to be ours: left alone */
    if (len > 0)
      buf[len++] = ',';
    memcpy(buf + len, p, n);
    buf[len += n] = '\0';
  }
  if (add) {
    if (len + kl + 2 > sizeof buf)
      goto done;
    if (len > 0)
      buf[len++] = ',';
    memcpy(buf + len, key, kl + 1);
    len += kl;
  }
  if (len > 0)
    setenv(WIDENED_VAR, buf, 1);
  else
    unsetenv(WIDENED_VAR);
  if (add)
    preload_keep();
done:
  pthread_mutex_unlock(&widened_lock);
}

/* Returns 1 if list (LD_PRELOAD's value: paths apart by spaces or
 * colons) names path, else 0. */
static int preload_has(const char *list, const char *path)
{
  size_t pl = strlen(path), n;
  const char *p = list;
  while (p != NULL && *p != '\0') {
    n = strcspn(p, " :");
    if (n == pl && memcmp(p, path, pl) == 0)
      return 1;
    p += n;
    p += strspn(p, " :");
  }
  return 0;
}

/* Puts the shim back into LD_PRELOAD when the program took it out (as
 * openbsd-inetd does: it drops every LD_ variable at start), so that the
 * programs it execs on a socket the shim widened run with the shim too,
 * which alone can show them that socket as the AF_INET one their parent's
 * program made. Called under widened_lock. */
static void preload_keep(void)
{
  char path[PATH_MAX], *v;
  const char *cur = getenv("LD_PRELOAD");
  Dl_info info;
  size_t pl, cl;
  if (dladdr((void *)shim__server_adopt, &info) == 0 ||
      info.dli_fname == NULL || info.dli_fname[0] == '\0')
    return;
  /* Absolute: the child may start in another directory. */
  if (realpath(info.dli_fname, path) == NULL)
    return;
  if (cur != NULL && (preload_has(cur, path) ||
                      preload_has(cur, info.dli_fname)))
    return;
  pl = strlen(path);
  cl = cur != NULL ? strlen(cur) : 0;
  v = malloc(pl + cl + 2);
  if (v == NULL)
    return;
  memcpy(v, path, pl + 1);
  if (cl > 0) {
    v[pl] = ' ';
    memcpy(v + pl + 1, cur, cl + 1);
  }
  setenv("LD_PRELOAD", v, 1);
  free(v);
}

void shim__server_fork(int phase)
{
  ds__fork_mutex(&widened_lock, phase, 0);
}

/* For shim__epoll_carry: puts socket *arg on fd (shim__install). */
static int install_swap(int fd, void *arg)
{
  return shim__install(*(int *)arg, fd);
}

/* Widens AF_INET socket fd, about to bind 0.0.0.0 at sin's port. Returns
 * 0 (fd is now [::]:PORT dual-stack, *port the bound port), or 1 with
 * *why set when fd is left as it was for the original bind. */
static int widen(int fd, const struct sockaddr_in *sin, uint16_t *port,
                 const char **why)
{
  struct sockaddr_in6 s6;
  socklen_t len;
  int type = shim__sock_int(fd, SO_TYPE), nfd, off = 0;
  int proto = shim__sock_int(fd, SO_PROTOCOL);
  shim_fd e;

  *why = NULL;
  if (shim__sock_int(fd, SO_DOMAIN) != AF_INET)
    return 1;
  if (!(type == SOCK_STREAM && proto == IPPROTO_TCP) &&
      !(type == SOCK_DGRAM && proto == IPPROTO_UDP))
    return 1; /* raw, SCTP, UDP-Lite...: not the shim's business */
  {
    /* Bound already (or autobound by a send): the original bind says
     * EINVAL, as it should. */
    struct sockaddr_in cur;
    socklen_t cl = sizeof cur;
    if (ds__sys.getsockname(fd, (struct sockaddr *)&cur, &cl) != 0 ||
        cur.sin_port != 0)
      return 1;
  }
  nfd = ds__sys.socket(AF_INET6, type | SOCK_CLOEXEC, proto);
  if (nfd < 0) {
    *why = errno == EAFNOSUPPORT ? "no IPv6 (EAFNOSUPPORT)" : "IPv6 socket";
    return 1;
  }
  if (ds__sys.setsockopt(nfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) !=
      0) {
    *why = "IPV6_V6ONLY refused";
    goto fail;
  }
  if (shim__opt_replay(fd, nfd, AF_INET6, 1) != 0) {
    *why = "an option set before bind is refused on IPv6";
    goto fail;
  }
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  s6.sin6_port = sin->sin_port;
  s6.sin6_addr = in6addr_any;
  if (ds__sys.bind(nfd, (struct sockaddr *)&s6, sizeof s6) != 0) {
    *why = "bind [::] failed";
    goto fail;
  }
  /* Registrations made before bind follow the socket. */
  if (shim__epoll_carry(fd, install_swap, &nfd) != 0) {
    *why = "dup3 failed";
    goto fail;
  }
  len = sizeof s6;
  *port = ntohs(sin->sin_port);
  if (ds__sys.getsockname(fd, (struct sockaddr *)&s6, &len) == 0 &&
      s6.sin6_family == AF_INET6)
    *port = ntohs(s6.sin6_port);
  memset(&e, 0, sizeof e);
  e.kind = SHIM_FD_WIDE;
  e.family = AF_INET6;
  e.local.sin_family = AF_INET;
  e.local.sin_port = htons(*port);
  e.local.sin_addr.s_addr = htonl(INADDR_ANY);
  if (type == SOCK_DGRAM)
    e.pktinfo = recv_pktinfo(fd);
  shim__fd_set(fd, &e);
  widened_note(type, *port, 1);
  return 0;
fail:
  ds__sys.close(nfd);
  return 1;
}

/* What a narrowing puts on the fd (narrow_swap). */
typedef struct narrowing {
  int nfd;       /* the AF_INET socket, options set */
  uint16_t port; /* host order */
  int backlog;   /* the widened socket's, if it listens; else -1 */
} narrowing;

/* For shim__epoll_carry: puts n->nfd on fd in place of the widened
 * socket, binds it to 0.0.0.0 at the port and listens with the same
 * backlog if the widened socket did. Returns 0, or -1 with errno (when
 * the install itself failed, n->nfd is still the caller's and fd is as
 * it was; afterwards fd holds the new socket, unbound or not listening:
 * the application's later calls fail as they would on such a socket). */
static int narrow_swap(int fd, void *arg)
{
  narrowing *n = arg;
  struct sockaddr_in sin;
  /* The widened socket goes (freeing the port) as nfd takes its fd. */
  shim__fd_clear(fd);
  if (shim__install(n->nfd, fd) != 0)
    return -1;
  n->nfd = -1;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(n->port);
  if (ds__sys.bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
    return -1;
  if (n->backlog >= 0 && ds__sys.listen(fd, n->backlog) != 0)
    return -1;
  return 0;
}

/* Returns the backlog listening TCP socket fd was given (the kernel
 * reports it in tcpi_sacked for a listener, as ss shows it), SOMAXCONN
 * when it cannot be read, or -1 when fd does not listen. */
static int listen_backlog(int fd)
{
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (shim__sock_int(fd, SO_ACCEPTCONN) != 1)
    return -1;
  memset(&ti, 0, sizeof ti);
  if (ds__sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
      len < offsetof(struct tcp_info, tcpi_sacked) + sizeof ti.tcpi_sacked ||
      ti.tcpi_state != TCP_LISTEN)
    return SOMAXCONN;
  return (int)ti.tcpi_sacked;
}

/* Gives widened socket fd back its original form, an AF_INET socket
 * bound to 0.0.0.0 at its port (listening again with its backlog if it
 * was), because the application now binds an IPv6 socket of its own to
 * that port: the widened one would take the port from it. The fd keeps
 * its number, close-on-exec and status flags (O_NONBLOCK...), the options
 * the application set, and its epoll registrations (inetd and libevent
 * programs register each listener before binding the next). Connections
 * waiting in the widened socket's queue are lost. Returns 0 or -1. */
static int narrow(int fd, uint16_t port)
{
  narrowing n;
  int rc, type = shim__sock_int(fd, SO_TYPE);
  n.port = port;
  n.backlog = listen_backlog(fd);
  n.nfd = ds__sys.socket(AF_INET, type | SOCK_CLOEXEC,
                         shim__sock_int(fd, SO_PROTOCOL));
  if (n.nfd < 0)
    return -1;
  shim__opt_replay(fd, n.nfd, AF_INET, 0);
  rc = shim__epoll_carry(fd, narrow_swap, &n);
  if (n.nfd >= 0)
    ds__sys.close(n.nfd);
  /* The widened socket is gone, and the program's own IPv6 socket takes
   * the port: what its children inherit on it is IPv6, as without the
   * shim. */
  widened_note(type, port, 0);
  return rc;
}

/* bind() of anything but 0.0.0.0: as asked, except that an IPv6 bind the
 * shim's own widening stands in the way of (EADDRINUSE, and a socket of
 * this process widened on that port) narrows that socket back and is
 * tried again. */
static int bind_other(int fd, const struct sockaddr *sa, socklen_t len)
{
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
  int rc = ds__sys.bind(fd, sa, len), saved = errno, wide, count;
  if (rc == 0 || saved != EADDRINUSE || sa->sa_family != AF_INET6 ||
      len < sizeof *s6 || s6->sin6_port == 0 || shim__cfg.disabled ||
      shim__cfg.observe)
    return rc;
  wide = shim__fd_find_wide(ntohs(s6->sin6_port), fd, &count);
  /* A widened socket another fd also holds (a dup) cannot give its port
   * back: narrowing it would leave this fd unbound. */
  if (wide < 0 || count > 1 ||
      narrow(wide, ntohs(s6->sin6_port)) != 0) {
    errno = saved;
    return rc;
  }
  trace_bind(ntohs(s6->sin6_port), 0,
             "narrowed back: the program binds IPv6 "
             "on the port itself",
             0, 0, ds__mono_ms());
  return ds__sys.bind(fd, sa, len);
}

/* The body of bind(); returns as bind() does, errno aside (the
 * hook keeps it on success). */
static int do_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  const char *why;
  double t0;
  uint16_t port;
  int rc, saved, wildcard;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
    return ds__sys.bind(fd, sa, len);
  wildcard = sa->sa_family == AF_INET && len >= sizeof *sin &&
             sin->sin_addr.s_addr == htonl(INADDR_ANY);
  if (shim__fd_known(fd) && !shim__cfg.disabled && sa->sa_family == AF_INET) {
    shim_fd e;
    if (shim__fd_get(fd, &e) && e.kind == SHIM_FD_WIDE) {
      errno = EINVAL; /* bound already, as the kernel says */
      return -1;
    }
  }
  if (!wildcard && shim__cfg.trace_fd < 0)
    return bind_other(fd, sa, len);
  if (!shim__active())
    return ds__sys.bind(fd, sa, len);
  t0 = ds__mono_ms();
  if (!wildcard) {
    rc = bind_other(fd, sa, len);
    saved = errno;
    shim__trace_sockaddr("bind", sa, len, rc, saved, t0);
    goto done;
  }
  why = no_widening();
  if (why == NULL && listen_dual && sin->sin_port != 0 &&
      shim__excluded_port(ntohs(sin->sin_port)))
    why = "DUALSTACK_EXCLUDE lists the port";
  if (why == NULL && listen_dual && widen(fd, sin, &port, &why) == 0) {
    trace_bind(port, 1, NULL, 0, 0, t0);
    shim__leave();
    return 0;
  }
  rc = ds__sys.bind(fd, sa, len);
  saved = errno;
  trace_bind(ntohs(sin->sin_port), 0, why, rc, saved, t0);
done:
  shim__leave();
  errno = saved;
  return rc;
}

DS_HOOK int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
  return SHIM_KEEP_ERRNO(do_bind(fd, sa, len));
}

/* Copies n bytes of address src out as the kernel does: at most *len
 * bytes, then *len is set to the full length. */
static void copy_out(struct sockaddr *sa, socklen_t *len, const void *src,
                     socklen_t n)
{
  if (sa == NULL || len == NULL)
    return;
  memcpy(sa, src, *len < n ? *len : n);
  *len = n;
}

/* Records accepted connection nfd, whose peer is IPv6 (IPv4-mapped or
 * not), and gives the application its IPv4 view in *sin; port is the
 * widened listener's (network order), or 0 when the listener is not known
 * to be one. An IPv4 client's entry says nothing the kernel does not, so
 * it is recorded without a system call and checked by its peer
 * (shim__fd_set_peer); an IPv6 client's holds its source-pool address
 * and is checked by inode. The local address is left to getsockname,
 * which finds it when asked. Returns 0, or -1 when no source-pool address
 * can be had. */
static int accepted(int nfd, const struct sockaddr_in6 *peer, in_port_t port,
                    struct sockaddr_in *sin)
{
  shim_fd e;
  int fresh = 0;
  memset(&e, 0, sizeof e);
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = peer->sin6_port;
  if (IN6_IS_ADDR_V4MAPPED(&peer->sin6_addr)) {
    memcpy(&sin->sin_addr, &peer->sin6_addr.s6_addr[12], 4);
  } else {
    e.source = shim__source_get(&peer->sin6_addr, &fresh);
    if (e.source == 0)
      return -1;
    sin->sin_addr.s_addr = htonl(e.source);
  }
  e.kind = SHIM_FD_ACCEPTED;
  e.family = AF_INET6;
  e.peer = *sin;
  if (e.source == 0 && port != 0) {
    e.local.sin_port = port;
    shim__fd_set_peer(nfd, &e);
  } else {
    /* An IPv6 client, or an IPv4 client of an inherited listener (no
     * port to check the entry by once the connection is reset). */
    shim__fd_set(nfd, &e);
  }
  return 0;
}

/* Traces an IPv6 peer and the IPv4 address shown for it (event "accept"
 * or "recv"). */
void shim__trace_peer(const char *event, const struct sockaddr_in6 *peer,
                      const struct sockaddr_in *shown)
{
  shim_json j;
  char p[INET6_ADDRSTRLEN] = "", s[INET_ADDRSTRLEN] = "";
  if (shim__cfg.trace_fd < 0)
    return;
  inet_ntop(AF_INET6, &peer->sin6_addr, p, sizeof p);
  shim__json_begin(&j, event, shim__next_id());
  shim__json_str(&j, "peer", p);
  shim__json_int(&j, "port", ntohs(peer->sin6_port));
  if (shown != NULL) {
    inet_ntop(AF_INET, &shown->sin_addr, s, sizeof s);
    shim__json_str(&j, "synthetic", s);
  }
  shim__json_emit(&j);
}

/* Returns 1 when accepts are only traced (observe mode with a trace). */
static int observing(void)
{
  return !shim__cfg.disabled && shim__cfg.observe && shim__cfg.trace_fd >= 0;
}

/* Observe mode: traces an accepted peer as it is, nothing translated. */
static void trace_observed(const struct sockaddr_storage *ss, socklen_t sl)
{
  shim_json j;
  ds_addr a;
  char text[DS_ADDR_STRLEN];
  if (ds_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sl) != 0)
    return;
  ds_addr_format(&a, text, sizeof text, 0);
  shim__json_begin(&j, "accept", shim__next_id());
  shim__json_str(&j, "peer", text);
  shim__json_int(&j, "port", a.port);
  shim__json_emit(&j);
}

/* The shared body of accept and accept4. An entry left on the number
 * accept hands out is stale (the socket it described was closed without
 * the shim seeing it: an entry checked by peer could match a new
 * connection from the same client), so it is forgotten (no system call). */
static int do_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  socklen_t sl = sizeof ss;
  shim_fd e;
  in_port_t port;
  int nfd;

  if (observing()) {
    nfd = ds__sys.accept4(fd, (struct sockaddr *)&ss, &sl, flags);
    if (nfd >= 0) {
      int saved = errno;
      trace_observed(&ss, sl);
      copy_out(sa, len, &ss, sl);
      errno = saved;
    }
    return nfd;
  }
  if (shim__cfg.disabled || shim__cfg.observe)
    return ds__sys.accept4(fd, sa, len, flags);
  if (sa != NULL && len != NULL && *len == sizeof sin) {
    /* Room for a sockaddr_in and no more: an IPv6 peer is shown as IPv4
     * whatever the listener, a widened one or an IPv6 socket the process
     * inherited (inetd, socket activation), so the listener's entry need
     * not be checked (an fstat per accept). Its port, if it says it is
     * widened, only helps check the client's entry later. */
    port = shim__fd_wide_port_hint(fd);
  } else if (shim__fd_known(fd) && shim__fd_get(fd, &e) &&
             e.kind == SHIM_FD_WIDE) {
    /* Room for more (or none): only a listener the shim widened gets the
     * IPv4 view; its entry must still describe it, since an IPv6 socket
     * of the program's own may have taken its number after a close the
     * shim never saw. */
    port = e.local.sin_port;
  } else {
    nfd = ds__sys.accept4(fd, sa, len, flags);
    if (nfd >= 0)
      shim__fd_clear(nfd);
    return nfd;
  }
  nfd = ds__sys.accept4(fd, (struct sockaddr *)&ss, &sl, flags);
  if (nfd < 0)
    return nfd;
  if (ss.ss_family != AF_INET6 || sl < sizeof(struct sockaddr_in6)) {
    shim__fd_clear(nfd);
    copy_out(sa, len, &ss, sl);
    return nfd;
  }
  if (accepted(nfd, (struct sockaddr_in6 *)&ss, port, &sin) != 0) {
    /* Every source-pool address is held by an open connection: this
     * client cannot be shown, so it is turned away as a connection
     * aborted before accept (servers retry on ECONNABORTED). */
    shim_json j;
    shim__fd_clear(nfd);
    ds__sys.close(nfd);
    if (shim__cfg.trace_fd >= 0) {
      shim__json_begin(&j, "passthrough", shim__next_id());
      shim__json_str(&j, "reason", "source pool exhausted: ECONNABORTED");
      shim__json_emit(&j);
    }
    errno = ECONNABORTED;
    return -1;
  }
  if (!IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
    shim__trace_peer("accept", (struct sockaddr_in6 *)&ss, &sin);
  copy_out(sa, len, &sin, sizeof sin);
  return nfd;
}

/* The body of accept(); returns as accept() does, errno aside (the
 * hook keeps it on success). */
static int accept_body(int fd, struct sockaddr *sa, socklen_t *len)
{
  int nfd;
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  if (!shim__fd_known(fd) && !observing() &&
      (sa == NULL || len == NULL || *len != sizeof(struct sockaddr_in))) {
    nfd = ds__sys.accept(fd, sa, len);
    if (nfd >= 0)
      shim__fd_clear(nfd);
    return nfd;
  }
  return do_accept(fd, sa, len, 0);
}

DS_HOOK int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
  return SHIM_KEEP_ERRNO(accept_body(fd, sa, len));
}

/* The body of accept4(); returns as accept4() does, errno aside (the
 * hook keeps it on success). */
static int accept4_body(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
  if (shim__init() != 0) {
    errno = ENOSYS;
    return -1;
  }
  return do_accept(fd, sa, len, flags);
}

DS_HOOK int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
  return SHIM_KEEP_ERRNO(accept4_body(fd, sa, len, flags));
}

/* Traces the adoption of inherited socket fd: an IPv6 client's
 * connection (peer, shown) or, with peer NULL, a listener on port. */
static void trace_adopted(int fd, const struct sockaddr_in6 *peer,
                          const struct sockaddr_in *shown, unsigned port)
{
  shim_json j;
  char p[INET6_ADDRSTRLEN] = "", t[INET_ADDRSTRLEN] = "";
  if (shim__cfg.trace_fd < 0)
    return;
  if (peer != NULL) {
    inet_ntop(AF_INET6, &peer->sin6_addr, p, sizeof p);
    inet_ntop(AF_INET, &shown->sin_addr, t, sizeof t);
    shim__json_begin(&j, "accept", shim__next_id());
    shim__json_str(&j, "peer", p);
    shim__json_int(&j, "port", ntohs(peer->sin6_port));
    shim__json_str(&j, "synthetic", t);
  } else {
    shim__json_begin(&j, "bind", shim__next_id());
    shim__json_str(&j, "addr", "0.0.0.0");
    shim__json_int(&j, "port", port);
    shim__json_str(&j, "family", "ipv4");
    shim__json_bool(&j, "widened", 1);
    shim__json_str(&j, "bound", "::");
  }
  shim__json_int(&j, "fd", fd);
  shim__json_bool(&j, "inherited", 1);
  shim__json_emit(&j);
}

/* Adopts fd if it is a socket an ancestor widened, or a connection one
 * accepted on it, as list (DUALSTACK_WIDENED) tells: an IPv6 TCP or UDP
 * socket, not IPv6-only, whose local port list names for its protocol;
 * listening (TCP) or bound to [::] (UDP): a widened listener; connected
 * (TCP): an accepted connection. Anything else is left alone. */
static void adopt_one(int fd, const char *list, ino_t *last)
{
  struct sockaddr_in6 s6, peer;
  struct sockaddr_in sin;
  socklen_t len = sizeof s6;
  struct stat st;
  int type, proto, v6only = 1;
  unsigned port;
  shim_fd e;
  if (shim__fd_is_private(fd) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return;
  if (shim__sock_int(fd, SO_DOMAIN) != AF_INET6)
    return;
  type = shim__sock_int(fd, SO_TYPE);
  proto = shim__sock_int(fd, SO_PROTOCOL);
  if (!(type == SOCK_STREAM && proto == IPPROTO_TCP) &&
      !(type == SOCK_DGRAM && proto == IPPROTO_UDP))
    return;
  {
    socklen_t vl = sizeof v6only;
    /* A widened socket, and what it accepts, are never IPv6-only. */
    if (ds__sys.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vl) != 0 ||
        v6only != 0)
      return;
  }
  if (ds__sys.getsockname(fd, (struct sockaddr *)&s6, &len) != 0 ||
      s6.sin6_family != AF_INET6 || len < sizeof s6)
    return;
  port = ntohs(s6.sin6_port);
  if (port == 0 ||
      !widened_has(list, type == SOCK_STREAM ? "tcp" : "udp", port))
    return;
  if (IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr) &&
      (type == SOCK_DGRAM || shim__sock_int(fd, SO_ACCEPTCONN) == 1)) {
    memset(&e, 0, sizeof e);
    e.kind = SHIM_FD_WIDE;
    e.family = AF_INET6;
    e.local.sin_family = AF_INET;
    e.local.sin_port = s6.sin6_port;
    e.local.sin_addr.s_addr = htonl(INADDR_ANY);
    if (type == SOCK_DGRAM)
      e.pktinfo = recv_pktinfo(fd);
    shim__fd_set(fd, &e);
    if (st.st_ino != *last)
      trace_adopted(fd, NULL, NULL, port);
    *last = st.st_ino;
    return;
  }
  len = sizeof peer;
  if (type != SOCK_STREAM || IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr) ||
      ds__sys.getpeername(fd, (struct sockaddr *)&peer, &len) != 0 ||
      peer.sin6_family != AF_INET6 || len < sizeof peer)
    return;
  /* One trace line per connection, not one per fd (inetd gives it as
   * 0, 1 and 2). */
  if (accepted(fd, &peer, s6.sin6_port, &sin) == 0 &&
      !IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr) && st.st_ino != *last)
    trace_adopted(fd, &peer, &sin, port);
  *last = st.st_ino;
}

void shim__server_adopt(void)
{
  const char *list = secure_getenv(WIDENED_VAR);
  struct dirent *d;
  DIR *dir;
  ino_t last = 0;
  int fd;
  if (list == NULL || *list == '\0' || shim__cfg.disabled ||
      shim__cfg.observe || !shim__source_ok() || ds__fork_vforked())
    return;
  dir = opendir("/proc/self/fd");
  if (dir == NULL) {
    /* No /proc: the low fds, where inherited ones usually are. */
    for (fd = 0; fd < 256; fd++)
      adopt_one(fd, list, &last);
    return;
  }
  while ((d = readdir(dir)) != NULL) {
    char *end;
    long n = strtol(d->d_name, &end, 10);
    if (d->d_name[0] < '0' || d->d_name[0] > '9' || *end != '\0' ||
        n >= SHIM_FD_MAX || n == dirfd(dir))
      continue;
    adopt_one((int)n, list, &last);
  }
  closedir(dir);
}

void shim__server_closing(int fd)
{
  shim_fd e;
  int type, count;
  if (!shim__fd_get(fd, &e) || e.kind != SHIM_FD_WIDE)
    return;
  type = shim__sock_int(fd, SO_TYPE);
  shim__fd_find_wide(ntohs(e.local.sin_port), -1, &count);
  if (type >= 0 && count <= 1)
    widened_note(type, ntohs(e.local.sin_port), 0);
}
