/* The all-interfaces server endpoint (ds_listen_all) on real sockets.
 *
 * endpoint_* tests run on the host and assume nothing about its addresses
 * but 127.0.0.1 on lo: they compare what the server binds with what the
 * unfiltered server binds, and connect only to loopback addresses.
 *
 * lab_endpoint_* tests run inside namespace A of `tests/lab/lab.sh
 * run-pair` (tests/check.sh does it), where the address set is known:
 * lo (127.0.0.1, ::1) and eth0 (192.0.2.1/24, 2001:db8::1/64, fe80::1/64),
 * plus, when a test adds it, a second veth pair dse1 between A and B
 * (A: 198.51.100.1/24, 2001:db8:1::1/64, fe80::11/64; B: .2, ::2, fe80::12).
 * Clients run in forked children, in B (setns) or in A. Every lab test
 * first removes what an earlier failed test may have left in A, and
 * removes what it added when it ends.
 */
#include "test.h"

#include "dualstack.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAXA 32

/* ------------------------------------------------------------- server side */

/* What the server saw: connections with the local address each came in
 * on, and the change notifications. */
typedef struct srv {
  ds_reactor *r;
  int accepted, lost;
  char hosts[MAXA][DS_ADDR_STRLEN]; /* ds_tcp_get_host() of each */
  ds_tcp *open[MAXA];               /* with keep_open */
  int keep_open;
  int inside; /* set while ds_listen_all() runs */
  int nadded, nremoved;
  int nev; /* events; the first MAXA are kept in ev */
  struct {
    ds_server_event ev;
    ds_server_addr a;
    double t;
  } ev[MAXA];
  int stopped;
  ds_server *stopped_s;
} srv;

/* Ignores what clients send. */
static void s_data(ds_tcp *t, const void *d, size_t n, void *u)
{
  (void)t;
  (void)d;
  (void)n;
  (void)u;
}

/* Counts closed connections and forgets them. */
static void s_lost(ds_tcp *t, int reason, void *u)
{
  srv *sv = u;
  int i;
  (void)reason;
  sv->lost++;
  for (i = 0; i < MAXA; i++)
    if (sv->open[i] == t)
      sv->open[i] = NULL;
}

static const ds_protocol sproto = {.data_received = s_data,
                                   .connection_lost = s_lost};

/* Writes the local address the connection came in on, as text and a
 * newline, and closes (unless keep_open). */
static int s_factory(void *data, ds_tcp *t, const ds_protocol **p, void **user)
{
  srv *sv = data;
  ds_addr host;
  char text[DS_ADDR_STRLEN + 1];
  size_t n;

  CHECK(!sv->inside);
  CHECK_EQ(ds_tcp_get_host(t, &host), 0);
  CHECK(ds_addr_format(&host, text, DS_ADDR_STRLEN, DS_ADDR_FMT_PORT) > 0);
  if (sv->accepted < MAXA) {
    strcpy(sv->hosts[sv->accepted], text);
    sv->open[sv->accepted] = sv->keep_open ? t : NULL;
  }
  sv->accepted++;
  n = strlen(text);
  text[n++] = '\n';
  ds_tcp_write(t, text, n);
  if (!sv->keep_open)
    ds_tcp_lose_connection(t);
  *p = &sproto;
  *user = sv;
  return 0;
}

/* Records a change notification with its time. */
static void s_notify(ds_server *s, ds_server_event ev, const ds_server_addr *a,
                     void *data)
{
  srv *sv = data;
  (void)s;
  CHECK(!sv->inside);
  sv->nadded += ev == DS_SERVER_EV_ADDED;
  sv->nremoved += ev == DS_SERVER_EV_REMOVED;
  if (sv->nev < MAXA) {
    sv->ev[sv->nev].ev = ev;
    sv->ev[sv->nev].a = *a;
    sv->ev[sv->nev].t = ds_test_now_ms();
  }
  sv->nev++;
}

/* Records the stop completion. */
static void s_stopped(ds_server *s, void *data)
{
  srv *sv = data;
  sv->stopped++;
  sv->stopped_s = s;
}

/* Starts a server; returns ds_listen_all()'s result. */
static int start(srv *sv, ds_reactor *r, uint16_t port, ds_server_options *opts,
                 ds_server **out, char *err, size_t errlen)
{
  ds_server_options o = {0};
  int rc;
  if (opts == NULL)
    opts = &o;
  memset(sv, 0, sizeof *sv);
  sv->r = r;
  opts->notify = s_notify;
  opts->notify_data = sv;
  sv->inside = 1;
  rc = ds_listen_all(r, port, opts, s_factory, sv, out, err, errlen);
  sv->inside = 0;
  return rc;
}

/* Lists the server's addresses in states as one string: texts joined by
 * single spaces (with the port). */
static void list(ds_server *s, unsigned states, char *buf, size_t len)
{
  ds_server_addr a[MAXA];
  size_t n = ds_server_addrs(s, states, a, MAXA), i;
  CHECK(n <= MAXA);
  buf[0] = '\0';
  for (i = 0; i < n; i++) {
    CHECK_EQ(a[i].state & states, a[i].state);
    if (i > 0)
      strncat(buf, " ", len - strlen(buf) - 1);
    strncat(buf, a[i].text, len - strlen(buf) - 1);
  }
}

/* Replaces every ":PORT" with ":P" in text, so that lists compare without
 * knowing the port. */
static void unport(char *text, uint16_t port)
{
  char pat[16], *p;
  size_t pl;
  snprintf(pat, sizeof pat, ":%u", port);
  pl = strlen(pat);
  while ((p = strstr(text, pat)) != NULL &&
         (p[pl] == ' ' || p[pl] == '\0' || p[pl] == '\n')) {
    memmove(p + 2, p + pl, strlen(p + pl) + 1);
    p[1] = 'P';
  }
}

/* Stops s, lets the completion run and frees the reactor. */
static void stop_and_free(ds_reactor *r, ds_server *s)
{
  int i;
  if (s != NULL)
    CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  for (i = 0; i < 50 && ds_reactor_free(r) == -EBUSY; i++)
    ds_reactor_run_once(r, 10);
  CHECK_MSG(i < 50, "reactor still busy");
}

/* ------------------------------------------------------------ client side */

/* A child process that connects to targets one by one and reports, per
 * target, a line "TARGET -> WHAT IT READ" (or "TARGET -> ERRNAME"). */
typedef struct probe {
  pid_t pid;
  int fd;
  char out[4096];
  size_t len;
  int eof;
} probe;

/* In the child: connects to host:port (numeric, scope allowed) with a
 * 3 s bound, reads to EOF, and writes the report line to fd. */
static void probe_one(int fd, const char *host, uint16_t port)
{
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST};
  struct addrinfo *ai = NULL;
  struct timeval tv = {.tv_sec = 3};
  char sport[8], got[512] = "";
  size_t n = 0;
  ssize_t k;
  int s;

  snprintf(sport, sizeof sport, "%u", port);
  if (getaddrinfo(host, sport, &hints, &ai) != 0) {
    dprintf(fd, "%s -> EAI\n", host);
    return;
  }
  s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
    dprintf(fd, "%s -> %s\n", host, strerrorname_np(errno));
    close(s);
    freeaddrinfo(ai);
    return;
  }
  while (n < sizeof got - 1 && (k = read(s, got + n, sizeof got - 1 - n)) > 0)
    n += (size_t)k;
  got[n] = '\0';
  while (n > 0 && got[n - 1] == '\n')
    got[--n] = '\0';
  for (k = 0; k < (ssize_t)n; k++)
    if (got[k] == '\n')
      got[k] = '|';
  dprintf(fd, "%s -> %s\n", host, got);
  close(s);
  freeaddrinfo(ai);
}

/* Starts a probe in namespace ns (a full lab name, or NULL for this one)
 * connecting to each of hosts (NULL-terminated) on port. */
static void probe_start(probe *p, const char *ns, const char *const *hosts,
                        uint16_t port)
{
  int pp[2];
  memset(p, 0, sizeof *p);
  CHECK_EQ(pipe2(pp, O_CLOEXEC), 0);
  p->pid = fork();
  CHECK(p->pid >= 0);
  if (p->pid == 0) {
    /* Hold none of the parent's sockets: a listener must close when the
     * server closes it. */
    if (pp[1] > 3)
      close_range(3, (unsigned)pp[1] - 1, 0);
    close_range((unsigned)pp[1] + 1, ~0u, 0);
    if (ns != NULL) {
      char path[256];
      int fd;
      snprintf(path, sizeof path, "/run/netns/%s", ns);
      fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        dprintf(pp[1], "setns %s failed\n", ns);
        _exit(3);
      }
      close(fd);
    }
    for (; *hosts != NULL; hosts++)
      probe_one(pp[1], *hosts, port);
    _exit(0);
  }
  close(pp[1]);
  p->fd = pp[0];
  fcntl(p->fd, F_SETFL, O_NONBLOCK);
}

/* Runs the reactor until the probe finished (bounded); p->out has its
 * report. */
static void probe_finish(ds_reactor *r, probe *p, double limit_ms)
{
  double end = ds_test_now_ms() + limit_ms;
  int status;
  while (!p->eof && ds_test_now_ms() < end) {
    ssize_t k;
    ds_reactor_run_once(r, 5);
    while ((k = read(p->fd, p->out + p->len, sizeof p->out - 1 - p->len)) > 0)
      p->len += (size_t)k;
    if (k == 0)
      p->eof = 1;
  }
  p->out[p->len] = '\0';
  if (!p->eof)
    kill(p->pid, SIGKILL);
  close(p->fd);
  CHECK_EQ(waitpid(p->pid, &status, 0), p->pid);
  CHECK_MSG(p->eof && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "probe failed (status %d): %s", status, p->out);
}

/* ------------------------------------------------------ sockets elsewhere */

/* Returns a socket listening on literal:port (port 0: any), outside the
 * library, to take a port; *port gets the real port. */
static int take_port(const char *literal, uint16_t *port)
{
  ds_addr a;
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, one = 1;
  CHECK_EQ(ds_addr_parse(&a, literal, *port, NULL, 0), 0);
  ds_addr_to_sockaddr(&a, &ss, &len);
  fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a.family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  CHECK_MSG(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind %s:%u: %s",
            literal, *port, strerror(errno));
  CHECK_EQ(listen(fd, 8), 0);
  len = sizeof ss;
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  CHECK_EQ(ds_addr_from_sockaddr(&a, (struct sockaddr *)&ss, len), 0);
  *port = a.port;
  return fd;
}

/* Returns 1 if IPv6 loopback works here. */
static int have_ipv6(void)
{
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
  ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* Runs a shell command; fails the test if it fails. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  int rc;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  rc = system(cmd);
  CHECK_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* Returns the first line of a command's output (trailing newline cut). */
static void sh_out(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sh_out(char *buf, size_t len, const char *fmt, ...)
{
  char cmd[1024];
  va_list ap;
  FILE *f;
  size_t n;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  f = popen(cmd, "r");
  CHECK(f != NULL);
  n = fread(buf, 1, len - 1, f);
  buf[n] = '\0';
  pclose(f);
  while (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
}

/* ------------------------------------------------------------ host tests */

TEST(endpoint_port0_one_port_on_every_address)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  ds_server_addr a[MAXA];
  char err[256] = "";
  size_t n, i;
  uint16_t port;
  int fds_start = ds_test_count_fds(), fds0, seen_lo4 = 0, seen_lo6 = 0;

  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  CHECK(port != 0);
  n = ds_server_addrs(s, DS_SERVER_BOUND, a, MAXA);
  CHECK(n >= 1 && n <= MAXA);
  /* One socket per bound address, and one netlink socket. */
  CHECK_EQ(ds_test_count_fds(), fds0 + (int)n + 1);
  for (i = 0; i < n; i++) {
    ds_addr back;
    CHECK_EQ(a[i].state, DS_SERVER_BOUND);
    CHECK_EQ(a[i].error, 0);
    CHECK_EQ(a[i].addr.port, port);
    CHECK(a[i].ifname[0] != '\0' && a[i].ifindex != 0);
    /* The text is the value, scope included. */
    CHECK_EQ(ds_addr_parse_hostport(&back, a[i].text, NULL, 0), 0);
    CHECK_EQ(ds_addr_compare(&back, &a[i].addr), 0);
    if (ds_addr_classify(&a[i].addr) == DS_ADDR_LINKLOCAL &&
        a[i].addr.family == AF_INET6)
      CHECK_EQ(a[i].addr.scope_id, a[i].ifindex);
    if (i > 0)
      CHECK(ds_addr_compare(&a[i - 1].addr, &a[i].addr) < 0);
    seen_lo4 += strncmp(a[i].text, "127.0.0.1:", 10) == 0;
    seen_lo6 += strncmp(a[i].text, "[::1]:", 6) == 0;
  }
  CHECK_EQ(seen_lo4, 1);
  CHECK_EQ(seen_lo6, have_ipv6() ? 1 : 0);
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED | DS_SERVER_WAITING, NULL, 0),
           0);
  CHECK_EQ(sv.nev, 0); /* nothing is notified for the first bind */
  stop_and_free(r, s);
  CHECK_EQ(ds_test_count_fds(), fds_start);
}

TEST(endpoint_factory_learns_the_local_address_on_loopback)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  char err[256] = "", want[256];
  const char *hosts6[] = {"127.0.0.1", "::1", NULL};
  const char *hosts4[] = {"127.0.0.1", NULL};
  int v6 = have_ipv6();
  uint16_t port;

  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  probe_start(&p, NULL, v6 ? hosts6 : hosts4, port);
  probe_finish(r, &p, 8000);
  if (v6)
    snprintf(want, sizeof want, "127.0.0.1 -> 127.0.0.1:%u\n::1 -> [::1]:%u\n",
             port, port);
  else
    snprintf(want, sizeof want, "127.0.0.1 -> 127.0.0.1:%u\n", port);
  CHECK_STR(p.out, want);
  CHECK_EQ(sv.accepted, v6 ? 2 : 1);
  RUN_UNTIL(r, sv.lost == sv.accepted, 2000);
  stop_and_free(r, s);
}

TEST(endpoint_stop_closes_every_socket_and_completes_on_a_later_turn)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  char err[256] = "";
  const char *hosts[] = {"127.0.0.1", NULL};
  int fds0, i;
  uint16_t port;

  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  /* An accepted connection outlives the listening port. */
  sv.keep_open = 1;
  probe_start(&p, NULL, hosts, port);
  RUN_UNTIL(r, sv.accepted == 1, 3000);
  CHECK_EQ(ds_server_stop(s, s_stopped, &sv), 0);
  CHECK_EQ(ds_server_port(s), port);
  CHECK_EQ(ds_test_count_fds(), fds0 + 1 + 1); /* the connection, the pipe */
  CHECK_EQ(sv.stopped, 0);                     /* never inside the call */
  CHECK_EQ(ds_server_stop(s, s_stopped, &sv), -EALREADY);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(sv.stopped, 1);
  CHECK(sv.stopped_s == s);
  /* Listening is over: a new connection is refused. */
  {
    uint16_t q = port;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(q),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0);
    CHECK_EQ(errno, ECONNREFUSED);
    close(fd);
  }
  CHECK_EQ(ds_tcp_write(sv.open[0], "after stop\n", 11), 0);
  ds_tcp_lose_connection(sv.open[0]);
  probe_finish(r, &p, 5000);
  {
    char want[128];
    snprintf(want, sizeof want, "127.0.0.1 -> 127.0.0.1:%u|after stop\n", port);
    CHECK_STR(p.out, want);
  }
  RUN_UNTIL(r, sv.lost == 1, 2000);
  for (i = 0; i < 5; i++)
    ds_reactor_run_once(r, 0);
  CHECK_EQ(sv.stopped, 1);
  CHECK_EQ(ds_reactor_free(r), 0);
  CHECK_EQ(ds_test_count_fds(), fds0 - 2); /* the reactor's own two fds */
}

TEST(endpoint_reactor_free_is_busy_while_the_port_lives)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  char err[256] = "";
  ds_server_options o = {.flags = DS_SERVER_NO_FOLLOW};
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, &o, &s, err, sizeof err) == 0, "%s", err);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  CHECK_EQ(ds_reactor_free(r), -EBUSY); /* completion still due */
  ds_reactor_run_once(r, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(endpoint_no_follow_has_no_netlink_socket)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  char err[256] = "";
  ds_server_options o = {.flags = DS_SERVER_NO_FOLLOW};
  int fds0;
  size_t n;
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_MSG(start(&sv, r, 0, &o, &s, err, sizeof err) == 0, "%s", err);
  n = ds_server_addrs(s, DS_SERVER_BOUND, NULL, 0);
  CHECK_EQ(ds_test_count_fds(), fds0 + (int)n);
  CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  stop_and_free(r, NULL);
}

/* Returns 1 if a (an address of the unfiltered server) passes o. */
static int passes(const ds_server_addr *a, const ds_server_options *o)
{
  ds_addr_class c = ds_addr_classify(&a->addr);
  const char *const *p;
  if (o->family != 0 && a->addr.family != o->family)
    return 0;
  if ((o->flags & DS_SERVER_NO_LOOPBACK) && c == DS_ADDR_LOOPBACK)
    return 0;
  if ((o->flags & DS_SERVER_NO_LINKLOCAL) && c == DS_ADDR_LINKLOCAL)
    return 0;
  if (o->interfaces == NULL)
    return 1;
  for (p = o->interfaces; *p != NULL; p++)
    if (strcmp(*p, a->ifname) == 0)
      return 1;
  return 0;
}

TEST(endpoint_filters_select_what_they_say_on_this_host)
{
  static const char *const lo[] = {"lo", NULL};
  ds_server_options cases[] = {
      {.family = AF_INET},
      {.family = AF_INET6},
      {.flags = DS_SERVER_NO_LOOPBACK},
      {.flags = DS_SERVER_NO_LINKLOCAL},
      {.flags = DS_SERVER_NO_LOOPBACK | DS_SERVER_NO_LINKLOCAL},
      {.interfaces = lo},
      {.family = AF_INET, .interfaces = lo},
  };
  ds_reactor *r;
  ds_server *all, *s;
  srv sv, sv2;
  ds_server_addr every[MAXA];
  char err[256] = "", want[2048], got[2048];
  size_t n, i, k;
  uint16_t port;

  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &all, err, sizeof err) == 0, "%s", err);
  n = ds_server_addrs(all, DS_SERVER_BOUND, every, MAXA);
  port = ds_server_port(all);
  stop_and_free(r, all);
  CHECK_EQ(ds_reactor_new(&r), 0);
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    /* The same port, so that the lists compare as text. */
    int rc = start(&sv2, r, port, &cases[k], &s, err, sizeof err);
    want[0] = '\0';
    for (i = 0; i < n; i++) {
      if (!passes(&every[i], &cases[k]))
        continue;
      if (want[0])
        strcat(want, " ");
      strcat(want, every[i].text);
    }
    if (want[0] == '\0') {
      /* Nothing on this host passes this filter (IPv4 only, say). */
      CHECK_EQ(rc, DS_ENOLOCALADDR);
      continue;
    }
    CHECK_MSG(rc == 0, "case %zu: %s", k, err);
    list(s, DS_SERVER_BOUND, got, sizeof got);
    CHECK_MSG(strcmp(got, want) == 0, "case %zu: got '%s', want '%s'", k, got,
              want);
    stop_and_free(r, s);
    CHECK_EQ(ds_reactor_new(&r), 0);
  }
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(endpoint_bad_options_are_clear_errors_with_no_trace)
{
  static const char *const nosuch[] = {"lo", "nosuchif0", NULL};
  static const char *const none[] = {NULL};
  ds_server_options o;
  ds_reactor *r;
  ds_server *s = (ds_server *)&o;
  srv sv;
  char err[256];
  int fds0, i;

  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  memset(&o, 0, sizeof o);
  o.interfaces = nosuch;
  CHECK_EQ(start(&sv, r, 0, &o, &s, err, sizeof err), -ENODEV);
  CHECK(s == NULL);
  CHECK_MSG(strstr(err, "'nosuchif0'") != NULL, "err: %s", err);
  memset(&o, 0, sizeof o);
  o.interfaces = none;
  CHECK_EQ(start(&sv, r, 0, &o, &s, err, sizeof err), DS_ENOLOCALADDR);
  CHECK_MSG(strstr(err, "no local address") != NULL, "err: %s", err);
  memset(&o, 0, sizeof o);
  o.family = AF_UNIX;
  CHECK_EQ(start(&sv, r, 0, &o, &s, err, sizeof err), -EAFNOSUPPORT);
  memset(&o, 0, sizeof o);
  o.flags = 0x100;
  CHECK_EQ(start(&sv, r, 0, &o, &s, err, sizeof err), -EINVAL);
  CHECK_EQ(ds_listen_all(r, 0, NULL, NULL, NULL, &s, err, sizeof err), -EINVAL);
  CHECK_STR(ds_err_name(DS_ENOLOCALADDR), "DS_ENOLOCALADDR");
  CHECK_STR(ds_err_name(DS_EDUPADDR), "DS_EDUPADDR");
  /* No callback, no socket, no handle. */
  for (i = 0; i < 3; i++)
    ds_reactor_run_once(r, 0);
  CHECK_EQ(sv.nev + sv.accepted, 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(endpoint_explicit_port_taken_partly_then_wholly)
{
  static const char *const lo[] = {"lo", NULL};
  ds_server_options o4 = {.family = AF_INET, .interfaces = lo};
  ds_server_options both = {.interfaces = lo};
  ds_reactor *r;
  ds_server *s4, *s;
  srv sv4, sv;
  ds_server_addr f[MAXA];
  char err[256] = "", v4[1024], failed[1024];
  size_t n, i;
  uint16_t port;
  int fds0;

  CHECK_EQ(ds_reactor_new(&r), 0);
  /* A first server holds the port on every IPv4 address of lo. */
  CHECK_MSG(start(&sv4, r, 0, &o4, &s4, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s4);
  list(s4, DS_SERVER_BOUND, v4, sizeof v4);
  fds0 = ds_test_count_fds();

  if (have_ipv6()) {
    /* Both families: IPv4 fails address by address, ::1 serves. */
    CHECK_MSG(start(&sv, r, port, &both, &s, err, sizeof err) == 0, "%s", err);
    CHECK_EQ(ds_server_port(s), port);
    list(s, DS_SERVER_FAILED, failed, sizeof failed);
    CHECK_STR(failed, v4);
    n = ds_server_addrs(s, DS_SERVER_FAILED, f, MAXA);
    for (i = 0; i < n; i++)
      CHECK_EQ(f[i].error, -EADDRINUSE);
    CHECK(ds_server_addrs(s, DS_SERVER_BOUND, NULL, 0) >= 1);
    list(s, DS_SERVER_BOUND, failed, sizeof failed);
    CHECK_MSG(strstr(failed, "[::1]:") != NULL, "bound: %s", failed);
    CHECK_EQ(sv.nev, 0);
    CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
    ds_reactor_run_once(r, 0);
    CHECK_EQ(ds_test_count_fds(), fds0);
  }
  /* IPv4 only: nothing can be bound, the first address's cause is the
   * error, and nothing is left. */
  CHECK_EQ(start(&sv, r, port, &o4, &s, err, sizeof err), -EADDRINUSE);
  CHECK(s == NULL);
  {
    char first[64];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(v4, " "), v4);
    CHECK_MSG(strstr(err, first) != NULL, "err '%s' should name %s", err,
              first);
  }
  CHECK_EQ(ds_test_count_fds(), fds0);
  for (i = 0; i < 3; i++)
    ds_reactor_run_once(r, 0);
  CHECK_EQ(sv.nev + sv.accepted, 0);
  stop_and_free(r, s4);
}

/* ------------------------------------------------------------- lab tests */

/* Skips unless running inside a lab pair; returns the variable's value. */
static const char *lab_env(const char *name)
{
  const char *v = getenv(name);
  if (v == NULL || *v == '\0')
    SKIP("not in a lab: run through tests/lab/lab.sh run-pair");
  return v;
}

/* Addresses the lab tests may add to A's eth0. */
#define EXTRA_ADDRS                                                            \
  "192.0.2.77/24 2001:db8::77/64 2001:db8::88/64 2001:db8::2/64 "              \
  "192.0.2.99/24"

/* Removes from A what a lab test adds: the second link, extra addresses,
 * DAD on eth0. Run at the start (an earlier test may have failed half way)
 * and at the end of each lab test. */
static void lab_reset(void)
{
  const char *ifa = lab_env("LAB_IF_A");
  sh("{ echo 'link del dse1'; echo 'link del dse2'; for a in " EXTRA_ADDRS
     "; do "
     "echo \"addr del $a dev %s\"; done; } | ip -force -b - "
     ">/dev/null 2>&1; "
     "sysctl -qw net.ipv6.conf.%s.accept_dad=0; "
     "ip netns exec %s nft delete table inet dsdad 2>/dev/null; true",
     ifa, ifa, lab_env("LAB_NS_B"));
}

/* Adds the second veth pair dse1 between A and B, with addresses. */
static void lab_second_link(void)
{
  const char *b = lab_env("LAB_NS_B");
  sh("ip link add dse1 type veth peer name dse1 netns %s && "
     "ip link set dse1 addrgenmode none up && "
     "ip -n %s link set dse1 addrgenmode none up && "
     "ip addr add 198.51.100.1/24 dev dse1 && "
     "ip addr add 2001:db8:1::1/64 dev dse1 nodad && "
     "ip addr add fe80::11/64 dev dse1 nodad && "
     "ip -n %s addr add 198.51.100.2/24 dev dse1 && "
     "ip -n %s addr add 2001:db8:1::2/64 dev dse1 nodad && "
     "ip -n %s addr add fe80::12/64 dev dse1 nodad",
     b, b, b, b, b);
}

/* Returns how many sockets listen on TCP port in this namespace, as the
 * kernel says (ss). */
static int kernel_listeners(uint16_t port)
{
  char out[64];
  sh_out(out, sizeof out, "ss -Hltn 'sport = :%u' | wc -l", port);
  return atoi(out);
}

/* Returns the index of the first event ev for text (with ":P" for the
 * port), or -1. */
static int find_event(const srv *sv, ds_server_event ev, const char *text,
                      uint16_t port)
{
  int i;
  for (i = 0; i < sv->nev && i < MAXA; i++) {
    char t[DS_ADDR_STRLEN];
    strcpy(t, sv->ev[i].a.text);
    unport(t, port);
    if (sv->ev[i].ev == ev && strcmp(t, text) == 0)
      return i;
  }
  return -1;
}

static const char *const ALL_A =
    "127.0.0.1:P 192.0.2.1:P 198.51.100.1:P [::1]:P [2001:db8::1]:P "
    "[2001:db8:1::1]:P [fe80::1%eth0]:P [fe80::11%dse1]:P";

TEST_T(lab_endpoint_port0_serves_every_address_of_two_links, 40)
{
  const char *nsb = lab_env("LAB_NS_B");
  const char *from_b[] = {
      "192.0.2.1",    "198.51.100.1",  "2001:db8::1", "2001:db8:1::1",
      "fe80::1%eth0", "fe80::11%dse1", NULL};
  const char *from_a[] = {"127.0.0.1", "::1", NULL};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe pb, pa;
  char err[256] = "", got[1024], want[1024];
  uint16_t port;
  int fds0;

  lab_reset();
  lab_second_link();
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  CHECK(port != 0);
  list(s, DS_SERVER_BOUND, got, sizeof got);
  unport(got, port);
  CHECK_STR(got, ALL_A);
  CHECK_EQ(ds_test_count_fds(), fds0 + 8 + 1);
  CHECK_EQ(kernel_listeners(port), 8);

  /* B reaches every address of A but loopback (link-local by B's own
   * interface names); A reaches its loopback. Each reply is the local
   * address the server saw the connection arrive on. */
  probe_start(&pb, nsb, from_b, port);
  probe_finish(r, &pb, 15000);
  snprintf(want, sizeof want,
           "192.0.2.1 -> 192.0.2.1:%u\n"
           "198.51.100.1 -> 198.51.100.1:%u\n"
           "2001:db8::1 -> [2001:db8::1]:%u\n"
           "2001:db8:1::1 -> [2001:db8:1::1]:%u\n"
           "fe80::1%%eth0 -> [fe80::1%%eth0]:%u\n"
           "fe80::11%%dse1 -> [fe80::11%%dse1]:%u\n",
           port, port, port, port, port, port);
  CHECK_STR(pb.out, want);
  probe_start(&pa, NULL, from_a, port);
  probe_finish(r, &pa, 8000);
  snprintf(want, sizeof want, "127.0.0.1 -> 127.0.0.1:%u\n::1 -> [::1]:%u\n",
           port, port);
  CHECK_STR(pa.out, want);
  CHECK_EQ(sv.accepted, 8);
  RUN_UNTIL(r, sv.lost == 8, 3000);
  stop_and_free(r, s);
  CHECK_EQ(kernel_listeners(port), 0);
  lab_reset();
}

TEST_T(lab_endpoint_follows_added_and_removed_addresses, 40)
{
  const char *nsb = lab_env("LAB_NS_B");
  const char *ifa = lab_env("LAB_IF_A");
  const char *new_hosts[] = {"192.0.2.77", "2001:db8::77", NULL};
  const char *dse1_hosts[] = {"198.51.100.1", "fe80::11%dse1", NULL};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  char err[256] = "", got[1024], want[1024];
  uint16_t port;
  int fds0, i4, i6, n0;
  double t0, took4, took6;

  lab_reset();
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  fds0 = ds_test_count_fds();
  n0 = kernel_listeners(port);
  CHECK_EQ(n0, 5);

  /* Added: bound on the same port within a second. */
  t0 = ds_test_now_ms();
  sh("ip addr add 192.0.2.77/24 dev %s && "
     "ip addr add 2001:db8::77/64 dev %s nodad",
     ifa, ifa);
  RUN_UNTIL(r, sv.nev >= 2, 3000);
  i4 = find_event(&sv, DS_SERVER_EV_ADDED, "192.0.2.77:P", port);
  i6 = find_event(&sv, DS_SERVER_EV_ADDED, "[2001:db8::77]:P", port);
  CHECK_MSG(i4 >= 0 && i6 >= 0 && sv.nev == 2, "events: %d", sv.nev);
  took4 = sv.ev[i4].t - t0;
  took6 = sv.ev[i6].t - t0;
  CHECK_MSG(took4 < 1000 && took6 < 1000, "bound after %.1f and %.1f ms", took4,
            took6);
  if (getenv("DS_TEST_FIGURES"))
    fprintf(stderr,
            "  figure: ip addr add -> bound: %.1f ms (v4), "
            "%.1f ms (v6)\n",
            took4, took6);
  CHECK_EQ(sv.ev[i4].a.state, DS_SERVER_BOUND);
  CHECK_EQ(sv.ev[i4].a.addr.port, port);
  CHECK_STR(sv.ev[i6].a.ifname, ifa);
  CHECK_EQ(ds_test_count_fds(), fds0 + 2);
  CHECK_EQ(kernel_listeners(port), 7);
  probe_start(&p, nsb, new_hosts, port);
  probe_finish(r, &p, 8000);
  snprintf(want, sizeof want,
           "192.0.2.77 -> 192.0.2.77:%u\n2001:db8::77 -> [2001:db8::77]:%u\n",
           port, port);
  CHECK_STR(p.out, want);

  /* Removed: closed and no longer listed, within a second. */
  sv.nev = 0;
  t0 = ds_test_now_ms();
  sh("ip addr del 192.0.2.77/24 dev %s && ip addr del 2001:db8::77/64 dev %s",
     ifa, ifa);
  RUN_UNTIL(r, sv.nev >= 2, 3000);
  CHECK(find_event(&sv, DS_SERVER_EV_REMOVED, "192.0.2.77:P", port) >= 0);
  CHECK(find_event(&sv, DS_SERVER_EV_REMOVED, "[2001:db8::77]:P", port) >= 0);
  CHECK_EQ(sv.nev, 2);
  CHECK(sv.ev[1].t - t0 < 1000);
  CHECK_EQ(sv.ev[0].a.state, 0);
  list(s, DS_SERVER_BOUND | DS_SERVER_WAITING | DS_SERVER_FAILED, got,
       sizeof got);
  unport(got, port);
  CHECK_STR(got, "127.0.0.1:P 192.0.2.1:P [::1]:P [2001:db8::1]:P "
                 "[fe80::1%eth0]:P");
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(kernel_listeners(port), 5);

  /* A whole link comes, then goes. */
  sv.nev = 0;
  lab_second_link();
  RUN_UNTIL(r, sv.nev >= 3, 3000);
  CHECK(find_event(&sv, DS_SERVER_EV_ADDED, "198.51.100.1:P", port) >= 0);
  CHECK(find_event(&sv, DS_SERVER_EV_ADDED, "[2001:db8:1::1]:P", port) >= 0);
  CHECK(find_event(&sv, DS_SERVER_EV_ADDED, "[fe80::11%dse1]:P", port) >= 0);
  probe_start(&p, nsb, dse1_hosts, port);
  probe_finish(r, &p, 8000);
  snprintf(want, sizeof want,
           "198.51.100.1 -> 198.51.100.1:%u\n"
           "fe80::11%%dse1 -> [fe80::11%%dse1]:%u\n",
           port, port);
  CHECK_STR(p.out, want);
  sv.nev = 0;
  sh("ip link del dse1");
  RUN_UNTIL(r, sv.nev >= 3, 3000);
  CHECK_EQ(sv.nev, 3);
  CHECK(find_event(&sv, DS_SERVER_EV_REMOVED, "198.51.100.1:P", port) >= 0);
  CHECK(find_event(&sv, DS_SERVER_EV_REMOVED, "[2001:db8:1::1]:P", port) >= 0);
  /* The interface is gone, but the text keeps the name it had. */
  CHECK(find_event(&sv, DS_SERVER_EV_REMOVED, "[fe80::11%dse1]:P", port) >= 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(kernel_listeners(port), 5);
  stop_and_free(r, s);
  lab_reset();
}

/* Returns 1 if the kernel has address addr on interface ifname as
 * tentative, as ip(8) says. */
static int ip_says_tentative(const char *ifname, const char *addr)
{
  char out[512];
  sh_out(out, sizeof out, "ip -6 -o addr show dev %s tentative to %s", ifname,
         addr);
  return out[0] != '\0';
}

TEST_T(lab_endpoint_tentative_address_is_bound_when_dad_passes, 40)
{
  const char *nsb = lab_env("LAB_NS_B");
  const char *ifa = lab_env("LAB_IF_A");
  const char *hosts[] = {"2001:db8::88", NULL};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  ds_addr target;
  char err[256] = "", want[256], got[1024];
  uint16_t port;
  int iw, ia;
  double t0, t_usable = 0;

  lab_reset();
  CHECK_EQ(ds_addr_parse(&target, "2001:db8::88", 0, NULL, 0), 0);
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  sh("sysctl -qw net.ipv6.conf.%s.accept_dad=1 "
     "net.ipv6.conf.%s.dad_transmits=1",
     ifa, ifa);
  t0 = ds_test_now_ms();
  sh("ip addr add 2001:db8::88/64 dev %s", ifa);
  RUN_UNTIL(r, sv.nev >= 1, 3000);
  iw = find_event(&sv, DS_SERVER_EV_WAITING, "[2001:db8::88]:P", port);
  CHECK_MSG(iw == 0, "first event should be WAITING (got %d)", sv.ev[0].ev);
  CHECK(ip_says_tentative(ifa, "2001:db8::88"));
  list(s, DS_SERVER_WAITING, got, sizeof got);
  unport(got, port);
  CHECK_STR(got, "[2001:db8::88]:P");
  CHECK_EQ(kernel_listeners(port), 5); /* not bound while tentative */
  /* Watch the kernel's own view while the reactor runs: DAD passes, then
   * the address must be bound within a second. */
  while (sv.nev < 2 && ds_test_now_ms() - t0 < 8000) {
    ds__ifsnap snap;
    size_t i;
    ds_reactor_run_once(r, 5);
    if (t_usable > 0 || ds__ifsnap_take(&snap, AF_INET6) != 0)
      continue;
    for (i = 0; i < snap.naddrs; i++)
      if (ds_addr_compare(&snap.addrs[i].addr, &target) == 0 &&
          !(snap.addrs[i].flags & IFA_F_TENTATIVE))
        t_usable = ds_test_now_ms();
    ds__ifsnap_free(&snap);
  }
  ia = find_event(&sv, DS_SERVER_EV_ADDED, "[2001:db8::88]:P", port);
  CHECK_MSG(ia == 1 && sv.nev == 2, "events %d, added at %d", sv.nev, ia);
  CHECK(!ip_says_tentative(ifa, "2001:db8::88"));
  if (t_usable == 0)
    t_usable = sv.ev[ia].t; /* seen usable in the same turn */
  CHECK_MSG(sv.ev[ia].t - t_usable < 1000, "bound %.1f ms after DAD",
            sv.ev[ia].t - t_usable);
  if (getenv("DS_TEST_FIGURES"))
    fprintf(stderr,
            "  figure: tentative for %.1f ms; bound %.1f ms after DAD\n",
            t_usable - t0, sv.ev[ia].t - t_usable);
  probe_start(&p, nsb, hosts, port);
  probe_finish(r, &p, 8000);
  snprintf(want, sizeof want, "2001:db8::88 -> [2001:db8::88]:%u\n", port);
  CHECK_STR(p.out, want);
  stop_and_free(r, s);
  lab_reset();
}

TEST_T(lab_endpoint_duplicate_address_is_reported_never_bound, 40)
{
  const char *ifa = lab_env("LAB_IF_A");
  ds_reactor *r;
  ds_server *s;
  srv sv;
  ds_server_addr f[4];
  char err[256] = "";
  uint16_t port;
  int iw, ifl;

  lab_reset();
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  /* B owns 2001:db8::2 and defends it: DAD on A fails. B's defence (its
   * neighbour advertisement) is held back until the server has seen the
   * address tentative: answered at once, DAD can fail before the server's
   * first look, which then finds it failed and never waiting. With three
   * probes a second apart, the second or third is answered. */
  sh("ip netns exec %s nft 'add table inet dsdad; "
     "add chain inet dsdad out { type filter hook output priority 0; }; "
     "add rule inet dsdad out icmpv6 type nd-neighbor-advert drop'",
     lab_env("LAB_NS_B"));
  sh("sysctl -qw net.ipv6.conf.%s.accept_dad=1 "
     "net.ipv6.conf.%s.dad_transmits=3",
     ifa, ifa);
  sh("ip addr add 2001:db8::2/64 dev %s", ifa);
  RUN_UNTIL(r, sv.nev >= 1, 8000);
  sh("ip netns exec %s nft delete table inet dsdad", lab_env("LAB_NS_B"));
  RUN_UNTIL(r, sv.nev >= 2, 8000);
  iw = find_event(&sv, DS_SERVER_EV_WAITING, "[2001:db8::2]:P", port);
  ifl = find_event(&sv, DS_SERVER_EV_FAILED, "[2001:db8::2]:P", port);
  CHECK_MSG(iw == 0 && ifl == 1, "waiting at %d, failed at %d", iw, ifl);
  CHECK_EQ(sv.ev[ifl].a.error, DS_EDUPADDR);
  CHECK(find_event(&sv, DS_SERVER_EV_ADDED, "[2001:db8::2]:P", port) < 0);
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED, f, 4), 1);
  CHECK_EQ(f[0].error, DS_EDUPADDR);
  CHECK_EQ(kernel_listeners(port), 5);
  /* Removing it drops the record silently (it was never bound). */
  sh("ip addr del 2001:db8::2/64 dev %s", ifa);
  {
    double end = ds_test_now_ms() + 300;
    while (ds_test_now_ms() < end)
      ds_reactor_run_once(r, 10);
  }
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED, NULL, 0), 0);
  CHECK_EQ(sv.nev, 2);
  stop_and_free(r, s);
  lab_reset();
}

TEST_T(lab_endpoint_stop_closes_every_socket, 40)
{
  const char *nsb = lab_env("LAB_NS_B");
  const char *hosts[] = {"fe80::11%dse1", NULL};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  char err[256] = "", want[256];
  uint16_t port;
  int fds0;

  lab_reset();
  lab_second_link();
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  CHECK_EQ(ds_test_count_fds(), fds0 + 9);
  CHECK_EQ(kernel_listeners(port), 8);
  sv.keep_open = 1;
  probe_start(&p, nsb, hosts, port);
  RUN_UNTIL(r, sv.accepted == 1, 5000);
  CHECK_EQ(ds_server_stop(s, s_stopped, &sv), 0);
  /* Every listener and the netlink socket closed within the call. */
  CHECK_EQ(ds_test_count_fds(), fds0 + 2); /* the connection, the pipe */
  CHECK_EQ(kernel_listeners(port), 0);
  CHECK_EQ(sv.stopped, 0);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(sv.stopped, 1);
  /* An address change after stop reaches nobody. */
  sh("ip addr add 192.0.2.77/24 dev %s", lab_env("LAB_IF_A"));
  CHECK_EQ(ds_tcp_write(sv.open[0], "bye\n", 4), 0);
  ds_tcp_lose_connection(sv.open[0]);
  probe_finish(r, &p, 5000);
  snprintf(want, sizeof want, "fe80::11%%dse1 -> [fe80::11%%dse1]:%u|bye\n",
           port);
  CHECK_STR(p.out, want);
  RUN_UNTIL(r, sv.lost == 1, 2000);
  CHECK_EQ(sv.nev, 0);
  CHECK_EQ(sv.stopped, 1);
  CHECK_EQ(ds_reactor_free(r), 0);
  CHECK_EQ(ds_test_count_fds(), fds0 - 2);
  lab_reset();
}

/* The port range of this namespace, "LOW HIGH". */
static void port_range(char *buf, size_t len)
{
  sh_out(buf, len, "cat /proc/sys/net/ipv4/ip_local_port_range");
}

/* The work of the port-0 retry test, in a child so that the parent
 * restores the namespace's port range whatever happens. */
static void port0_retry_work(void)
{
  const char *others_of[2] = {"40001", "40000"};
  ds_reactor *r;
  unsigned retried = 0;
  int k, q;

  sh("sysctl -qw net.ipv4.ip_local_port_range='40000 40001'");
  CHECK_EQ(ds_reactor_new(&r), 0);
  for (k = 0; k < 10; k++) {
    for (q = 0; q < 2; q++) {
      /* The port q is taken on [2001:db8::1] only: every port-0 server
       * must end on the other port, bound everywhere. */
      uint16_t taken = (uint16_t)(40000 + q);
      int fd = take_port("2001:db8::1", &taken);
      ds_server *s;
      srv sv;
      char err[256] = "", got[512];
      CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
      CHECK_STR((snprintf(got, sizeof got, "%u", ds_server_port(s)), got),
                others_of[q]);
      list(s, DS_SERVER_BOUND, got, sizeof got);
      unport(got, ds_server_port(s));
      CHECK_STR(got, "127.0.0.1:P 192.0.2.1:P [::1]:P [2001:db8::1]:P "
                     "[fe80::1%eth0]:P");
      CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED, NULL, 0), 0);
      retried += ds__server_port_tries(s) - 1;
      CHECK(ds__server_port_tries(s) <= 2);
      CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
      ds_reactor_run_once(r, 0);
      close(fd);
    }
  }
  /* Whatever the kernel's choice, one of the two cases had to start over
   * at least once (a random kernel would miss twenty times in a row with
   * probability 2^-20). */
  CHECK_MSG(retried >= 1, "never retried");

  /* Both ports taken, on different addresses: no port is free everywhere.
   * The tries run out, the last try's port serves every address but the
   * one that holds it, and that one is reported. */
  {
    uint16_t p0 = 40000, p1 = 40001;
    int f0 = take_port("2001:db8::1", &p0), f1 = take_port("::1", &p1);
    ds_server *s;
    srv sv;
    ds_server_addr f[4];
    char err[256] = "", got[512], want[512];
    uint16_t port;
    CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
    port = ds_server_port(s);
    CHECK(port == 40000 || port == 40001);
    CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED, f, 4), 1);
    CHECK_EQ(f[0].error, -EADDRINUSE);
    snprintf(want, sizeof want, port == 40000 ? "[2001:db8::1]:%u" : "[::1]:%u",
             port);
    CHECK_STR(f[0].text, want);
    list(s, DS_SERVER_BOUND, got, sizeof got);
    unport(got, port);
    CHECK_STR(got, port == 40000
                       ? "127.0.0.1:P 192.0.2.1:P [::1]:P [fe80::1%eth0]:P"
                       : "127.0.0.1:P 192.0.2.1:P [2001:db8::1]:P "
                         "[fe80::1%eth0]:P");
    CHECK_EQ(ds__server_port_tries(s), 8);
    CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
    ds_reactor_run_once(r, 0);
    close(f0);
    close(f1);
  }
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST_T(lab_endpoint_port0_picks_another_port_when_taken, 40)
{
  char range[64];
  pid_t pid;
  int status;

  lab_env("LAB_NS_A");
  lab_reset();
  port_range(range, sizeof range);
  fflush(NULL);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    port0_retry_work();
    fflush(NULL);
    _exit(0);
  }
  CHECK_EQ(waitpid(pid, &status, 0), pid);
  sh("sysctl -qw net.ipv4.ip_local_port_range='%s'", range);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "worker failed (status %d)", status);
}

TEST_T(lab_endpoint_explicit_port_taken_on_one_address, 40)
{
  static const char *const eth0[] = {"eth0", NULL};
  ds_server_options only = {
      .family = AF_INET6, .flags = DS_SERVER_NO_LINKLOCAL, .interfaces = eth0};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  ds_server_addr f[4];
  char err[256] = "", got[512];
  uint16_t port = 0;
  int fd, fds0;

  lab_env("LAB_NS_A");
  lab_reset();
  fd = take_port("2001:db8::1", &port);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  /* Partly: the others serve, the taken one is reported. */
  CHECK_MSG(start(&sv, r, port, NULL, &s, err, sizeof err) == 0, "%s", err);
  CHECK_EQ(ds_server_port(s), port);
  list(s, DS_SERVER_BOUND, got, sizeof got);
  unport(got, port);
  CHECK_STR(got, "127.0.0.1:P 192.0.2.1:P [::1]:P [fe80::1%eth0]:P");
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_FAILED, f, 4), 1);
  CHECK_EQ(f[0].error, -EADDRINUSE);
  CHECK_EQ(f[0].state, DS_SERVER_FAILED);
  CHECK_EQ(f[0].addr.port, port);
  CHECK_STR(f[0].ifname, "eth0");
  CHECK_EQ(sv.nev, 0);
  CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  /* Wholly: the only selected address is taken. */
  CHECK_EQ(start(&sv, r, port, &only, &s, err, sizeof err), -EADDRINUSE);
  {
    char name[64];
    snprintf(name, sizeof name, "[2001:db8::1]:%u", port);
    CHECK_MSG(strstr(err, name) != NULL, "err: %s", err);
  }
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(fd);
}

/* Starts a server with o, checks its bound list (":P" for the port), and
 * stops it. */
static void check_filter(ds_reactor *r, ds_server_options *o, const char *want)
{
  ds_server *s;
  srv sv;
  char err[256] = "", got[1024];
  CHECK_MSG(start(&sv, r, 0, o, &s, err, sizeof err) == 0, "%s", err);
  list(s, DS_SERVER_BOUND, got, sizeof got);
  unport(got, ds_server_port(s));
  CHECK_STR(got, want);
  CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  ds_reactor_run_once(r, 0);
}

TEST_T(lab_endpoint_interface_and_family_filters, 40)
{
  static const char *const dse1[] = {"dse1", NULL};
  static const char *const eth0[] = {"eth0", NULL};
  static const char *const lo[] = {"lo", NULL};
  static const char *const two[] = {"eth0", "dse1", NULL};
  ds_server_options o;
  ds_reactor *r;
  ds_server *s;
  srv sv;
  char err[256] = "";
  uint16_t port;
  int i;

  lab_env("LAB_NS_A");
  lab_reset();
  lab_second_link();
  CHECK_EQ(ds_reactor_new(&r), 0);
  check_filter(r, &(ds_server_options){0}, ALL_A);
  check_filter(r, &(ds_server_options){.interfaces = dse1},
               "198.51.100.1:P [2001:db8:1::1]:P [fe80::11%dse1]:P");
  check_filter(r, &(ds_server_options){.family = AF_INET},
               "127.0.0.1:P 192.0.2.1:P 198.51.100.1:P");
  check_filter(r, &(ds_server_options){.family = AF_INET6, .interfaces = eth0},
               "[2001:db8::1]:P [fe80::1%eth0]:P");
  check_filter(r,
               &(ds_server_options){.flags = DS_SERVER_NO_LOOPBACK |
                                             DS_SERVER_NO_LINKLOCAL},
               "192.0.2.1:P 198.51.100.1:P [2001:db8::1]:P "
               "[2001:db8:1::1]:P");
  check_filter(r, &(ds_server_options){.flags = DS_SERVER_NO_LOOPBACK},
               "192.0.2.1:P 198.51.100.1:P [2001:db8::1]:P "
               "[2001:db8:1::1]:P [fe80::1%eth0]:P [fe80::11%dse1]:P");
  check_filter(r, &(ds_server_options){.interfaces = lo},
               "127.0.0.1:P [::1]:P");
  check_filter(
      r,
      &(ds_server_options){.flags = DS_SERVER_NO_LINKLOCAL, .interfaces = two},
      "192.0.2.1:P 198.51.100.1:P [2001:db8::1]:P "
      "[2001:db8:1::1]:P");

  /* Following keeps to the filters: IPv4 on dse1 only. */
  memset(&o, 0, sizeof o);
  o.family = AF_INET;
  o.interfaces = dse1;
  CHECK_MSG(start(&sv, r, 0, &o, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  sh("ip addr add 192.0.2.99/24 dev eth0 && "
     "ip addr add 2001:db8::99/64 dev dse1 nodad && "
     "ip addr add 198.51.100.99/24 dev dse1");
  RUN_UNTIL(r, sv.nev >= 1, 3000);
  for (i = 0; i < 20; i++)
    ds_reactor_run_once(r, 10);
  CHECK_EQ(sv.nev, 1);
  CHECK(find_event(&sv, DS_SERVER_EV_ADDED, "198.51.100.99:P", port) == 0);
  CHECK_EQ(ds_server_stop(s, NULL, NULL), 0);
  stop_and_free(r, NULL);
  lab_reset();
}

TEST_T(lab_endpoint_same_ipv4_address_on_two_links_is_one_socket, 40)
{
  const char *nsb = lab_env("LAB_NS_B");
  const char *hosts[] = {"192.0.2.1", NULL};
  ds_reactor *r;
  ds_server *s;
  srv sv;
  probe p;
  char err[256] = "", got[1024], want[256];
  uint16_t port;
  int i;

  lab_reset();
  lab_second_link();
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  /* 192.0.2.1 on dse1 too: nothing changes, nothing is said. */
  sh("ip addr add 192.0.2.1/32 dev dse1");
  for (i = 0; i < 30; i++)
    ds_reactor_run_once(r, 10);
  CHECK_EQ(sv.nev, 0);
  list(s, DS_SERVER_BOUND, got, sizeof got);
  unport(got, port);
  CHECK_STR(got, ALL_A);
  /* Taken off dse1 again: still held by eth0, still served. */
  sh("ip addr del 192.0.2.1/32 dev dse1");
  for (i = 0; i < 30; i++)
    ds_reactor_run_once(r, 10);
  CHECK_EQ(sv.nev, 0);
  probe_start(&p, nsb, hosts, port);
  probe_finish(r, &p, 5000);
  snprintf(want, sizeof want, "192.0.2.1 -> 192.0.2.1:%u\n", port);
  CHECK_STR(p.out, want);
  stop_and_free(r, s);
  lab_reset();
}

/* Returns the fd of this process's netlink socket (the server's watch:
 * the snapshot socket never outlives a snapshot), or -1. */
static int netlink_fd(void)
{
  int fd;
  for (fd = 3; fd < 4096; fd++) {
    int d;
    socklen_t l = sizeof d;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &l) == 0 && d == AF_NETLINK)
      return fd;
  }
  return -1;
}

/* Returns how many messages the kernel dropped for netlink socket fd
 * (the Drops column of /proc/net/netlink), or -1. */
static long netlink_drops(int fd)
{
  struct stat st;
  char line[256];
  long drops = -1;
  FILE *f;
  CHECK_EQ(fstat(fd, &st), 0);
  f = fopen("/proc/net/netlink", "r");
  CHECK(f != NULL);
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long d, ino;
    if (sscanf(line, "%*s %*d %*u %*x %*d %*d %*d %*d %lu %lu", &d, &ino) ==
            2 &&
        ino == st.st_ino)
      drops = (long)d;
  }
  fclose(f);
  return drops;
}

TEST_T(lab_endpoint_netlink_overflow_is_repaired_by_a_snapshot, 40)
{
  ds_reactor *r;
  ds_server *s;
  srv sv;
  char err[256] = "", batch[64];
  uint16_t port;
  int fd, zero = 0, i, fds0;
  FILE *f;

  lab_env("LAB_NS_A");
  lab_reset();
  /* A veth pair with both ends in A stands for a dummy interface (this
   * kernel may have no dummy driver). */
  sh("ip link add dse2 type veth peer name dse2p && "
     "ip link set dse2 addrgenmode none up && "
     "ip link set dse2p addrgenmode none up");
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_MSG(start(&sv, r, 0, NULL, &s, err, sizeof err) == 0, "%s", err);
  port = ds_server_port(s);
  fds0 = ds_test_count_fds();
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_BOUND, NULL, 0), 5);
  /* The smallest receive buffer the kernel allows: 200 notifications
   * cannot fit, so messages are lost (ENOBUFS). */
  fd = netlink_fd();
  CHECK(fd >= 0);
  CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &zero, sizeof zero), 0);
  snprintf(batch, sizeof batch, "%s/addrs", lab_env("LAB_TMP"));
  f = fopen(batch, "w");
  CHECK(f != NULL);
  for (i = 1; i <= 200; i++)
    fprintf(f, "addr add 2001:db8:2::%x/64 dev dse2 nodad\n", i);
  fclose(f);
  sh("ip -b %s", batch);
  CHECK_MSG(netlink_drops(fd) > 0, "no message was dropped (%ld)",
            netlink_drops(fd));
  /* Every address is bound all the same, each reported once. */
  RUN_UNTIL(r, sv.nadded == 200, 5000);
  for (i = 0; i < 10; i++)
    ds_reactor_run_once(r, 10);
  CHECK_EQ(sv.nadded, 200);
  CHECK_EQ(sv.nev, 200);
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_BOUND, NULL, 0), 205);
  CHECK_EQ(kernel_listeners(port), 205);
  CHECK_EQ(ds_test_count_fds(), fds0 + 200);
  sh("ip link del dse2");
  RUN_UNTIL(r, sv.nremoved == 200, 5000);
  CHECK_EQ(ds_server_addrs(s, DS_SERVER_BOUND, NULL, 0), 5);
  CHECK_EQ(ds_test_count_fds(), fds0);
  stop_and_free(r, s);
  lab_reset();
}
