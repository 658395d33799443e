/* UDP and multicast across veth pairs between two lab namespaces:
 * unicast with link-local scopes and documentation addresses, IPv4 and
 * IPv6 multicast (ff02:: with a scope, ff05::) joined and left, loopback
 * off, two receivers on one group, ports sharing a port number that get
 * only the groups they joined, the outgoing interface choosing between
 * two veths, a link-local address naming an interface by its scope,
 * source-specific joins, ICMP port unreachable across the link,
 * retargeting a wildcard port, and a real EAGAIN under a shaped link.
 *
 * These tests run inside namespace A through `tests/lab/lab.sh run-pair`
 * (tests/check.sh does it). The B side runs in this same process: a port
 * opened while the process is in B (setns) stays a socket of B after the
 * process returns to A, so one reactor drives both ends and a test can
 * order what happens on each exactly ("the marker arrived, the group
 * datagram sent before it did not") without a second process. Interface
 * names and indexes are looked up in the namespace the call is made in,
 * so every call about a port of B is made from inside B.
 */
#include "test.h"

#include "dualstack.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/socket.h>

/* The namespaces, as fds for setns(). */
static int ns_a = -1, ns_b = -1;

static void lab_open(void)
{
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", ds_test_lab_env("LAB_NS_B"));
  ns_a = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  ns_b = open(path, O_RDONLY | O_CLOEXEC);
  CHECK_MSG(ns_a >= 0 && ns_b >= 0, "cannot open the namespaces");
}

static void in_a(void)
{
  CHECK_EQ(setns(ns_a, CLONE_NEWNET), 0);
}

static void in_b(void)
{
  CHECK_EQ(setns(ns_b, CLONE_NEWNET), 0);
}

/* What one port saw. */
typedef struct rx {
  ds_udp *u;
  int n;
  char data[32][32];
  ds_addr from[32];
  int refused, errors, resumed, last_error;
  int echo;
  int seq_next, seq_bad; /* datagrams numbered "0p...", "1p...": order */
} rx;

static void on_dgram(ds_udp *u, const void *data, size_t len,
                     const ds_addr *from, void *user)
{
  rx *x = user;
  if (x->n < 32) {
    size_t k = len < 31 ? len : 31;
    memcpy(x->data[x->n], data, k);
    x->data[x->n][k] = '\0';
    x->from[x->n] = *from;
  }
  x->n++;
  if (len > 0 && ((const char *)data)[0] >= '0' &&
      ((const char *)data)[0] <= '9') {
    const char *p = data;
    int v = 0;
    size_t i;
    for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++)
      v = v * 10 + (p[i] - '0');
    if (v != x->seq_next)
      x->seq_bad++;
    x->seq_next++;
  }
  if (x->echo)
    CHECK_EQ(ds_udp_write(u, data, len, from), 0);
}

static void on_refused(ds_udp *u, void *user)
{
  (void)u;
  ((rx *)user)->refused++;
}

static void on_error(ds_udp *u, int err, const ds_addr *addr, void *user)
{
  (void)u;
  (void)addr;
  ((rx *)user)->errors++;
  ((rx *)user)->last_error = err;
}

static void on_resume(ds_udp *u, void *user)
{
  (void)u;
  ((rx *)user)->resumed++;
}

static const ds_udp_protocol proto = {.datagram_received = on_dgram,
                                      .connection_refused = on_refused,
                                      .error = on_error,
                                      .resume_producing = on_resume};

/* Opens a port for x on iface:port in the current namespace. */
static void open_port(rx *x, ds_reactor *r, const char *iface, uint16_t port,
                      unsigned flags)
{
  char err[256] = "";
  int rc;
  memset(x, 0, sizeof *x);
  rc = ds_listen_udp(r, port, iface, 0, flags, &proto, x, &x->u, err,
                     sizeof err);
  CHECK_MSG(rc == 0, "listen on %s: %s", iface ? iface : "default", err);
}

static uint16_t port_of(const rx *x)
{
  ds_addr a;
  CHECK_EQ(ds_udp_get_host(x->u, &a), 0);
  return a.port;
}

/* Returns how many datagrams x got with exactly this text. */
static int count(const rx *x, const char *text)
{
  int i, c = 0;
  for (i = 0; i < x->n && i < 32; i++)
    if (strcmp(x->data[i], text) == 0)
      c++;
  return c;
}

/* Writes text to host:port through u; the write must succeed. */
static void send_text(ds_udp *u, const char *text, const char *host,
                      uint16_t port)
{
  char err[256] = "";
  int rc = ds_udp_write_to(u, text, strlen(text), host, port, err, sizeof err);
  CHECK_MSG(rc == 0, "write '%s' to %s: %s", text, host, err);
}

static void join(ds_udp *u, const char *group, const char *iface)
{
  char err[256] = "";
  int rc = ds_udp_join_group(u, group, iface, err, sizeof err);
  CHECK_MSG(rc == 0, "join %s on %s: %s", group, iface ? iface : "-", err);
}

static void leave(ds_udp *u, const char *group, const char *iface)
{
  char err[256] = "";
  int rc = ds_udp_leave_group(u, group, iface, err, sizeof err);
  CHECK_MSG(rc == 0, "leave %s on %s: %s", group, iface ? iface : "-", err);
}

static void set_out(ds_udp *u, const char *iface)
{
  char err[256] = "";
  int rc = ds_udp_set_outgoing_interface(u, iface, err, sizeof err);
  CHECK_MSG(rc == 0, "outgoing interface %s: %s", iface, err);
}

/* Text of a with port and numeric scope (namespace-independent). */
static const char *text_of(const ds_addr *a, char *buf)
{
  CHECK(ds_addr_format(a, buf, DS_ADDR_STRLEN,
                       DS_ADDR_FMT_PORT | DS_ADDR_FMT_SCOPE_NUMERIC) > 0);
  return buf;
}

/* Sends marker from s to B's unicast address b_host:port and waits until
 * x got it, then a while longer: whatever s sent before the marker has
 * had every chance to arrive by then. */
static void marker(ds_reactor *r, ds_udp *s, rx *x, const char *b_host,
                   uint16_t port, const char *text)
{
  send_text(s, text, b_host, port);
  RUN_UNTIL(r, count(x, text) == 1, 3000);
  ds_test_run_for(r, 200);
}

static void teardown(ds_reactor *r, rx **ports, int n)
{
  int i, rc;
  for (i = 0; i < n; i++)
    if (ports[i]->u != NULL) {
      ds_udp_close(ports[i]->u);
      ports[i]->u = NULL;
    }
  rc = ds_reactor_free(r);
  for (i = 0; i < 5 && rc == -EBUSY; i++) {
    ds_reactor_run_once(r, 0);
    rc = ds_reactor_free(r);
  }
  CHECK_EQ(rc, 0);
}

TEST(lab_udp_link_local_unicast_with_scope)
{
  const char *ifa = ds_test_lab_env("LAB_IF_A"),
             *ifb = ds_test_lab_env("LAB_IF_B");
  unsigned idx_a = (unsigned)atoi(ds_test_lab_env("LAB_IFINDEX_A"));
  unsigned idx_b = (unsigned)atoi(ds_test_lab_env("LAB_IFINDEX_B"));
  char la[64], lb[64], lb_from_a[64], want[128], t[DS_ADDR_STRLEN], err[256];
  ds_reactor *r;
  rx a, b, w;
  ds_addr h, to;
  uint16_t pa, pb;
  int fds0;

  lab_open();
  snprintf(la, sizeof la, "%s%%%s", ds_test_lab_env("LAB_A_LL"), ifa);
  snprintf(lb, sizeof lb, "%s%%%s", ds_test_lab_env("LAB_B_LL"), ifb);
  snprintf(lb_from_a, sizeof lb_from_a, "%s%%%s", ds_test_lab_env("LAB_B_LL"),
           ifa);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  open_port(&a, r, la, 0, 0);
  in_b();
  open_port(&b, r, lb, 0, 0);
  b.echo = 1;
  /* Get host keeps the scope: B's literal, as B names it. */
  CHECK_EQ(ds_udp_get_host(b.u, &h), 0);
  CHECK_EQ(h.scope_id, idx_b);
  CHECK(ds_addr_format(&h, t, sizeof t, DS_ADDR_FMT_PORT) > 0);
  pb = h.port;
  snprintf(want, sizeof want, "[%s]:%u", lb, pb);
  CHECK_STR(t, want);
  in_a();
  CHECK_EQ(ds_udp_get_host(a.u, &h), 0);
  CHECK_EQ(h.scope_id, idx_a);
  pa = h.port;

  send_text(a.u, "hello", lb_from_a, pb);
  RUN_UNTIL(r, b.n == 1 && a.n == 1, 3000);
  /* B saw A's link-local address with B's own interface as the scope,
   * and its echo to that address came back with A's. */
  CHECK_EQ(b.from[0].scope_id, idx_b);
  in_b();
  CHECK(ds_addr_format(&b.from[0], t, sizeof t, DS_ADDR_FMT_PORT) > 0);
  in_a();
  snprintf(want, sizeof want, "[%s%%%s]:%u", ds_test_lab_env("LAB_A_LL"), ifb,
           pa);
  CHECK_STR(t, want);
  CHECK_EQ(a.from[0].scope_id, idx_a);
  CHECK(ds_addr_format(&a.from[0], t, sizeof t, DS_ADDR_FMT_PORT) > 0);
  snprintf(want, sizeof want, "[%s]:%u", lb_from_a, pb);
  CHECK_STR(t, want);

  /* Without a scope: a wildcard port cannot guess one; the port on a
   * scoped address sends by its own interface. */
  open_port(&w, r, "::", 0, 0);
  CHECK_EQ(ds_udp_write_to(w.u, "x", 1, ds_test_lab_env("LAB_B_LL"), pb, err,
                           sizeof err),
           DS_ENEEDSCOPE);
  CHECK_MSG(strstr(err, ds_test_lab_env("LAB_B_LL")) != NULL, "err: %s", err);
  CHECK_EQ(ds_addr_parse(&to, ds_test_lab_env("LAB_B_LL"), pb, NULL, 0), 0);
  CHECK_EQ(ds_udp_write(a.u, "noscope", 7, &to), 0);
  RUN_UNTIL(r, count(&b, "noscope") == 1, 3000);
  {
    rx *all[] = {&a, &b, &w};
    teardown(r, all, 3);
  }
  CHECK_EQ(ds_test_count_fds(), fds0 - 2); /* the reactor's own fds */
}

/* A's port on wild writes to B's port on b_host, which echoes. */
static void unicast_across(const char *wild, const char *a_host,
                           const char *b_host)
{
  ds_reactor *r;
  rx a, b;
  char t[DS_ADDR_STRLEN], want[128], host[64];
  uint16_t pa, pb;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, wild, 0, 0);
  in_b();
  open_port(&b, r, b_host, 0, 0);
  b.echo = 1;
  in_a();
  pa = port_of(&a);
  pb = port_of(&b);
  send_text(a.u, "across", b_host, pb);
  RUN_UNTIL(r, b.n == 1 && a.n == 1, 3000);
  snprintf(host, sizeof host, strchr(a_host, ':') ? "[%s]" : "%s", a_host);
  snprintf(want, sizeof want, "%s:%u", host, pa);
  CHECK_STR(text_of(&b.from[0], t), want);
  snprintf(host, sizeof host, strchr(b_host, ':') ? "[%s]" : "%s", b_host);
  snprintf(want, sizeof want, "%s:%u", host, pb);
  CHECK_STR(text_of(&a.from[0], t), want);
  CHECK_STR(a.data[0], "across");
  {
    rx *all[] = {&a, &b};
    teardown(r, all, 2);
  }
}

TEST(lab_udp_unicast_across_the_link_ipv4)
{
  unicast_across("0.0.0.0", ds_test_lab_env("LAB_A4"),
                 ds_test_lab_env("LAB_B4"));
}

TEST(lab_udp_unicast_across_the_link_ipv6)
{
  unicast_across("::", ds_test_lab_env("LAB_A6"), ds_test_lab_env("LAB_B6"));
}

/* Joins group in B on the interface given as b_iface, sends from A by
 * a_out, checks arrival and source; leaves (by b_iface_leave) and checks
 * that the next group datagram does not arrive while a unicast marker
 * sent after it does. */
static void join_then_leave(const char *wild, const char *group_in_a,
                            const char *group_in_b, const char *b_iface,
                            const char *b_iface_leave, const char *a_out,
                            const char *b_host, const char *want_src)
{
  ds_reactor *r;
  rx s, b;
  char t[DS_ADDR_STRLEN], want[128];
  uint16_t port;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&b, r, wild, 0, 0);
  port = port_of(&b);
  join(b.u, group_in_b, b_iface);
  in_a();
  open_port(&s, r, wild, 0, 0);
  if (a_out != NULL)
    set_out(s.u, a_out);
  send_text(s.u, "joined", group_in_a, port);
  RUN_UNTIL(r, count(&b, "joined") == 1, 3000);
  snprintf(want, sizeof want, strchr(want_src, ':') ? "[%s]:%u" : "%s:%u",
           want_src, port_of(&s));
  CHECK_STR(text_of(&b.from[0], t), want);

  in_b();
  leave(b.u, group_in_b, b_iface_leave);
  in_a();
  send_text(s.u, "left", group_in_a, port);
  marker(r, s.u, &b, b_host, port, "marker");
  CHECK_EQ(count(&b, "left"), 0);
  CHECK_EQ(b.n, 2);
  {
    rx *all[] = {&s, &b};
    teardown(r, all, 2);
  }
}

TEST(lab_udp_ipv4_multicast_join_then_leave)
{
  char src[64];
  /* Joined by interface name, left by index; A names its outgoing
   * interface by address (the lab has no 224.0.0.0/4 route). */
  snprintf(src, sizeof src, "%s", ds_test_lab_env("LAB_A4"));
  join_then_leave("0.0.0.0", "239.1.2.3", "239.1.2.3",
                  ds_test_lab_env("LAB_IF_B"), ds_test_lab_env("LAB_IFINDEX_B"),
                  ds_test_lab_env("LAB_A4"), ds_test_lab_env("LAB_B4"), src);
}

TEST(lab_udp_ipv4_multicast_join_by_address)
{
  /* B's interface named by B's own address; A's by name. */
  join_then_leave("0.0.0.0", "239.1.2.3", "239.1.2.3",
                  ds_test_lab_env("LAB_B4"), ds_test_lab_env("LAB_IF_B"),
                  ds_test_lab_env("LAB_IF_A"), ds_test_lab_env("LAB_B4"),
                  ds_test_lab_env("LAB_A4"));
}

TEST(lab_udp_ipv6_multicast_link_scope_join_then_leave)
{
  char ga[64], gb[64], src[64];
  unsigned idx_b = (unsigned)atoi(ds_test_lab_env("LAB_IFINDEX_B"));
  /* The group's own scope names the interface on both sides; the source
   * is A's link-local address, with B's interface as its scope. */
  snprintf(ga, sizeof ga, "ff02::4242%%%s", ds_test_lab_env("LAB_IF_A"));
  snprintf(gb, sizeof gb, "ff02::4242%%%s", ds_test_lab_env("LAB_IF_B"));
  snprintf(src, sizeof src, "%s%%%u", ds_test_lab_env("LAB_A_LL"), idx_b);
  join_then_leave("::", ga, gb, NULL, ds_test_lab_env("LAB_IFINDEX_B"), NULL,
                  ds_test_lab_env("LAB_B6"), src);
}

TEST(lab_udp_ipv6_multicast_link_scope_by_outgoing_interface)
{
  char src[64];
  unsigned idx_b = (unsigned)atoi(ds_test_lab_env("LAB_IFINDEX_B"));
  /* No scope on the group when sending: the outgoing interface (by
   * name) stands for it. B joins by index. */
  snprintf(src, sizeof src, "%s%%%u", ds_test_lab_env("LAB_A_LL"), idx_b);
  join_then_leave("::", "ff02::4243", "ff02::4243",
                  ds_test_lab_env("LAB_IFINDEX_B"), ds_test_lab_env("LAB_IF_B"),
                  ds_test_lab_env("LAB_IF_A"), ds_test_lab_env("LAB_B6"), src);
}

TEST(lab_udp_ipv6_multicast_site_scope_join_then_leave)
{
  /* ff05::: B joins by its address, A sends by index; the source is A's
   * global address (the group is wider than the link). */
  join_then_leave("::", "ff05::4242", "ff05::4242", ds_test_lab_env("LAB_B6"),
                  ds_test_lab_env("LAB_IF_B"), ds_test_lab_env("LAB_IFINDEX_A"),
                  ds_test_lab_env("LAB_B6"), ds_test_lab_env("LAB_A6"));
}

/* A port in A that joined group sends to it: with loopback on it hears
 * itself, with loopback off only B does. */
static void loopback_off(const char *wild, const char *group,
                         const char *b_host)
{
  ds_reactor *r;
  rx s, b;
  uint16_t port;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&b, r, wild, 0, 0);
  port = port_of(&b);
  join(b.u, group, ds_test_lab_env("LAB_IF_B"));
  in_a();
  open_port(&s, r, wild, port, 0);
  join(s.u, group, ds_test_lab_env("LAB_IF_A"));
  set_out(s.u, ds_test_lab_env("LAB_IF_A"));
  CHECK_EQ(ds_udp_get_multicast_loopback(s.u), 1);
  send_text(s.u, "loop-on", group, port);
  RUN_UNTIL(r, count(&b, "loop-on") == 1 && count(&s, "loop-on") == 1, 3000);

  CHECK_EQ(ds_udp_set_multicast_loopback(s.u, 0), 0);
  CHECK_EQ(ds_udp_get_multicast_loopback(s.u), 0);
  send_text(s.u, "loop-off", group, port);
  RUN_UNTIL(r, count(&b, "loop-off") == 1, 3000);
  marker(r, s.u, &b, b_host, port, "marker");
  CHECK_EQ(count(&s, "loop-off"), 0);
  CHECK_EQ(s.n, 1);
  {
    rx *all[] = {&s, &b};
    teardown(r, all, 2);
  }
}

TEST(lab_udp_multicast_loopback_off_stops_self_delivery_ipv4)
{
  loopback_off("0.0.0.0", "239.1.2.4", ds_test_lab_env("LAB_B4"));
}

TEST(lab_udp_multicast_loopback_off_stops_self_delivery_ipv6)
{
  loopback_off("::", "ff05::4244", ds_test_lab_env("LAB_B6"));
}

/* Two ports in B on one port number (DS_UDP_REUSE) joined to one group:
 * each gets the datagram once. */
static void two_receivers(const char *wild, const char *group)
{
  ds_reactor *r;
  rx s, b1, b2;
  uint16_t port;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&b1, r, wild, 0, DS_UDP_REUSE);
  port = port_of(&b1);
  open_port(&b2, r, wild, port, DS_UDP_REUSE);
  join(b1.u, group, ds_test_lab_env("LAB_IF_B"));
  join(b2.u, group, ds_test_lab_env("LAB_IF_B"));
  in_a();
  open_port(&s, r, wild, 0, 0);
  set_out(s.u, ds_test_lab_env("LAB_IF_A"));
  CHECK_EQ(ds_udp_set_multicast_ttl(s.u, 1), 0);
  send_text(s.u, "both", group, port);
  RUN_UNTIL(r, b1.n == 1 && b2.n == 1, 3000);
  ds_test_run_for(r, 100);
  CHECK_EQ(b1.n, 1);
  CHECK_EQ(b2.n, 1);
  CHECK_STR(b1.data[0], "both");
  CHECK_STR(b2.data[0], "both");
  {
    rx *all[] = {&s, &b1, &b2};
    teardown(r, all, 3);
  }
}

TEST(lab_udp_two_receivers_on_one_group_both_receive_ipv4)
{
  two_receivers("0.0.0.0", "239.1.2.5");
}

TEST(lab_udp_two_receivers_on_one_group_both_receive_ipv6)
{
  two_receivers("::", "ff05::4245");
}

/* Two ports in B share a port number (DS_UDP_REUSE); one joins group on
 * eth0, the other joins nothing. Datagrams to the group from eight source
 * ports reach the joined port only, every one of them. Linux 6.5 and later
 * hand an early-demuxed IPv4 multicast datagram to a member of an
 * SO_REUSEPORT group picked by a hash of the flow: eight flows leave that
 * one chance in 256 to go unnoticed. */
static void reuse_ports_get_only_their_groups(const char *wild,
                                              const char *group)
{
  ds_reactor *r;
  rx j, n, s[8];
  uint16_t port;
  int i;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&j, r, wild, 0, DS_UDP_REUSE);
  port = port_of(&j);
  open_port(&n, r, wild, port, DS_UDP_REUSE);
  join(j.u, group, ds_test_lab_env("LAB_IF_B"));
  in_a();
  for (i = 0; i < 8; i++) {
    char text[8];
    open_port(&s[i], r, wild, 0, 0);
    set_out(s[i].u, ds_test_lab_env("LAB_IF_A"));
    snprintf(text, sizeof text, "g%d", i);
    send_text(s[i].u, text, group, port);
  }
  RUN_UNTIL(r, j.n + n.n == 8, 3000);
  ds_test_run_for(r, 100);
  CHECK_MSG(j.n == 8 && n.n == 0,
            "the joined port got %d of 8, the other port %d", j.n, n.n);
  for (i = 0; i < 8; i++) {
    char text[8];
    snprintf(text, sizeof text, "g%d", i);
    CHECK_EQ(count(&j, text), 1);
  }
  {
    rx *all[] = {&j,    &n,    &s[0], &s[1], &s[2],
                 &s[3], &s[4], &s[5], &s[6], &s[7]};
    teardown(r, all, 10);
  }
}

TEST(lab_udp_reuse_ports_get_only_the_groups_they_joined_ipv4)
{
  reuse_ports_get_only_their_groups("0.0.0.0", "239.1.2.9");
}

TEST(lab_udp_reuse_ports_get_only_the_groups_they_joined_ipv6)
{
  reuse_ports_get_only_their_groups("::", "ff05::4249");
}

/* A second veth pair, eth1 in A and B (198.51.100.0/24, fe80::11 and
 * fe80::12), removed at the end (and first, after a failed run). */
static void second_link_up(void)
{
  const char *nb = ds_test_lab_env("LAB_NS_B");
  ds_test_sh("ip link del eth1 2>/dev/null; "
             "ip link add eth1 type veth peer name eth1 netns %s && "
             "ip link set eth1 addrgenmode none up && "
             "ip -n %s link set eth1 addrgenmode none up && "
             "ip addr add 198.51.100.1/24 dev eth1 && "
             "ip addr add fe80::11/64 dev eth1 nodad && "
             "ip -n %s addr add 198.51.100.2/24 dev eth1 && "
             "ip -n %s addr add fe80::12/64 dev eth1 nodad",
             nb, nb, nb, nb);
}

TEST(lab_udp_outgoing_interface_decides_the_veth)
{
  ds_reactor *r;
  rx s4, s6, b0, b1, b6;
  char text[DS_ADDR_STRLEN], t[DS_ADDR_STRLEN];
  unsigned b_eth0, b_eth1, a_eth1, idx;
  uint16_t p4, p6;

  lab_open();
  second_link_up();
  a_eth1 = if_nametoindex("eth1");
  CHECK(a_eth1 != 0);
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  b_eth0 = if_nametoindex("eth0");
  b_eth1 = if_nametoindex("eth1");
  CHECK(b_eth0 != 0 && b_eth1 != 0);
  /* IPv4: one port per interface; each hears the group only where it
   * joined it. IPv6: one port joined on both; the link-local source's
   * scope says which link a datagram came by. */
  open_port(&b0, r, "0.0.0.0", 0, DS_UDP_REUSE);
  p4 = port_of(&b0);
  open_port(&b1, r, "0.0.0.0", p4, DS_UDP_REUSE);
  join(b0.u, "239.1.2.6", "eth0");
  join(b1.u, "239.1.2.6", "eth1");
  open_port(&b6, r, "::", 0, 0);
  p6 = port_of(&b6);
  join(b6.u, "ff02::4246", "eth0");
  join(b6.u, "ff02::4246", "eth1");
  in_a();
  open_port(&s4, r, "0.0.0.0", 0, 0);
  open_port(&s6, r, "::", 0, 0);

  set_out(s4.u, "eth1");
  CHECK_EQ(ds_udp_get_outgoing_interface(s4.u, text, sizeof text, &idx), 4);
  CHECK_STR(text, "eth1");
  CHECK_EQ(idx, a_eth1);
  send_text(s4.u, "via-eth1", "239.1.2.6", p4);
  set_out(s6.u, "fe80::11%eth1"); /* by address */
  CHECK_EQ(ds_udp_get_outgoing_interface(s6.u, text, sizeof text, &idx), 4);
  CHECK_STR(text, "eth1");
  send_text(s6.u, "via-eth1", "ff02::4246", p6);
  RUN_UNTIL(r, b1.n == 1 && b6.n == 1, 3000);
  CHECK_STR(b1.data[0], "via-eth1");
  snprintf(text, sizeof text, "198.51.100.1:%u", port_of(&s4));
  CHECK_STR(text_of(&b1.from[0], t), text);
  CHECK_EQ(b6.from[0].scope_id, b_eth1);
  snprintf(text, sizeof text, "[fe80::11%%%u]:%u", b_eth1, port_of(&s6));
  CHECK_STR(text_of(&b6.from[0], t), text);

  set_out(s4.u, "192.0.2.1"); /* eth0, by address */
  set_out(s6.u, "eth0");
  send_text(s4.u, "via-eth0", "239.1.2.6", p4);
  send_text(s6.u, "via-eth0", "ff02::4246", p6);
  RUN_UNTIL(r, b0.n == 1 && b6.n == 2, 3000);
  CHECK_STR(b0.data[0], "via-eth0");
  snprintf(text, sizeof text, "%s:%u", ds_test_lab_env("LAB_A4"), port_of(&s4));
  CHECK_STR(text_of(&b0.from[0], t), text);
  CHECK_STR(b6.data[1], "via-eth0");
  CHECK_EQ(b6.from[1].scope_id, b_eth0);
  snprintf(text, sizeof text, "[%s%%%u]:%u", ds_test_lab_env("LAB_A_LL"),
           b_eth0, port_of(&s6));
  CHECK_STR(text_of(&b6.from[1], t), text);
  ds_test_run_for(r, 200);
  /* Each IPv4 datagram reached only the port of its link. */
  CHECK_EQ(b0.n, 1);
  CHECK_EQ(b1.n, 1);
  CHECK_EQ(b6.n, 2);
  {
    rx *all[] = {&s4, &s6, &b0, &b1, &b6};
    teardown(r, all, 5);
  }
  ds_test_sh("ip link del eth1");
}

/* A link-local address names an interface only with its scope: the same
 * fe80::1 on A's eth0 and eth1 resolves to the one its scope names, an
 * address held by one interface resolves without a scope, and a scope
 * naming an interface that does not hold the address is an error. */
TEST(lab_udp_interface_by_link_local_address_takes_its_scope)
{
  ds_reactor *r;
  rx s6;
  char err[256] = "", text[DS_ADDR_STRLEN], want[128];
  unsigned a_eth0, a_eth1, idx;
  const char *ll = ds_test_lab_env("LAB_A_LL");

  lab_open();
  second_link_up();
  ds_test_sh("ip addr add %s/64 dev eth1 nodad", ll);
  a_eth0 = if_nametoindex("eth0");
  a_eth1 = if_nametoindex("eth1");
  CHECK(a_eth0 != 0 && a_eth1 != 0);
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&s6, r, "::", 0, 0);

  snprintf(text, sizeof text, "%s%%eth1", ll);
  set_out(s6.u, text);
  CHECK_EQ(ds_udp_get_outgoing_interface(s6.u, text, sizeof text, &idx), 4);
  CHECK_EQ(idx, a_eth1);
  snprintf(text, sizeof text, "%s%%eth0", ll);
  set_out(s6.u, text);
  CHECK_EQ(ds_udp_get_outgoing_interface(s6.u, text, sizeof text, &idx), 4);
  CHECK_EQ(idx, a_eth0);
  set_out(s6.u, "fe80::11"); /* only on eth1 */
  CHECK_EQ(ds_udp_get_outgoing_interface(s6.u, text, sizeof text, &idx), 4);
  CHECK_EQ(idx, a_eth1);
  /* Joined where the scope says: leaving elsewhere finds no membership. */
  snprintf(text, sizeof text, "%s%%eth1", ll);
  join(s6.u, "ff02::4247", text);
  CHECK_EQ(ds_udp_leave_group(s6.u, "ff02::4247", "eth0", err, sizeof err),
           -EADDRNOTAVAIL);
  leave(s6.u, "ff02::4247", "eth1");

  CHECK_EQ(
      ds_udp_set_outgoing_interface(s6.u, "fe80::11%eth0", err, sizeof err),
      -EADDRNOTAVAIL);
  CHECK_STR(err, "no interface has address 'fe80::11%eth0'");
  snprintf(text, sizeof text, "%s%%lo", ll);
  CHECK_EQ(ds_udp_join_group(s6.u, "ff02::4247", text, err, sizeof err),
           -EADDRNOTAVAIL);
  snprintf(want, sizeof want, "no interface has address '%s'", text);
  CHECK_STR(err, want);
  {
    rx *all[] = {&s6};
    teardown(r, all, 1);
  }
  ds_test_sh("ip link del eth1");
}

/* B joins group for source src1 only; A sends from src1 and src2 (two
 * ports on A's two addresses), then B adds src2, then drops src1. */
static void source_specific(const char *wild, const char *group,
                            const char *src1, const char *src2,
                            const char *b_host)
{
  ds_reactor *r;
  rx s1, s2, b;
  char err[256] = "";
  uint16_t port;
  int rc;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&b, r, wild, 0, 0);
  port = port_of(&b);
  rc = ds_udp_join_source_group(b.u, group, src1, "eth0", err, sizeof err);
  CHECK_MSG(rc == 0, "join %s source %s: %s", group, src1, err);
  in_a();
  open_port(&s1, r, src1, 0, 0);
  open_port(&s2, r, src2, 0, 0);
  set_out(s1.u, "eth0");
  set_out(s2.u, "eth0");
  send_text(s2.u, "from-src2", group, port);
  send_text(s1.u, "from-src1", group, port);
  RUN_UNTIL(r, count(&b, "from-src1") == 1, 3000);
  marker(r, s1.u, &b, b_host, port, "marker-1");
  CHECK_EQ(count(&b, "from-src2"), 0);

  in_b();
  rc = ds_udp_join_source_group(b.u, group, src2, "eth0", err, sizeof err);
  CHECK_MSG(rc == 0, "add source %s: %s", src2, err);
  rc = ds_udp_leave_source_group(b.u, group, src1, "eth0", err, sizeof err);
  CHECK_MSG(rc == 0, "drop source %s: %s", src1, err);
  in_a();
  send_text(s1.u, "again-src1", group, port);
  send_text(s2.u, "again-src2", group, port);
  RUN_UNTIL(r, count(&b, "again-src2") == 1, 3000);
  marker(r, s1.u, &b, b_host, port, "marker-2");
  CHECK_EQ(count(&b, "again-src1"), 0);
  CHECK_EQ(b.n, 4);
  {
    rx *all[] = {&s1, &s2, &b};
    teardown(r, all, 3);
  }
}

TEST(lab_udp_source_specific_join_receives_only_its_source_ipv4)
{
  ds_test_sh("ip addr del 192.0.2.11/24 dev eth0 2>/dev/null; "
             "ip addr add 192.0.2.11/24 dev eth0");
  source_specific("0.0.0.0", "232.1.2.3", ds_test_lab_env("LAB_A4"),
                  "192.0.2.11", ds_test_lab_env("LAB_B4"));
  ds_test_sh("ip addr del 192.0.2.11/24 dev eth0");
}

TEST(lab_udp_source_specific_join_receives_only_its_source_ipv6)
{
  ds_test_sh("ip addr del 2001:db8::11/64 dev eth0 2>/dev/null; "
             "ip addr add 2001:db8::11/64 dev eth0 nodad");
  source_specific("::", "ff35::8000:1", ds_test_lab_env("LAB_A6"),
                  "2001:db8::11", ds_test_lab_env("LAB_B6"));
  ds_test_sh("ip addr del 2001:db8::11/64 dev eth0");
}

/* A connected port hears the ICMP port unreachable B answers with. */
static void refused_across(const char *wild, const char *b_host)
{
  ds_reactor *r;
  rx a;
  char err[256];
  double t0;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, wild, 0, 0);
  CHECK_EQ(ds_udp_connect(a.u, b_host, 9, err, sizeof err), 0);
  t0 = ds_test_now_ms();
  CHECK_EQ(ds_udp_write(a.u, "anyone?", 7, NULL), 0);
  CHECK_EQ(a.refused, 0);
  RUN_UNTIL(r, a.refused == 1, 3000);
  CHECK(ds_test_now_ms() - t0 < 1000);
  CHECK_EQ(a.errors, 0);
  {
    rx *all[] = {&a};
    teardown(r, all, 1);
  }
}

TEST(lab_udp_connected_port_hears_icmp_unreachable_ipv4)
{
  refused_across("0.0.0.0", ds_test_lab_env("LAB_B4"));
}

TEST(lab_udp_connected_port_hears_icmp_unreachable_ipv6)
{
  refused_across("::", ds_test_lab_env("LAB_B6"));
}

/* A wildcard port connected to a loopback peer, then retargeted to B:
 * the port stays, the source address is chosen afresh (the kernel alone
 * would keep the loopback source and refuse the connect). */
static void retarget(const char *wild, const char *lo, const char *a_host,
                     const char *b_host)
{
  ds_reactor *r;
  rx a, l, b;
  ds_addr h;
  char err[256], t[DS_ADDR_STRLEN], want[128];
  uint16_t pa;

  lab_open();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, wild, 0, 0);
  open_port(&l, r, lo, 0, 0);
  in_b();
  open_port(&b, r, b_host, 0, 0);
  in_a();
  pa = port_of(&a);
  CHECK_EQ(ds_udp_connect(a.u, lo, port_of(&l), err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_host(a.u, &h), 0);
  CHECK(ds_addr_format(&h, t, sizeof t, 0) > 0);
  CHECK_STR(t, lo);
  CHECK_EQ(ds_udp_write(a.u, "to-lo", 5, NULL), 0);
  RUN_UNTIL(r, l.n == 1, 3000);

  CHECK_MSG(ds_udp_connect(a.u, b_host, port_of(&b), err, sizeof err) == 0,
            "retarget: %s", err);
  CHECK_EQ(ds_udp_get_host(a.u, &h), 0);
  CHECK_EQ(h.port, pa);
  CHECK(ds_addr_format(&h, t, sizeof t, 0) > 0);
  CHECK_STR(t, a_host);
  CHECK_EQ(ds_udp_write(a.u, "to-b", 4, NULL), 0);
  RUN_UNTIL(r, b.n == 1, 3000);
  snprintf(want, sizeof want, strchr(a_host, ':') ? "[%s]:%u" : "%s:%u", a_host,
           pa);
  CHECK_STR(text_of(&b.from[0], t), want);
  {
    rx *all[] = {&a, &l, &b};
    teardown(r, all, 3);
  }
}

TEST(lab_udp_retarget_wildcard_port_rechooses_source_ipv4)
{
  retarget("0.0.0.0", "127.0.0.1", ds_test_lab_env("LAB_A4"),
           ds_test_lab_env("LAB_B4"));
}

TEST(lab_udp_retarget_wildcard_port_rechooses_source_ipv6)
{
  retarget("::", "::1", ds_test_lab_env("LAB_A6"), ds_test_lab_env("LAB_B6"));
}

/* A shaped link (tbf) and the smallest send buffer make the kernel say
 * EAGAIN for real: datagrams wait in the port's queue, a full queue says
 * -EAGAIN, resume_producing follows, and B gets all of them in order. */
TEST_T(lab_udp_real_eagain_is_queued_and_flushed_in_order, 40)
{
  ds_reactor *r;
  rx s, b;
  char text[16];
  int i, sndbuf = 1, eagain = 0, queued_max = 0;
  const int total = 60;
  static char payload[1000];
  uint16_t port;

  lab_open();
  ds_test_sh("tc qdisc del dev eth0 root 2>/dev/null; "
             "tc qdisc add dev eth0 root tbf rate 2mbit burst 1600 latency 2s");
  CHECK_EQ(ds_reactor_new(&r), 0);
  in_b();
  open_port(&b, r, "0.0.0.0", 0, 0);
  port = port_of(&b);
  in_a();
  open_port(&s, r, "0.0.0.0", 0, 0);
  CHECK_EQ(
      setsockopt(ds_udp_fd(s.u), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf),
      0);
  ds_udp_set_queue_limit(s.u, 8000);
  for (i = 0; i < total;) {
    char err[256];
    int rc;
    memset(payload, 'p', sizeof payload);
    memcpy(payload, text, (size_t)snprintf(text, sizeof text, "%d", i));
    rc = ds_udp_write_to(s.u, payload, sizeof payload,
                         ds_test_lab_env("LAB_B4"), port, err, sizeof err);
    if (ds_udp_buffered(s.u) > (size_t)queued_max)
      queued_max = (int)ds_udp_buffered(s.u);
    if (rc == -EAGAIN) {
      int resumed = s.resumed;
      eagain++;
      RUN_UNTIL(r, s.resumed > resumed, 5000);
      continue;
    }
    CHECK_MSG(rc == 0, "write %d: %s", i, err);
    i++;
  }
  RUN_UNTIL(r, b.n == total, 10000);
  ds_test_run_for(r, 100);
  CHECK_EQ(b.n, total);
  CHECK_EQ(b.seq_bad, 0);
  CHECK_EQ(s.errors, 0);
  CHECK_MSG(queued_max >= 8000 && eagain > 0,
            "the queue never filled (max %d bytes, %d EAGAIN)", queued_max,
            eagain);
  {
    rx *all[] = {&s, &b};
    teardown(r, all, 2);
  }
  ds_test_sh("tc qdisc del dev eth0 root");
}
