/* TCP across a veth pair between two lab namespaces: link-local literals
 * with scope ids on both ends, black-holed connects that time out, cancel
 * during a hanging connect. These tests run inside namespace A through
 * `tests/lab/lab.sh run-pair` (tests/check.sh does it); the server side
 * runs in a child that enters namespace B.
 */
#include "test.h"

#include "dualstack.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

typedef struct {
  ds_reactor *r;
  ds_tcp *t;
  int made, failed, lost, reason;
  char got[256];
  size_t ngot;
} cl;

static void c_made(ds_tcp *t, void *u)
{
  ((cl *)u)->made = 1;
  ((cl *)u)->t = t;
}

static void c_data(ds_tcp *t, const void *d, size_t n, void *u)
{
  cl *c = u;
  (void)t;
  if (c->ngot + n < sizeof c->got) {
    memcpy(c->got + c->ngot, d, n);
    c->ngot += n;
  }
}

static void c_lost(ds_tcp *t, int reason, void *u)
{
  (void)t;
  ((cl *)u)->lost = 1;
  ((cl *)u)->reason = reason;
}

static void c_failed(ds_tcp *t, int reason, void *u)
{
  (void)t;
  ((cl *)u)->failed = 1;
  ((cl *)u)->reason = reason;
}

static const ds_protocol cproto = {.connection_made = c_made,
                                   .data_received = c_data,
                                   .connection_lost = c_lost,
                                   .connection_failed = c_failed};

/* --- the server in namespace B ------------------------------------------ */

/* Accepts one connection and writes back "HOST PEER\n" as it sees them. */
static int srv_factory(void *data, ds_tcp *t, const ds_protocol **p,
                       void **user)
{
  ds_addr host, peer;
  char h[DS_ADDR_STRLEN], pe[DS_ADDR_STRLEN], line[200];
  (void)data;
  ds_tcp_get_host(t, &host);
  ds_tcp_get_peer(t, &peer);
  ds_addr_format(&host, h, sizeof h, DS_ADDR_FMT_PORT);
  ds_addr_format(&peer, pe, sizeof pe, DS_ADDR_FMT_PORT);
  snprintf(line, sizeof line, "%s %s %u\n", h, pe, peer.scope_id);
  *p = &cproto;
  *user = data;
  ds_tcp_write(t, line, strlen(line));
  ds_tcp_lose_connection(t);
  return 0;
}

/* Forks a server in namespace B listening on iface; writes "PORT TEXT\n"
 * (the listener's own address text) to the pipe, serves one connection,
 * exits. Returns the child's pid; the first line is read into info. */
static pid_t server_in_b(const char *iface, char *info, size_t infolen)
{
  int p[2];
  pid_t pid;
  ssize_t n;
  CHECK_EQ(pipe(p), 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char path[256], err[256], text[DS_ADDR_STRLEN], line[300];
    ds_reactor *r;
    ds_listener *l;
    ds_addr a;
    cl c = {0};
    int fd;
    close(p[0]);
    snprintf(path, sizeof path, "/run/netns/%s", getenv("LAB_NS_B"));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      _exit(3);
    close(fd);
    if (ds_reactor_new(&r) != 0)
      _exit(4);
    if (ds_listen_tcp(r, 0, iface, 0, 0, srv_factory, &c, &l, err,
                      sizeof err) != 0) {
      dprintf(p[1], "ERR %s\n", err);
      _exit(5);
    }
    ds_listener_get_host(l, &a);
    ds_addr_format(&a, text, sizeof text, 0);
    snprintf(line, sizeof line, "%u %s\n", a.port, text);
    if (write(p[1], line, strlen(line)) < 0)
      _exit(6);
    close(p[1]);
    while (!c.lost)
      ds_reactor_run_once(r, 100);
    ds_listener_close(l);
    ds_reactor_run_once(r, 0);
    _exit(ds_reactor_free(r) == 0 ? 0 : 7);
  }
  close(p[1]);
  n = read(p[0], info, infolen - 1);
  close(p[0]);
  info[n > 0 ? n : 0] = '\0';
  return pid;
}

TEST(lab_tcp_link_local_with_scope_on_both_ends)
{
  const char *ifa = ds_test_lab_env("LAB_IF_A");
  const char *ifb = ds_test_lab_env("LAB_IF_B");
  unsigned idx_a = (unsigned)atoi(ds_test_lab_env("LAB_IFINDEX_A"));
  char iface[64], info[300], want[300], target[64], err[256];
  char text[DS_ADDR_STRLEN];
  unsigned port = 0;
  ds_reactor *r;
  ds_addr bind, host, peer;
  cl c = {0};
  ds_tcp *t;
  pid_t pid;
  int status, rc;
  uint16_t bport;

  /* Listen on B's link-local literal and see the same literal back. */
  snprintf(iface, sizeof iface, "%s%%%s", ds_test_lab_env("LAB_B_LL"), ifb);
  pid = server_in_b(iface, info, sizeof info);
  CHECK_MSG(sscanf(info, "%u", &port) == 1, "server: %s", info);
  snprintf(want, sizeof want, "%u %s\n", port, iface);
  CHECK_STR(info, want);

  /* Connect from A with a link-local bind address and a fixed port. */
  CHECK_EQ(ds_reactor_new(&r), 0);
  c.r = r;
  bport = 40000 + (uint16_t)(getpid() % 20000);
  snprintf(text, sizeof text, "%s%%%s", ds_test_lab_env("LAB_A_LL"), ifa);
  CHECK_EQ(ds_addr_parse(&bind, text, bport, err, sizeof err), 0);
  CHECK_EQ(bind.scope_id, idx_a);
  snprintf(target, sizeof target, "%s%%%s", ds_test_lab_env("LAB_B_LL"), ifa);
  rc = ds_connect_tcp(r, target, (uint16_t)port, 3000, &bind, &cproto, &c, &t,
                      err, sizeof err);
  CHECK_MSG(rc == 0, "connect %s: %s", target, err);
  c.t = t;
  RUN_UNTIL(r, c.made, 3000);
  CHECK_EQ(ds_tcp_get_host(c.t, &host), 0);
  CHECK_EQ(ds_tcp_get_peer(c.t, &peer), 0);
  CHECK_EQ(host.port, bport);
  CHECK_EQ(host.scope_id, idx_a);
  CHECK_EQ(peer.scope_id, idx_a);
  ds_addr_format(&peer, text, sizeof text, DS_ADDR_FMT_PORT);
  snprintf(want, sizeof want, "[%s%%%s]:%u", ds_test_lab_env("LAB_B_LL"), ifa,
           port);
  CHECK_STR(text, want);
  RUN_UNTIL(r, c.lost, 3000);
  /* The server saw its own link-local address and ours, each with the
   * scope of its own interface. */
  snprintf(want, sizeof want, "[%s%%%s]:%u [%s%%%s]:%u %s\n",
           ds_test_lab_env("LAB_B_LL"), ifb, port, ds_test_lab_env("LAB_A_LL"),
           ifb, bport, ds_test_lab_env("LAB_IFINDEX_B"));
  c.got[c.ngot] = '\0';
  CHECK_STR(c.got, want);
  CHECK_EQ(waitpid(pid, &status, 0), pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server status %d",
            status);
  CHECK_EQ(ds_reactor_free(r), 0);
}

/* Connects to a black-holed address with a timeout and checks the bound. */
static void blackhole_times_out(const char *addr_var)
{
  const char *dst = ds_test_lab_env(addr_var);
  ds_reactor *r;
  cl c = {0};
  ds_tcp *t;
  char err[256];
  double t0, took;
  int fds0;

  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" %s 80 tcp", dst);
  CHECK_EQ(ds_reactor_new(&r), 0);
  c.r = r;
  fds0 = ds_test_count_fds();
  t0 = ds_test_now_ms();
  CHECK_EQ(
      ds_connect_tcp(r, dst, 80, 600, NULL, &cproto, &c, &t, err, sizeof err),
      0);
  RUN_UNTIL(r, c.failed, 5000);
  took = ds_test_now_ms() - t0;
  CHECK_EQ(c.reason, -ETIMEDOUT);
  CHECK_MSG(took >= 595 && took < 600 + 400, "timed out after %.1f ms", took);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(lab_tcp_blackholed_ipv4_connect_times_out)
{
  blackhole_times_out("LAB_B4");
}

TEST(lab_tcp_blackholed_ipv6_connect_times_out)
{
  blackhole_times_out("LAB_B6");
}

TEST(lab_tcp_cancel_during_hanging_connect)
{
  const char *dst = ds_test_lab_env("LAB_B6");
  ds_reactor *r;
  cl c = {0};
  ds_tcp *t;
  char err[256];
  int fds0;

  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" %s 81 tcp", dst);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_EQ(
      ds_connect_tcp(r, dst, 81, 0, NULL, &cproto, &c, &t, err, sizeof err), 0);
  CHECK_EQ(ds_test_count_fds(), fds0 + 1);
  for (int i = 0; i < 5; i++)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(c.failed, 0); /* still hanging */
  ds_tcp_abort(t);
  CHECK_EQ(ds_test_count_fds(), fds0);
  RUN_UNTIL(r, c.failed, 1000);
  CHECK_EQ(c.reason, -ECANCELED);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(lab_tcp_refused_across_the_link)
{
  const char *dst = ds_test_lab_env("LAB_B4");
  ds_reactor *r;
  cl c = {0};
  ds_tcp *t;
  char err[256];
  double t0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  t0 = ds_test_now_ms();
  CHECK_EQ(
      ds_connect_tcp(r, dst, 9, 3000, NULL, &cproto, &c, &t, err, sizeof err),
      0);
  RUN_UNTIL(r, c.failed, 3000);
  CHECK_EQ(c.reason, -ECONNREFUSED);
  CHECK(ds_test_now_ms() - t0 < 500);
  CHECK_EQ(ds_reactor_free(r), 0);
}
