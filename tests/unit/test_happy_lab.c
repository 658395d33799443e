/* Happy Eyeballs (RFC 8305) across a veth pair: the test DNS server and a
 * listener run in namespace B, the race runs here in namespace A. Every
 * timing bound allows about 40 ms of slack for a loaded machine.
 *
 * B serves port 80 on every address ([::]:80 and 0.0.0.0:80); its extra
 * IPv6 addresses 2001:db8::3 and ::4 are added once. Black holes and
 * refusals are nftables rules in B (tests/lab/lab.sh), removed before each
 * test.
 */
#include "test.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SLACK 40.0

/* Forks a child in namespace B listening on [::]:port and 0.0.0.0:port
 * (and [::1]:port for nothing in particular); it never accepts: the kernel
 * completes handshakes on its own. Returns the child's pid. */
static pid_t listener_in_b(uint16_t port)
{
  int p[2];
  pid_t pid;
  char c;
  CHECK_EQ(pipe(p), 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char path[256];
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
                              .sin6_port = htons(port)};
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1, fd, f6, f4;
    snprintf(path, sizeof path, "/run/netns/%s", getenv("LAB_NS_B"));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      _exit(3);
    f6 = socket(AF_INET6, SOCK_STREAM, 0);
    f4 = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(f6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(f6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(f4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(f6, (struct sockaddr *)&s6, sizeof s6) != 0 ||
        bind(f4, (struct sockaddr *)&s4, sizeof s4) != 0 ||
        listen(f6, 128) != 0 || listen(f4, 128) != 0)
      _exit(4);
    if (write(p[1], "x", 1) != 1)
      _exit(5);
    for (;;)
      pause();
  }
  close(p[1]);
  CHECK_MSG(read(p[0], &c, 1) == 1, "listener in B did not start");
  close(p[0]);
  return pid;
}

/* One lab scenario: a DNS table served on its own port, a listener. */
typedef struct lab {
  char servers[64];
  char qlog[256];
  pid_t dns_pid, listener;
  ds_resolver_opts ro;
} lab;

/* Sets up B for one test: no filters, the extra addresses, dnsd with
 * `table` on port dns_port, the listener on port 80. */
static void lab_up(lab *l, uint16_t dns_port, const char *table)
{
  char conf[256], pidf[256], out[256];
  const char *tmp = ds_test_lab_env("LAB_TMP");
  FILE *f;
  int i;
  ds_test_lab_env("LAB_NS_B");
  memset(l, 0, sizeof *l);
  ds_test_sh("\"$LAB_SH\" unfilter \"$LAB_NS_B\"");
  ds_test_sh(
      "\"$LAB_SH\" exec \"$LAB_NS_B\" sh -c 'ip addr show dev eth0 | grep -q "
      "2001:db8::4 || { ip addr add 2001:db8::3/64 dev eth0 nodad && ip addr "
      "add 2001:db8::4/64 dev eth0 nodad; }'");
  snprintf(conf, sizeof conf, "%s/he-%u.conf", tmp, dns_port);
  snprintf(l->qlog, sizeof l->qlog, "%s/he-%u.qlog", tmp, dns_port);
  snprintf(pidf, sizeof pidf, "%s/he-%u.pid", tmp, dns_port);
  snprintf(out, sizeof out, "%s/he-%u.out", tmp, dns_port);
  f = fopen(conf, "w");
  CHECK(f != NULL);
  fputs(table, f);
  fclose(f);
  unlink(pidf);
  ds_test_sh(
      "\"$LAB_SH\" bg \"$LAB_NS_B\" -o %s \"$LAB_DNSD\" -l 192.0.2.2:%u -c %s "
      "-q %s -p %s > /dev/null",
      out, dns_port, conf, l->qlog, pidf);
  for (i = 0; i < 200; i++) {
    struct stat st;
    if (stat(pidf, &st) == 0 && st.st_size > 0)
      break;
    usleep(10000);
  }
  f = fopen(pidf, "r");
  CHECK_MSG(f != NULL, "dnsd did not start");
  CHECK(fscanf(f, "%d", &l->dns_pid) == 1);
  fclose(f);
  snprintf(l->servers, sizeof l->servers, "192.0.2.2:%u", dns_port);
  l->ro.servers = l->servers;
  l->ro.hosts_file = "";
  l->listener = listener_in_b(80);
}

static void lab_down(lab *l)
{
  if (l->listener > 0) {
    kill(l->listener, SIGKILL);
    waitpid(l->listener, NULL, 0);
  }
  if (l->dns_pid > 0)
    kill(l->dns_pid, SIGTERM);
  ds_test_sh("\"$LAB_SH\" unfilter \"$LAB_NS_B\"");
}

/* What a race did, event by event. */
typedef struct race {
  ds_reactor *r;
  ds_happy *h;
  int done, fd, err;
  ds_happy_event ev[64];
  int nev;
  ds_happy_failure fails[16];
  size_t nfails;
  char text[512];
  double t0, t_done;
} race;

static void on_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  race *rc = user;
  (void)h;
  if (rc->nev < 64)
    rc->ev[rc->nev++] = *ev;
}

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  race *rc = user;
  const ds_happy_failure *f;
  size_t i;
  rc->done = 1;
  rc->fd = fd;
  rc->err = err;
  rc->t_done = ds_test_now_ms() - rc->t0;
  rc->nfails = ds_happy_failures(h, &f);
  for (i = 0; i < rc->nfails && i < 16; i++)
    rc->fails[i] = f[i];
  ds_happy_describe(h, rc->text, sizeof rc->text);
}

/* Runs a race to host:80 on reactor r to its end (bounded by limit_ms). */
static void run_race_on(race *rc, ds_reactor *r0, const char *host,
                        ds_happy_opts *o, double limit_ms)
{
  char err[256];
  int r;
  double end;
  memset(rc, 0, sizeof *rc);
  rc->fd = -1;
  rc->r = r0;
  rc->t0 = ds_test_now_ms();
  r = ds_happy_start(rc->r, host, 80, o, on_done, on_event, rc, &rc->h, err,
                     sizeof err);
  CHECK_MSG(r == 0, "ds_happy_start: %s (%s)", ds_strerror(r), err);
  CHECK_EQ(rc->done, 0); /* never inside the call */
  end = ds_test_now_ms() + limit_ms;
  while (!rc->done && ds_test_now_ms() < end)
    ds_reactor_run_once(rc->r, 20);
  CHECK_MSG(rc->done, "race did not end in %.0f ms", limit_ms);
}

/* Runs a race to host:80 on a reactor of its own. */
static void run_race(race *rc, const char *host, ds_happy_opts *o,
                     double limit_ms)
{
  ds_reactor *r;
  CHECK_EQ(ds_reactor_new(&r), 0);
  run_race_on(rc, r, host, o, limit_ms);
}

static void race_free(race *rc)
{
  if (rc->fd >= 0)
    close(rc->fd);
  rc->fd = -1;
  CHECK_EQ(ds_reactor_free(rc->r), 0);
}

/* Returns the n-th (from 1) event of a type, or NULL. */
static const ds_happy_event *nth(const race *rc, ds_happy_event_type type,
                                 int n)
{
  int i;
  for (i = 0; i < rc->nev; i++)
    if (rc->ev[i].type == type && --n == 0)
      return &rc->ev[i];
  return NULL;
}

/* Returns the DNS answer event of a family, or NULL. */
static const ds_happy_event *answer(const race *rc, int family)
{
  int i;
  for (i = 0; i < rc->nev; i++)
    if (rc->ev[i].type == DS_HE_ANSWER && rc->ev[i].family == family)
      return &rc->ev[i];
  return NULL;
}

static int count(const race *rc, ds_happy_event_type type)
{
  int i, n = 0;
  for (i = 0; i < rc->nev; i++)
    n += rc->ev[i].type == type;
  return n;
}

/* Returns the peer of fd as text. */
static const char *peer_text(int fd, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  ds_addr a;
  buf[0] = '\0';
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      ds_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sl) == 0)
    ds_addr_format(&a, buf, len, 0);
  return buf;
}

static const char *TABLE = "both.test A 192.0.2.2\n"
                           "both.test AAAA 2001:db8::2\n"
                           "late6.test A 192.0.2.2\n"
                           "late6.test AAAA 2001:db8::2 delay=20\n"
                           "drop6.test A 192.0.2.2\n"
                           "drop6.test AAAA DROP\n"
                           "nodata6.test A 192.0.2.2\n"
                           "nodata6.test AAAA NODATA\n"
                           "three6.test AAAA 2001:db8::2,2001:db8::3,"
                           "2001:db8::4\n"
                           "gone.test * NXDOMAIN\n";

TEST_T(lab_happy_both_families_work_one_ipv6_attempt, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  char p[64];
  int fds0;
  lab_up(&l, 5301, TABLE);
  o.resolver = &l.ro;
  fds0 = ds_test_count_fds();
  run_race(&rc, "both.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 1);
  CHECK_EQ(nth(&rc, DS_HE_ATTEMPT, 1)->family, AF_INET6);
  CHECK_STR(peer_text(rc.fd, p, sizeof p), "2001:db8::2");
  /* One socket: the winner, and nothing else of the race. */
  CHECK_EQ(ds_test_count_fds(), fds0 + 1 + 2 /* reactor's own */);
  race_free(&rc);
  CHECK_EQ(ds_test_count_fds(), fds0);
  lab_down(&l);
}

TEST_T(lab_happy_aaaa_20ms_after_a_starts_ipv6_at_20ms, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  const ds_happy_event *a1;
  lab_up(&l, 5302, TABLE);
  o.resolver = &l.ro;
  run_race(&rc, "late6.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  a1 = nth(&rc, DS_HE_ATTEMPT, 1);
  CHECK(a1 != NULL);
  CHECK_EQ(a1->family, AF_INET6);
  /* AAAA came 20 ms late (the server's delay), and the IPv6 attempt left
   * as soon as it did: the race waited for it rather than starting IPv4.
   * Times relative to the answers, so DNS jitter does not matter. */
  CHECK(answer(&rc, AF_INET6) != NULL && answer(&rc, AF_INET) != NULL);
  CHECK_MSG(answer(&rc, AF_INET6)->t_ms >= 19, "AAAA at %.1f",
            answer(&rc, AF_INET6)->t_ms);
  CHECK_MSG(answer(&rc, AF_INET)->t_ms < answer(&rc, AF_INET6)->t_ms,
            "A should come first");
  CHECK_MSG(a1->t_ms - answer(&rc, AF_INET6)->t_ms < 25,
            "first attempt %.1f ms after AAAA",
            a1->t_ms - answer(&rc, AF_INET6)->t_ms);
  CHECK_MSG(a1->t_ms < 20 + SLACK + 40, "first attempt at %.1f", a1->t_ms);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 1);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_aaaa_never_answers_ipv4_after_resolution_delay, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  const ds_happy_event *a1;
  lab_up(&l, 5303, TABLE);
  o.resolver = &l.ro;
  run_race(&rc, "drop6.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  a1 = nth(&rc, DS_HE_ATTEMPT, 1);
  CHECK_EQ(a1->family, AF_INET);
  CHECK(answer(&rc, AF_INET) != NULL);
  CHECK(answer(&rc, AF_INET6) == NULL); /* dropped: never answered */
  {
    /* The Resolution Delay, counted from the A answer. */
    double d = a1->t_ms - answer(&rc, AF_INET)->t_ms;
    CHECK_MSG(d >= 49 && d < 50 + SLACK, "IPv4 attempt %.1f ms after A", d);
  }
  CHECK_MSG(rc.t_done < 50 + SLACK + 60, "connected at %.1f", rc.t_done);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_aaaa_nodata_does_not_wait, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  const ds_happy_event *a1;
  lab_up(&l, 5304, TABLE);
  o.resolver = &l.ro;
  run_race(&rc, "nodata6.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  a1 = nth(&rc, DS_HE_ATTEMPT, 1);
  CHECK_EQ(a1->family, AF_INET);
  CHECK(answer(&rc, AF_INET) != NULL && answer(&rc, AF_INET6) != NULL);
  CHECK_EQ(answer(&rc, AF_INET6)->result, DS_ENODATA);
  {
    /* No Resolution Delay: the attempt leaves with the later answer. */
    double last = answer(&rc, AF_INET)->t_ms > answer(&rc, AF_INET6)->t_ms
                      ? answer(&rc, AF_INET)->t_ms
                      : answer(&rc, AF_INET6)->t_ms;
    CHECK_MSG(a1->t_ms - last < 25, "IPv4 attempt %.1f ms after the answers",
              a1->t_ms - last);
  }
  race_free(&rc);
  lab_down(&l);
}

/* Scenario 5, and with memory its second connect (scenario 14). */
TEST_T(lab_happy_ipv6_blackholed_ipv4_at_250ms_then_memory, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  ds_family_memory *mem;
  const ds_happy_event *a1, *a2;
  char p[64];
  int fds0;
  lab_up(&l, 5305, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  CHECK_EQ(ds_family_memory_new(&mem, 16, 600000), 0);
  o.resolver = &l.ro;
  o.memory = mem;
  fds0 = ds_test_count_fds();
  run_race(&rc, "both.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  a1 = nth(&rc, DS_HE_ATTEMPT, 1);
  a2 = nth(&rc, DS_HE_ATTEMPT, 2);
  CHECK(a1 != NULL && a2 != NULL);
  CHECK_EQ(a1->family, AF_INET6);
  CHECK_EQ(a2->family, AF_INET);
  CHECK_MSG(a2->t_ms - a1->t_ms >= 249 && a2->t_ms - a1->t_ms < 250 + SLACK,
            "IPv4 started %.1f ms after IPv6", a2->t_ms - a1->t_ms);
  CHECK_MSG(rc.t_done < a2->t_ms + SLACK, "connected at %.1f (IPv4 at %.1f)",
            rc.t_done, a2->t_ms);
  CHECK_STR(peer_text(rc.fd, p, sizeof p), "192.0.2.2");
  /* The IPv6 socket is closed: only the winner (and the reactor's two). */
  CHECK_EQ(ds_test_count_fds(), fds0 + 1 + 2);
  race_free(&rc);

  /* Second connect in the same process: IPv4 first, about one RTT. */
  run_race(&rc, "both.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_EQ(nth(&rc, DS_HE_ATTEMPT, 1)->family, AF_INET);
  CHECK_MSG(rc.t_done < 30, "second connect took %.1f ms", rc.t_done);
  race_free(&rc);
  ds_family_memory_free(mem);
  lab_down(&l);
}

TEST_T(lab_happy_ipv6_refused_ipv4_at_once, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  const ds_happy_event *r1, *a2;
  lab_up(&l, 5306, TABLE);
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  o.resolver = &l.ro;
  run_race(&rc, "both.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  r1 = nth(&rc, DS_HE_RESULT, 1);
  a2 = nth(&rc, DS_HE_ATTEMPT, 2);
  CHECK(r1 != NULL && a2 != NULL);
  CHECK_EQ(r1->result, -ECONNREFUSED);
  CHECK_EQ(a2->family, AF_INET);
  CHECK_MSG(a2->t_ms - r1->t_ms < 10, "IPv4 %.1f ms after the refusal",
            a2->t_ms - r1->t_ms);
  /* Connected a few RTTs after the IPv4 attempt started (times relative
   * to the race's own events, so DNS and start-up jitter do not count). */
  CHECK_MSG(rc.t_done - a2->t_ms < SLACK, "connected %.1f ms after IPv4",
            rc.t_done - a2->t_ms);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_three_ipv6_first_two_blackholed, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  char p[64];
  int i;
  lab_up(&l, 5307, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::3 80 tcp");
  o.resolver = &l.ro;
  run_race(&rc, "three6.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 3);
  for (i = 1; i <= 3; i++) {
    double t = nth(&rc, DS_HE_ATTEMPT, i)->t_ms,
           want = 250.0 * (i - 1) + nth(&rc, DS_HE_ATTEMPT, 1)->t_ms;
    CHECK_MSG(t >= want - 1 && t < want + SLACK, "attempt %d at %.1f", i, t);
  }
  CHECK_STR(peer_text(rc.fd, p, sizeof p), "2001:db8::4");
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_all_blackholed_overall_timeout, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  int fds0;
  lab_up(&l, 5308, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 192.0.2.2 80 tcp");
  o.resolver = &l.ro;
  o.timeout_ms = 2000;
  fds0 = ds_test_count_fds();
  run_race(&rc, "both.test", &o, 5000);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, -ETIMEDOUT);
  /* The timer's own lateness is the machine's scheduling (62 ms seen
   * under ASan with the load average at 6), not the race's: a wider
   * bound than the attempts' SLACK. */
  CHECK_MSG(rc.t_done >= 1999 && rc.t_done < 2000 + 200, "ended at %.1f",
            rc.t_done);
  CHECK_EQ(rc.nfails, 2);
  CHECK_EQ(ds_test_count_fds(), fds0 + 2); /* the reactor's own */
  race_free(&rc);
  CHECK_EQ(ds_test_count_fds(), fds0);
  lab_down(&l);
}

TEST_T(lab_happy_all_refused_fails_fast, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  lab_up(&l, 5309, TABLE);
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 192.0.2.2 80 tcp");
  o.resolver = &l.ro;
  run_race(&rc, "both.test", &o, 3000);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, -ECONNREFUSED);
  /* A few RTTs after the first attempt, not an attempt delay. */
  CHECK_MSG(rc.t_done - nth(&rc, DS_HE_ATTEMPT, 1)->t_ms < SLACK,
            "failed %.1f ms after the first attempt",
            rc.t_done - nth(&rc, DS_HE_ATTEMPT, 1)->t_ms);
  CHECK_EQ(rc.nfails, 2);
  CHECK_MSG(strstr(rc.text, "[2001:db8::2]:80 (ECONNREFUSED)") &&
                strstr(rc.text, "192.0.2.2:80 (ECONNREFUSED)"),
            "text: %s", rc.text);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_mixed_failures_refused_wins_the_code, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  int saw_to = 0, saw_ref = 0;
  size_t i;
  lab_up(&l, 5310, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 192.0.2.2 80 tcp");
  o.resolver = &l.ro;
  o.timeout_ms = 1000;
  run_race(&rc, "both.test", &o, 4000);
  CHECK_EQ(rc.fd, -1);
  /* Documented precedence: refused before unreachable before timed out. */
  CHECK_EQ(rc.err, -ECONNREFUSED);
  for (i = 0; i < rc.nfails; i++) {
    char a[DS_ADDR_STRLEN];
    ds_addr_format(&rc.fails[i].addr, a, sizeof a, 0);
    if (strcmp(a, "2001:db8::2") == 0 && rc.fails[i].error == -ETIMEDOUT)
      saw_to = 1;
    if (strcmp(a, "192.0.2.2") == 0 && rc.fails[i].error == -ECONNREFUSED)
      saw_ref = 1;
  }
  CHECK_MSG(saw_to && saw_ref, "failures: %s", rc.text);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_cancel_mid_race_leaves_nothing, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  char err[256];
  int fds0, i;
  lab_up(&l, 5311, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  o.resolver = &l.ro;
  memset(&rc, 0, sizeof rc);
  CHECK_EQ(ds_reactor_new(&rc.r), 0);
  fds0 = ds_test_count_fds();
  CHECK_EQ(ds_happy_start(rc.r, "both.test", 80, &o, on_done, on_event, &rc,
                          &rc.h, err, sizeof err),
           0);
  for (i = 0; i < 10 && count(&rc, DS_HE_ATTEMPT) == 0; i++)
    ds_reactor_run_once(rc.r, 20);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 1); /* the hanging IPv6 attempt */
  CHECK(ds_test_count_fds() > fds0);
  ds_happy_cancel(rc.h);
  CHECK_EQ(ds_test_count_fds(), fds0);
  for (i = 0; i < 5; i++)
    ds_reactor_run_once(rc.r, 20);
  CHECK_EQ(rc.done, 0);
  CHECK_EQ(ds_reactor_free(rc.r), 0);
  lab_down(&l);
}

TEST_T(lab_happy_attempt_delay_is_clamped, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  double d;
  lab_up(&l, 5312, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::3 80 tcp");
  o.resolver = &l.ro;
  o.attempt_delay_ms = 1; /* below the floor: 10 ms */
  run_race(&rc, "three6.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  d = nth(&rc, DS_HE_ATTEMPT, 2)->t_ms - nth(&rc, DS_HE_ATTEMPT, 1)->t_ms;
  CHECK_MSG(d >= 9 && d < 10 + SLACK, "delay %.1f ms", d);
  race_free(&rc);
  o.attempt_delay_ms = 5000; /* above the ceiling: 2 s */
  run_race(&rc, "three6.test", &o, 8000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  d = nth(&rc, DS_HE_ATTEMPT, 2)->t_ms - nth(&rc, DS_HE_ATTEMPT, 1)->t_ms;
  CHECK_MSG(d >= 1999 && d < 2000 + SLACK, "delay %.1f ms", d);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_link_local_literal_with_scope, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  char host[64], p[64], want[64];
  lab_up(&l, 5313, TABLE);
  snprintf(host, sizeof host, "%s%%%s", ds_test_lab_env("LAB_B_LL"),
           ds_test_lab_env("LAB_IF_A"));
  run_race(&rc, host, &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_STR(peer_text(rc.fd, p, sizeof p), host);
  race_free(&rc);
  /* Without the scope: a clear error at once. */
  snprintf(want, sizeof want, "%s", ds_test_lab_env("LAB_B_LL"));
  {
    char err[256];
    ds_happy *h;
    CHECK_EQ(ds_reactor_new(&rc.r), 0);
    CHECK_EQ(ds_happy_start(rc.r, want, 80, &o, on_done, NULL, &rc, &h, err,
                            sizeof err),
             DS_ENEEDSCOPE);
    CHECK_EQ(ds_reactor_free(rc.r), 0);
  }
  lab_down(&l);
}

TEST_T(lab_happy_name_not_found_is_dns_error, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  lab_up(&l, 5314, TABLE);
  o.resolver = &l.ro;
  run_race(&rc, "gone.test", &o, 3000);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, DS_ENOTFOUND);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 0);
  race_free(&rc);
  lab_down(&l);
}

TEST_T(lab_happy_nat64_configured_prefix, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  ds_addr prefix;
  char p[64];
  const char *t = "v4only.test A 198.51.100.10\n"
                  "loop.test A 127.0.0.1\n";
  lab_up(&l, 5315, t);
  /* B answers for 198.51.100.10 at its NAT64 form; A has a route to the
   * NAT64 prefix but none to 198.51.100.0/24. */
  ds_test_sh(
      "\"$LAB_SH\" exec \"$LAB_NS_B\" sh -c 'ip addr show dev eth0 | grep -q "
      "64:ff9b:: || ip addr add 64:ff9b::c633:640a/96 dev eth0 nodad'");
  ds_test_sh("ip -6 route replace 64:ff9b::/96 dev \"$LAB_IF_A\"");
  CHECK_EQ(ds_addr_parse(&prefix, "64:ff9b::", 0, NULL, 0), 0);
  o.resolver = &l.ro;
  o.nat64_prefix = &prefix;
  run_race(&rc, "v4only.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_STR(peer_text(rc.fd, p, sizeof p), "64:ff9b::c633:640a");
  race_free(&rc);
  /* 127.0.0.1 is never synthesized: the attempt goes to 127.0.0.1 itself
   * (refused: nothing listens on port 80 in A). */
  run_race(&rc, "loop.test", &o, 3000);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, -ECONNREFUSED);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 1);
  ds_addr_format(&nth(&rc, DS_HE_ATTEMPT, 1)->addr, p, sizeof p, 0);
  CHECK_STR(p, "127.0.0.1");
  race_free(&rc);
  ds_test_sh("ip -6 route del 64:ff9b::/96 dev \"$LAB_IF_A\"");
  lab_down(&l);
}

/* ---- the hostname client endpoint and connect_tcp's host names ---- */

typedef struct ep {
  int made, failed, reason;
  char why[512];
  ds_tcp *t;
} ep;

static void ep_made(ds_tcp *t, void *u)
{
  ((ep *)u)->made = 1;
  ((ep *)u)->t = t;
}

static void ep_data(ds_tcp *t, const void *d, size_t n, void *u)
{
  (void)t;
  (void)d;
  (void)n;
  (void)u;
}

static void ep_lost(ds_tcp *t, int reason, void *u)
{
  (void)t;
  (void)reason;
  ((ep *)u)->t = NULL;
}

static void ep_failed(ds_tcp *t, int reason, void *u)
{
  ep *e = u;
  e->failed = 1;
  e->reason = reason;
  ds_connect_host_error(t, e->why, sizeof e->why);
}

static const ds_protocol ep_proto = {.connection_made = ep_made,
                                     .data_received = ep_data,
                                     .connection_lost = ep_lost,
                                     .connection_failed = ep_failed};

TEST_T(lab_happy_hostname_endpoint_gives_a_transport, 30)
{
  lab l;
  ds_reactor *r;
  ds_happy_opts o = {0};
  ep e = {0};
  ds_tcp *t;
  ds_addr peer;
  char err[256], p[DS_ADDR_STRLEN];
  double end;
  lab_up(&l, 5316, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  o.resolver = &l.ro;
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_connect_host(r, "both.test", 80, &o, &ep_proto, &e, &t, err,
                           sizeof err),
           0);
  end = ds_test_now_ms() + 3000;
  while (!e.made && !e.failed && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_MSG(e.made, "failed: %s", e.why);
  CHECK_EQ(ds_tcp_get_peer(e.t, &peer), 0);
  ds_addr_format(&peer, p, sizeof p, DS_ADDR_FMT_PORT);
  CHECK_STR(p, "192.0.2.2:80");
  ds_tcp_abort(e.t);
  ds_reactor_run_once(r, 0);
  /* A failure reports every attempt. */
  memset(&e, 0, sizeof e);
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 192.0.2.2 80 tcp");
  o.timeout_ms = 600;
  CHECK_EQ(ds_connect_host(r, "both.test", 80, &o, &ep_proto, &e, &t, err,
                           sizeof err),
           0);
  end = ds_test_now_ms() + 3000;
  while (!e.made && !e.failed && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK(e.failed);
  CHECK_EQ(e.reason, -ECONNREFUSED);
  CHECK_MSG(strstr(e.why, "[2001:db8::2]:80 (ETIMEDOUT)") &&
                strstr(e.why, "192.0.2.2:80 (ECONNREFUSED)"),
            "why: %s", e.why);
  /* Cancel mid-race through the transport. */
  memset(&e, 0, sizeof e);
  CHECK_EQ(ds_connect_host(r, "both.test", 80, &o, &ep_proto, &e, &t, err,
                           sizeof err),
           0);
  ds_reactor_run_once(r, 20);
  ds_tcp_abort(t);
  for (int i = 0; i < 5 && !e.failed; i++)
    ds_reactor_run_once(r, 20);
  CHECK(e.failed);
  CHECK_EQ(e.reason, -ECANCELED);
  CHECK_EQ(ds_reactor_free(r), 0);
  lab_down(&l);
}

TEST_T(lab_happy_connect_tcp_resolves_ipv4_only, 30)
{
  lab l;
  ds_reactor *r;
  ep e = {0};
  ds_tcp *t;
  ds_addr peer;
  char err[256], p[DS_ADDR_STRLEN];
  double end;
  lab_up(&l, 5317, TABLE);
  /* The low level uses the system's resolver: the namespace's hosts. */
  ds_test_sh("\"$LAB_SH\" hosts \"$LAB_NS_A\" '2001:db8::2 v6only.test' "
             "'2001:db8::2 dual.test' '192.0.2.2 dual.test'");
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_connect_tcp(r, "v6only.test", 80, 2000, NULL, &ep_proto, &e, &t,
                          err, sizeof err),
           0);
  end = ds_test_now_ms() + 3000;
  while (!e.made && !e.failed && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK(e.failed);
  CHECK_EQ(e.reason, DS_ENODATA);
  memset(&e, 0, sizeof e);
  CHECK_EQ(ds_connect_tcp(r, "dual.test", 80, 2000, NULL, &ep_proto, &e, &t,
                          err, sizeof err),
           0);
  end = ds_test_now_ms() + 3000;
  while (!e.made && !e.failed && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_MSG(e.made, "failed: %s", e.why);
  CHECK_EQ(ds_tcp_get_peer(e.t, &peer), 0);
  ds_addr_format(&peer, p, sizeof p, 0);
  CHECK_STR(p, "192.0.2.2");
  ds_tcp_abort(e.t);
  ds_reactor_run_once(r, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  lab_down(&l);
}

typedef struct disc {
  int done, status;
  unsigned len;
  char prefix[DS_ADDR_STRLEN];
} disc;

static void on_disc(int status, const ds_addr *prefix, unsigned len, void *user)
{
  disc *d = user;
  d->done++;
  d->status = status;
  d->len = len;
  if (prefix != NULL)
    ds_addr_format(prefix, d->prefix, sizeof d->prefix, 0);
}

/* Runs one RFC 7050 discovery against the lab's DNS. */
static void discover(disc *d, lab *l)
{
  ds_reactor *r;
  ds_nat64_query *q;
  char err[256];
  double end;
  memset(d, 0, sizeof *d);
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_nat64_discover(r, &l->ro, on_disc, d, &q, err, sizeof err), 0);
  CHECK_EQ(d->done, 0);
  end = ds_test_now_ms() + 3000;
  while (!d->done && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(d->done, 1);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST_T(lab_happy_nat64_discovery_rfc7050, 30)
{
  lab l;
  disc d;
  lab_up(&l, 5318, "ipv4only.arpa AAAA 64:ff9b::c000:aa,64:ff9b::c000:ab\n");
  discover(&d, &l);
  CHECK_EQ(d.status, 0);
  CHECK_STR(d.prefix, "64:ff9b::");
  CHECK_EQ(d.len, 96);
  lab_down(&l);
  /* A /64 network-specific prefix (RFC 6052 layout, u octet skipped). */
  lab_up(&l, 5319, "ipv4only.arpa AAAA 2001:db8:64:64:c0:0:aa00:0\n");
  discover(&d, &l);
  CHECK_EQ(d.status, 0);
  CHECK_STR(d.prefix, "2001:db8:64:64::");
  CHECK_EQ(d.len, 64);
  lab_down(&l);
  /* No NAT64: no AAAA for ipv4only.arpa. */
  lab_up(&l, 5320, "ipv4only.arpa * NXDOMAIN\n");
  discover(&d, &l);
  CHECK_EQ(d.status, DS_ENOTFOUND);
  lab_down(&l);
}

/* Listens on loopback of family at port (0: any); returns the fd. */
static int listen_lo(int family, uint16_t *port)
{
  struct sockaddr_storage ss = {0};
  socklen_t len;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  ss.ss_family = (sa_family_t)family;
  if (family == AF_INET6) {
    ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons(*port);
    len = sizeof(struct sockaddr_in6);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  } else {
    ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ((struct sockaddr_in *)&ss)->sin_port = htons(*port);
    len = sizeof(struct sockaddr_in);
  }
  CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ(listen(fd, 16), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* Two attempts connect before the reactor looks: both are writable in one
 * epoll batch, and still exactly one socket reaches the caller. */
TEST_T(lab_happy_two_connect_in_one_batch_one_winner, 30)
{
  ds_reactor *r;
  race rc;
  ds_happy_opts o = {0};
  ds_resolver_opts ro = {0};
  char hosts[256], err[256], cmd[512];
  uint16_t port = 0;
  int l6, l4, fds0, established = 0;
  double end;
  FILE *f;

  snprintf(hosts, sizeof hosts, "%s/two.hosts", ds_test_lab_env("LAB_TMP"));
  f = fopen(hosts, "w");
  CHECK(f != NULL);
  fprintf(f, "::1 two.test\n127.0.0.1 two.test\n");
  fclose(f);
  ro.hosts_file = hosts;
  ro.servers = "127.0.0.1:9";
  o.resolver = &ro;
  o.attempt_delay_ms = 10;
  l6 = listen_lo(AF_INET6, &port);
  l4 = listen_lo(AF_INET, &port);
  /* The IPv6 SYN is dropped, so attempt 1 hangs until its retransmission. */
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_A\" ::1 %u tcp", port);

  memset(&rc, 0, sizeof rc);
  rc.fd = -1;
  CHECK_EQ(ds_reactor_new(&r), 0);
  fds0 = ds_test_count_fds();
  rc.r = r;
  rc.t0 = ds_test_now_ms();
  CHECK_EQ(ds_happy_start(r, "two.test", port, &o, on_done, on_event, &rc,
                          &rc.h, err, sizeof err),
           0);
  end = ds_test_now_ms() + 2000;
  while (count(&rc, DS_HE_ATTEMPT) < 2 && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 5);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 2);
  CHECK_EQ(rc.done, 0);
  /* Let IPv6 through; its SYN is retransmitted after about 1 s. */
  ds_test_sh("\"$LAB_SH\" unfilter \"$LAB_NS_A\"");
  usleep(1700000);
  snprintf(cmd, sizeof cmd,
           "test \"$(ss -Htn state established '( dport = :%u )' | wc -l)\" "
           "-eq 2",
           port);
  established = system(cmd) == 0;
  CHECK_MSG(established, "both attempts should be established by now");
  /* One turn: both are writable in the same batch. */
  ds_reactor_run_once(r, 0);
  CHECK_EQ(rc.done, 1);
  CHECK(rc.fd >= 0);
  CHECK_EQ(count(&rc, DS_HE_RESULT), 1); /* the loser is never reported */
  CHECK_EQ(ds_test_count_fds(), fds0 + 1);
  for (int i = 0; i < 3; i++)
    ds_reactor_run_once(r, 10);
  CHECK_EQ(rc.done, 1);
  close(rc.fd);
  CHECK_EQ(ds_test_count_fds(), fds0);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(l6);
  close(l4);
}

/* DNS carries no scope: a link-local answer is used only with a configured
 * interface, else skipped with a reason. Bind addresses apply per family. */
TEST_T(lab_happy_link_local_answer_needs_interface_and_bind_per_family, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  ds_addr b6, b4;
  const ds_happy_event *sk;
  char t[256], p[64], want[64];
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  ds_addr local;
  snprintf(t, sizeof t, "ll.test AAAA %s\nll.test A NODATA\n",
           ds_test_lab_env("LAB_B_LL"));
  lab_up(&l, 5321, t);
  o.resolver = &l.ro;
  run_race(&rc, "ll.test", &o, 3000);
  CHECK_EQ(rc.fd, -1);
  CHECK_EQ(rc.err, DS_ENEEDSCOPE);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 0);
  sk = nth(&rc, DS_HE_SKIPPED, 1);
  CHECK(sk != NULL);
  CHECK_EQ(sk->result, DS_ENEEDSCOPE);
  CHECK_MSG(strstr(rc.text, "DS_ENEEDSCOPE") != NULL, "text: %s", rc.text);
  race_free(&rc);
  /* With the interface configured, the answer gets its scope. */
  o.interface = ds_test_lab_env("LAB_IF_A");
  run_race(&rc, "ll.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  snprintf(want, sizeof want, "%s%%%s", ds_test_lab_env("LAB_B_LL"),
           ds_test_lab_env("LAB_IF_A"));
  CHECK_STR(peer_text(rc.fd, p, sizeof p), want);
  race_free(&rc);
  lab_down(&l);

  /* Bind addresses per family: the IPv4 winner uses bind4's port. */
  lab_up(&l, 5322, TABLE);
  ds_test_sh("\"$LAB_SH\" refuse \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  memset(&o, 0, sizeof o);
  o.resolver = &l.ro;
  CHECK_EQ(ds_addr_parse(&b6, "2001:db8::1", 0, NULL, 0), 0);
  CHECK_EQ(ds_addr_parse(&b4, "192.0.2.1", 0, NULL, 0), 0);
  b4.port = (uint16_t)(30000 + getpid() % 20000);
  o.bind4 = &b4;
  o.bind6 = &b6;
  run_race(&rc, "both.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_EQ(getsockname(rc.fd, (struct sockaddr *)&ss, &sl), 0);
  CHECK_EQ(ds_addr_from_sockaddr(&local, (struct sockaddr *)&ss, sl), 0);
  ds_addr_format(&local, p, sizeof p, 0);
  CHECK_STR(p, "192.0.2.1");
  CHECK_EQ(local.port, b4.port);
  race_free(&rc);
  lab_down(&l);
}

/* ---- the race's bound and the fd reserve (docs/race.md) ---- */

/* Writes a hosts file for the race tests: many.test has 200 IPv6
 * addresses, 2001:db8::1:1 to ::1:c8, which nobody owns (black-holed on
 * A's output by the caller); dual.test has B's two addresses. A hosts
 * file needs no DNS socket, which the fd-starved tests cannot have.
 * Returns its path (static). */
static const char *race_hosts(void)
{
  static char path[256];
  FILE *f;
  int i;
  snprintf(path, sizeof path, "%s/race-hosts", ds_test_lab_env("LAB_TMP"));
  f = fopen(path, "w");
  CHECK(f != NULL);
  for (i = 1; i <= 200; i++)
    fprintf(f, "2001:db8::1:%x many.test\n", i);
  fputs("2001:db8::2 dual.test\n192.0.2.2 dual.test\n", f);
  fclose(f);
  return path;
}

/* Lowers RLIMIT_NOFILE to limit (this test's own process) and fills every
 * free fd below it; then frees the fds listed in keep (ending with -1).
 * The old limit goes to *old, for the lab helpers' shell afterwards.
 * Returns the number of fds taken, which stay open until the test ends. */
static int starve_fds(unsigned limit, const int *keep, struct rlimit *old)
{
  struct rlimit rl;
  int fd, n = 0;
  CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  *old = rl;
  rl.rlim_cur = limit;
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  while ((fd = open("/dev/null", O_RDONLY)) >= 0)
    n++;
  CHECK_EQ(errno, EMFILE);
  for (; *keep >= 0; keep++)
    close(*keep);
  return n;
}

/* 200 black-holed AAAA: attempts keep leaving every Connection Attempt
 * Delay, but no more than 4 sockets are open at once; the oldest is
 * aborted (ETIMEDOUT) as each new one starts. Before the bound, each
 * attempt stayed until its SYN timeout and the race held one fd per
 * attempt made. */
TEST_T(lab_happy_bound_many_blackholed_aaaa, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  char err[256];
  int fds0, most = 0, now, i, aborted = 0;
  double end;
  lab_up(&l, 5323, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole-out \"$LAB_NS_A\" 2001:db8::1:0/112 80 "
             "tcp");
  l.ro.hosts_file = race_hosts();
  o.resolver = &l.ro;
  o.attempt_delay_ms = 50;
  memset(&rc, 0, sizeof rc);
  rc.fd = -1;
  CHECK_EQ(ds_reactor_new(&rc.r), 0);
  fds0 = ds_test_count_fds();
  rc.t0 = ds_test_now_ms();
  CHECK_EQ(ds_happy_start(rc.r, "many.test", 80, &o, on_done, on_event, &rc,
                          &rc.h, err, sizeof err),
           0);
  /* 1.5 s: about 30 attempts at 50 ms apart. */
  end = ds_test_now_ms() + 1500;
  while (!rc.done && ds_test_now_ms() < end) {
    ds_reactor_run_once(rc.r, 10);
    now = ds_test_count_fds() - fds0;
    if (now > most)
      most = now;
  }
  CHECK_MSG(!rc.done, "race ended: %s", rc.text);
  CHECK_MSG(most <= 4, "%d attempt sockets open at once", most);
  CHECK_MSG(count(&rc, DS_HE_ATTEMPT) >= 15, "only %d attempts in 1.5 s",
            count(&rc, DS_HE_ATTEMPT));
  for (i = 0; i < rc.nev; i++)
    if (rc.ev[i].type == DS_HE_RESULT) {
      CHECK_EQ(rc.ev[i].result, -ETIMEDOUT);
      aborted++;
    }
  CHECK_MSG(aborted >= 10, "%d attempts aborted", aborted);
  ds_happy_cancel(rc.h);
  CHECK_EQ(ds_test_count_fds(), fds0);
  race_free(&rc);
  ds_test_sh("\"$LAB_SH\" unfilter \"$LAB_NS_A\"");
  lab_down(&l);
}

/* Out of fds with IPv6 black-holed: the IPv6 attempt took the one free
 * fd, so the IPv4 attempt's socket() fails with EMFILE; the IPv6 attempt
 * makes room and IPv4 connects at once. Before, the race waited on the
 * dead IPv6 attempt until its SYN timeout. */
TEST_T(lab_happy_emfile_ipv4_takes_the_oldest_attempts_fd, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  const ds_happy_event *a2;
  char p[64];
  int keep[] = {20, -1}, i, timed_out = 0;
  struct rlimit old;
  ds_reactor *r;
  lab_up(&l, 5324, TABLE);
  ds_test_sh("\"$LAB_SH\" blackhole \"$LAB_NS_B\" 2001:db8::2 80 tcp");
  l.ro.hosts_file = race_hosts();
  o.resolver = &l.ro;
  CHECK_EQ(ds_reactor_new(&r), 0);
  starve_fds(64, keep, &old);
  run_race_on(&rc, r, "dual.test", &o, 3000);
  CHECK_MSG(rc.fd >= 0, "failed: %s", rc.text);
  CHECK_STR(peer_text(rc.fd, p, sizeof p), "192.0.2.2");
  a2 = nth(&rc, DS_HE_ATTEMPT, 2);
  CHECK(a2 != NULL && a2->family == AF_INET);
  CHECK_MSG(rc.t_done - a2->t_ms < SLACK, "connected %.1f ms after IPv4",
            rc.t_done - a2->t_ms);
  for (i = 0; i < rc.nev; i++)
    timed_out += rc.ev[i].type == DS_HE_RESULT && rc.ev[i].family == AF_INET6 &&
                 rc.ev[i].result == -ETIMEDOUT;
  CHECK_EQ(timed_out, 1);
  race_free(&rc);
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  lab_down(&l);
}

/* Only the process's last fds free (the top 16 below a limit of 64):
 * attempts leave them alone and the race fails at once with the kernel's
 * EMFILE, trying each address in turn without waiting. Before, attempts
 * took them (and here connected). */
TEST_T(lab_happy_fd_reserve_fails_fast_with_emfile, 30)
{
  lab l;
  race rc;
  ds_happy_opts o = {0};
  int keep[] = {60, 61, 62, 63, -1};
  struct rlimit old;
  ds_reactor *r;
  lab_up(&l, 5325, TABLE);
  l.ro.hosts_file = race_hosts();
  o.resolver = &l.ro;
  CHECK_EQ(ds_reactor_new(&r), 0);
  starve_fds(64, keep, &old);
  run_race_on(&rc, r, "dual.test", &o, 3000);
  CHECK_MSG(rc.fd < 0, "connected through the reserve");
  CHECK_MSG(rc.err == -EMFILE, "failed with %s: %s", ds_err_name(rc.err),
            rc.text);
  CHECK_EQ(count(&rc, DS_HE_ATTEMPT), 2);
  /* Within the first Connection Attempt Delay: nothing was waited for. */
  CHECK_MSG(rc.t_done < 250, "failed after %.1f ms", rc.t_done);
  race_free(&rc);
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  lab_down(&l);
}
