/* The resolver's TTLs (ds_lookup_ttl): the smallest TTL of a DNS answer,
 * DS_TTL_NONE for DNS failures, DS_TTL_LOCAL for hosts-file answers, as
 * a cache in front of the resolver (the shim's) needs them. The test DNS
 * server (dnsd) runs on loopback as in test_resolve.c, with its helpers
 * (dnstest.c).
 */
#include "dnstest.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>


/* ---------------------------------------------------------- lookups */

typedef struct ttlrec {
  int calls;
  int status[2]; /* [0] AAAA, [1] A */
  int ttl[2];
} ttlrec;

static void on_ttl(ds_lookup *l, int family, int status, const ds_addr *addrs,
                   size_t n, void *user)
{
  ttlrec *t = user;
  int i = family == AF_INET6 ? 0 : 1;
  (void)addrs;
  (void)n;
  t->calls++;
  t->status[i] = status;
  t->ttl[i] = ds_lookup_ttl(l, family);
}

/* Looks name up in both families against d (hosts file hosts_path, ""
 * for none) and runs until both answered. */
static void lookup_ttl(const dns *d, const char *hosts_path, const char *name,
                       ttlrec *t)
{
  ds_reactor *r;
  ds_lookup *l;
  ds_resolver_opts o = {0};
  char err[256] = "";
  double end;
  int rc;

  memset(t, 0, sizeof *t);
  o.servers = d->server;
  o.hosts_file = hosts_path;
  o.timeout_ms = 2000;
  o.attempts = 1;
  CHECK_EQ(ds_reactor_new(&r), 0);
  rc = ds_lookup_start(r, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, &o, on_ttl, t,
                       &l, err, sizeof err);
  CHECK_MSG(rc == 0, "%s: %s", name, err);
  end = ds_test_now_ms() + 3000;
  while (t->calls < 2 && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(t->calls, 2);
  CHECK_EQ(ds_reactor_free(r), 0);
}

static const char *const ttl_config =
    "short.test   A     192.0.2.1,192.0.2.2   ttl=7\n"
    "short.test   AAAA  2001:db8::1           ttl=3600\n"
    "zero.test    A     192.0.2.3             ttl=0\n"
    "zero.test    AAAA  NODATA\n"
    "gone.test    *     NXDOMAIN\n"
    "broken.test  *     SERVFAIL\n"
    "hosted.test  *     192.0.2.99\n";

TEST(resolve_ttl_of_dns_answers)
{
  dns d;
  ttlrec t;

  dns_start(&d, ttl_config);
  lookup_ttl(&d, "", "short.test", &t);
  CHECK_EQ(t.status[1], 0);
  CHECK_EQ(t.ttl[1], 7);
  CHECK_EQ(t.status[0], 0);
  CHECK_EQ(t.ttl[0], 3600);
  lookup_ttl(&d, "", "zero.test", &t);
  CHECK_EQ(t.ttl[1], 0);
  CHECK_EQ(t.status[0], DS_ENODATA);
  CHECK_EQ(t.ttl[0], DS_TTL_NONE);
  lookup_ttl(&d, "", "gone.test", &t);
  CHECK_EQ(t.status[1], DS_ENOTFOUND);
  CHECK_EQ(t.ttl[1], DS_TTL_NONE);
  CHECK_EQ(t.ttl[0], DS_TTL_NONE);
  lookup_ttl(&d, "", "broken.test", &t);
  CHECK_EQ(t.status[1], DS_ESERVFAIL);
  CHECK_EQ(t.ttl[1], DS_TTL_NONE);
  dns_stop(&d);
}

TEST(resolve_ttl_of_hosts_file_and_literals_is_local)
{
  dns d;
  ttlrec t;
  char path[64];
  int fd;

  dns_start(&d, ttl_config);
  fd = memfile("hosts", "2001:db8::99 hosted.test\n");
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lookup_ttl(&d, path, "hosted.test", &t);
  CHECK_EQ(t.status[0], 0);
  CHECK_EQ(t.ttl[0], DS_TTL_LOCAL);
  /* No IPv4 line: NODATA from the hosts file, also local. */
  CHECK_EQ(t.status[1], DS_ENODATA);
  CHECK_EQ(t.ttl[1], DS_TTL_LOCAL);
  CHECK_EQ(dns_queries(&d, "hosted.test", "A"), 0);
  lookup_ttl(&d, "", "192.0.2.5", &t);
  CHECK_EQ(t.ttl[1], DS_TTL_LOCAL);
  CHECK_EQ(ds_lookup_ttl(NULL, AF_INET), DS_TTL_NONE);
  close(fd);
  dns_stop(&d);
}
