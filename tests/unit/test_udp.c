/* UDP on real loopback sockets: ports on both families and their
 * addresses, datagrams both ways with their sources, connect and
 * retarget, errors for the other family, host names and missing scopes,
 * ICMP port unreachable on a connected port, flow labels, the send queue
 * (EAGAIN), EMSGSIZE, closing from callbacks, sharing a port
 * (DS_UDP_REUSE), and the multicast options and argument checks that need
 * no second host (tests/unit/test_udp_lab.c sends multicast across a veth
 * pair).
 */
#include "test.h"

#include "dualstack.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* What one port saw. */
typedef struct rx {
  ds_reactor *r;
  ds_udp *u;
  int n;             /* datagrams delivered */
  char data[16][64]; /* their first bytes, as text */
  size_t len[16];
  ds_addr from[16];
  int refused, errors, resumed;
  int last_error;
  ds_addr error_addr;
  int error_had_addr;
  int inside;             /* set while a call that must not call back runs */
  int called_inside;      /* a callback ran while inside was set */
  struct rx *close_other; /* port closed by the first datagram, if set */
  int close_self;         /* close u on the first datagram */
  int echo;               /* send every datagram back to its source */
} rx;

static void on_dgram(ds_udp *u, const void *data, size_t len,
                     const ds_addr *from, void *user)
{
  rx *x = user;
  if (x->inside)
    x->called_inside = 1;
  if (x->n < 16) {
    size_t k = len < 63 ? len : 63;
    memcpy(x->data[x->n], data, k);
    x->data[x->n][k] = '\0';
    x->len[x->n] = len;
    x->from[x->n] = *from;
  }
  x->n++;
  if (x->echo)
    CHECK_EQ(ds_udp_write(u, data, len, from), 0);
  if (x->close_other != NULL && x->close_other->u != NULL) {
    ds_udp_close(x->close_other->u);
    x->close_other->u = NULL;
    x->close_other = NULL;
  }
  if (x->close_self) {
    x->close_self = 0;
    ds_udp_close(u);
    x->u = NULL;
  }
}

static void on_refused(ds_udp *u, void *user)
{
  rx *x = user;
  (void)u;
  if (x->inside)
    x->called_inside = 1;
  x->refused++;
}

static void on_error(ds_udp *u, int err, const ds_addr *addr, void *user)
{
  rx *x = user;
  (void)u;
  if (x->inside)
    x->called_inside = 1;
  x->errors++;
  x->last_error = err;
  x->error_had_addr = addr != NULL;
  if (addr != NULL)
    x->error_addr = *addr;
}

static void on_resume(ds_udp *u, void *user)
{
  rx *x = user;
  (void)u;
  if (x->inside)
    x->called_inside = 1;
  x->resumed++;
}

static const ds_udp_protocol proto = {
    .datagram_received = on_dgram,
    .connection_refused = on_refused,
    .error = on_error,
    .resume_producing = on_resume,
};

/* Opens a port on iface:0 for x. */
static void open_port(rx *x, ds_reactor *r, const char *iface, unsigned flags)
{
  char err[256] = "";
  int rc;
  memset(x, 0, sizeof *x);
  x->r = r;
  x->inside = 1;
  rc = ds_listen_udp(r, 0, iface, 0, flags, &proto, x, &x->u, err, sizeof err);
  x->inside = 0;
  CHECK_MSG(rc == 0, "listen on %s: %s (%s)", iface ? iface : "default",
            ds_strerror(rc), err);
}

static uint16_t port_of(const rx *x)
{
  ds_addr a;
  CHECK_EQ(ds_udp_get_host(x->u, &a), 0);
  return a.port;
}

static const char *text_of(const ds_addr *a, char *buf)
{
  CHECK(ds_addr_format(a, buf, DS_ADDR_STRLEN, DS_ADDR_FMT_PORT) > 0);
  return buf;
}

/* Closes the ports given (NULL ends the list), runs a turn, frees r. */
static void teardown(ds_reactor *r, rx *a, rx *b, rx *c)
{
  rx *all[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    if (all[i] != NULL && all[i]->u != NULL) {
      ds_udp_close(all[i]->u);
      all[i]->u = NULL;
    }
  int rc = ds_reactor_free(r);
  for (int i = 0; i < 5 && rc == -EBUSY; i++) {
    ds_reactor_run_once(r, 0);
    rc = ds_reactor_free(r);
  }
  CHECK_EQ(rc, 0);
}

TEST(udp_ipv6_port_on_loopback_reports_its_address)
{
  ds_reactor *r;
  rx x6, x4, xd;
  ds_addr a;
  char text[DS_ADDR_STRLEN], want[64];
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&x6, r, "::1", 0);
  CHECK_EQ(ds_udp_get_host(x6.u, &a), 0);
  CHECK_EQ(a.family, AF_INET6);
  CHECK(a.port != 0);
  snprintf(want, sizeof want, "[::1]:%u", a.port);
  CHECK_STR(text_of(&a, text), want);
  /* 0.0.0.0 and :: are separate ports of one number (IPV6_V6ONLY). */
  open_port(&x4, r, "127.0.0.1", 0);
  CHECK_EQ(ds_udp_get_host(x4.u, &a), 0);
  CHECK_EQ(a.family, AF_INET);
  snprintf(want, sizeof want, "127.0.0.1:%u", a.port);
  CHECK_STR(text_of(&a, text), want);
  open_port(&xd, r, NULL, 0);
  CHECK_EQ(ds_udp_get_host(xd.u, &a), 0);
  CHECK_EQ(a.family, AF_INET);
  CHECK(ds_addr_format(&a, text, sizeof text, 0) > 0);
  CHECK_STR(text, "0.0.0.0");
  CHECK_EQ(ds_udp_get_peer(xd.u, &a), -ENOTCONN);
  /* The reactor refuses to go while ports live. */
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  teardown(r, &x6, &x4, &xd);
}

/* Sends a to b and b back to a (b echoes), and checks each source. */
static void both_ways(const char *host, const char *wild)
{
  ds_reactor *r;
  rx a, b;
  ds_addr ha, hb;
  char err[256], t1[DS_ADDR_STRLEN], t2[DS_ADDR_STRLEN];
  int fds0 = ds_test_count_fds();

  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, host, 0);
  open_port(&b, r, wild, 0);
  b.echo = 1;
  CHECK_EQ(ds_udp_get_host(a.u, &ha), 0);
  CHECK_EQ(ds_udp_get_host(b.u, &hb), 0);
  a.inside = 1;
  CHECK_EQ(ds_udp_write_to(a.u, "ping", 4, host, hb.port, err, sizeof err), 0);
  a.inside = 0;
  RUN_UNTIL(r, b.n == 1 && a.n == 1, 3000);
  CHECK_EQ(a.called_inside, 0);
  CHECK_STR(b.data[0], "ping");
  /* b saw a's address and port; a saw b's reply come from host:b. */
  CHECK_STR(text_of(&b.from[0], t1), text_of(&ha, t2));
  /* Linux labels IPv6 flows itself (net.ipv6.auto_flowlabels): the
   * label arrives with the source; everything else is a's address. */
  CHECK(b.from[0].flowinfo <= 0xfffff);
  b.from[0].flowinfo = 0;
  CHECK_EQ(ds_addr_compare(&b.from[0], &ha), 0);
  CHECK_STR(a.data[0], "ping");
  hb.ip = ha.ip; /* b listens on a wildcard: it answered from host */
  CHECK_STR(text_of(&a.from[0], t1), text_of(&hb, t2));
  teardown(r, &a, &b, NULL);
  CHECK_EQ(ds_test_count_fds(), fds0);
}

TEST(udp_writes_both_ways_with_source_addresses_ipv4)
{
  both_ways("127.0.0.1", "0.0.0.0");
}

TEST(udp_writes_both_ways_with_source_addresses_ipv6)
{
  ds_test_require_ipv6();
  both_ways("::1", "::");
}

/* Connect, write without an address, only the peer's datagrams, then
 * retarget to a third port. */
static void connect_then_write(const char *host, const char *wild)
{
  ds_reactor *r;
  rx a, b, c;
  ds_addr peer, h0, h1;
  char err[256];
  uint16_t pa, pb, pc;

  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, wild, 0);
  open_port(&b, r, host, 0);
  open_port(&c, r, host, 0);
  pa = port_of(&a);
  pb = port_of(&b);
  pc = port_of(&c);
  CHECK_EQ(ds_udp_write(a.u, "x", 1, NULL), -EDESTADDRREQ);
  /* c's datagram waits in a's socket while a connects to b: connect
   * promised only b's datagrams, so it must not be delivered. */
  CHECK_EQ(ds_udp_write_to(c.u, "early-c", 7, host, pa, err, sizeof err), 0);
  CHECK_EQ(ds_udp_connect(a.u, host, pb, err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_peer(a.u, &peer), 0);
  CHECK_EQ(peer.port, pb);
  CHECK_EQ(ds_udp_get_host(a.u, &h0), 0);
  CHECK_EQ(h0.port, pa);
  CHECK_EQ(ds_udp_write(a.u, "to-b", 4, NULL), 0);
  CHECK_EQ(ds_udp_write_to(b.u, "from-b", 6, host, pa, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write_to(c.u, "late-c", 6, host, pa, err, sizeof err), 0);
  RUN_UNTIL(r, b.n == 1 && a.n == 1, 3000);
  ds_test_run_for(r, 100);
  CHECK_STR(b.data[0], "to-b");
  CHECK_EQ(b.from[0].port, pa);
  CHECK_EQ(a.n, 1);
  CHECK_STR(a.data[0], "from-b");

  /* Connecting again retargets: the port stays, c is the peer now. */
  CHECK_EQ(ds_udp_connect(a.u, host, pc, err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_host(a.u, &h1), 0);
  CHECK_EQ(h1.port, pa);
  CHECK_EQ(ds_udp_get_peer(a.u, &peer), 0);
  CHECK_EQ(peer.port, pc);
  CHECK_EQ(ds_udp_write(a.u, "to-c", 4, NULL), 0);
  CHECK_EQ(ds_udp_write_to(b.u, "stale-b", 7, host, pa, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write_to(c.u, "from-c", 6, host, pa, err, sizeof err), 0);
  RUN_UNTIL(r, c.n == 1 && a.n == 2, 3000);
  ds_test_run_for(r, 100);
  CHECK_STR(c.data[0], "to-c");
  CHECK_EQ(c.from[0].port, pa);
  CHECK_EQ(b.n, 1);
  CHECK_EQ(a.n, 2);
  CHECK_STR(a.data[1], "from-c");
  teardown(r, &a, &b, &c);
}

TEST(udp_connect_then_write_ipv4)
{
  connect_then_write("127.0.0.1", "0.0.0.0");
}

TEST(udp_connect_then_write_ipv6)
{
  ds_test_require_ipv6();
  connect_then_write("::1", "::");
}

TEST(udp_connect_on_specific_address_keeps_it)
{
  ds_reactor *r;
  rx a, b;
  ds_addr h;
  char err[256], text[DS_ADDR_STRLEN];
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&b, r, "0.0.0.0", 0);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port_of(&b), err, sizeof err), 0);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port_of(&b), err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_host(a.u, &h), 0);
  CHECK(ds_addr_format(&h, text, sizeof text, 0) > 0);
  CHECK_STR(text, "127.0.0.1");
  /* A failed connect leaves the previous peer in place. */
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", 0, err, sizeof err), -EINVAL);
  CHECK_EQ(ds_udp_get_peer(a.u, &h), 0);
  CHECK_EQ(h.port, port_of(&b));
  CHECK_EQ(ds_udp_write(a.u, "still", 5, NULL), 0);
  RUN_UNTIL(r, b.n == 1, 3000);
  teardown(r, &a, &b, NULL);
}

TEST(udp_write_to_other_family_fails)
{
  ds_reactor *r;
  rx a4, a6, b6;
  ds_addr to;
  char err[256] = "";
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a4, r, "127.0.0.1", 0);
  open_port(&a6, r, "::1", 0);
  open_port(&b6, r, "::1", 0);
  CHECK_EQ(ds_addr_parse(&to, "::1", port_of(&b6), NULL, 0), 0);
  CHECK_EQ(ds_udp_write(a4.u, "x", 1, &to), DS_EFAMILY);
  CHECK_EQ(ds_udp_write_to(a4.u, "x", 1, "::1", port_of(&b6), err, sizeof err),
           DS_EFAMILY);
  CHECK_MSG(strstr(err, "IPv6") && strstr(err, "IPv4") && strstr(err, "::1"),
            "err: %s", err);
  CHECK_EQ(
      ds_udp_write_to(a6.u, "x", 1, "127.0.0.1", port_of(&a4), err, sizeof err),
      DS_EFAMILY);
  CHECK_MSG(strstr(err, "127.0.0.1") != NULL, "err: %s", err);
  /* A v4-mapped address is IPv6 text, but an IPv6 port has IPV6_V6ONLY:
   * the kernel's error, not a silent drop. */
  CHECK(ds_udp_write_to(a6.u, "x", 1, "::ffff:127.0.0.1", port_of(&a4), err,
                        sizeof err) < 0);
  CHECK_EQ(ds_udp_connect(a4.u, "::1", port_of(&b6), err, sizeof err),
           DS_EFAMILY);
  CHECK_EQ(ds_udp_get_peer(a4.u, &to), -ENOTCONN);
  memset(&to, 0, sizeof to);
  CHECK_EQ(ds_udp_write(a4.u, "x", 1, &to), -EINVAL);
  ds_test_run_for(r, 100);
  CHECK_EQ(b6.n + a4.n + a6.n, 0);
  CHECK_EQ(a4.errors + a6.errors + a4.refused, 0);
  teardown(r, &a4, &a6, &b6);
}

TEST(udp_write_to_hostname_and_missing_scope_fail)
{
  ds_reactor *r;
  rx a, a6, x;
  ds_addr to;
  char err[256] = "";
  int fds0;
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&a6, r, "::", 0);
  CHECK_EQ(ds_udp_write_to(a.u, "x", 1, "localhost", 9, err, sizeof err),
           DS_EHOSTNAME);
  CHECK_MSG(strstr(err, "localhost") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_write_to(a.u, "x", 1, "example.com", 9, err, sizeof err),
           DS_EHOSTNAME);
  CHECK_EQ(ds_udp_connect(a.u, "example.com", 9, err, sizeof err),
           DS_EHOSTNAME);
  CHECK_EQ(ds_udp_write_to(a.u, "x", 1, "192.0.2.300", 9, err, sizeof err),
           DS_EBADADDR);
  CHECK_EQ(ds_udp_write_to(a6.u, "x", 1, "fe80::1", 9, err, sizeof err),
           DS_ENEEDSCOPE);
  CHECK_MSG(strstr(err, "fe80::1") != NULL, "err: %s", err);
  CHECK_EQ(ds_addr_parse(&to, "fe80::1", 9, NULL, 0), 0);
  CHECK_EQ(ds_udp_write(a6.u, "x", 1, &to), DS_ENEEDSCOPE);
  CHECK_EQ(ds_addr_parse(&to, "ff02::1", 9, NULL, 0), 0);
  CHECK_EQ(ds_udp_write(a6.u, "x", 1, &to), DS_ENEEDSCOPE);
  CHECK_EQ(ds_udp_connect(a6.u, "fe80::1", 9, err, sizeof err), DS_ENEEDSCOPE);
  CHECK_EQ(
      ds_udp_write_to(a6.u, "x", 1, "fe80::1%nosuchif0", 9, err, sizeof err),
      -ENODEV);
  CHECK_MSG(strstr(err, "nosuchif0") != NULL, "err: %s", err);
  /* Listening: no port, no fd, no callback. */
  fds0 = ds_test_count_fds();
  memset(&x, 0, sizeof x);
  CHECK_EQ(
      ds_listen_udp(r, 0, "localhost", 0, 0, &proto, &x, &x.u, err, sizeof err),
      DS_EHOSTNAME);
  CHECK(x.u == NULL);
  CHECK_EQ(
      ds_listen_udp(r, 0, "fe80::1", 0, 0, &proto, &x, &x.u, err, sizeof err),
      DS_ENEEDSCOPE);
  CHECK_EQ(
      ds_listen_udp(r, 0, "ff02::1", 0, 0, &proto, &x, &x.u, err, sizeof err),
      DS_ENEEDSCOPE);
  CHECK_EQ(
      ds_listen_udp(r, 0, "::1", 0, 0x80, &proto, &x, &x.u, err, sizeof err),
      -EINVAL);
  CHECK_EQ(ds_test_count_fds(), fds0);
  ds_test_run_for(r, 50);
  CHECK_EQ(a.n + a6.n + a.errors + a6.errors, 0);
  teardown(r, &a, &a6, NULL);
}

/* Connects to a closed port: the ICMP port unreachable that answers each
 * datagram reaches connection_refused, never inside the write. */
static void refused(const char *host, int family)
{
  ds_reactor *r;
  rx a, b;
  char err[256];
  uint16_t port = ds_test_closed_port(family, SOCK_DGRAM);
  double t0;

  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, family == AF_INET6 ? "::" : "0.0.0.0", 0);
  CHECK_EQ(ds_udp_connect(a.u, host, port, err, sizeof err), 0);
  t0 = ds_test_now_ms();
  a.inside = 1;
  CHECK_EQ(ds_udp_write(a.u, "one", 3, NULL), 0);
  a.inside = 0;
  CHECK_EQ(a.refused, 0);
  RUN_UNTIL(r, a.refused == 1, 3000);
  CHECK(ds_test_now_ms() - t0 < 1000);
  CHECK_EQ(a.errors, 0);

  /* The kernel holds the next refusal until a read or a send takes it:
   * a write that meets it still sends its datagram (which is refused in
   * turn) and reports the held refusal on a later turn. */
  CHECK_EQ(ds_udp_write(a.u, "two", 3, NULL), 0);
  usleep(50000); /* the ICMP answer arrives; the reactor does not run */
  a.inside = 1;
  CHECK_EQ(ds_udp_write(a.u, "three", 5, NULL), 0);
  a.inside = 0;
  CHECK_EQ(a.called_inside, 0);
  RUN_UNTIL(r, a.refused == 3, 3000);
  ds_test_run_for(r, 100);
  CHECK_EQ(a.refused, 3);

  /* Still open and usable: retarget to a live port. */
  open_port(&b, r, host, 0);
  CHECK_EQ(ds_udp_connect(a.u, host, port_of(&b), err, sizeof err), 0);
  CHECK_EQ(ds_udp_write(a.u, "live", 4, NULL), 0);
  RUN_UNTIL(r, b.n == 1, 3000);
  CHECK_EQ(a.refused, 3);
  teardown(r, &a, &b, NULL);
}

TEST(udp_icmp_unreachable_on_connected_port_reaches_protocol_ipv4)
{
  refused("127.0.0.1", AF_INET);
}

TEST(udp_icmp_unreachable_on_connected_port_reaches_protocol_ipv6)
{
  ds_test_require_ipv6();
  refused("::1", AF_INET6);
}

/* Without connection_refused, the refusal goes to error(). An unconnected
 * port hears nothing (the kernel reports ICMP only to connected ports). */
TEST(udp_refusal_without_callback_goes_to_error)
{
  static const ds_udp_protocol only_error = {.datagram_received = on_dgram,
                                             .error = on_error};
  ds_reactor *r;
  rx a, b;
  char err[256];
  uint16_t port = ds_test_closed_port(AF_INET, SOCK_DGRAM);
  CHECK_EQ(ds_reactor_new(&r), 0);
  memset(&a, 0, sizeof a);
  CHECK_EQ(ds_listen_udp(r, 0, "127.0.0.1", 0, 0, &only_error, &a, &a.u, err,
                         sizeof err),
           0);
  open_port(&b, r, "127.0.0.1", 0);
  CHECK_EQ(ds_udp_write_to(b.u, "x", 1, "127.0.0.1", port, err, sizeof err), 0);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write(a.u, "x", 1, NULL), 0);
  RUN_UNTIL(r, a.errors == 1, 3000);
  CHECK_EQ(a.last_error, -ECONNREFUSED);
  CHECK(a.error_had_addr);
  CHECK_EQ(a.error_addr.port, port);
  ds_test_run_for(r, 100);
  CHECK_EQ(b.errors + b.refused, 0);
  teardown(r, &a, &b, NULL);
}

/* The Linux flow label manager API (linux/in6.h clashes with
 * netinet/in.h): lease a label, then send with it. */
struct flowlabel_req {
  struct in6_addr flr_dst;
  uint32_t flr_label;
  uint8_t flr_action;
  uint8_t flr_share;
  uint16_t flr_flags;
  uint16_t flr_expires;
  uint16_t flr_linger;
  uint32_t flr_pad;
};
#define FL_MGR 32     /* IPV6_FLOWLABEL_MGR */
#define FL_SEND 33    /* IPV6_FLOWINFO_SEND */
#define FL_A_GET 0    /* IPV6_FL_A_GET */
#define FL_S_EXCL 1   /* IPV6_FL_S_EXCL */
#define FL_F_CREATE 1 /* IPV6_FL_F_CREATE */

TEST(udp_ipv6_source_carries_flow_label_and_scope)
{
  ds_reactor *r;
  rx b;
  struct flowlabel_req fr;
  struct sockaddr_in6 to = {.sin6_family = AF_INET6};
  char text[DS_ADDR_STRLEN], want[64];
  int fd, one = 1, tclass = 0x28, i, rc = -1;
  socklen_t len = sizeof to;
  uint32_t label = 0;
  uint16_t sport;
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&b, r, "::1", 0);

  fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  to.sin6_addr = in6addr_loopback;
  CHECK_EQ(bind(fd, (struct sockaddr *)&to, sizeof to), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&to, &len), 0);
  sport = ntohs(to.sin6_port);
  /* Labels are leased per network namespace and linger for seconds after
   * their socket closes: a fixed label would be refused (EPERM) to the
   * next run, or to a concurrent one. Try labels of this process's own. */
  for (i = 0; i < 32; i++) {
    label = ((uint32_t)getpid() * 32u + (uint32_t)i) % 0xfffffu + 1u;
    memset(&fr, 0, sizeof fr);
    fr.flr_dst = in6addr_loopback;
    fr.flr_label = htonl(label);
    fr.flr_action = FL_A_GET;
    fr.flr_share = FL_S_EXCL;
    fr.flr_flags = FL_F_CREATE;
    rc = setsockopt(fd, IPPROTO_IPV6, FL_MGR, &fr, sizeof fr);
    if (rc == 0 || (errno != EPERM && errno != EEXIST))
      break;
  }
  CHECK_MSG(rc == 0, "flow label lease of 0x%x: %s", label, strerror(errno));
  CHECK_EQ(setsockopt(fd, IPPROTO_IPV6, FL_SEND, &one, sizeof one), 0);
  /* A traffic class too: it shares the kernel's word with the label but
   * is no part of a ds_addr's flow info. */
  CHECK_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass),
           0);
  to.sin6_port = htons(port_of(&b));
  to.sin6_flowinfo = htonl(label);
  CHECK_EQ(sendto(fd, "label", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
  RUN_UNTIL(r, b.n == 1, 3000);
  CHECK_EQ(b.from[0].family, AF_INET6);
  CHECK_EQ(b.from[0].flowinfo, label);
  CHECK_EQ(b.from[0].scope_id, 0);
  CHECK_EQ(b.from[0].port, sport);
  snprintf(want, sizeof want, "[::1]:%u", sport);
  CHECK_STR(text_of(&b.from[0], text), want);
  close(fd);
  teardown(r, &b, NULL, NULL);
}

/* sendmsg with EAGAIN injected while eagain_left > 0, and a given error
 * for the datagram whose first byte is fail_byte. */
static int eagain_left;
static char fail_byte;
static int fail_errno;
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);

static ssize_t fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
  const char *p = msg->msg_iov[0].iov_base;
  if (eagain_left > 0) {
    eagain_left--;
    errno = EAGAIN;
    return -1;
  }
  if (fail_byte != 0 && msg->msg_iov[0].iov_len > 0 && p[0] == fail_byte) {
    errno = fail_errno;
    return -1;
  }
  return real_sendmsg(fd, msg, flags);
}

TEST(udp_eagain_is_queued_in_order_and_bounded)
{
  ds_reactor *r;
  rx a, b;
  char err[256], big[1000];
  uint16_t pb;
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&b, r, "127.0.0.1", 0);
  pb = port_of(&b);
  real_sendmsg = ds__sys.sendmsg;
  ds__sys.sendmsg = fake_sendmsg;

  /* The kernel says EAGAIN: queued, 0 returned, sent in order later. */
  ds_udp_set_queue_limit(a.u, 2500);
  eagain_left = 1;
  memset(big, '1', sizeof big);
  a.inside = 1;
  CHECK_EQ(
      ds_udp_write_to(a.u, big, sizeof big, "127.0.0.1", pb, err, sizeof err),
      0);
  CHECK_EQ(ds_udp_buffered(a.u), 1000);
  memset(big, '2', sizeof big);
  CHECK_EQ(
      ds_udp_write_to(a.u, big, sizeof big, "127.0.0.1", pb, err, sizeof err),
      0);
  memset(big, '3', sizeof big);
  CHECK_EQ(
      ds_udp_write_to(a.u, big, sizeof big, "127.0.0.1", pb, err, sizeof err),
      0);
  CHECK_EQ(ds_udp_buffered(a.u), 3000);
  /* Full: reported, not queued, not lost without word. */
  memset(big, '4', sizeof big);
  CHECK_EQ(
      ds_udp_write_to(a.u, big, sizeof big, "127.0.0.1", pb, err, sizeof err),
      -EAGAIN);
  CHECK_MSG(strstr(err, "queue") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_buffered(a.u), 3000);
  a.inside = 0;
  CHECK_EQ(a.called_inside, 0);
  RUN_UNTIL(r, b.n == 3 && a.resumed == 1, 3000);
  CHECK_EQ(ds_udp_buffered(a.u), 0);
  CHECK(b.data[0][0] == '1' && b.data[1][0] == '2' && b.data[2][0] == '3');
  CHECK_EQ(b.len[2], 1000);

  /* A queued datagram that fails later goes to error() with its
   * destination; the ones behind it still go. */
  eagain_left = 1;
  fail_byte = 'B';
  fail_errno = ENETUNREACH;
  CHECK_EQ(ds_udp_write_to(a.u, "A", 1, "127.0.0.1", pb, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write_to(a.u, "B", 1, "127.0.0.1", pb, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write_to(a.u, "C", 1, "127.0.0.1", pb, err, sizeof err), 0);
  RUN_UNTIL(r, b.n == 5 && a.errors == 1, 3000);
  CHECK_EQ(a.last_error, -ENETUNREACH);
  CHECK(a.error_had_addr);
  CHECK_EQ(a.error_addr.port, pb);
  CHECK_STR(b.data[3], "A");
  CHECK_STR(b.data[4], "C");
  fail_byte = 0;

  /* Limit 0: EAGAIN at once; resume_producing still follows. */
  ds_udp_set_queue_limit(a.u, 0);
  eagain_left = 1;
  CHECK_EQ(ds_udp_write_to(a.u, "D", 1, "127.0.0.1", pb, err, sizeof err),
           -EAGAIN);
  CHECK_EQ(ds_udp_buffered(a.u), 0);
  RUN_UNTIL(r, a.resumed == 2, 3000);
  CHECK_EQ(ds_udp_write_to(a.u, "E", 1, "127.0.0.1", pb, err, sizeof err), 0);
  RUN_UNTIL(r, b.n == 6, 3000);
  CHECK_STR(b.data[5], "E");
  ds__sys.sendmsg = real_sendmsg;
  teardown(r, &a, &b, NULL);
}

TEST(udp_emsgsize_is_reported)
{
  ds_reactor *r;
  rx a, a6, b;
  static char huge[70000];
  char err[256];
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&a6, r, "::1", 0);
  open_port(&b, r, "127.0.0.1", 0);
  CHECK_EQ(ds_udp_write_to(a.u, huge, sizeof huge, "127.0.0.1", port_of(&b),
                           err, sizeof err),
           -EMSGSIZE);
  CHECK_MSG(strstr(err, "127.0.0.1") != NULL, "err: %s", err);
  /* 65508 bytes of payload is one more than an IPv4 datagram holds. */
  CHECK_EQ(ds_udp_write_to(a.u, huge, 65508, "127.0.0.1", port_of(&b), err,
                           sizeof err),
           -EMSGSIZE);
  CHECK_EQ(ds_udp_write_to(a6.u, huge, sizeof huge, "::1", port_of(&a6), err,
                           sizeof err),
           -EMSGSIZE);
  CHECK_EQ(ds_udp_buffered(a.u), 0);
  /* The largest IPv4 datagram goes. */
  CHECK_EQ(ds_udp_write_to(a.u, huge, 65507, "127.0.0.1", port_of(&b), err,
                           sizeof err),
           0);
  RUN_UNTIL(r, b.n == 1, 3000);
  CHECK_EQ(b.len[0], 65507);
  teardown(r, &a, &a6, &b);
}

TEST(udp_datagram_longer_than_max_size_is_reported)
{
  ds_reactor *r;
  rx a, b;
  char err[256], buf[200];
  memset(buf, 'z', sizeof buf);
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  memset(&b, 0, sizeof b);
  CHECK_EQ(ds_listen_udp(r, 0, "127.0.0.1", 100, 0, &proto, &b, &b.u, err,
                         sizeof err),
           0);
  CHECK_EQ(
      ds_udp_write_to(a.u, buf, 101, "127.0.0.1", port_of(&b), err, sizeof err),
      0);
  CHECK_EQ(
      ds_udp_write_to(a.u, buf, 100, "127.0.0.1", port_of(&b), err, sizeof err),
      0);
  RUN_UNTIL(r, b.errors == 1 && b.n == 1, 3000);
  CHECK_EQ(b.last_error, -EMSGSIZE);
  CHECK(b.error_had_addr);
  CHECK_EQ(b.error_addr.port, port_of(&a));
  CHECK_EQ(b.len[0], 100);
  teardown(r, &a, &b, NULL);
}

TEST(udp_close_from_callbacks_is_safe)
{
  ds_reactor *r;
  rx a, b, s;
  char err[256];
  int fds0 = ds_test_count_fds();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&b, r, "127.0.0.1", 0);
  open_port(&s, r, "127.0.0.1", 0);
  /* Both readable in one epoll batch; whichever runs first closes the
   * other, which must then never be called. */
  a.close_other = &b;
  b.close_other = &a;
  CHECK_EQ(
      ds_udp_write_to(s.u, "1", 1, "127.0.0.1", port_of(&a), err, sizeof err),
      0);
  CHECK_EQ(
      ds_udp_write_to(s.u, "2", 1, "127.0.0.1", port_of(&b), err, sizeof err),
      0);
  usleep(50000);
  RUN_UNTIL(r, a.n + b.n == 1, 3000);
  ds_test_run_for(r, 100);
  CHECK_EQ(a.n + b.n, 1);
  CHECK((a.u == NULL) != (b.u == NULL)); /* the one that got data lives */
  teardown(r, &a, &b, &s);
  CHECK_EQ(ds_test_count_fds(), fds0);
}

TEST(udp_close_self_with_more_pending_and_queued)
{
  ds_reactor *r;
  rx a, s;
  char err[256];
  int fds0 = ds_test_count_fds();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&s, r, "127.0.0.1", 0);
  a.close_self = 1;
  for (int i = 0; i < 5; i++)
    CHECK_EQ(
        ds_udp_write_to(s.u, "x", 1, "127.0.0.1", port_of(&a), err, sizeof err),
        0);
  /* Something queued too, and a refusal waiting for the next turn. */
  real_sendmsg = ds__sys.sendmsg;
  ds__sys.sendmsg = fake_sendmsg;
  eagain_left = 1;
  CHECK_EQ(
      ds_udp_write_to(a.u, "q", 1, "127.0.0.1", port_of(&s), err, sizeof err),
      0);
  ds__sys.sendmsg = real_sendmsg;
  CHECK_EQ(ds_udp_buffered(a.u), 1);
  usleep(20000);
  RUN_UNTIL(r, a.n == 1, 3000);
  ds_test_run_for(r, 100);
  CHECK_EQ(a.n, 1);
  CHECK(a.u == NULL);
  teardown(r, &s, NULL, NULL);
  CHECK_EQ(ds_test_count_fds(), fds0);
}

TEST(udp_close_with_deferred_refusal_pending)
{
  ds_reactor *r;
  rx a;
  char err[256];
  uint16_t port = ds_test_closed_port(AF_INET, SOCK_DGRAM);
  int fds0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  open_port(&a, r, "127.0.0.1", 0);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write(a.u, "1", 1, NULL), 0);
  usleep(20000);
  CHECK_EQ(ds_udp_write(a.u, "2", 1, NULL), 0); /* meets the refusal */
  ds_udp_close(a.u);
  CHECK_EQ(ds_test_count_fds(), fds0); /* the socket closed at once */
  /* The memory waits for the deferred call, which runs no callback. */
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(a.refused, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

/* A refusal from the old peer, held by the kernel or met by a write and
 * due on the next turn, is dropped by a retarget: the new peer refused
 * nothing. */
TEST(udp_retarget_drops_refusals_of_the_old_peer)
{
  ds_reactor *r;
  rx a, b;
  char err[256];
  uint16_t port = ds_test_closed_port(AF_INET, SOCK_DGRAM);
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "0.0.0.0", 0);
  open_port(&b, r, "127.0.0.1", 0);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port, err, sizeof err), 0);
  CHECK_EQ(ds_udp_write(a.u, "1", 1, NULL), 0);
  usleep(50000); /* refused; the reactor does not run */
  CHECK_EQ(ds_udp_write(a.u, "2", 1, NULL), 0); /* meets it, is refused */
  usleep(50000);
  CHECK_EQ(ds_udp_connect(a.u, "127.0.0.1", port_of(&b), err, sizeof err), 0);
  CHECK_EQ(ds_udp_write(a.u, "live", 4, NULL), 0);
  RUN_UNTIL(r, b.n == 1, 3000);
  ds_test_run_for(r, 100);
  CHECK_EQ(a.refused, 0);
  CHECK_EQ(a.errors, 0);
  teardown(r, &a, &b, NULL);
}

TEST(udp_reuse_flag_shares_a_port)
{
  ds_reactor *r;
  rx a, b, c;
  char err[256] = "";
  uint16_t port;
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", DS_UDP_REUSE);
  port = port_of(&a);
  memset(&b, 0, sizeof b);
  CHECK_EQ(ds_listen_udp(r, port, "127.0.0.1", 0, DS_UDP_REUSE, &proto, &b,
                         &b.u, err, sizeof err),
           0);
  memset(&c, 0, sizeof c);
  CHECK_EQ(ds_listen_udp(r, port, "127.0.0.1", 0, 0, &proto, &c, &c.u, err,
                         sizeof err),
           -EADDRINUSE);
  CHECK_MSG(strstr(err, "127.0.0.1") != NULL, "err: %s", err);
  teardown(r, &a, &b, NULL);
}

/* Binds a plain socket with SO_REUSEADDR (another program sharing the
 * port, as multicast receivers do) to wild:port; returns the fd. */
static int foreign_reuse_socket(int family, uint16_t port)
{
  struct sockaddr_storage ss = {0};
  socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
  CHECK(fd >= 0);
  CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
  ss.ss_family = (sa_family_t)family;
  if (family == AF_INET6) {
    CHECK_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), 0);
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
  } else {
    ((struct sockaddr_in *)&ss)->sin_port = htons(port);
  }
  CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
  return fd;
}

/* DS_UDP_REUSE with port 0 gets a port nobody holds (Linux may pick, for
 * a socket that already has SO_REUSEADDR, a port another such socket
 * holds), and shares a port asked for by number with another program's
 * SO_REUSEADDR socket. A private network namespace with one local port,
 * held by that socket, makes the kernel's choice certain. */
TEST(udp_reuse_port_zero_is_a_fresh_port)
{
  static const char *wild[2] = {"0.0.0.0", "::"};
  static const int family[2] = {AF_INET, AF_INET6};
  const uint16_t only = 40000;
  ds_reactor *r;
  rx x;
  ds_addr h;
  char err[256] = "";
  FILE *f;
  int i, fd;

  ds_test_require_root();
  CHECK_MSG(unshare(CLONE_NEWNET) == 0, "unshare: %s", strerror(errno));
  f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "w");
  CHECK(f != NULL);
  CHECK(fprintf(f, "%u %u\n", only, only) > 0);
  CHECK_EQ(fclose(f), 0);
  CHECK_EQ(ds_reactor_new(&r), 0);
  for (i = 0; i < 2; i++) {
    fd = foreign_reuse_socket(family[i], only);
    memset(&x, 0, sizeof x);
    CHECK_EQ(ds_listen_udp(r, 0, wild[i], 0, DS_UDP_REUSE, &proto, &x, &x.u,
                           err, sizeof err),
             -EADDRINUSE);
    CHECK(x.u == NULL);
    CHECK_MSG(ds_listen_udp(r, only, wild[i], 0, DS_UDP_REUSE, &proto, &x, &x.u,
                            err, sizeof err) == 0,
              "share %s:%u: %s", wild[i], only, err);
    CHECK_EQ(ds_udp_get_host(x.u, &h), 0);
    CHECK_EQ(h.port, only);
    ds_udp_close(x.u);
    close(fd);
  }
  ds_reactor_run_once(r, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(udp_pause_and_resume_reading)
{
  ds_reactor *r;
  rx a, b;
  char err[256];
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a, r, "127.0.0.1", 0);
  open_port(&b, r, "127.0.0.1", 0);
  ds_udp_pause_reading(b.u);
  CHECK_EQ(ds_udp_write_to(a.u, "held", 4, "127.0.0.1", port_of(&b), err,
                           sizeof err),
           0);
  ds_test_run_for(r, 100);
  CHECK_EQ(b.n, 0);
  ds_udp_resume_reading(b.u);
  RUN_UNTIL(r, b.n == 1, 3000);
  CHECK_STR(b.data[0], "held");
  teardown(r, &a, &b, NULL);
}

TEST(udp_multicast_options_on_loopback)
{
  ds_reactor *r;
  rx a4, a6;
  char err[256] = "", text[DS_ADDR_STRLEN];
  unsigned idx = 99;
  unsigned lo = if_nametoindex("lo");
  ds_test_require_ipv6();
  CHECK(lo != 0);
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a4, r, NULL, 0);
  open_port(&a6, r, "::", 0);
  /* TTL / hop limit: the kernel's default 1, then set. */
  CHECK_EQ(ds_udp_get_multicast_ttl(a4.u), 1);
  CHECK_EQ(ds_udp_get_multicast_ttl(a6.u), 1);
  CHECK_EQ(ds_udp_set_multicast_ttl(a4.u, 7), 0);
  CHECK_EQ(ds_udp_set_multicast_ttl(a6.u, 9), 0);
  CHECK_EQ(ds_udp_get_multicast_ttl(a4.u), 7);
  CHECK_EQ(ds_udp_get_multicast_ttl(a6.u), 9);
  CHECK_EQ(ds_udp_set_multicast_ttl(a4.u, 256), -EINVAL);
  CHECK_EQ(ds_udp_set_multicast_ttl(a6.u, -1), -EINVAL);
  /* Loopback on by default, then off. */
  CHECK_EQ(ds_udp_get_multicast_loopback(a4.u), 1);
  CHECK_EQ(ds_udp_get_multicast_loopback(a6.u), 1);
  CHECK_EQ(ds_udp_set_multicast_loopback(a4.u, 0), 0);
  CHECK_EQ(ds_udp_set_multicast_loopback(a6.u, 0), 0);
  CHECK_EQ(ds_udp_get_multicast_loopback(a4.u), 0);
  CHECK_EQ(ds_udp_get_multicast_loopback(a6.u), 0);
  /* Outgoing interface: none set, then by name, index and address. */
  CHECK_EQ(ds_udp_get_outgoing_interface(a6.u, text, sizeof text, &idx), 0);
  CHECK_STR(text, "");
  CHECK_EQ(idx, 0);
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, "lo", err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a6.u, text, sizeof text, &idx), 2);
  CHECK_STR(text, "lo");
  CHECK_EQ(idx, lo);
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, NULL, err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a6.u, text, sizeof text, &idx), 0);
  snprintf(err, sizeof err, "%u", lo);
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, err, err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a6.u, text, sizeof text, NULL), 2);
  CHECK_STR(text, "lo");
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, "::1", err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a6.u, text, sizeof text, &idx), 2);
  CHECK_EQ(idx, lo);
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "127.0.0.1", err, sizeof err),
           0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a4.u, text, sizeof text, &idx), 9);
  CHECK_STR(text, "127.0.0.1");
  CHECK_EQ(idx, lo);
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "lo", err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a4.u, text, sizeof text, &idx), 2);
  CHECK_STR(text, "lo");
  CHECK_EQ(idx, lo);
  CHECK_EQ(ds_udp_get_outgoing_interface(a4.u, text, 2, &idx), -ENOSPC);
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "", err, sizeof err), 0);
  CHECK_EQ(ds_udp_get_outgoing_interface(a4.u, text, sizeof text, &idx), 0);
  CHECK_EQ(idx, 0);
  /* Unknown interfaces, by each form, named in err. */
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "nosuchif0", err, sizeof err),
           -ENODEV);
  CHECK_MSG(strstr(err, "nosuchif0") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "192.0.2.99", err, sizeof err),
           -EADDRNOTAVAIL);
  CHECK_MSG(strstr(err, "192.0.2.99") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, "2001:db8::99", err, sizeof err),
           -EADDRNOTAVAIL);
  CHECK_STR(err, "no interface has address '2001:db8::99'");
  CHECK_EQ(ds_udp_set_outgoing_interface(a6.u, "4000000", err, sizeof err),
           -ENODEV);
  CHECK_MSG(strstr(err, "4000000") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_set_outgoing_interface(a4.u, "192.0.2.300", err, sizeof err),
           DS_EBADADDR);
  teardown(r, &a4, &a6, NULL);
}

/* Returns the index of an interface other than lo, or 0. */
static unsigned other_interface(void)
{
  struct if_nameindex *l = if_nameindex(), *i;
  unsigned idx = 0;
  if (l == NULL)
    return 0;
  for (i = l; i->if_index != 0; i++)
    if (strcmp(i->if_name, "lo") != 0) {
      idx = i->if_index;
      break;
    }
  if_freenameindex(l);
  return idx;
}

TEST(udp_multicast_join_errors_name_the_bad_part)
{
  ds_reactor *r;
  rx a4, a6;
  char err[256] = "", iface[32];
  unsigned other = other_interface();
  ds_test_require_ipv6();
  CHECK_EQ(ds_reactor_new(&r), 0);
  open_port(&a4, r, NULL, 0);
  open_port(&a6, r, "::", 0);
  CHECK_EQ(ds_udp_join_group(a4.u, "192.0.2.1", "lo", err, sizeof err),
           DS_ENOTMCAST);
  CHECK_MSG(strstr(err, "192.0.2.1") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a6.u, "2001:db8::1", "lo", err, sizeof err),
           DS_ENOTMCAST);
  CHECK_EQ(ds_udp_join_group(a4.u, "ff05::1", "lo", err, sizeof err),
           DS_EFAMILY);
  CHECK_MSG(strstr(err, "ff05::1") && strstr(err, "IPv4"), "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a6.u, "239.1.2.3", "lo", err, sizeof err),
           DS_EFAMILY);
  CHECK_EQ(ds_udp_join_group(a4.u, "239.1.2.3", "nosuchif0", err, sizeof err),
           -ENODEV);
  CHECK_MSG(strstr(err, "nosuchif0") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a4.u, "239.1.2.3", "192.0.2.99", err, sizeof err),
           -EADDRNOTAVAIL);
  CHECK_MSG(strstr(err, "192.0.2.99") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a4.u, "mcast.example", "lo", err, sizeof err),
           DS_EHOSTNAME);
  CHECK_EQ(ds_udp_join_group(a6.u, "ff02::1", NULL, err, sizeof err),
           DS_ENEEDSCOPE);
  CHECK_MSG(strstr(err, "ff02::1") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a6.u, "ff02::1%nosuchif0", NULL, err, sizeof err),
           -ENODEV);
  if (other != 0) {
    snprintf(iface, sizeof iface, "%u", other);
    CHECK_EQ(ds_udp_join_group(a6.u, "ff02::1%lo", iface, err, sizeof err),
             -EINVAL);
    CHECK_MSG(strstr(err, "ff02::1%lo") != NULL, "err: %s", err);
  }
  /* Source-specific: the source's family and kind. */
  CHECK_EQ(ds_udp_join_source_group(a6.u, "ff35::8000:1", "127.0.0.1", "lo",
                                    err, sizeof err),
           DS_EFAMILY);
  CHECK_MSG(strstr(err, "127.0.0.1") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_join_source_group(a6.u, "ff35::8000:1", "ff05::2", "lo", err,
                                    sizeof err),
           -EINVAL);
  CHECK_EQ(ds_udp_join_source_group(a4.u, "232.1.2.3", "src.example", "lo", err,
                                    sizeof err),
           DS_EHOSTNAME);
  /* A real join on lo, twice, and leaves. */
  CHECK_MSG(ds_udp_join_group(a6.u, "ff05::1:3", "lo", err, sizeof err) == 0,
            "err: %s", err);
  CHECK_EQ(ds_udp_join_group(a6.u, "ff05::1:3", "lo", err, sizeof err),
           -EADDRINUSE);
  CHECK_MSG(strstr(err, "already") != NULL, "err: %s", err);
  CHECK_EQ(ds_udp_leave_group(a6.u, "ff05::1:3", "lo", err, sizeof err), 0);
  CHECK_EQ(ds_udp_leave_group(a6.u, "ff05::1:3", "lo", err, sizeof err),
           -EADDRNOTAVAIL);
  CHECK_MSG(strstr(err, "not joined") != NULL, "err: %s", err);
  CHECK_MSG(
      ds_udp_join_group(a4.u, "239.1.2.3", "127.0.0.1", err, sizeof err) == 0,
      "err: %s", err);
  CHECK_EQ(ds_udp_leave_group(a4.u, "239.1.2.3", "lo", err, sizeof err), 0);
  teardown(r, &a4, &a6, NULL);
}
