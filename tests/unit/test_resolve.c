/* The resolver against the test DNS server (dnsd) on loopback: A and AAAA
 * answered separately, NODATA, NXDOMAIN, SERVFAIL, silence, the hosts file
 * (which keeps a name away from DNS), literals, bad names and servers,
 * cancel (also from inside a callback), many lookups at once, and never a
 * callback inside ds_lookup_start().
 *
 * dnsd listens on 127.0.0.1:0; its configuration, its query log and the
 * hosts files are memfds reached through /proc/self/fd, so nothing is left
 * on disk when a test fails. dnsd stays in the test's process group, which
 * the runner kills when the test ends.
 */
#include "dnstest.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* ---------------------------------------------------------- lookups */

/* What one lookup delivered. */
typedef struct rec {
  ds_reactor *r;
  ds_lookup *l;
  double t0;
  int calls, calls4, calls6, first;
  int status4, status6;
  size_t n4, n6;
  char text4[2048], text6[2048];
  double t4, t6;
  unsigned scope6;
  int cancel_in_first; /* cancel the lookup inside its first callback */
  int wrong;           /* callbacks that must not have happened */
  int fds_at_cancel;
} rec;

/* Set while ds_lookup_start() runs: a callback then is a bug. */
static int in_start;

static void on_lookup(ds_lookup *l, int family, int status,
                      const ds_addr *addrs, size_t n, void *user)
{
  rec *c = user;
  char *text = family == AF_INET ? c->text4 : c->text6;
  size_t i, off = 0;

  if (in_start || l != c->l || (family != AF_INET && family != AF_INET6) ||
      (status == 0) != (n > 0) || (n > 0 && addrs == NULL))
    c->wrong++;
  c->calls++;
  if (c->calls == 1)
    c->first = family;
  text[0] = '\0';
  for (i = 0; i < n; i++) {
    char a[DS_ADDR_STRLEN];
    if (addrs[i].family != family || addrs[i].port != 0)
      c->wrong++;
    ds_addr_format(&addrs[i], a, sizeof a, 0);
    off += (size_t)snprintf(text + off, 2048 - off, "%s%s", i ? " " : "", a);
    if (off >= 2048)
      off = 2047;
  }
  if (family == AF_INET) {
    c->calls4++;
    c->status4 = status;
    c->n4 = n;
    c->t4 = ds_test_now_ms() - c->t0;
  } else {
    c->calls6++;
    c->status6 = status;
    c->n6 = n;
    c->t6 = ds_test_now_ms() - c->t0;
    c->scope6 = n > 0 ? addrs[0].scope_id : 0;
  }
  if (c->cancel_in_first && c->calls == 1)
    ds_lookup_cancel(l);
}

/* Starts a lookup of name into c; returns ds_lookup_start()'s result. */
static int start(ds_reactor *r, rec *c, const char *name, int families,
                 const ds_resolver_opts *o, char *err, size_t errlen)
{
  int rc;
  c->r = r;
  c->t0 = ds_test_now_ms();
  in_start = 1;
  rc = ds_lookup_start(r, name, families, o, on_lookup, c, &c->l, err, errlen);
  in_start = 0;
  return rc;
}

/* Starts a lookup of name for both families; fails the test on error. */
static void start_ok(ds_reactor *r, rec *c, const char *name,
                     const ds_resolver_opts *o)
{
  char err[256] = "";
  int rc = start(r, c, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, o, err, sizeof err);
  CHECK_MSG(rc == 0, "lookup %s: %s (%s)", name, ds_err_name(rc), err);
  CHECK_EQ(c->calls, 0);
}

/* Options for dnsd d and the hosts file hosts_fd (-1: none). */
static ds_resolver_opts opts_for(const dns *d, int hosts_fd, char *path,
                                 size_t len)
{
  ds_resolver_opts o = {0};
  o.servers = d->server;
  o.hosts_file = "";
  if (hosts_fd >= 0) {
    snprintf(path, len, "/proc/self/fd/%d", hosts_fd);
    o.hosts_file = path;
  }
  o.timeout_ms = 2000;
  o.attempts = 1;
  return o;
}

static const char *const base_config =
    "multi.test    A     192.0.2.10,192.0.2.11,192.0.2.12\n"
    "multi.test    AAAA  2001:db8::10,2001:db8::11\n"
    "slow.test     A     192.0.2.20\n"
    "slow.test     AAAA  2001:db8::20                  delay=300\n"
    "v6only.test   AAAA  2001:db8::30\n"
    "gone.test     *     NXDOMAIN\n"
    "broken.test   A     SERVFAIL\n"
    "silent.test   *     DROP\n"
    "hosted.test   *     198.51.100.99,2001:db8::99\n"
    "alias.test    *     198.51.100.98,2001:db8::98\n"
    "v4host.test   *     198.51.100.97,2001:db8::97\n"
    "marker.test   A     192.0.2.1\n"
    "late.test     *     192.0.2.40,2001:db8::40       delay=400\n"
    "split.test    A     192.0.2.50\n"
    "split.test    AAAA  2001:db8::50                  delay=200\n";

/* ----------------------------------------------------------- tests */

TEST(resolve_a_and_aaaa_answered_separately_with_every_address)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;
  const char *log, *q6, *q4;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "Multi.Test", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_EQ(c.wrong, 0);
  CHECK_EQ(c.calls4, 1);
  CHECK_EQ(c.calls6, 1);
  CHECK_EQ(c.status4, 0);
  CHECK_EQ(c.status6, 0);
  CHECK_STR(c.text4, "192.0.2.10 192.0.2.11 192.0.2.12");
  CHECK_STR(c.text6, "2001:db8::10 2001:db8::11");
  /* AAAA is sent first. */
  log = dns_log(&d);
  q6 = strstr(log, " multi.test AAAA ");
  q4 = strstr(log, " multi.test A ");
  CHECK_MSG(q6 != NULL && q4 != NULL && q6 < q4, "log:\n%s", log);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_slow_aaaa_does_not_hold_up_a)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "slow.test", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_EQ(c.wrong, 0);
  CHECK_EQ(c.first, AF_INET);
  CHECK_STR(c.text4, "192.0.2.20");
  CHECK_STR(c.text6, "2001:db8::20");
  /* A at once, AAAA after dnsd's 300 ms. */
  CHECK_MSG(c.t4 < 200, "A after %.1f ms", c.t4);
  CHECK_MSG(c.t6 >= 295 && c.t6 < 300 + 700, "AAAA after %.1f ms", c.t6);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_nodata_nxdomain_servfail)
{
  dns d;
  ds_reactor *r;
  rec nodata = {0}, gone = {0}, unknown = {0}, broken = {0};
  char hp[64];
  ds_resolver_opts o;
  double t0;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  t0 = ds_test_now_ms();
  start_ok(r, &nodata, "v6only.test", &o);
  start_ok(r, &gone, "gone.test", &o);
  start_ok(r, &unknown, "nobody.test", &o);
  start_ok(r, &broken, "broken.test", &o);
  RUN_UNTIL(r,
            nodata.calls == 2 && gone.calls == 2 && unknown.calls == 2 &&
                broken.calls == 2,
            3000);
  /* Negative answers come at once: no waiting for a timeout. */
  CHECK_MSG(ds_test_now_ms() - t0 < 1000, "took %.1f ms",
            ds_test_now_ms() - t0);
  CHECK_EQ(nodata.status6, 0);
  CHECK_STR(nodata.text6, "2001:db8::30");
  CHECK_EQ(nodata.status4, DS_ENODATA);
  CHECK_EQ(nodata.n4, 0);
  CHECK_EQ(gone.status4, DS_ENOTFOUND);
  CHECK_EQ(gone.status6, DS_ENOTFOUND);
  CHECK_EQ(unknown.status4, DS_ENOTFOUND);
  CHECK_EQ(unknown.status6, DS_ENOTFOUND);
  CHECK_EQ(broken.status4, DS_ESERVFAIL);
  CHECK_EQ(broken.status6, DS_ENODATA);
  CHECK_EQ(nodata.wrong + gone.wrong + unknown.wrong + broken.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_silent_server_times_out_after_timeout_and_attempts)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  o.timeout_ms = 200;
  o.attempts = 2;
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "silent.test", &o);
  RUN_UNTIL(r, c.calls == 2, 5000);
  CHECK_EQ(c.wrong, 0);
  CHECK_EQ(c.status4, DS_EDNSTIMEOUT);
  CHECK_EQ(c.status6, DS_EDNSTIMEOUT);
  /* 200 ms, then 400 ms for the second round (doubled, as glibc does). */
  CHECK_MSG(c.t4 >= 595 && c.t4 < 600 + 1000, "A after %.1f ms", c.t4);
  CHECK_MSG(c.t6 >= 595 && c.t6 < 600 + 1000, "AAAA after %.1f ms", c.t6);
  CHECK_EQ(dns_queries(&d, "silent.test", "A"), 2);
  CHECK_EQ(dns_queries(&d, "silent.test", "AAAA"), 2);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_res_options_timeout_and_attempts_apply)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;

  /* Zero in the options: the system's settings, here RES_OPTIONS (which
   * overrides resolv.conf, as in glibc). */
  setenv("RES_OPTIONS", "attempts:1 timeout:1", 1);
  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  o.timeout_ms = 0;
  o.attempts = 0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "silent.test", &o);
  RUN_UNTIL(r, c.calls == 2, 6000);
  CHECK_EQ(c.status4, DS_EDNSTIMEOUT);
  CHECK_EQ(c.status6, DS_EDNSTIMEOUT);
  CHECK_MSG(c.t4 >= 995 && c.t4 < 1000 + 1000, "A after %.1f ms", c.t4);
  CHECK_EQ(dns_queries(&d, "silent.test", "A"), 1);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_hosts_file_answers_both_families_without_dns)
{
  dns d;
  ds_reactor *r;
  rec h = {0}, al = {0}, v4 = {0}, m = {0};
  char hp[64];
  ds_resolver_opts o;
  int hfd = memfile("hosts", "# test hosts\n"
                             "127.0.0.1 localhost\n"
                             "192.0.2.77\thosted.test alias.test # comment\n"
                             "bogus-address hosted.test\n"
                             "2001:db8::77 other.test HOSTED.TEST.\n"
                             "192.0.2.78 hosted.test\n"
                             "192.0.2.79 v4host.test\n");

  dns_start(&d, base_config);
  o = opts_for(&d, hfd, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &h, "Hosted.Test", &o);
  start_ok(r, &al, "alias.test.", &o);
  start_ok(r, &v4, "v4host.test", &o);
  RUN_UNTIL(r, h.calls == 2 && al.calls == 2 && v4.calls == 2, 2000);
  CHECK_EQ(h.wrong + al.wrong + v4.wrong, 0);
  /* Every line naming it, in file order; AAAA delivered first. */
  CHECK_EQ(h.first, AF_INET6);
  CHECK_STR(h.text4, "192.0.2.77 192.0.2.78");
  CHECK_STR(h.text6, "2001:db8::77");
  CHECK_STR(al.text4, "192.0.2.77");
  CHECK_EQ(al.status6, DS_ENODATA);
  CHECK_STR(v4.text4, "192.0.2.79");
  CHECK_EQ(v4.status6, DS_ENODATA);
  /* Nothing went to DNS for them: a later query is in the log, they are
   * not. */
  start_ok(r, &m, "marker.test", &o);
  RUN_UNTIL(r, m.calls == 2, 3000);
  CHECK_STR(m.text4, "192.0.2.1");
  CHECK_EQ(dns_queries(&d, "marker.test", "A"), 1);
  CHECK_MSG(strstr(dns_log(&d), "hosted.test") == NULL &&
                strstr(dns_log(&d), "alias.test") == NULL &&
                strstr(dns_log(&d), "v4host.test") == NULL,
            "log:\n%s", dns_log(&d));
  CHECK_EQ(ds_reactor_free(r), 0);
  close(hfd);
  dns_stop(&d);
}

TEST(resolve_hosts_file_options_none_and_missing)
{
  ds_reactor *r;
  rec c = {0};
  ds_resolver_opts o = {0};
  char err[256] = "";
  int rc;

  CHECK_EQ(ds_reactor_new(&r), 0);
  /* A hosts file that was asked for and is missing is an error naming
   * it. */
  o.hosts_file = "/nonexistent/dualstack-hosts";
  o.servers = "127.0.0.1:9";
  rc = start(r, &c, "www.test", DS_LOOKUP_A, &o, err, sizeof err);
  CHECK_EQ(rc, -ENOENT);
  CHECK_MSG(strstr(err, "/nonexistent/dualstack-hosts") != NULL, "err: %s",
            err);
  ds_test_run_for(r, 50);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(resolve_literals_answered_as_themselves_without_dns)
{
  dns d;
  ds_reactor *r;
  rec v4 = {0}, v6 = {0}, ll = {0}, only6 = {0};
  char hp[64], err[256];
  ds_resolver_opts o;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &v4, "192.0.2.1", &o);
  start_ok(r, &v6, "2001:DB8:0::1", &o);
  start_ok(r, &ll, "fe80::1%1", &o);
  CHECK_EQ(start(r, &only6, "::1", DS_LOOKUP_AAAA, &o, err, sizeof err), 0);
  RUN_UNTIL(r, v4.calls == 2 && v6.calls == 2 && ll.calls == 2, 2000);
  RUN_UNTIL(r, only6.calls == 1, 2000);
  CHECK_EQ(v4.wrong + v6.wrong + ll.wrong + only6.wrong, 0);
  CHECK_STR(v4.text4, "192.0.2.1");
  CHECK_EQ(v4.status6, DS_ENODATA);
  CHECK_STR(v6.text6, "2001:db8::1");
  CHECK_EQ(v6.status4, DS_ENODATA);
  /* A literal keeps its scope. */
  CHECK_EQ(ll.status6, 0);
  CHECK_EQ(ll.scope6, 1);
  CHECK_STR(only6.text6, "::1");
  CHECK_EQ(only6.calls4, 0);
  ds_test_run_for(r, 50);
  CHECK_EQ(only6.calls, 1);
  CHECK_MSG(dns_log(&d)[0] == '\0', "log:\n%s", dns_log(&d));
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_bad_names_fail_at_once)
{
  static const struct {
    const char *name, *why;
  } bad[] = {
      {"", "empty"},
      {".", "root"},
      {"a..test", "empty label"},
      {".lead.test", "leading dot"},
      {"bad!char.test", "'!'"},
      {"sp ace.test", "' '"},
      {"tab\t.test", "0x09"},
      {"-lead.test", "starts with '-'"},
      {"trail-.test", "ends with '-'"},
      {"1.2.3", "all digits"},
      {"10", "all digits"},
      {"2001:db8::zz", "IPv6"},
      {"ex\xc3\xa4mple.test", "0xc3"},
  };
  char long_label[80], long_name[300], err[256];
  ds_reactor *r;
  rec c = {0};
  ds_resolver_opts o = {0};
  size_t i;
  int rc;

  o.servers = "127.0.0.1:9";
  o.hosts_file = "";
  CHECK_EQ(ds_reactor_new(&r), 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    rc = start(r, &c, bad[i].name, DS_LOOKUP_A | DS_LOOKUP_AAAA, &o, err,
               sizeof err);
    CHECK_MSG(rc == DS_EBADNAME, "'%s': %s", bad[i].name, ds_err_name(rc));
    CHECK_MSG(strstr(err, bad[i].why) != NULL, "'%s': err '%s' lacks '%s'",
              bad[i].name, err, bad[i].why);
    CHECK(c.l == NULL);
  }
  memset(long_label, 'a', 64);
  strcpy(long_label + 64, ".test");
  rc = start(r, &c, long_label, DS_LOOKUP_A, &o, err, sizeof err);
  CHECK_EQ(rc, DS_EBADNAME);
  CHECK_MSG(strstr(err, "64 characters") != NULL, "err: %s", err);
  /* 254 characters: 50 labels of "abcd." and "test". */
  long_name[0] = '\0';
  for (i = 0; i < 50; i++)
    strcat(long_name, "abcd.");
  strcat(long_name, "test");
  CHECK_EQ(strlen(long_name), 254);
  rc = start(r, &c, long_name, DS_LOOKUP_A, &o, err, sizeof err);
  CHECK_EQ(rc, DS_EBADNAME);
  CHECK_MSG(strstr(err, "254 characters") != NULL, "err: %s", err);
  /* A scope naming no interface is that error, with the name. */
  rc = start(r, &c, "fe80::1%nosuchif0", DS_LOOKUP_AAAA, &o, err, sizeof err);
  CHECK_EQ(rc, -ENODEV);
  CHECK_MSG(strstr(err, "nosuchif0") != NULL, "err: %s", err);
  /* Wrong arguments. */
  CHECK_EQ(start(r, &c, "www.test", 0, &o, err, sizeof err), -EINVAL);
  CHECK_EQ(start(r, &c, "www.test", 4, &o, err, sizeof err), -EINVAL);
  CHECK_EQ(ds_lookup_start(r, "www.test", DS_LOOKUP_A, &o, NULL, NULL, NULL,
                           err, sizeof err),
           -EINVAL);
  ds_test_run_for(r, 50);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(resolve_names_at_the_limits_are_accepted)
{
  char label63[80], name253[300], hosts[1024];
  ds_reactor *r;
  rec c[4];
  ds_resolver_opts o = {0};
  char hp[64];
  int hfd, i;

  memset(label63, 'b', 63);
  strcpy(label63 + 63, ".test");
  /* 253 characters: 49 labels of "abcd.", then "abc.test". */
  name253[0] = '\0';
  for (i = 0; i < 49; i++)
    strcat(name253, "abcd.");
  strcat(name253, "abc.test");
  CHECK_EQ(strlen(name253), 253);
  snprintf(hosts, sizeof hosts,
           "192.0.2.1 %s\n192.0.2.2 %s\n"
           "192.0.2.3 _srv.x-y.test\n192.0.2.4 single\n",
           label63, name253);
  hfd = memfile("hosts", hosts);
  snprintf(hp, sizeof hp, "/proc/self/fd/%d", hfd);
  o.hosts_file = hp;
  o.servers = "127.0.0.1:9";
  memset(c, 0, sizeof c);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c[0], label63, &o);
  start_ok(r, &c[1], name253, &o);
  start_ok(r, &c[2], "_srv.x-y.test.", &o);
  start_ok(r, &c[3], "SINGLE", &o);
  RUN_UNTIL(r, c[0].calls + c[1].calls + c[2].calls + c[3].calls == 8, 2000);
  CHECK_STR(c[0].text4, "192.0.2.1");
  CHECK_STR(c[1].text4, "192.0.2.2");
  CHECK_STR(c[2].text4, "192.0.2.3");
  CHECK_STR(c[3].text4, "192.0.2.4");
  CHECK_EQ(ds_reactor_free(r), 0);
  close(hfd);
}

TEST(resolve_bad_servers_option_names_the_entry)
{
  static const struct {
    const char *servers, *why;
  } bad[] = {
      {"127.0.0.1,bogus,::1", "'bogus'"},
      {"192.0.2.2:99999", "'192.0.2.2:99999'"},
      {"192.0.2.2:0", "port 0"},
      {"", "empty entry"},
      {"192.0.2.2,", "empty entry"},
      {"[192.0.2.2]:53", "'[192.0.2.2]:53'"},
      {"2001:db8::2:53:", "'2001:db8::2:53:'"},
      {"[fe80::1%1]:53", "scope"},
      {"192.0.2.256", "'192.0.2.256'"},
  };
  ds_reactor *r;
  rec c = {0};
  ds_resolver_opts o = {0};
  char err[256];
  size_t i;
  int rc, fds0;

  o.hosts_file = "";
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    o.servers = bad[i].servers;
    rc = start(r, &c, "www.test", DS_LOOKUP_A | DS_LOOKUP_AAAA, &o, err,
               sizeof err);
    CHECK_MSG(rc == DS_EBADADDR, "'%s': %s", bad[i].servers, ds_err_name(rc));
    CHECK_MSG(strstr(err, bad[i].why) != NULL, "'%s': err '%s' lacks %s",
              bad[i].servers, err, bad[i].why);
  }
  /* Also when the name would need no DNS. */
  o.servers = "bogus";
  rc = start(r, &c, "192.0.2.1", DS_LOOKUP_A, &o, err, sizeof err);
  CHECK_EQ(rc, DS_EBADADDR);
  CHECK_EQ(ds_test_count_fds(), fds0);
  /* Every accepted form; cancelled at once, nothing is delivered. */
  o.servers = "192.0.2.2, [2001:db8::2]:5353,127.0.0.1:5300,2001:db8::3,"
              "[2001:db8::4]";
  rc = start(r, &c, "www.test", DS_LOOKUP_A | DS_LOOKUP_AAAA, &o, err,
             sizeof err);
  CHECK_MSG(rc == 0, "%s", err);
  ds_lookup_cancel(c.l);
  CHECK_EQ(ds_test_count_fds(), fds0);
  ds_test_run_for(r, 50);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(resolve_cancel_mid_lookup_closes_everything)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;
  int fds0;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  start_ok(r, &c, "late.test", &o);
  CHECK_MSG(ds_test_count_fds() > fds0, "no socket open");
  /* Both queries are out; their answers wait 400 ms in dnsd. */
  RUN_UNTIL(r, dns_queries(&d, "late.test", "A") == 1, 300);
  CHECK_EQ(dns_queries(&d, "late.test", "AAAA"), 1);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_lookup_cancel(c.l);
  /* The socket is closed at once. */
  CHECK_EQ(ds_test_count_fds(), fds0);
  ds_test_run_for(r, 600);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_cancel_inside_first_callback_stops_the_second)
{
  dns d;
  ds_reactor *r;
  rec split = {0}, hosted = {0};
  char hp[64];
  ds_resolver_opts o;
  int hfd = memfile("hosts", "192.0.2.9 both.test\n2001:db8::9 both.test\n");
  int fds0;

  dns_start(&d, base_config);
  o = opts_for(&d, hfd, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  /* DNS: A comes first, AAAA 200 ms later (its query still open when A
   * is cancelled). */
  split.cancel_in_first = 1;
  start_ok(r, &split, "split.test", &o);
  /* Hosts file: both answers are ready in the same turn. */
  hosted.cancel_in_first = 1;
  start_ok(r, &hosted, "both.test", &o);
  RUN_UNTIL(r, split.calls == 1 && hosted.calls == 1, 2000);
  CHECK_EQ(split.first, AF_INET);
  CHECK_EQ(hosted.first, AF_INET6);
  CHECK_EQ(ds_test_count_fds(), fds0);
  ds_test_run_for(r, 500);
  CHECK_EQ(split.calls, 1);
  CHECK_EQ(hosted.calls, 1);
  CHECK_EQ(split.wrong + hosted.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(hfd);
  dns_stop(&d);
}

TEST(resolve_many_concurrent_lookups)
{
  enum { N = 60 };
  static rec c[N];
  static const char *const names[] = {"multi.test", "slow.test", "gone.test",
                                      "v6only.test", "192.0.2.5"};
  dns d;
  ds_reactor *r;
  char hp[64];
  ds_resolver_opts o;
  int fds0, i, total;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  for (i = 0; i < N; i++)
    start_ok(r, &c[i], names[i % 5], &o);
  total = 0;
  for (double end = ds_test_now_ms() + 5000;
       total < 2 * N && ds_test_now_ms() < end;) {
    ds_reactor_run_once(r, 20);
    for (total = 0, i = 0; i < N; i++)
      total += c[i].calls;
  }
  CHECK_EQ(total, 2 * N);
  for (i = 0; i < N; i++) {
    CHECK_EQ(c[i].wrong, 0);
    CHECK_EQ(c[i].calls4, 1);
    CHECK_EQ(c[i].calls6, 1);
    switch (i % 5) {
    case 0:
      CHECK_STR(c[i].text4, "192.0.2.10 192.0.2.11 192.0.2.12");
      CHECK_STR(c[i].text6, "2001:db8::10 2001:db8::11");
      break;
    case 1:
      CHECK_STR(c[i].text6, "2001:db8::20");
      break;
    case 2:
      CHECK_EQ(c[i].status4, DS_ENOTFOUND);
      break;
    case 3:
      CHECK_EQ(c[i].status4, DS_ENODATA);
      break;
    case 4:
      CHECK_STR(c[i].text4, "192.0.2.5");
      break;
    }
  }
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_never_calls_back_inside_start)
{
  ds_reactor *r;
  rec lit = {0}, host = {0}, onion = {0};
  ds_resolver_opts o = {0};
  char hp[64];
  int hfd = memfile("hosts", "192.0.2.8 h.test\n");

  snprintf(hp, sizeof hp, "/proc/self/fd/%d", hfd);
  o.hosts_file = hp;
  o.servers = "127.0.0.1:9";
  CHECK_EQ(ds_reactor_new(&r), 0);
  /* Answered before any DNS: a literal and a hosts-file name. c-ares
   * itself completes a .onion name inside ares_search() (RFC 7686). */
  start_ok(r, &lit, "192.0.2.7", &o);
  start_ok(r, &host, "h.test", &o);
  start_ok(r, &onion, "hidden.onion", &o);
  CHECK_EQ(lit.calls + host.calls + onion.calls, 0);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(lit.calls, 2);
  CHECK_EQ(host.calls, 2);
  CHECK_EQ(onion.calls, 2);
  CHECK_EQ(onion.status4, DS_ENOTFOUND);
  CHECK_EQ(onion.status6, DS_ENOTFOUND);
  CHECK_EQ(lit.wrong + host.wrong + onion.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(hfd);
}

TEST(resolve_reactor_free_is_ebusy_while_a_lookup_lives)
{
  dns d;
  ds_reactor *r;
  rec c = {0}, lit = {0}, c2 = {0};
  char hp[64];
  ds_resolver_opts o;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "slow.test", &o);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  RUN_UNTIL(r, c.calls == 1, 2000);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  RUN_UNTIL(r, c.calls == 2, 2000);
  CHECK_EQ(ds_reactor_free(r), 0);
  /* A literal's lookup lives until its answers are delivered, or until
   * it is cancelled (its queued delivery is taken back). */
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &lit, "192.0.2.1", &o);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_lookup_cancel(lit.l);
  CHECK_EQ(ds_reactor_free(r), 0);
  CHECK_EQ(lit.calls, 0);
  /* The same for a lookup cancelled mid-DNS. */
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c2, "slow.test", &o);
  RUN_UNTIL(r, c2.calls == 1, 2000);
  ds_lookup_cancel(c2.l);
  CHECK_EQ(ds_reactor_free(r), 0);
  CHECK_EQ(c2.calls, 1);
  dns_stop(&d);
}

TEST(resolve_large_answer_falls_back_to_tcp)
{
  char config[2048], want[1024];
  size_t off, woff;
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;
  int i, fds0;

  /* 32 A records do not fit in 512 bytes: dnsd sets TC, c-ares asks
   * again over TCP, through the same socket functions. */
  off = (size_t)snprintf(config, sizeof config, "big.test A ");
  woff = 0;
  for (i = 0; i < 32; i++) {
    off += (size_t)snprintf(config + off, sizeof config - off, "%s192.0.2.%d",
                            i ? "," : "", 100 + i);
    woff += (size_t)snprintf(want + woff, sizeof want - woff, "%s192.0.2.%d",
                             i ? " " : "", 100 + i);
  }
  snprintf(config + off, sizeof config - off, "\n");
  dns_start(&d, config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  CHECK_EQ(start(r, &c, "big.test", DS_LOOKUP_A, &o, NULL, 0), 0);
  RUN_UNTIL(r, c.calls == 1, 3000);
  CHECK_EQ(c.status4, 0);
  CHECK_EQ(c.n4, 32);
  CHECK_STR(c.text4, want);
  CHECK_MSG(strstr(dns_log(&d), " tcp ") != NULL, "log:\n%s", dns_log(&d));
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_one_family_asks_one_question)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64], err[256];
  ds_resolver_opts o;

  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(start(r, &c, "multi.test", DS_LOOKUP_AAAA, &o, err, sizeof err), 0);
  RUN_UNTIL(r, c.calls == 1, 3000);
  ds_test_run_for(r, 50);
  CHECK_EQ(c.calls, 1);
  CHECK_EQ(c.calls6, 1);
  CHECK_STR(c.text6, "2001:db8::10 2001:db8::11");
  CHECK_EQ(dns_queries(&d, "multi.test", "AAAA"), 1);
  CHECK_EQ(dns_queries(&d, "multi.test", "A"), 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_ipv6_server)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;

  ds_test_require_ipv6();
  dns_start_on(&d, "[::1]:0", base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_MSG(strncmp(o.servers, "[::1]:", 6) == 0, "%s", o.servers);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "multi.test", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_STR(c.text4, "192.0.2.10 192.0.2.11 192.0.2.12");
  CHECK_STR(c.text6, "2001:db8::10 2001:db8::11");
  CHECK_MSG(strstr(dns_log(&d), " udp ::1#") != NULL, "log:\n%s", dns_log(&d));
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_unreachable_server_is_a_dns_error)
{
  ds_reactor *r;
  rec c = {0};
  ds_resolver_opts o = {0};
  char servers[64];
  struct sockaddr_in sin = {.sin_family = AF_INET};
  socklen_t len = sizeof sin;
  int fd;

  /* A port nobody listens on: the ICMP port unreachable ends the lookup
   * at once instead of a timeout. */
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  close(fd);
  snprintf(servers, sizeof servers, "127.0.0.1:%u", ntohs(sin.sin_port));
  o.servers = servers;
  o.hosts_file = "";
  o.timeout_ms = 3000;
  o.attempts = 2;
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "www.test", &o);
  RUN_UNTIL(r, c.calls == 2, 8000);
  CHECK_EQ(c.status4, DS_EDNS);
  CHECK_EQ(c.status6, DS_EDNS);
  CHECK_MSG(c.t4 < 1000, "took %.1f ms", c.t4);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(resolve_search_list_nodata_and_nxdomain)
{
  static const char config[] = "www.test            A  192.0.2.60\n"
                               "nodot.search.test   A  192.0.2.61\n"
                               "sf.search.test      *  SERVFAIL\n"
                               "sf                  A  192.0.2.62\n";
  dns d;
  ds_reactor *r;
  rec www = {0}, nodot = {0}, missing = {0}, sf = {0};
  char hp[64];
  ds_resolver_opts o;

  /* c-ares takes the search list from LOCALDOMAIN as from resolv.conf. */
  setenv("LOCALDOMAIN", "search.test", 1);
  dns_start(&d, config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &www, "www.test", &o);
  start_ok(r, &nodot, "nodot", &o);
  start_ok(r, &missing, "missing", &o);
  start_ok(r, &sf, "sf", &o);
  RUN_UNTIL(r,
            www.calls == 2 && nodot.calls == 2 && missing.calls == 2 &&
                sf.calls == 2,
            3000);
  /* www.test as-is first (it has a dot): NODATA for AAAA, even though
   * www.test.search.test, tried next, does not exist. */
  CHECK_STR(www.text4, "192.0.2.60");
  CHECK_EQ(www.status6, DS_ENODATA);
  CHECK_EQ(dns_queries(&d, "www.test.search.test", "AAAA"), 1);
  /* nodot through the search list first; for AAAA the search domain's
   * NODATA wins over the as-is NXDOMAIN tried last. */
  CHECK_STR(nodot.text4, "192.0.2.61");
  CHECK_EQ(nodot.status6, DS_ENODATA);
  CHECK_EQ(dns_queries(&d, "nodot", "AAAA"), 1);
  CHECK_EQ(missing.status4, DS_ENOTFOUND);
  CHECK_EQ(missing.status6, DS_ENOTFOUND);
  /* c-ares 1.18.1 ends the search at a SERVFAIL (after trying every
   * server), where glibc would go on to the next name: "sf" as-is is
   * never asked. */
  CHECK_EQ(sf.status4, DS_ESERVFAIL);
  CHECK_EQ(sf.status6, DS_ESERVFAIL);
  CHECK_EQ(dns_queries(&d, "sf", "A"), 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_servfail_tries_the_next_server)
{
  dns bad, good;
  ds_reactor *r;
  rec c = {0}, all = {0};
  char hp[64], servers[160];
  ds_resolver_opts o;

  /* As glibc: a SERVFAIL (or REFUSED) moves on to the next server. */
  dns_start(&bad, "www.test * SERVFAIL\n");
  dns_start(&good, "www.test * 192.0.2.70,2001:db8::70\n");
  o = opts_for(&bad, -1, hp, sizeof hp);
  snprintf(servers, sizeof servers, "%s,%s", bad.server, good.server);
  o.servers = servers;
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "www.test", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_STR(c.text4, "192.0.2.70");
  CHECK_STR(c.text6, "2001:db8::70");
  CHECK_EQ(dns_queries(&bad, "www.test", "A"), 1);
  CHECK_EQ(dns_queries(&good, "www.test", "A"), 1);
  /* Every server failing is a SERVFAIL, not a generic error. */
  snprintf(servers, sizeof servers, "%s,%s", bad.server, bad.server);
  start_ok(r, &all, "www.test", &o);
  RUN_UNTIL(r, all.calls == 2, 3000);
  CHECK_EQ(all.status4, DS_ESERVFAIL);
  CHECK_EQ(all.status6, DS_ESERVFAIL);
  CHECK_MSG(all.t4 < 1000, "took %.1f ms", all.t4);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&bad);
  dns_stop(&good);
}

TEST(resolve_answer_to_an_earlier_try_still_counts)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64];
  ds_resolver_opts o;

  /* late.test answers after 400 ms: the first try times out at 250 ms and
   * the second goes out, but the answer to the first, on the same socket
   * and with the same ID, ends the lookup (as in c-ares and glibc). */
  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  o.timeout_ms = 250;
  o.attempts = 2;
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "late.test", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_EQ(c.status4, 0);
  CHECK_STR(c.text4, "192.0.2.40");
  CHECK_STR(c.text6, "2001:db8::40");
  CHECK_MSG(c.t4 >= 395 && c.t4 < 700, "A after %.1f ms", c.t4);
  CHECK_EQ(dns_queries(&d, "late.test", "A"), 2);
  CHECK_EQ(dns_queries(&d, "late.test", "AAAA"), 2);
  CHECK_EQ(c.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

TEST(resolve_trailing_dot_name_skips_the_search_list)
{
  dns d;
  ds_reactor *r;
  rec c = {0}, plain = {0};
  char hp[64];
  ds_resolver_opts o;

  /* "gone.test." is asked as it is, and only so, whatever the search list;
   * "gone.test" goes on to gone.test.search.test after the NXDOMAIN. */
  setenv("LOCALDOMAIN", "search.test", 1);
  dns_start(&d, base_config);
  o = opts_for(&d, -1, hp, sizeof hp);
  CHECK_EQ(ds_reactor_new(&r), 0);
  start_ok(r, &c, "gone.test.", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_EQ(c.status4, DS_ENOTFOUND);
  CHECK_EQ(c.status6, DS_ENOTFOUND);
  CHECK_EQ(dns_queries(&d, "gone.test", "A"), 1);
  CHECK_EQ(dns_queries(&d, "gone.test.search.test", "A"), 0);
  start_ok(r, &plain, "gone.test", &o);
  RUN_UNTIL(r, plain.calls == 2, 3000);
  CHECK_EQ(plain.status4, DS_ENOTFOUND);
  CHECK_EQ(dns_queries(&d, "gone.test.search.test", "A"), 1);
  CHECK_EQ(c.wrong + plain.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}

/* A UDP relay in front of dnsd that sends the client an empty datagram
 * before each answer. */
typedef struct relay {
  int fd;
  unsigned short port, to;
  int queries;
} relay;

static void *relay_run(void *p)
{
  relay *rl = p;
  struct sockaddr_in to = {.sin_family = AF_INET};
  int up = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 5};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(rl->to);
  setsockopt(rl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(up, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (int i = 0; i < rl->queries; i++) {
    unsigned char b[4096];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(rl->fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
    if (n <= 0)
      break;
    sendto(rl->fd, "", 0, 0, (struct sockaddr *)&from, fl);
    sendto(up, b, (size_t)n, 0, (struct sockaddr *)&to, sizeof to);
    n = recv(up, b, sizeof b, 0);
    if (n <= 0)
      break;
    sendto(rl->fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
  close(up);
  return NULL;
}

TEST(resolve_empty_datagram_before_the_answer_is_ignored)
{
  dns d;
  ds_reactor *r;
  rec c = {0};
  char hp[64], srv[64];
  ds_resolver_opts o;
  relay rl = {.queries = 2};
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof a;
  pthread_t th;

  /* A zero-length datagram from the server's address is not an answer,
   * nor an error that gives the server up. */
  dns_start(&d, base_config);
  rl.to = (unsigned short)d.port;
  rl.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(bind(rl.fd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ(getsockname(rl.fd, (struct sockaddr *)&a, &al), 0);
  snprintf(srv, sizeof srv, "127.0.0.1:%u", ntohs(a.sin_port));
  CHECK_EQ(pthread_create(&th, NULL, relay_run, &rl), 0);
  o = opts_for(&d, -1, hp, sizeof hp);
  o.servers = srv;
  o.attempts = 1;
  CHECK_EQ(ds_reactor_new(&r), 0);
  /* The trailing dot: asked as it is, by the resolver's own first tries. */
  start_ok(r, &c, "multi.test.", &o);
  RUN_UNTIL(r, c.calls == 2, 3000);
  CHECK_EQ(pthread_join(th, NULL), 0);
  close(rl.fd);
  CHECK_EQ(c.status4, 0);
  CHECK_EQ(c.status6, 0);
  CHECK_STR(c.text4, "192.0.2.10 192.0.2.11 192.0.2.12");
  CHECK_MSG(c.t4 < 1000 && c.t6 < 1000, "answers after %.1f and %.1f ms", c.t4,
            c.t6);
  CHECK_EQ(c.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  dns_stop(&d);
}
