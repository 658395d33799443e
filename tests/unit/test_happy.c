/* Happy Eyeballs on the host's loopback, without DNS: literals, a private
 * hosts file, option errors, the family memory's bounds and expiry. The
 * timing scenarios with DNS and black holes are in test_happy_lab.c.
 */
#include "test.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

typedef struct race {
  int done, fd, err, nattempts, inside;
  int fam[8];
  ds_happy *h;
} race;

static void on_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  race *rc = user;
  (void)h;
  if (ev->type == DS_HE_ATTEMPT && rc->nattempts < 8)
    rc->fam[rc->nattempts++] = ev->family;
}

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  race *rc = user;
  CHECK(!rc->inside);
  rc->done++;
  rc->fd = fd;
  rc->err = err;
  ds_happy_cancel(h); /* inside done: a no-op, never a double free */
}

/* Listens on loopback of family at port (0: any); returns the fd and
 * stores the port. */
static int listen_on(int family, uint16_t *port)
{
  struct sockaddr_storage ss = {0};
  socklen_t len;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  CHECK(fd >= 0);
  ss.ss_family = (sa_family_t)family;
  if (family == AF_INET6) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_addr = in6addr_loopback;
    s->sin6_port = htons(*port);
    len = sizeof *s;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  } else {
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->sin_port = htons(*port);
    len = sizeof *s;
  }
  CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ(listen(fd, 16), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

static void run(race *rc, ds_reactor *r, const char *host, uint16_t port,
                const ds_happy_opts *o)
{
  char err[256];
  double end;
  int rv;
  memset(rc, 0, sizeof *rc);
  rc->fd = -1;
  rc->inside = 1;
  rv = ds_happy_start(r, host, port, o, on_done, on_event, rc, &rc->h, err,
                      sizeof err);
  rc->inside = 0;
  CHECK_MSG(rv == 0, "start: %s", err);
  CHECK_EQ(rc->done, 0);
  end = ds_test_now_ms() + 3000;
  while (!rc->done && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(rc->done, 1);
}

TEST(happy_literal_connects_without_lookup)
{
  ds_reactor *r;
  race rc;
  uint16_t port = 0;
  int l = listen_on(AF_INET, &port);
  CHECK_EQ(ds_reactor_new(&r), 0);
  run(&rc, r, "127.0.0.1", port, NULL);
  CHECK(rc.fd >= 0);
  CHECK_EQ(rc.nattempts, 1);
  CHECK_EQ(rc.fam[0], AF_INET);
  close(rc.fd);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(l);
}

TEST(happy_hosts_file_name_races_both_families)
{
  ds_reactor *r;
  race rc;
  ds_happy_opts o = {0};
  ds_resolver_opts ro = {0};
  char path[] = "/tmp/dshostsXXXXXX";
  uint16_t port = 0;
  int l6, l4, fd;
  FILE *f;
  ds_test_require_ipv6();
  l6 = listen_on(AF_INET6, &port);
  l4 = listen_on(AF_INET, &port);
  fd = mkstemp(path);
  CHECK(fd >= 0);
  f = fdopen(fd, "w");
  fprintf(f, "127.0.0.1 both.example\n::1 both.example\n");
  fclose(f);
  ro.hosts_file = path;
  ro.servers = "127.0.0.1:9"; /* never asked: the hosts file answers */
  o.resolver = &ro;
  CHECK_EQ(ds_reactor_new(&r), 0);
  run(&rc, r, "both.example", port, &o);
  unlink(path);
  CHECK(rc.fd >= 0);
  CHECK_EQ(rc.nattempts, 1);
  CHECK_EQ(rc.fam[0], AF_INET6);
  close(rc.fd);
  /* Preferring IPv4 puts IPv4 first. */
  o.prefer = AF_INET;
  f = fopen(path, "w");
  fprintf(f, "127.0.0.1 both.example\n::1 both.example\n");
  fclose(f);
  run(&rc, r, "both.example", port, &o);
  unlink(path);
  CHECK(rc.fd >= 0);
  CHECK_EQ(rc.fam[0], AF_INET);
  close(rc.fd);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(l6);
  close(l4);
}

TEST(happy_refused_literal_reports_the_attempt)
{
  ds_reactor *r;
  race rc;
  uint16_t port = 0;
  int l = listen_on(AF_INET, &port);
  close(l); /* nothing listens there now */
  CHECK_EQ(ds_reactor_new(&r), 0);
  run(&rc, r, "127.0.0.1", port, NULL);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, -ECONNREFUSED);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(happy_bad_options_are_clear_errors)
{
  ds_reactor *r;
  ds_happy *h;
  ds_happy_opts o = {0};
  ds_addr b;
  race rc = {0};
  char err[256] = "";
  int fds0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_EQ(ds_addr_parse(&b, "::1", 0, NULL, 0), 0);
  o.bind4 = &b;
  CHECK_EQ(ds_happy_start(r, "127.0.0.1", 80, &o, on_done, NULL, &rc, &h, err,
                          sizeof err),
           DS_EFAMILY);
  CHECK_MSG(strstr(err, "bind4") != NULL, "err: %s", err);
  memset(&o, 0, sizeof o);
  o.interface = "nosuchif9";
  CHECK_EQ(ds_happy_start(r, "127.0.0.1", 80, &o, on_done, NULL, &rc, &h, err,
                          sizeof err),
           -ENODEV);
  CHECK_MSG(strstr(err, "nosuchif9") != NULL, "err: %s", err);
  memset(&o, 0, sizeof o);
  CHECK_EQ(ds_happy_start(r, "fe80::1", 80, &o, on_done, NULL, &rc, &h, err,
                          sizeof err),
           DS_ENEEDSCOPE);
  o.family = AF_INET6;
  CHECK_EQ(ds_happy_start(r, "127.0.0.1", 80, &o, on_done, NULL, &rc, &h, err,
                          sizeof err),
           DS_EFAMILY);
  memset(&o, 0, sizeof o);
  CHECK_EQ(ds_happy_start(r, "bad..name", 80, &o, on_done, NULL, &rc, &h, err,
                          sizeof err),
           DS_EBADNAME);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(rc.done, 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(happy_cancel_before_first_turn)
{
  ds_reactor *r;
  ds_happy *h;
  race rc = {0};
  char err[256];
  int fds0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_EQ(ds_happy_start(r, "127.0.0.1", 9, NULL, on_done, NULL, &rc, &h, err,
                          sizeof err),
           0);
  ds_happy_cancel(h);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(rc.done, 0);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(happy_family_memory_bounds_and_expiry)
{
  ds_family_memory *m;
  char name[32];
  int i;
  CHECK_EQ(ds_family_memory_new(&m, 4, 150), 0);
  CHECK_EQ(ds_family_memory_get(m, "a.test"), AF_UNSPEC);
  ds_family_memory_put(m, "a.test", AF_INET);
  ds_family_memory_put(m, "b.test", AF_INET6);
  CHECK_EQ(ds_family_memory_get(m, "A.TEST"), AF_INET); /* case-blind */
  CHECK_EQ(ds_family_memory_get(m, "b.test"), AF_INET6);
  /* Bounded: four more hosts push out the least recently used. */
  ds_family_memory_get(m, "a.test");
  for (i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "h%d.test", i);
    ds_family_memory_put(m, name, AF_INET);
  }
  CHECK_EQ(ds_family_memory_get(m, "a.test"), AF_INET);
  CHECK_EQ(ds_family_memory_get(m, "b.test"), AF_UNSPEC); /* evicted */
  /* Forget. */
  ds_family_memory_put(m, "a.test", AF_UNSPEC);
  CHECK_EQ(ds_family_memory_get(m, "a.test"), AF_UNSPEC);
  /* Expiry. */
  ds_family_memory_put(m, "c.test", AF_INET);
  usleep(200000);
  CHECK_EQ(ds_family_memory_get(m, "c.test"), AF_UNSPEC);
  ds_family_memory_free(m);
}

TEST(happy_nat64_rfc6052_table)
{
  /* RFC 6052 section 2.4, Table 2: 192.0.2.33 under each prefix length. */
  static const struct {
    const char *prefix;
    unsigned len;
    const char *want;
  } t[] = {
      {"2001:db8::", 32, "2001:db8:c000:221::"},
      {"2001:db8:100::", 40, "2001:db8:1c0:2:21::"},
      {"2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"},
      {"2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"},
      {"2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"},
      {"2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"},
  };
  ds_addr p, v4, out, back;
  char text[DS_ADDR_STRLEN];
  size_t i;
  CHECK_EQ(ds_addr_parse(&v4, "192.0.2.33", 80, NULL, 0), 0);
  for (i = 0; i < sizeof t / sizeof t[0]; i++) {
    CHECK_EQ(ds_addr_parse(&p, t[i].prefix, 0, NULL, 0), 0);
    CHECK_EQ(ds_nat64_synthesize(&out, &p, t[i].len, &v4), 0);
    ds_addr_format(&out, text, sizeof text, 0);
    CHECK_STR(text, t[i].want);
    CHECK_EQ(out.port, 80);
    CHECK_EQ(ds_nat64_extract(&back, &out, t[i].len), 0);
    CHECK_EQ(ds_addr_compare(&back, &v4), 0);
  }
  CHECK_EQ(ds_nat64_synthesize(&out, &p, 80, &v4), -EINVAL);
  CHECK_EQ(ds_nat64_synthesize(&out, &v4, 96, &v4), -EINVAL);
  CHECK_EQ(ds_nat64_extract(&back, &v4, 96), -EINVAL);
}
