/* Differential conformance program for the shim.
 *
 *   conform EXPORTS_MAP [-s SYM,SYM...] [-c ID_PREFIX]   run cases
 *   conform EXPORTS_MAP --list                          print "ID SYM"
 *
 * Calls every function the shim exports (the list is read from
 * shim/exports.map) over a matrix of inputs and prints one line per case:
 *   ID <TAB> SYMBOL <TAB> every output field
 * The same binary runs without and with LD_PRELOAD; tests/shell/
 * test_conform.sh compares the two outputs case by case (allowed
 * differences: tests/conform/translations.txt; known defects:
 * tests/conform/known.txt).
 *
 * Each case runs in a child of its own (fresh fds, fresh shim state, a
 * crash or a hang is that case's output, not the end of the run). errno is
 * set to EDOM before every call, so "errno unchanged on success" shows.
 * Ports in the ephemeral range print as "eph".
 *
 * A symbol of the exports map without a case: "missing-case SYM" on
 * stderr, exit status 3 (after the cases ran).
 *
 * The lab it expects (tests/shell/test_conform.sh makes it): this program
 * runs in A (192.0.2.1, 2001:db8::1, eth0); B is 192.0.2.2 and
 * 2001:db8::2 with a TCP family echo on port 7 and a UDP family echo on
 * port 9 (both families), nothing on port 1; the names below in A's hosts
 * file and in the lab DNS server on B. */
#undef _FORTIFY_SOURCE /* recvfrom must stay recvfrom */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Not declared without _FORTIFY_SOURCE; exported by glibc and the shim. */
extern void __longjmp_chk(sigjmp_buf env, int val) __attribute__((noreturn));
extern ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                              int flags, struct sockaddr *from,
                              socklen_t *fromlen);

#define SRV4 "192.0.2.2"
#define SRV6 "2001:db8::2"
#define TCP_PORT 7    /* B: family echo, both families */
#define UDP_PORT 9    /* B: UDP family echo, both families */
#define CLOSED_PORT 1 /* B: nothing listens */
#define SENT EDOM     /* errno before every call */

/* ---- output helpers ---------------------------------------------------- */

static const char *en(int e)
{
  static char b[8][24];
  static int k;
  const char *s;
  if (e == 0)
    return "0";
  s = strerrorname_np(e);
  if (s)
    return s;
  k = (k + 1) % 8;
  snprintf(b[k], sizeof b[k], "E#%d", e);
  return b[k];
}

/* A value's name, from a table ending in {0, NULL}; else fallback's
 * format with the number (in one of 8 rotating buffers). */
typedef struct vname {
  int v;
  const char *name;
} vname;

static const char *name_of(const vname *t, int v, const char *fallback)
{
  static char b[8][24];
  static int k;
  for (; t->name != NULL; t++)
    if (t->v == v)
      return t->name;
  k = (k + 1) % 8;
  snprintf(b[k], sizeof b[k], fallback, v);
  return b[k];
}

#define V(x)                                                                   \
  {                                                                            \
    x, #x                                                                      \
  }
static const vname eai_names[] = {
    {0, "0"},          V(EAI_BADFLAGS),   V(EAI_NONAME),     V(EAI_AGAIN),
    V(EAI_FAIL),       V(EAI_FAMILY),     V(EAI_SOCKTYPE),   V(EAI_SERVICE),
    V(EAI_MEMORY),     V(EAI_SYSTEM),     V(EAI_OVERFLOW),   V(EAI_NODATA),
    V(EAI_ADDRFAMILY), V(EAI_INPROGRESS), V(EAI_CANCELED),   V(EAI_NOTCANCELED),
    V(EAI_ALLDONE),    V(EAI_INTR),       V(EAI_IDN_ENCODE), {0, NULL}};
static const vname h_names[] = {
    {0, "0"},       V(NETDB_INTERNAL), V(HOST_NOT_FOUND), V(TRY_AGAIN),
    V(NO_RECOVERY), V(NO_DATA),        {0, NULL}};
#undef V
static const vname fam_names[] = {{AF_UNSPEC, "unspec"},
                                  {AF_INET, "inet"},
                                  {AF_INET6, "inet6"},
                                  {AF_UNIX, "unix"},
                                  {0, NULL}};
static const vname type_names[] = {{0, "any"},
                                   {SOCK_STREAM, "stream"},
                                   {SOCK_DGRAM, "dgram"},
                                   {SOCK_RAW, "raw"},
                                   {0, NULL}};
static const vname proto_names[] = {
    {0, "0"}, {IPPROTO_TCP, "tcp"}, {IPPROTO_UDP, "udp"}, {0, NULL}};

static const char *eai(int rc)
{
  return name_of(eai_names, rc, "EAI#%d");
}
static const char *hen(int h)
{
  return name_of(h_names, h, "H#%d");
}
static const char *famn(int f)
{
  return name_of(fam_names, f, "af%d");
}
static const char *typen(int t)
{
  return name_of(type_names, t, "type%d");
}
static const char *proton(int p)
{
  return name_of(proto_names, p, "proto%d");
}

static const char *portn(unsigned p)
{
  static char b[4][16];
  static int k;
  if (p >= 32768 && p <= 60999)
    return "eph";
  k = (k + 1) % 4;
  snprintf(b[k], sizeof b[k], "%u", p);
  return b[k];
}

/* Prints a socket address as the kernel filled it: "inet 1.2.3.4:80". */
static void psa(const void *p, socklen_t len)
{
  const struct sockaddr *sa = p;
  char a[INET6_ADDRSTRLEN];
  if (len < sizeof(sa_family_t)) {
    printf("len%u", (unsigned)len);
    return;
  }
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s = p;
    inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
    printf("inet %s:%s", a, portn(ntohs(s->sin_port)));
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s = p;
    inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
    printf("inet6 [%s", a);
    if (s->sin6_scope_id)
      printf("%%%u", (unsigned)s->sin6_scope_id);
    printf("]:%s", portn(ntohs(s->sin6_port)));
    if (s->sin6_flowinfo)
      printf(" flow=%u", (unsigned)s->sin6_flowinfo);
  } else if (sa->sa_family == AF_UNSPEC) {
    printf("unspec");
  } else {
    printf("%s(len%u)", famn(sa->sa_family), (unsigned)len);
  }
}

/* An address buffer the caller gave BUFLEN bytes of, LEN returned. */
static void psa_buf(const void *p, socklen_t buflen, socklen_t len)
{
  printf("len=%u ", (unsigned)len);
  if (len <= buflen) {
    psa(p, len);
  } else if (buflen >= 2) { /* truncated: the family the kernel wrote */
    const struct sockaddr *sa = p;
    printf("trunc fam=%s", famn(sa->sa_family));
  } else {
    printf("trunc");
  }
}

static void sin4(struct sockaddr_in *s, const char *a, unsigned port)
{
  memset(s, 0, sizeof *s);
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  inet_pton(AF_INET, a, &s->sin_addr);
}

static void sin6(struct sockaddr_in6 *s, const char *a, unsigned port)
{
  memset(s, 0, sizeof *s);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  inet_pton(AF_INET6, a, &s->sin6_addr);
}

static void pai(int rc, int e, const struct addrinfo *res)
{
  int n = 0;
  const struct addrinfo *ai;
  for (ai = res; rc == 0 && ai; ai = ai->ai_next)
    n++;
  /* errno after a failure means something only with EAI_SYSTEM (glibc's
   * own leaves whatever its lookup met): not compared otherwise. */
  printf("rc=%s e=%s", eai(rc), rc == 0 || rc == EAI_SYSTEM ? en(e) : "-");
  if (rc != 0)
    return;
  printf(" n=%d", n);
  for (ai = res; ai; ai = ai->ai_next) {
    printf(" [%s %s %s fl=%#x ", famn(ai->ai_family), typen(ai->ai_socktype),
           proton(ai->ai_protocol), (unsigned)ai->ai_flags);
    psa(ai->ai_addr, ai->ai_addrlen);
    printf(" canon=%s]", ai->ai_canonname ? ai->ai_canonname : "-");
  }
}

static void phost(const struct hostent *h)
{
  char a[INET6_ADDRSTRLEN];
  int i;
  printf("name=%s aliases=[", h->h_name ? h->h_name : "(null)");
  for (i = 0; h->h_aliases && h->h_aliases[i]; i++)
    printf("%s%s", i ? "," : "", h->h_aliases[i]);
  printf("] type=%s len=%d addrs=[", famn(h->h_addrtype), h->h_length);
  for (i = 0; h->h_addr_list && h->h_addr_list[i]; i++) {
    if (h->h_addrtype == AF_INET || h->h_addrtype == AF_INET6)
      inet_ntop(h->h_addrtype, h->h_addr_list[i], a, sizeof a);
    else
      snprintf(a, sizeof a, "?");
    printf("%s%s", i ? "," : "", a);
  }
  printf("]");
}

/* A file descriptor that is not a socket. */
static int nonsock(void)
{
  return open("/dev/null", O_RDWR);
}

static void fdflags(int fd)
{
  int fl = fcntl(fd, F_GETFL), fd_ = fcntl(fd, F_GETFD);
  printf(" nonblock=%d cloexec=%d", fl >= 0 && (fl & O_NONBLOCK) ? 1 : 0,
         fd_ >= 0 && (fd_ & FD_CLOEXEC) ? 1 : 0);
}

static int sockopt_int(int fd, int level, int opt)
{
  int v = -1;
  socklen_t l = sizeof v;
  if (getsockopt(fd, level, opt, &v, &l) < 0)
    return -1000 - errno;
  return v;
}

static void pname(const char *what, int fd, int peer)
{
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  int r;
  memset(&ss, 0, sizeof ss);
  errno = SENT;
  r = peer ? getpeername(fd, (struct sockaddr *)&ss, &l)
           : getsockname(fd, (struct sockaddr *)&ss, &l);
  printf(" %s=", what);
  if (r < 0) {
    printf("%s", en(errno));
    return;
  }
  psa_buf(&ss, sizeof ss, l);
}

static int wait_fd(int fd, short ev, int ms)
{
  struct pollfd p = {.fd = fd, .events = ev};
  return poll(&p, 1, ms);
}

/* ---- cases ------------------------------------------------------------- */

struct kase {
  char id[160];
  const char *sym;
  void (*fn)(const struct kase *);
  const char *s1, *s2;
  int i1, i2, i3, i4, i5;
};

static struct kase *cases;
static size_t ncases, capcases;

static struct kase *add(const char *sym, void (*fn)(const struct kase *),
                        const char *fmt, ...)
{
  struct kase *k;
  va_list ap;
  if (ncases == capcases) {
    capcases = capcases ? 2 * capcases : 256;
    cases = realloc(cases, capcases * sizeof *cases);
    if (!cases)
      abort();
  }
  k = &cases[ncases++];
  memset(k, 0, sizeof *k);
  va_start(ap, fmt);
  vsnprintf(k->id, sizeof k->id, fmt, ap);
  va_end(ap);
  k->sym = sym;
  k->fn = fn;
  return k;
}

static const char *nn(const char *s)
{
  return s ? (*s ? s : "empty") : "NULL";
}

/* ---- getaddrinfo / freeaddrinfo ---------------------------------------- */

/* s1 node, s2 service, i1 family, i2 socktype, i3 protocol, i4 flags,
 * i5 1: NULL hints */
static void c_gai(const struct kase *k)
{
  struct addrinfo h, *res = NULL;
  int rc, e;
  memset(&h, 0, sizeof h);
  h.ai_family = k->i1;
  h.ai_socktype = k->i2;
  h.ai_protocol = k->i3;
  h.ai_flags = k->i4;
  errno = SENT;
  rc = getaddrinfo(k->s1, k->s2, k->i5 ? NULL : &h, &res);
  e = errno;
  pai(rc, e, res);
  if (rc == 0)
    freeaddrinfo(res);
}

/* Two lookups of s1 (AF_INET, stream): the same answer both times. */
static void c_gai_twice(const struct kase *k)
{
  struct addrinfo h, *r1 = NULL, *r2 = NULL;
  int rc1, rc2, e;
  memset(&h, 0, sizeof h);
  h.ai_family = AF_INET;
  h.ai_socktype = SOCK_STREAM;
  errno = SENT;
  rc1 = getaddrinfo(k->s1, "80", &h, &r1);
  rc2 = getaddrinfo(k->s2, "80", &h, &r2);
  e = errno;
  pai(rc2, e, r2);
  printf(" first=%s same=%s", eai(rc1),
         rc1 == 0 && rc2 == 0 && r1->ai_addrlen == r2->ai_addrlen &&
                 !memcmp(r1->ai_addr, r2->ai_addr, r1->ai_addrlen)
             ? "yes"
             : "no");
  if (rc1 == 0)
    freeaddrinfo(r1);
  if (rc2 == 0)
    freeaddrinfo(r2);
}

/* s1 node or NULL for freeaddrinfo(NULL); i1 family */
static void c_freeai(const struct kase *k)
{
  struct addrinfo h, *res = NULL;
  int rc = 0;
  if (k->s1) {
    memset(&h, 0, sizeof h);
    h.ai_family = k->i1;
    h.ai_socktype = SOCK_STREAM;
    h.ai_flags = k->i4;
    rc = getaddrinfo(k->s1, "80", &h, &res);
    printf("gai=%s", eai(rc));
    if (rc != 0)
      return;
  }
  errno = SENT;
  freeaddrinfo(res);
  printf("%sfreed e=%s", k->s1 ? " " : "", en(errno));
}

static const char *gai_nodes[] = {
    "localhost",        "h4.test",      "h4alias",      "h6.test",
    "hboth.test",       "hloop.test",   "hloop6.test",  "v4.test",
    "v6.test",          "both.test",    "multi.test",   "gone.test",
    "nodata.test",      "fail.test",    "V6.Test",      "v6.test.",
    "v4.test.",         "HBOTH.TEST",   "192.0.2.2",    "2001:db8::2",
    "::ffff:192.0.2.2", "fe80::1%eth0", "10",           "1.2.3",
    "127.0.0.1",        "::1",          "10.170.160.1", "",
    "not..valid"};

struct flagname {
  const char *name;
  int flags;
};

static void add_gai(const char *node, const char *serv, int fam, int st,
                    int proto, const struct flagname *f, int nullhints)
{
  struct kase *k;
  if (nullhints)
    k = add("getaddrinfo", c_gai, "getaddrinfo/%s/nullhints/%s", nn(node),
            nn(serv));
  else
    k = add("getaddrinfo", c_gai, "getaddrinfo/%s/%s/%s/%s/%s%s%s", nn(node),
            famn(fam), f->name, nn(serv), typen(st), proto ? "/" : "",
            proto ? proton(proto) : "");
  k->s1 = node;
  k->s2 = serv;
  k->i1 = fam;
  k->i2 = st;
  k->i3 = proto;
  k->i4 = f ? f->flags : 0;
  k->i5 = nullhints;
}

static void cases_gai(void)
{
  static const int fams[] = {AF_UNSPEC, AF_INET, AF_INET6};
  static const struct flagname f0[] = {{"0", 0}, {"canon", AI_CANONNAME}};
  static const struct flagname f1[] = {
      {"numhost", AI_NUMERICHOST},
      {"passive", AI_PASSIVE},
      {"addrconfig", AI_ADDRCONFIG},
      {"canon+addrconfig", AI_CANONNAME | AI_ADDRCONFIG}};
  static const char *n1[] = {"192.0.2.2", "2001:db8::2", "h4.test",
                             "h6.test",   "v4.test",     "v6.test",
                             "both.test", "gone.test",   "localhost"};
  static const struct flagname f6[] = {
      {"v4mapped", AI_V4MAPPED},
      {"v4mapped+all", AI_V4MAPPED | AI_ALL},
      {"v4mapped+canon", AI_V4MAPPED | AI_CANONNAME}};
  static const char *n6[] = {"192.0.2.2", "h4.test",    "v4.test",
                             "both.test", "hboth.test", "v6.test"};
  static const struct flagname fz = {"0", 0}, fp = {"passive", AI_PASSIVE},
                               fn = {"numserv", AI_NUMERICSERV},
                               fc = {"canon", AI_CANONNAME},
                               fb = {"badflags", 0x10000},
                               fpn = {"passive+numhost",
                                      AI_PASSIVE | AI_NUMERICHOST};
  size_t i, j, l;
  for (i = 0; i < sizeof gai_nodes / sizeof *gai_nodes; i++)
    for (j = 0; j < 3; j++)
      for (l = 0; l < 2; l++)
        add_gai(gai_nodes[i], "80", fams[j], SOCK_STREAM, 0, &f0[l], 0);
  for (i = 0; i < sizeof n1 / sizeof *n1; i++)
    for (j = 0; j < 3; j++)
      for (l = 0; l < sizeof f1 / sizeof *f1; l++)
        add_gai(n1[i], "80", fams[j], SOCK_STREAM, 0, &f1[l], 0);
  for (i = 0; i < sizeof n6 / sizeof *n6; i++)
    for (l = 0; l < sizeof f6 / sizeof *f6; l++)
      add_gai(n6[i], "80", AF_INET6, SOCK_STREAM, 0, &f6[l], 0);
  /* NULL hints (AF_UNSPEC, every socket type) */
  {
    static const char *nh[] = {"v6.test", "v4.test",   "both.test",
                               "h6.test", "192.0.2.2", "gone.test"};
    for (i = 0; i < sizeof nh / sizeof *nh; i++)
      add_gai(nh[i], "80", 0, 0, 0, NULL, 1);
    add_gai(NULL, "80", 0, 0, 0, NULL, 1);
  }
  /* NULL node: passive and not; NULL service */
  for (j = 0; j < 3; j++) {
    add_gai(NULL, "80", fams[j], SOCK_STREAM, 0, &fz, 0);
    add_gai(NULL, "80", fams[j], SOCK_STREAM, 0, &fp, 0);
    add_gai(NULL, "80", fams[j], SOCK_DGRAM, 0, &fpn, 0);
    add_gai("v6.test", NULL, fams[j], 0, 0, &fz, 0);
    add_gai("v4.test", NULL, fams[j], 0, 0, &fz, 0);
    add_gai("h6.test", NULL, fams[j], SOCK_DGRAM, 0, &fz, 0);
    add_gai("h4.test", NULL, fams[j], SOCK_DGRAM, 0, &fz, 0);
  }
  add_gai(NULL, NULL, AF_INET, 0, 0, &fz, 0);
  add_gai(NULL, "80", AF_INET, 0, 0, &fc, 0); /* canon without node */
  /* services and socket types */
  {
    static const char *sn[] = {"v6.test", "v4.test", "192.0.2.2"};
    for (i = 0; i < sizeof sn / sizeof *sn; i++) {
      add_gai(sn[i], "http", AF_INET, SOCK_STREAM, 0, &fz, 0);
      add_gai(sn[i], "domain", AF_INET, 0, 0, &fz, 0);
      add_gai(sn[i], "53", AF_INET, SOCK_DGRAM, 0, &fz, 0);
      add_gai(sn[i], "53", AF_INET, SOCK_DGRAM, IPPROTO_UDP, &fz, 0);
      add_gai(sn[i], "53", AF_INET, SOCK_DGRAM, IPPROTO_TCP, &fz, 0);
      add_gai(sn[i], "53", AF_INET, SOCK_RAW, 0, &fz, 0);
      add_gai(sn[i], "53", AF_INET, 0, IPPROTO_UDP, &fz, 0);
      add_gai(sn[i], "bogus-service", AF_INET, SOCK_STREAM, 0, &fz, 0);
      add_gai(sn[i], "http", AF_INET, SOCK_STREAM, 0, &fn, 0);
      add_gai(sn[i], "65536", AF_INET, SOCK_STREAM, 0, &fz, 0);
      add_gai(sn[i], "80", AF_INET, 99, 0, &fz, 0);
      add_gai(sn[i], "80", 12345, SOCK_STREAM, 0, &fz, 0);
      add_gai(sn[i], "80", AF_INET, SOCK_STREAM, 0, &fb, 0);
      add_gai(sn[i], "", AF_INET, SOCK_STREAM, 0, &fz, 0);
    }
  }
  /* stability and letter case of synthetic answers */
  {
    struct kase *k;
    k = add("getaddrinfo", c_gai_twice, "getaddrinfo/twice/v6.test");
    k->s1 = "v6.test", k->s2 = "v6.test";
    k = add("getaddrinfo", c_gai_twice, "getaddrinfo/twice/v6.test-V6.TEST");
    k->s1 = "v6.test", k->s2 = "V6.TEST";
    k = add("getaddrinfo", c_gai_twice, "getaddrinfo/twice/h6.test");
    k->s1 = "h6.test", k->s2 = "h6.test";
    k = add("getaddrinfo", c_gai_twice, "getaddrinfo/twice/v6.test-h6.test");
    k->s1 = "v6.test", k->s2 = "h6.test";
  }
  {
    struct kase *k;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/null");
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/inet/v6.test");
    k->s1 = "v6.test", k->i1 = AF_INET;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/inet/v6.test/canon");
    k->s1 = "v6.test", k->i1 = AF_INET, k->i4 = AI_CANONNAME;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/inet/both.test");
    k->s1 = "both.test", k->i1 = AF_INET;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/inet/h4.test/canon");
    k->s1 = "h4.test", k->i1 = AF_INET, k->i4 = AI_CANONNAME;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/unspec/both.test");
    k->s1 = "both.test", k->i1 = AF_UNSPEC;
    k = add("freeaddrinfo", c_freeai, "freeaddrinfo/inet/192.0.2.2");
    k->s1 = "192.0.2.2", k->i1 = AF_INET;
  }
}

/* ---- getnameinfo ------------------------------------------------------- */

/* Fills ss from "ADDR" (v4 or v6, "%eth0" scope allowed); returns length. */
static socklen_t mkaddr(struct sockaddr_storage *ss, const char *a,
                        unsigned port)
{
  memset(ss, 0, sizeof *ss);
  if (strchr(a, ':')) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    char buf[64], *pct;
    snprintf(buf, sizeof buf, "%s", a);
    pct = strchr(buf, '%');
    if (pct)
      *pct++ = 0;
    sin6(s, buf, port);
    if (pct)
      s->sin6_scope_id = if_nametoindex(pct);
    return sizeof *s;
  }
  sin4((struct sockaddr_in *)ss, a, port);
  return sizeof(struct sockaddr_in);
}

static void pgni(int rc, int e, const char *host, const char *serv)
{
  printf("rc=%s e=%s host=%s serv=%s", eai(rc), en(e),
         rc == 0 && host ? host : "-", rc == 0 && serv ? serv : "-");
}

/* s1 address, i1 port, i2 flags, i3 hostlen (0: 1025, -1: NULL host),
 * i4 servlen (0: 32, -1: NULL serv), i5 salen adjustment */
static void c_gni(const struct kase *k)
{
  struct sockaddr_storage ss;
  socklen_t len = mkaddr(&ss, k->s1, k->i1);
  char host[1025], serv[32];
  size_t hl = k->i3 > 0 ? (size_t)k->i3 : sizeof host;
  size_t sl = k->i4 > 0 ? (size_t)k->i4 : sizeof serv;
  int rc, e;
  if (k->s2)
    ((struct sockaddr *)&ss)->sa_family = (sa_family_t)atoi(k->s2);
  errno = SENT;
  rc = getnameinfo((struct sockaddr *)&ss, (socklen_t)((int)len + k->i5),
                   k->i3 < 0 ? NULL : host, k->i3 < 0 ? 0 : hl,
                   k->i4 < 0 ? NULL : serv, k->i4 < 0 ? 0 : sl, k->i2);
  e = errno;
  pgni(rc, e, k->i3 < 0 ? NULL : host, k->i4 < 0 ? NULL : serv);
}

/* Reverse lookup of what getaddrinfo(s1, AF_INET) answered.
 * i2 flags, i3 hostlen (0: 1025) */
static void c_gni_synth(const struct kase *k)
{
  struct addrinfo h, *res = NULL;
  char host[1025], serv[32];
  int rc, e;
  memset(&h, 0, sizeof h);
  h.ai_family = AF_INET;
  h.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(k->s1, "80", &h, &res);
  printf("gai=%s", eai(rc));
  if (rc != 0)
    return;
  printf(" addr=");
  psa(res->ai_addr, res->ai_addrlen);
  printf(" ");
  errno = SENT;
  rc = getnameinfo(res->ai_addr, res->ai_addrlen, host,
                   k->i3 > 0 ? (size_t)k->i3 : sizeof host, serv, sizeof serv,
                   k->i2);
  e = errno;
  pgni(rc, e, host, serv);
  freeaddrinfo(res);
}

static void cases_gni(void)
{
  static const char *addrs[] = {
      "192.0.2.2",        "2001:db8::2",  "198.51.100.7",
      "2001:db8::7",      "192.0.2.99",   "2001:db8::99",
      "127.0.0.1",        "127.0.0.2",    "::1",
      "::ffff:192.0.2.2", "fe80::1%eth0", "10.170.160.1",
      "172.21.112.1",     "0.0.0.0",      "::"};
  static const struct flagname fl[] = {
      {"0", 0},
      {"numhost", NI_NUMERICHOST},
      {"namereqd", NI_NAMEREQD},
      {"nofqdn", NI_NOFQDN},
      {"numserv", NI_NUMERICSERV},
      {"numhost+numserv", NI_NUMERICHOST | NI_NUMERICSERV},
      {"namereqd+numserv", NI_NAMEREQD | NI_NUMERICSERV}};
  static const unsigned ports[] = {7, 53, 513, 12345, 0};
  size_t i, j;
  struct kase *k;
  for (i = 0; i < sizeof addrs / sizeof *addrs; i++)
    for (j = 0; j < sizeof fl / sizeof *fl; j++) {
      k = add("getnameinfo", c_gni, "getnameinfo/%s/80/%s", addrs[i],
              fl[j].name);
      k->s1 = addrs[i], k->i1 = 80, k->i2 = fl[j].flags;
    }
  for (i = 0; i < sizeof ports / sizeof *ports; i++) {
    k = add("getnameinfo", c_gni, "getnameinfo/192.0.2.2/%u/numhost", ports[i]);
    k->s1 = "192.0.2.2", k->i1 = (int)ports[i], k->i2 = NI_NUMERICHOST;
    k = add("getnameinfo", c_gni, "getnameinfo/192.0.2.2/%u/numhost+dgram",
            ports[i]);
    k->s1 = "192.0.2.2", k->i1 = (int)ports[i],
    k->i2 = NI_NUMERICHOST | NI_DGRAM;
    k = add("getnameinfo", c_gni, "getnameinfo/2001:db8::2/%u/dgram", ports[i]);
    k->s1 = "2001:db8::2", k->i1 = (int)ports[i], k->i2 = NI_DGRAM;
  }
  /* buffers and bad input */
  {
    static const char *ba[] = {"192.0.2.2", "2001:db8::2", "192.0.2.99",
                               "10.170.160.1"};
    static const int hls[] = {1, 3, 7, 8};
    for (i = 0; i < sizeof ba / sizeof *ba; i++) {
      for (j = 0; j < sizeof hls / sizeof *hls; j++) {
        k = add("getnameinfo", c_gni, "getnameinfo/%s/hostlen=%d", ba[i],
                hls[j]);
        k->s1 = ba[i], k->i1 = 80, k->i3 = hls[j];
        k = add("getnameinfo", c_gni, "getnameinfo/%s/hostlen=%d/numhost",
                ba[i], hls[j]);
        k->s1 = ba[i], k->i1 = 80, k->i3 = hls[j], k->i2 = NI_NUMERICHOST;
      }
      k = add("getnameinfo", c_gni, "getnameinfo/%s/servlen=2", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i4 = 2;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/servlen=2/numserv", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i4 = 2, k->i2 = NI_NUMERICSERV;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/nohost", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i3 = -1;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/noserv", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i4 = -1;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/nohost+noserv", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i3 = -1, k->i4 = -1;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/salen-1", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i5 = -1;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/salen+12", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i5 = 12;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/badflags", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->i2 = 0x10000;
      k = add("getnameinfo", c_gni, "getnameinfo/%s/family=unix", ba[i]);
      k->s1 = ba[i], k->i1 = 80, k->s2 = "1";
    }
    k = add("getnameinfo", c_gni, "getnameinfo/192.0.2.2/family=inet6");
    k->s1 = "192.0.2.2", k->i1 = 80, k->s2 = "10";
    k = add("getnameinfo", c_gni, "getnameinfo/2001:db8::2/family=inet");
    k->s1 = "2001:db8::2", k->i1 = 80, k->s2 = "2";
  }
  /* reverse lookups of what AF_INET lookups answered */
  {
    static const char *sn[] = {"v6.test",   "h6.test", "2001:db8::2", "V6.TEST",
                               "both.test", "h4.test", "hloop6.test"};
    static const struct flagname sf[] = {{"0", 0},
                                         {"namereqd", NI_NAMEREQD},
                                         {"numhost", NI_NUMERICHOST},
                                         {"nofqdn", NI_NOFQDN},
                                         {"numserv", NI_NUMERICSERV}};
    for (i = 0; i < sizeof sn / sizeof *sn; i++)
      for (j = 0; j < sizeof sf / sizeof *sf; j++) {
        k = add("getnameinfo", c_gni_synth, "getnameinfo/of-gai/%s/%s", sn[i],
                sf[j].name);
        k->s1 = sn[i], k->i2 = sf[j].flags;
      }
    k = add("getnameinfo", c_gni_synth, "getnameinfo/of-gai/v6.test/hostlen=4");
    k->s1 = "v6.test", k->i3 = 4;
    k = add("getnameinfo", c_gni_synth, "getnameinfo/of-gai/v6.test/hostlen=8");
    k->s1 = "v6.test", k->i3 = 8;
    k = add("getnameinfo", c_gni_synth,
            "getnameinfo/of-gai/2001:db8::2/hostlen=4");
    k->s1 = "2001:db8::2", k->i3 = 4;
  }
}

/* ---- gethostbyname* ---------------------------------------------------- */

static const char *hb_names[] = {
    "localhost",   "h4.test",    "h4alias",      "h6.test",
    "hboth.test",  "hloop.test", "hloop6.test",  "v4.test",
    "v6.test",     "both.test",  "multi.test",   "gone.test",
    "nodata.test", "fail.test",  "V6.TEST",      "v6.test.",
    "v4.test.",    "192.0.2.2",  "2001:db8::2",  "::ffff:192.0.2.2",
    "10",          "1.2.3",      "10.170.160.1", "",
    "not..valid"};

static void hb_result(struct hostent *h, int e, int herr)
{
  if (!h) {
    printf("NULL e=%s h_errno=%s", en(e), hen(herr));
    return;
  }
  printf("ok e=%s h_errno=%s ", en(e), hen(herr));
  phost(h);
}

/* s1 name */
static void c_ghbn(const struct kase *k)
{
  struct hostent *h;
  int e;
  errno = SENT;
  h_errno = 12345;
  h = gethostbyname(k->s1);
  e = errno;
  hb_result(h, e, h_errno);
}

/* s1 name, i1 family */
static void c_ghbn2(const struct kase *k)
{
  struct hostent *h;
  int e;
  errno = SENT;
  h_errno = 12345;
  h = gethostbyname2(k->s1, k->i1);
  e = errno;
  hb_result(h, e, h_errno);
}

static void r_result(int rc, int e, struct hostent *res, struct hostent *he,
                     int herr)
{
  printf("rc=%s e=%s h_errno=%s res=%s", en(rc), en(e), hen(herr),
         !res        ? "NULL"
         : res == he ? "he"
                     : "other");
  if (res) {
    printf(" ");
    phost(res);
  }
}

/* s1 name, i1 family (-1: gethostbyname_r), i2 buflen, i3 1: retry with
 * a doubled buffer while ERANGE (up to 64 KiB) */
static void c_ghbn_r(const struct kase *k)
{
  struct hostent he, *res = (struct hostent *)1;
  size_t len = (size_t)k->i2;
  char *buf = NULL;
  int rc, e, herr = 12345, tries = 0;
  for (;;) {
    free(buf);
    buf = malloc(len);
    res = (struct hostent *)1;
    herr = 12345;
    errno = SENT;
    if (k->i1 < 0)
      rc = gethostbyname_r(k->s1, &he, buf, len, &res, &herr);
    else
      rc = gethostbyname2_r(k->s1, k->i1, &he, buf, len, &res, &herr);
    e = errno;
    tries++;
    if (!(k->i3 && rc == ERANGE && len < 65536))
      break;
    len *= 2;
  }
  r_result(rc, e, res, &he, herr);
  if (k->i3)
    printf(" erange=%s", tries > 1 ? "yes" : "no");
  free(buf);
}

static void cases_ghbn(void)
{
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof hb_names / sizeof *hb_names; i++) {
    const char *n = hb_names[i];
    k = add("gethostbyname", c_ghbn, "gethostbyname/%s", nn(n));
    k->s1 = n;
    k = add("gethostbyname2", c_ghbn2, "gethostbyname2/%s/inet", nn(n));
    k->s1 = n, k->i1 = AF_INET;
    k = add("gethostbyname2", c_ghbn2, "gethostbyname2/%s/inet6", nn(n));
    k->s1 = n, k->i1 = AF_INET6;
    k = add("gethostbyname_r", c_ghbn_r, "gethostbyname_r/%s/1024", nn(n));
    k->s1 = n, k->i1 = -1, k->i2 = 1024;
    k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/%s/inet/1024",
            nn(n));
    k->s1 = n, k->i1 = AF_INET, k->i2 = 1024;
    k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/%s/inet6/1024",
            nn(n));
    k->s1 = n, k->i1 = AF_INET6, k->i2 = 1024;
  }
  {
    static const char *sn[] = {"h4.test",     "h6.test",   "v4.test",
                               "v6.test",     "both.test", "multi.test",
                               "2001:db8::2", "192.0.2.2", "gone.test"};
    static const int lens[] = {8, 40, 64};
    size_t j;
    for (i = 0; i < sizeof sn / sizeof *sn; i++) {
      for (j = 0; j < sizeof lens / sizeof *lens; j++) {
        k = add("gethostbyname_r", c_ghbn_r, "gethostbyname_r/%s/%d", sn[i],
                lens[j]);
        k->s1 = sn[i], k->i1 = -1, k->i2 = lens[j];
        k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/%s/inet/%d",
                sn[i], lens[j]);
        k->s1 = sn[i], k->i1 = AF_INET, k->i2 = lens[j];
      }
      k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/%s/inet6/8",
              sn[i]);
      k->s1 = sn[i], k->i1 = AF_INET6, k->i2 = 8;
      k = add("gethostbyname_r", c_ghbn_r, "gethostbyname_r/%s/grow-from-8",
              sn[i]);
      k->s1 = sn[i], k->i1 = -1, k->i2 = 8, k->i3 = 1;
    }
  }
  k = add("gethostbyname2", c_ghbn2, "gethostbyname2/h4.test/unix");
  k->s1 = "h4.test", k->i1 = AF_UNIX;
  k = add("gethostbyname2", c_ghbn2, "gethostbyname2/v6.test/unspec");
  k->s1 = "v6.test", k->i1 = AF_UNSPEC;
  k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/h4.test/unix/1024");
  k->s1 = "h4.test", k->i1 = AF_UNIX, k->i2 = 1024;
  k = add("gethostbyname2_r", c_ghbn_r, "gethostbyname2_r/v6.test/unix/1024");
  k->s1 = "v6.test", k->i1 = AF_UNIX, k->i2 = 1024;
}

/* ---- gethostbyaddr* ---------------------------------------------------- */

/* s1 address, i1 family given (0: the address's), i2 length adjustment,
 * i3: 0 gethostbyaddr, >0 gethostbyaddr_r with that buffer length */
static void c_ghba(const struct kase *k)
{
  unsigned char a[16];
  int fam = strchr(k->s1, ':') ? AF_INET6 : AF_INET, e;
  socklen_t len = fam == AF_INET ? 4 : 16;
  struct hostent *h;
  inet_pton(fam, k->s1, a);
  if (k->i1)
    fam = k->i1;
  len = (socklen_t)((int)len + k->i2);
  if (k->i3 == 0) {
    errno = SENT;
    h_errno = 12345;
    h = gethostbyaddr(a, len, fam);
    e = errno;
    hb_result(h, e, h_errno);
  } else {
    struct hostent he, *res = (struct hostent *)1;
    char *buf = malloc((size_t)k->i3);
    int rc, herr = 12345;
    errno = SENT;
    rc = gethostbyaddr_r(a, len, fam, &he, buf, (size_t)k->i3, &res, &herr);
    e = errno;
    r_result(rc, e, res, &he, herr);
    free(buf);
  }
}

/* Reverse lookup (gethostbyaddr or _r) of what gethostbyname(s1) answered;
 * i3 as c_ghba */
static void c_ghba_synth(const struct kase *k)
{
  struct hostent *h = gethostbyname(k->s1);
  unsigned char a[16];
  char t[INET6_ADDRSTRLEN];
  int e;
  if (!h) {
    printf("ghbn=NULL h_errno=%s", hen(h_errno));
    return;
  }
  memcpy(a, h->h_addr_list[0], (size_t)h->h_length);
  inet_ntop(AF_INET, a, t, sizeof t);
  printf("ghbn=%s ", t);
  if (k->i3 == 0) {
    errno = SENT;
    h_errno = 12345;
    h = gethostbyaddr(a, 4, AF_INET);
    e = errno;
    hb_result(h, e, h_errno);
  } else {
    struct hostent he, *res = (struct hostent *)1;
    char *buf = malloc((size_t)k->i3);
    int rc, herr = 12345;
    errno = SENT;
    rc = gethostbyaddr_r(a, 4, AF_INET, &he, buf, (size_t)k->i3, &res, &herr);
    e = errno;
    r_result(rc, e, res, &he, herr);
    free(buf);
  }
}

static void cases_ghba(void)
{
  static const char *addrs[] = {
      "192.0.2.2",  "2001:db8::2",      "198.51.100.7", "2001:db8::7",
      "192.0.2.99", "2001:db8::99",     "127.0.0.1",    "127.0.0.2",
      "::1",        "::ffff:192.0.2.2", "10.170.160.1", "172.21.112.1",
      "0.0.0.0"};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof addrs / sizeof *addrs; i++) {
    k = add("gethostbyaddr", c_ghba, "gethostbyaddr/%s", addrs[i]);
    k->s1 = addrs[i];
    k = add("gethostbyaddr_r", c_ghba, "gethostbyaddr_r/%s/1024", addrs[i]);
    k->s1 = addrs[i], k->i3 = 1024;
    k = add("gethostbyaddr_r", c_ghba, "gethostbyaddr_r/%s/8", addrs[i]);
    k->s1 = addrs[i], k->i3 = 8;
  }
  k = add("gethostbyaddr", c_ghba, "gethostbyaddr/192.0.2.2/len3");
  k->s1 = "192.0.2.2", k->i2 = -1;
  k = add("gethostbyaddr", c_ghba, "gethostbyaddr/192.0.2.2/len5");
  k->s1 = "192.0.2.2", k->i2 = 1;
  k = add("gethostbyaddr", c_ghba, "gethostbyaddr/192.0.2.2/as-inet6");
  k->s1 = "192.0.2.2", k->i1 = AF_INET6;
  k = add("gethostbyaddr", c_ghba, "gethostbyaddr/2001:db8::2/as-inet");
  k->s1 = "2001:db8::2", k->i1 = AF_INET;
  k = add("gethostbyaddr", c_ghba, "gethostbyaddr/192.0.2.2/unix");
  k->s1 = "192.0.2.2", k->i1 = AF_UNIX;
  k = add("gethostbyaddr_r", c_ghba, "gethostbyaddr_r/192.0.2.2/len3/1024");
  k->s1 = "192.0.2.2", k->i2 = -1, k->i3 = 1024;
  k = add("gethostbyaddr_r", c_ghba, "gethostbyaddr_r/192.0.2.2/unix/1024");
  k->s1 = "192.0.2.2", k->i1 = AF_UNIX, k->i3 = 1024;
  {
    static const char *sn[] = {"v6.test",   "h6.test", "2001:db8::2",
                               "both.test", "h4.test", "hloop6.test"};
    for (i = 0; i < sizeof sn / sizeof *sn; i++) {
      k = add("gethostbyaddr", c_ghba_synth, "gethostbyaddr/of-ghbn/%s", sn[i]);
      k->s1 = sn[i];
      k = add("gethostbyaddr_r", c_ghba_synth,
              "gethostbyaddr_r/of-ghbn/%s/1024", sn[i]);
      k->s1 = sn[i], k->i3 = 1024;
      k = add("gethostbyaddr_r", c_ghba_synth, "gethostbyaddr_r/of-ghbn/%s/8",
              sn[i]);
      k->s1 = sn[i], k->i3 = 8;
    }
  }
}

/* ---- socket calls ------------------------------------------------------ */

/* A TCP listener on ADDR (v4 "0.0.0.0", "127.0.0.1", v6 "::1"...),
 * port 0; returns fd, port in *port. */
static int listener(int fam, const char *addr, int type, unsigned *port)
{
  struct sockaddr_storage ss;
  socklen_t l = mkaddr(&ss, addr, 0);
  int fd = socket(fam, type, 0);
  if (fd < 0)
    return -1;
  if (bind(fd, (struct sockaddr *)&ss, l) < 0 ||
      (type == SOCK_STREAM && listen(fd, 8) < 0)) {
    close(fd);
    return -1;
  }
  l = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &l);
  *port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset */
  return fd;
}

static int connect_to(int fam, int type, const char *addr, unsigned port)
{
  struct sockaddr_storage ss;
  socklen_t l = mkaddr(&ss, addr, port);
  int fd = socket(fam, type, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&ss, l) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* A connected loopback pair: *srv (accepted) and the client. */
static int loop_pair(int *lfd, int *cfd)
{
  unsigned port;
  *lfd = listener(AF_INET, "127.0.0.1", SOCK_STREAM, &port);
  if (*lfd < 0)
    return -1;
  *cfd = connect_to(AF_INET, SOCK_STREAM, "127.0.0.1", port);
  return *cfd < 0 ? -1 : 0;
}

/* ---- accept / accept4 -------------------------------------------------- */

/* i1: 0 accept, 1 accept4; i2 accept4 flags; s1 variant */
static void c_accept(const struct kase *k)
{
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss, *lp = &l;
  struct sockaddr *sp = (struct sockaddr *)&ss;
  int fd = -1, c = -1, r, e;
  unsigned port = 0;
  const char *v = k->s1;
  memset(&ss, 0, sizeof ss);
  if (!strcmp(v, "badfd")) {
    fd = -1;
  } else if (!strcmp(v, "closedfd")) {
    fd = 99;
  } else if (!strcmp(v, "notsock")) {
    fd = nonsock();
  } else if (!strcmp(v, "notlistening")) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
  } else if (!strcmp(v, "udp")) {
    fd = socket(AF_INET, SOCK_DGRAM, 0);
  } else if (!strcmp(v, "empty-nonblock")) {
    fd = listener(AF_INET, "127.0.0.1", SOCK_STREAM | SOCK_NONBLOCK, &port);
  } else if (!strcmp(v, "widened-empty-nonblock")) {
    fd = listener(AF_INET, "0.0.0.0", SOCK_STREAM | SOCK_NONBLOCK, &port);
  } else {
    const char *la = "127.0.0.1", *ca = "127.0.0.1";
    int cfam = AF_INET;
    if (strstr(v, "widened"))
      la = "0.0.0.0";
    if (strstr(v, "lab4"))
      ca = "192.0.2.1";
    if (strstr(v, "v6client"))
      cfam = AF_INET6, ca = "::1";
    if (strstr(v, "lab6"))
      cfam = AF_INET6, ca = "2001:db8::1";
    fd = listener(AF_INET, la, SOCK_STREAM, &port);
    errno = 0;
    c = connect_to(cfam, SOCK_STREAM, ca, port);
    printf("client=%s ", c < 0 ? en(errno) : "ok");
    if (c < 0) {
      /* nothing to accept: do not block */
      fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    if (strstr(v, "small"))
      l = 4;
    if (strstr(v, "zero"))
      l = 0;
    if (strstr(v, "nulladdr"))
      sp = NULL, lp = NULL;
    if (strstr(v, "nulllen"))
      lp = NULL;
    if (strstr(v, "badlen"))
      l = (socklen_t)-1;
  }
  errno = SENT;
  if (k->i1)
    r = accept4(fd, sp, lp, k->i2);
  else
    r = accept(fd, sp, lp);
  e = errno;
  printf("rc=%s e=%s", r < 0 ? "-1" : "fd", en(e));
  if (r >= 0) {
    printf(" fdnum=%d ", r);
    if (lp)
      psa_buf(&ss,
              strstr(v, "small")  ? 4
              : strstr(v, "zero") ? 0
                                  : sizeof ss,
              l);
    else
      printf("noaddr");
    fdflags(r);
    printf(" domain=%d", sockopt_int(r, SOL_SOCKET, SO_DOMAIN));
    pname("name", r, 0);
    pname("peer", r, 1);
    if (c >= 0) { /* the connection works both ways */
      char b[16] = {0};
      ssize_t n;
      n = write(c, "ping", 4);
      n = read(r, b, sizeof b - 1);
      printf(" read=%zd:%s", n, n > 0 ? b : "");
    }
  }
}

static void cases_accept(void)
{
  static const char *vs[] = {"badfd",
                             "closedfd",
                             "notsock",
                             "notlistening",
                             "udp",
                             "empty-nonblock",
                             "widened-empty-nonblock",
                             "loopback",
                             "loopback-small",
                             "loopback-zero",
                             "loopback-nulladdr",
                             "loopback-nulllen",
                             "loopback-badlen",
                             "widened-loopback",
                             "widened-lab4",
                             "widened-lab4-small",
                             "widened-v6client",
                             "widened-lab6",
                             "widened-v6client-small",
                             "loopback-v6client"};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("accept", c_accept, "accept/%s", vs[i]);
    k->s1 = vs[i];
    k = add("accept4", c_accept, "accept4/%s/cloexec+nonblock", vs[i]);
    k->s1 = vs[i], k->i1 = 1, k->i2 = SOCK_CLOEXEC | SOCK_NONBLOCK;
  }
  k = add("accept4", c_accept, "accept4/loopback/0");
  k->s1 = "loopback", k->i1 = 1;
  k = add("accept4", c_accept, "accept4/loopback/badflags");
  k->s1 = "loopback", k->i1 = 1, k->i2 = 0x1234;
  k = add("accept4", c_accept, "accept4/widened-v6client/badflags");
  k->s1 = "widened-v6client", k->i1 = 1, k->i2 = 0x1234;
  k = add("accept4", c_accept, "accept4/widened-lab6/cloexec");
  k->s1 = "widened-lab6", k->i1 = 1, k->i2 = SOCK_CLOEXEC;
}

/* ---- bind -------------------------------------------------------------- */

static void c_bind(const struct kase *k)
{
  const char *v = k->s1;
  struct sockaddr_storage ss;
  socklen_t l;
  int fd, r, e, type = strstr(v, "udp") ? SOCK_DGRAM : SOCK_STREAM;
  unsigned port = 0;
  if (strstr(v, "fixed"))
    port = 24000 + (unsigned)k->i1;
  l = mkaddr(&ss, k->s2 ? k->s2 : "0.0.0.0", port);
  if (!strcmp(v, "badfd"))
    fd = -1;
  else if (!strcmp(v, "notsock"))
    fd = nonsock();
  else
    fd = socket(strstr(v, "sock6") ? AF_INET6 : AF_INET, type, 0);
  if (strstr(v, "reuse")) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (strstr(v, "tos")) {
    int tos = 0x20;
    setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  }
  if (strstr(v, "short"))
    l = 8;
  if (strstr(v, "long"))
    l = sizeof ss;
  if (strstr(v, "twice")) {
    struct sockaddr_in s;
    sin4(&s, "127.0.0.1", 0);
    bind(fd, (struct sockaddr *)&s, sizeof s);
  }
  errno = SENT;
  r = bind(fd, (struct sockaddr *)&ss, l);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (r == 0) {
    pname("name", fd, 0);
    printf(" domain=%d", sockopt_int(fd, SOL_SOCKET, SO_DOMAIN));
    printf(" tos=%d", sockopt_int(fd, IPPROTO_IP, IP_TOS));
    printf(" reuse=%d", sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR));
    if (type == SOCK_STREAM) {
      errno = SENT;
      r = listen(fd, 4);
      printf(" listen=%d", r);
      pname("name", fd, 0);
    }
    if (strstr(v, "second")) { /* another bind on the same port */
      struct sockaddr_storage s2;
      socklen_t l2 = sizeof s2;
      int fd2;
      getsockname(fd, (struct sockaddr *)&s2, &l2);
      fd2 = socket(strstr(v, "second6") ? AF_INET6 : AF_INET, type, 0);
      if (strstr(v, "second6")) {
        struct sockaddr_in6 s6;
        sin6(&s6, "::", ntohs(((struct sockaddr_in *)&s2)->sin_port));
        l2 = sizeof s6;
        memcpy(&s2, &s6, sizeof s6);
      } else if (strstr(v, "second4lo")) {
        ((struct sockaddr_in *)&s2)->sin_addr.s_addr = htonl(0x7f000001);
      }
      errno = SENT;
      r = bind(fd2, (struct sockaddr *)&s2, l2);
      printf(" second=%d e=%s", r, en(errno));
    }
  }
}

static void cases_bind(void)
{
  static const struct {
    const char *v, *a;
  } vs[] = {{"any", "0.0.0.0"},
            {"any-udp", "0.0.0.0"},
            {"any-fixed", "0.0.0.0"},
            {"any-fixed-udp", "0.0.0.0"},
            {"any-reuse", "0.0.0.0"},
            {"any-tos", "0.0.0.0"},
            {"any-second4", "0.0.0.0"},
            {"any-second4lo", "0.0.0.0"},
            {"any-second6", "0.0.0.0"},
            {"any-udp-second4", "0.0.0.0"},
            {"any-udp-second6", "0.0.0.0"},
            {"any-short", "0.0.0.0"},
            {"any-long", "0.0.0.0"},
            {"any-twice", "0.0.0.0"},
            {"any-on-sock6", "0.0.0.0"},
            {"loopback", "127.0.0.1"},
            {"loopback-second4", "127.0.0.1"},
            {"lab4", "192.0.2.1"},
            {"lab4-udp", "192.0.2.1"},
            {"nonlocal", "203.0.113.1"},
            {"pool", "10.170.160.1"},
            {"srcpool", "172.21.112.1"},
            {"v6-on-sock4", "::"},
            {"sock6-any6", "::"},
            {"badfd", "0.0.0.0"},
            {"notsock", "0.0.0.0"}};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("bind", c_bind, "bind/%s", vs[i].v);
    k->s1 = vs[i].v, k->s2 = vs[i].a, k->i1 = (int)i;
  }
}

/* ---- connect ----------------------------------------------------------- */

static void talk(int fd)
{
  char b[64] = {0};
  ssize_t n;
  if (wait_fd(fd, POLLOUT, 3000) <= 0) {
    printf(" talk=nowrite");
    return;
  }
  n = send(fd, "x", 1, MSG_NOSIGNAL);
  if (n != 1) {
    printf(" talk=send:%s", en(errno));
    return;
  }
  if (wait_fd(fd, POLLIN, 3000) <= 0) {
    printf(" talk=noreply");
    return;
  }
  n = recv(fd, b, sizeof b - 1, 0);
  printf(" talk=%s", n > 0 ? b : en(errno));
}

/* Where a connect goes: "lab4:7" or a name looked up with AF_INET hints. */
static socklen_t target(const char *t, int type, struct sockaddr_storage *ss)
{
  char host[64];
  const char *colon = strrchr(t, ':');
  unsigned port = (unsigned)atoi(colon + 1);
  snprintf(host, sizeof host, "%.*s", (int)(colon - t), t);
  if (!strcmp(host, "lab4"))
    return mkaddr(ss, SRV4, port);
  if (!strcmp(host, "lab6"))
    return mkaddr(ss, SRV6, port);
  if (!strcmp(host, "lo"))
    return mkaddr(ss, "127.0.0.1", port);
  if (strchr(host, '.') && host[0] >= '0' && host[0] <= '9')
    return mkaddr(ss, host, port);
  {
    struct addrinfo h, *res = NULL;
    char ps[8];
    socklen_t l;
    memset(&h, 0, sizeof h);
    h.ai_family = AF_INET;
    h.ai_socktype = type;
    snprintf(ps, sizeof ps, "%u", port);
    if (getaddrinfo(host, ps, &h, &res) != 0)
      return 0;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    l = res->ai_addrlen;
    freeaddrinfo(res);
    return l;
  }
}

/* s1 target ("lab4:7", "v6.test:7"...), s2 variant, i1 type */
static void c_connect(const struct kase *k)
{
  struct sockaddr_storage ss;
  socklen_t l = 0;
  const char *v = k->s2 ? k->s2 : "";
  int type = k->i1 ? k->i1 : SOCK_STREAM, fd, r, e;
  memset(&ss, 0, sizeof ss);
  if (k->s1) {
    l = target(k->s1, type, &ss);
    if (!l) {
      printf("lookup failed");
      return;
    }
  }
  if (!strcmp(v, "badfd"))
    fd = -1;
  else if (!strcmp(v, "notsock"))
    fd = nonsock();
  else
    fd = socket(strstr(v, "sock6") ? AF_INET6 : AF_INET,
                type | (strstr(v, "nonblock") ? SOCK_NONBLOCK : 0), 0);
  if (strstr(v, "short"))
    l = 8;
  if (strstr(v, "unspec"))
    ((struct sockaddr *)&ss)->sa_family = AF_UNSPEC;
  if (strstr(v, "fam6"))
    ((struct sockaddr *)&ss)->sa_family = AF_INET6;
  if (strstr(v, "bound")) {
    struct sockaddr_in s;
    sin4(&s, "0.0.0.0", 0);
    bind(fd, (struct sockaddr *)&s, sizeof s);
  }
  if (strstr(v, "tos")) {
    int tos = 0x20;
    setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  }
  errno = SENT;
  r = connect(fd, (struct sockaddr *)&ss, l);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (r < 0 && e == EINPROGRESS) {
    int pr = wait_fd(fd, POLLOUT, 5000);
    printf(" poll=%d so_error=%s", pr,
           en(sockopt_int(fd, SOL_SOCKET, SO_ERROR)));
  } else if (fd >= 0) {
    printf(" so_error=%s", en(sockopt_int(fd, SOL_SOCKET, SO_ERROR)));
  }
  if (strstr(v, "again")) { /* second connect: EISCONN, or the error */
    errno = SENT;
    r = connect(fd, (struct sockaddr *)&ss, l);
    printf(" again=%d e=%s", r, en(errno));
  }
  if (strstr(v, "disconnect")) {
    struct sockaddr u = {.sa_family = AF_UNSPEC};
    errno = SENT;
    r = connect(fd, &u, sizeof u);
    printf(" disconnect=%d e=%s", r, en(errno));
  }
  if (fd >= 0 && !strstr(v, "badfd") && !strstr(v, "notsock")) {
    pname("name", fd, 0);
    pname("peer", fd, 1);
    printf(" domain=%d", sockopt_int(fd, SOL_SOCKET, SO_DOMAIN));
    if (strstr(v, "tos"))
      printf(" tos=%d", sockopt_int(fd, IPPROTO_IP, IP_TOS));
    if (strstr(v, "talk"))
      talk(fd);
  }
}

static void cases_connect(void)
{
  static const struct {
    const char *t, *v;
    int type;
  } vs[] = {{"lab4:7", "talk", 0},
            {"lab4:7", "nonblock-talk", 0},
            {"lab4:7", "again", 0},
            {"lab4:7", "nonblock-again", 0},
            {"lab4:7", "disconnect", 0},
            {"lab4:7", "bound-talk", 0},
            {"lab4:7", "tos-talk", 0},
            {"lab4:1", "refused", 0},
            {"lab4:1", "nonblock-refused", 0},
            {"lab4:1", "again", 0},
            {"lab4:7", "badfd", 0},
            {"lab4:7", "notsock", 0},
            {"lab4:7", "short", 0},
            {"lab4:7", "fam6", 0},
            {"lab4:7", "unspec", 0},
            {"lab4:7", "sock6", 0},
            {"lab6:7", "sock4", 0},
            {"203.0.113.1:7", "unreachable", 0},
            {"10.170.160.1:7", "pool-unmapped", 0},
            {"172.21.112.1:7", "srcpool-unmapped", 0},
            {"lab4:9", "udp-talk", SOCK_DGRAM},
            {"lab4:9", "udp-disconnect", SOCK_DGRAM},
            {"lab4:9", "udp-again", SOCK_DGRAM},
            {"lab4:1", "udp-refused-talk", SOCK_DGRAM},
            {"10.170.160.1:9", "udp-pool-unmapped", SOCK_DGRAM},
            {"v4.test:7", "talk", 0},
            {"h4.test:7", "talk", 0},
            {"v6.test:7", "talk", 0},
            {"v6.test:7", "nonblock-talk", 0},
            {"v6.test:7", "again", 0},
            {"v6.test:7", "tos-talk", 0},
            {"v6.test:7", "bound-talk", 0},
            {"v6.test:7", "disconnect", 0},
            {"v6.test:1", "refused", 0},
            {"v6.test:1", "nonblock-refused", 0},
            {"h6.test:7", "talk", 0},
            {"both.test:7", "talk", 0},
            {"both.test:1", "refused", 0},
            {"v6.test:9", "udp-talk", SOCK_DGRAM},
            {"both.test:9", "udp-talk", SOCK_DGRAM},
            {"v6.test:7", "short", 0},
            {"v6.test:7", "unspec", 0}};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("connect", c_connect, "connect/%s/%s", vs[i].t, vs[i].v);
    k->s1 = vs[i].t, k->s2 = vs[i].v, k->i1 = vs[i].type;
  }
  k = add("connect", c_connect, "connect/null/badfd");
  k->s2 = "badfd";
}

/* ---- getpeername / getsockname ----------------------------------------- */

/* s1 variant, i1 0 getsockname, 1 getpeername */
static void c_name(const struct kase *k)
{
  const char *v = k->s1;
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss, buflen;
  int fd = -1, r, e, lfd = -1;
  memset(&ss, 0, sizeof ss);
  if (!strcmp(v, "badfd"))
    fd = -1;
  else if (!strcmp(v, "notsock"))
    fd = nonsock();
  else if (strstr(v, "unbound"))
    fd = socket(strstr(v, "6") ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  else if (strstr(v, "widened")) {
    unsigned port;
    fd = listener(AF_INET, "0.0.0.0", SOCK_STREAM, &port);
  } else if (strstr(v, "lab4")) {
    fd = connect_to(AF_INET, SOCK_STREAM, SRV4, TCP_PORT);
  } else if (strstr(v, "v6.test")) {
    struct sockaddr_storage t;
    socklen_t tl = target("v6.test:7", SOCK_STREAM, &t);
    if (!tl) {
      printf("lookup failed");
      return;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&t, tl) < 0) {
      printf("connect=%s", en(errno));
      return;
    }
  } else if (strstr(v, "loop")) {
    if (loop_pair(&lfd, &fd) < 0) {
      printf("setup failed");
      return;
    }
  }
  if (strstr(v, "small"))
    l = 4;
  if (strstr(v, "zero"))
    l = 0;
  if (strstr(v, "badlen"))
    l = (socklen_t)-1;
  buflen = l;
  errno = SENT;
  if (strstr(v, "nulllen"))
    r = k->i1 ? getpeername(fd, (struct sockaddr *)&ss, NULL)
              : getsockname(fd, (struct sockaddr *)&ss, NULL);
  else
    r = k->i1 ? getpeername(fd, (struct sockaddr *)&ss, &l)
              : getsockname(fd, (struct sockaddr *)&ss, &l);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (r == 0) {
    printf(" ");
    psa_buf(&ss, buflen, l);
    if (buflen >= 4 && l > buflen) /* the port the kernel wrote, if any */
      printf(" port=%s", portn(ntohs(((struct sockaddr_in *)&ss)->sin_port)));
  }
}

static void cases_name(void)
{
  static const char *vs[] = {
      "badfd",     "notsock",       "unbound",      "unbound6", "unbound-small",
      "widened",   "widened-small", "widened-zero", "lab4",     "lab4-small",
      "lab4-zero", "lab4-badlen",   "lab4-nulllen", "loop",     "loop-small",
      "v6.test",   "v6.test-small", "v6.test-zero"};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("getsockname", c_name, "getsockname/%s", vs[i]);
    k->s1 = vs[i];
    k = add("getpeername", c_name, "getpeername/%s", vs[i]);
    k->s1 = vs[i], k->i1 = 1;
  }
}

/* ---- getsockopt / setsockopt ------------------------------------------- */

/* The socket a sockopt case acts on. */
static int opt_sock(const char *v)
{
  if (!strncmp(v, "badfd", 5))
    return -1;
  if (!strncmp(v, "notsock", 7))
    return nonsock();
  if (!strncmp(v, "widened", 7)) {
    unsigned port;
    return listener(AF_INET, "0.0.0.0", SOCK_STREAM, &port);
  }
  if (!strncmp(v, "widenudp", 8)) {
    unsigned port;
    return listener(AF_INET, "0.0.0.0", SOCK_DGRAM, &port);
  }
  if (!strncmp(v, "lab4", 4))
    return connect_to(AF_INET, SOCK_STREAM, SRV4, TCP_PORT);
  if (!strncmp(v, "v6.test", 7)) {
    struct sockaddr_storage t;
    socklen_t tl = target("v6.test:7", SOCK_STREAM, &t);
    int fd;
    if (!tl)
      return -2;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&t, tl) < 0)
      return -2;
    return fd;
  }
  if (!strncmp(v, "refused", 7)) { /* a pending SO_ERROR */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in s;
    sin4(&s, SRV4, CLOSED_PORT);
    connect(fd, (struct sockaddr *)&s, sizeof s);
    wait_fd(fd, POLLOUT, 3000);
    return fd;
  }
  if (!strncmp(v, "v6refused", 9)) {
    struct sockaddr_storage t;
    socklen_t tl = target("v6.test:1", SOCK_STREAM, &t);
    int fd;
    if (!tl)
      return -2;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(fd, (struct sockaddr *)&t, tl);
    wait_fd(fd, POLLOUT, 3000);
    return fd;
  }
  if (!strncmp(v, "udp", 3))
    return socket(AF_INET, SOCK_DGRAM, 0);
  return socket(AF_INET, SOCK_STREAM, 0);
}

/* s1 socket, i1 level, i2 option, i3 optlen (0: 4; -1: NULL optlen),
 * s2 label */
static void c_getsockopt(const struct kase *k)
{
  int fd = opt_sock(k->s1), r, e;
  unsigned char v[64];
  socklen_t l = k->i3 > 0 ? (socklen_t)k->i3 : 4;
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  memset(v, 0xaa, sizeof v);
  errno = SENT;
  r = getsockopt(fd, k->i1, k->i2, v, k->i3 < 0 ? NULL : &l);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (r == 0) {
    socklen_t i;
    printf(" len=%u val=", (unsigned)l);
    if (l == 4) {
      int x;
      memcpy(&x, v, 4);
      printf("%d", x);
    } else {
      for (i = 0; i < l && i < sizeof v; i++)
        printf("%02x", v[i]);
    }
  }
}

/* s1 socket, i1 level, i2 option, i3 value, i4 optlen (0: 4; -1: NULL
 * value); reads the option back with getsockopt */
static void c_setsockopt(const struct kase *k)
{
  int fd = opt_sock(k->s1), r, e, val = k->i3;
  socklen_t l = k->i4 > 0 ? (socklen_t)k->i4 : 4;
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  if (k->i4 == -2)
    l = 0;
  errno = SENT;
  r = setsockopt(fd, k->i1, k->i2, k->i4 == -1 ? NULL : &val, l);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (fd >= 0) {
    int got = sockopt_int(fd, k->i1, k->i2);
    printf(" now=%s", got <= -1000 ? en(-1000 - got) : "");
    if (got > -1000)
      printf("%d", got);
  }
}

static void cases_sockopt(void)
{
  static const char *socks[] = {"tcp",     "udp",      "lab4",
                                "widened", "widenudp", "v6.test"};
  static const struct {
    const char *name;
    int level, opt;
  } gets[] = {{"SO_DOMAIN", SOL_SOCKET, SO_DOMAIN},
              {"SO_TYPE", SOL_SOCKET, SO_TYPE},
              {"SO_PROTOCOL", SOL_SOCKET, SO_PROTOCOL},
              {"SO_ERROR", SOL_SOCKET, SO_ERROR},
              {"SO_ACCEPTCONN", SOL_SOCKET, SO_ACCEPTCONN},
              {"SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR},
              {"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE},
              {"IP_TOS", IPPROTO_IP, IP_TOS},
              {"IP_TTL", IPPROTO_IP, IP_TTL},
              {"IP_MULTICAST_TTL", IPPROTO_IP, IP_MULTICAST_TTL},
              {"IP_MULTICAST_LOOP", IPPROTO_IP, IP_MULTICAST_LOOP},
              {"IP_RECVTOS", IPPROTO_IP, IP_RECVTOS},
              {"IP_PKTINFO", IPPROTO_IP, IP_PKTINFO},
              {"IPV6_V6ONLY", IPPROTO_IPV6, IPV6_V6ONLY},
              {"IPV6_TCLASS", IPPROTO_IPV6, IPV6_TCLASS},
              {"TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY},
              {"badlevel", 12345, 1},
              {"badopt", SOL_SOCKET, 12345}};
  size_t i, j;
  struct kase *k;
  for (i = 0; i < sizeof socks / sizeof *socks; i++)
    for (j = 0; j < sizeof gets / sizeof *gets; j++) {
      k = add("getsockopt", c_getsockopt, "getsockopt/%s/%s", socks[i],
              gets[j].name);
      k->s1 = socks[i], k->i1 = gets[j].level, k->i2 = gets[j].opt;
    }
  {
    static const char *s2[] = {"badfd", "notsock", "refused", "v6refused"};
    for (i = 0; i < sizeof s2 / sizeof *s2; i++) {
      k = add("getsockopt", c_getsockopt, "getsockopt/%s/SO_ERROR", s2[i]);
      k->s1 = s2[i], k->i1 = SOL_SOCKET, k->i2 = SO_ERROR;
      k = add("getsockopt", c_getsockopt, "getsockopt/%s/SO_DOMAIN", s2[i]);
      k->s1 = s2[i], k->i1 = SOL_SOCKET, k->i2 = SO_DOMAIN;
    }
  }
  for (i = 0; i < sizeof socks / sizeof *socks; i++) {
    k = add("getsockopt", c_getsockopt, "getsockopt/%s/SO_DOMAIN/optlen=2",
            socks[i]);
    k->s1 = socks[i], k->i1 = SOL_SOCKET, k->i2 = SO_DOMAIN, k->i3 = 2;
    k = add("getsockopt", c_getsockopt, "getsockopt/%s/SO_DOMAIN/optlen=8",
            socks[i]);
    k->s1 = socks[i], k->i1 = SOL_SOCKET, k->i2 = SO_DOMAIN, k->i3 = 8;
    k = add("getsockopt", c_getsockopt, "getsockopt/%s/IP_TOS/optlen=1",
            socks[i]);
    k->s1 = socks[i], k->i1 = IPPROTO_IP, k->i2 = IP_TOS, k->i3 = 1;
    k = add("getsockopt", c_getsockopt, "getsockopt/%s/IP_TTL/optlen=1",
            socks[i]);
    k->s1 = socks[i], k->i1 = IPPROTO_IP, k->i2 = IP_TTL, k->i3 = 1;
    k = add("getsockopt", c_getsockopt, "getsockopt/%s/SO_DOMAIN/nulllen",
            socks[i]);
    k->s1 = socks[i], k->i1 = SOL_SOCKET, k->i2 = SO_DOMAIN, k->i3 = -1;
  }
  {
    static const struct {
      const char *name;
      int level, opt, val, len;
    } sets[] = {{"IP_TOS=32", IPPROTO_IP, IP_TOS, 0x20, 0},
                {"IP_TOS=32/len1", IPPROTO_IP, IP_TOS, 0x20, 1},
                {"IP_TOS/len0", IPPROTO_IP, IP_TOS, 0x20, -2},
                {"IP_TOS/null", IPPROTO_IP, IP_TOS, 0x20, -1},
                {"IP_TTL=7", IPPROTO_IP, IP_TTL, 7, 0},
                {"IP_TTL=0", IPPROTO_IP, IP_TTL, 0, 0},
                {"IP_TTL=300", IPPROTO_IP, IP_TTL, 300, 0},
                {"IP_TTL=-1", IPPROTO_IP, IP_TTL, -1, 0},
                {"IP_MULTICAST_TTL=3", IPPROTO_IP, IP_MULTICAST_TTL, 3, 0},
                {"IP_MULTICAST_LOOP=0", IPPROTO_IP, IP_MULTICAST_LOOP, 0, 0},
                {"IP_RECVTOS=1", IPPROTO_IP, IP_RECVTOS, 1, 0},
                {"SO_REUSEADDR=1", SOL_SOCKET, SO_REUSEADDR, 1, 0},
                {"SO_KEEPALIVE=1", SOL_SOCKET, SO_KEEPALIVE, 1, 0},
                {"SO_DOMAIN=10", SOL_SOCKET, SO_DOMAIN, 10, 0},
                {"IPV6_V6ONLY=1", IPPROTO_IPV6, IPV6_V6ONLY, 1, 0},
                {"TCP_NODELAY=1", IPPROTO_TCP, TCP_NODELAY, 1, 0},
                {"badlevel", 12345, 1, 1, 0},
                {"badopt", SOL_SOCKET, 12345, 1, 0}};
    static const char *ss[] = {"tcp",      "udp",     "lab4",  "widened",
                               "widenudp", "v6.test", "badfd", "notsock"};
    for (i = 0; i < sizeof ss / sizeof *ss; i++)
      for (j = 0; j < sizeof sets / sizeof *sets; j++) {
        if (i >= 6 && j > 0)
          continue;
        k = add("setsockopt", c_setsockopt, "setsockopt/%s/%s", ss[i],
                sets[j].name);
        k->s1 = ss[i], k->i1 = sets[j].level, k->i2 = sets[j].opt,
        k->i3 = sets[j].val, k->i4 = sets[j].len;
      }
  }
}

/* ---- datagrams: sendto / recvfrom / sendmsg / recvmsg / mmsg ----------- */

/* A UDP socket for an I/O case; *to gets the destination. */
static int udp_sock(const char *v, struct sockaddr_storage *to, socklen_t *tol)
{
  *tol = 0;
  if (!strncmp(v, "badfd", 5))
    return -1;
  if (!strncmp(v, "notsock", 7))
    return nonsock();
  if (!strncmp(v, "v6.test", 7) || !strncmp(v, "both.test", 9) ||
      !strncmp(v, "v4.test", 7)) {
    char t[32];
    snprintf(t, sizeof t, "%.*s:9", (int)strcspn(v, "/"), v);
    *tol = target(t, SOCK_DGRAM, to);
    if (!*tol)
      return -2;
  } else if (!strncmp(v, "unreach", 7)) {
    *tol = mkaddr(to, "203.0.113.1", UDP_PORT);
  } else if (!strncmp(v, "pool", 4)) {
    *tol = mkaddr(to, "10.170.160.1", UDP_PORT);
  } else if (!strncmp(v, "closed", 6)) {
    *tol = mkaddr(to, SRV4, CLOSED_PORT);
  } else {
    *tol = mkaddr(to, SRV4, UDP_PORT);
  }
  if (strstr(v, "tcp"))
    return connect_to(AF_INET, SOCK_STREAM, SRV4, TCP_PORT);
  {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (strstr(v, "connected") &&
        connect(fd, (struct sockaddr *)to, *tol) < 0) {
      printf("connect=%s ", en(errno));
    }
    if (strstr(v, "widened")) {
      struct sockaddr_in s;
      sin4(&s, "0.0.0.0", 0);
      bind(fd, (struct sockaddr *)&s, sizeof s);
    }
    return fd;
  }
}

/* How the reply to a send is read: recvfrom with full buffers. */
static void read_reply(int fd)
{
  char b[128] = {0};
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  ssize_t n;
  if (fd < 0)
    return;
  if (wait_fd(fd, POLLIN, 3000) <= 0) {
    printf(" reply=none");
    return;
  }
  n = recvfrom(fd, b, sizeof b - 1, 0, (struct sockaddr *)&ss, &l);
  if (n < 0) {
    printf(" reply=%s", en(errno));
    return;
  }
  printf(" reply=%zd:%s from=", n, b);
  psa_buf(&ss, sizeof ss, l);
}

/* i1: 0 sendto, 1 sendmsg, 2 sendmmsg; s1 variant; i2 flags */
static void c_send(const struct kase *k)
{
  struct sockaddr_storage to;
  socklen_t tol;
  const char *v = k->s1;
  int fd = udp_sock(v, &to, &tol), e;
  ssize_t r;
  int usedest = !strstr(v, "connected") && !strstr(v, "nodest");
  if (fd == -2) {
    printf("lookup failed");
    return;
  }
  if (strstr(v, "short"))
    tol = 8;
  errno = SENT;
  if (k->i1 == 0) {
    r = sendto(fd, "hello", 5, k->i2 | MSG_NOSIGNAL,
               usedest ? (struct sockaddr *)&to : NULL, usedest ? tol : 0);
  } else {
    struct iovec iov = {.iov_base = "hello", .iov_len = 5};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (usedest)
      m.msg_name = &to, m.msg_namelen = tol;
    if (k->i1 == 1) {
      r = sendmsg(fd, &m, k->i2 | MSG_NOSIGNAL);
    } else {
      struct iovec iov2 = {.iov_base = "world", .iov_len = 5};
      struct mmsghdr mm[2];
      memset(mm, 0, sizeof mm);
      mm[0].msg_hdr = m;
      mm[1].msg_hdr = m;
      mm[1].msg_hdr.msg_iov = &iov2;
      mm[0].msg_len = mm[1].msg_len = 12345;
      r = sendmmsg(fd, mm, 2, k->i2 | MSG_NOSIGNAL);
      e = errno;
      printf("rc=%zd e=%s lens=%u,%u", r, en(e), mm[0].msg_len, mm[1].msg_len);
      if (!strstr(v, "tcp")) { /* TCP may join the two echoes */
        read_reply(fd);
        if (r == 2)
          read_reply(fd);
      }
      return;
    }
  }
  e = errno;
  printf("rc=%zd e=%s", r, en(e));
  if (r >= 0 && !strstr(v, "tcp"))
    read_reply(fd);
  if (strstr(v, "again")) { /* a second send: the ICMP error shows here */
    usleep(200000);
    errno = SENT;
    r = sendto(fd, "again", 5, MSG_NOSIGNAL,
               usedest ? (struct sockaddr *)&to : NULL, usedest ? tol : 0);
    printf(" again=%zd e=%s", r, en(errno));
  }
  if (fd >= 0 && !strstr(v, "badfd") && !strstr(v, "notsock")) {
    pname("name", fd, 0);
    printf(" domain=%d", sockopt_int(fd, SOL_SOCKET, SO_DOMAIN));
  }
}

static void cases_send(void)
{
  static const char *vs[] = {"lab4",
                             "lab4/connected",
                             "lab4/connected-nodest",
                             "lab4/nodest",
                             "lab4/short",
                             "lab4/widened",
                             "closed/connected-again",
                             "unreach",
                             "pool",
                             "badfd",
                             "notsock",
                             "tcp/nodest",
                             "tcp",
                             "v6.test",
                             "v6.test/connected",
                             "v6.test/short",
                             "both.test",
                             "v4.test"};
  static const char *syms[] = {"sendto", "sendmsg", "sendmmsg"};
  size_t i, j;
  struct kase *k;
  for (j = 0; j < 3; j++)
    for (i = 0; i < sizeof vs / sizeof *vs; i++) {
      k = add(syms[j], c_send, "%s/%s", syms[j], vs[i]);
      k->s1 = vs[i], k->i1 = (int)j;
    }
  for (j = 0; j < 3; j++) {
    k = add(syms[j], c_send, "%s/lab4/dontwait", syms[j]);
    k->s1 = "lab4", k->i1 = (int)j, k->i2 = MSG_DONTWAIT;
    k = add(syms[j], c_send, "%s/lab4/badflags", syms[j]);
    k->s1 = "lab4", k->i1 = (int)j, k->i2 = MSG_OOB;
  }
}

/* Receive cases. s1 variant:
 *   reply: a datagram from the lab server waits (sent to it first)
 *   empty: nothing waits (MSG_DONTWAIT or a non-blocking socket)
 *   v6client: a widened UDP server receives from an IPv6 client on ::1
 * i1: 0 recvfrom, 1 __recvfrom_chk, 2 recvmsg, 3 recvmmsg; i2 flags;
 * i3 name buffer length (0: full; -1: NULL); i4 data buffer length (0: 64)
 */
static void c_recv(const struct kase *k)
{
  const char *v = k->s1;
  struct sockaddr_storage to, from;
  socklen_t tol, fl = k->i3 > 0 ? (socklen_t)k->i3 : sizeof from, fl0;
  char buf[64];
  size_t bl = k->i4 > 0 ? (size_t)k->i4 : sizeof buf;
  int fd, e, peer = -1;
  ssize_t r;
  memset(&from, 0, sizeof from);
  memset(buf, 0, sizeof buf);
  if (strstr(v, "v6client")) {
    unsigned port;
    struct sockaddr_in6 s6;
    fd = listener(AF_INET, "0.0.0.0", SOCK_DGRAM, &port);
    peer = socket(AF_INET6, SOCK_DGRAM, 0);
    sin6(&s6, strstr(v, "lab6") ? "2001:db8::1" : "::1", port);
    sendto(peer, "hello6", 6, 0, (struct sockaddr *)&s6, sizeof s6);
    if (strstr(v, "two"))
      sendto(peer, "again6", 6, 0, (struct sockaddr *)&s6, sizeof s6);
    /* Without the shim nothing arrives: do not block for it. */
    if (wait_fd(fd, POLLIN, 500) <= 0)
      fcntl(fd, F_SETFL, O_NONBLOCK);
  } else if (strstr(v, "v4client")) {
    unsigned port;
    struct sockaddr_in s4;
    fd = listener(AF_INET, "0.0.0.0", SOCK_DGRAM, &port);
    peer = socket(AF_INET, SOCK_DGRAM, 0);
    sin4(&s4, "127.0.0.1", port);
    sendto(peer, "hello4", 6, 0, (struct sockaddr *)&s4, sizeof s4);
    if (strstr(v, "two"))
      sendto(peer, "again4", 6, 0, (struct sockaddr *)&s4, sizeof s4);
    if (wait_fd(fd, POLLIN, 500) <= 0)
      fcntl(fd, F_SETFL, O_NONBLOCK);
  } else {
    fd = udp_sock(v, &to, &tol);
    if (fd == -2) {
      printf("lookup failed");
      return;
    }
    if (strstr(v, "reply") && fd >= 0) {
      sendto(fd, "hello", 5, 0, (struct sockaddr *)&to, tol);
      if (strstr(v, "two"))
        sendto(fd, "again", 5, 0, (struct sockaddr *)&to, tol);
      wait_fd(fd, POLLIN, 3000);
      usleep(strstr(v, "two") ? 100000 : 0);
    }
    if (strstr(v, "nonblock"))
      fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  fl0 = fl;
  errno = SENT;
  if (k->i1 <= 1) {
    struct sockaddr *fp = k->i3 < 0 ? NULL : (struct sockaddr *)&from;
    socklen_t *flp = k->i3 < 0 ? NULL : &fl;
    if (k->i1 == 0)
      r = recvfrom(fd, buf, bl, k->i2, fp, flp);
    else
      r = __recvfrom_chk(fd, buf, bl, sizeof buf, k->i2, fp, flp);
    e = errno;
    printf("rc=%zd e=%s", r, en(e));
    if (r >= 0) {
      printf(" data=%.*s ", (int)(r < (ssize_t)bl ? r : (ssize_t)bl), buf);
      if (k->i3 < 0)
        printf("noaddr");
      else
        psa_buf(&from, fl0, fl);
    }
  } else if (k->i1 == 2) {
    struct iovec iov = {.iov_base = buf, .iov_len = bl};
    union {
      char b[256];
      struct cmsghdr align;
    } cb;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;
    if (k->i3 >= 0)
      m.msg_name = &from, m.msg_namelen = fl;
    if (strstr(v, "pktinfo")) {
      int one = 1;
      setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
      m.msg_control = cb.b, m.msg_controllen = sizeof cb.b;
    }
    m.msg_flags = 0x5a5a;
    r = recvmsg(fd, &m, k->i2);
    e = errno;
    printf("rc=%zd e=%s", r, en(e));
    if (r >= 0) {
      printf(" data=%.*s flags=%#x ", (int)(r < (ssize_t)bl ? r : (ssize_t)bl),
             buf, (unsigned)m.msg_flags);
      if (k->i3 < 0)
        printf("noaddr");
      else
        psa_buf(&from, fl0, m.msg_namelen);
      for (c = m.msg_control ? CMSG_FIRSTHDR(&m) : NULL; c;
           c = CMSG_NXTHDR(&m, c)) {
        printf(" cmsg=%d/%d", c->cmsg_level, c->cmsg_type);
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          struct in_pktinfo pi;
          char a[INET_ADDRSTRLEN], b2[INET_ADDRSTRLEN];
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          inet_ntop(AF_INET, &pi.ipi_spec_dst, a, sizeof a);
          inet_ntop(AF_INET, &pi.ipi_addr, b2, sizeof b2);
          printf(":spec_dst=%s,addr=%s", a, b2);
        }
      }
    }
  } else {
    char b2[64] = {0};
    struct sockaddr_storage f2;
    struct iovec iov[2] = {{.iov_base = buf, .iov_len = bl},
                           {.iov_base = b2, .iov_len = sizeof b2}};
    struct mmsghdr mm[2];
    int i;
    memset(mm, 0, sizeof mm);
    memset(&f2, 0, sizeof f2);
    for (i = 0; i < 2; i++) {
      mm[i].msg_hdr.msg_iov = &iov[i];
      mm[i].msg_hdr.msg_iovlen = 1;
      mm[i].msg_len = 12345;
      if (k->i3 >= 0) {
        mm[i].msg_hdr.msg_name = i ? &f2 : &from;
        mm[i].msg_hdr.msg_namelen = fl;
      }
    }
    r = recvmmsg(fd, mm, 2, k->i2, NULL);
    e = errno;
    printf("rc=%zd e=%s", r, en(e));
    for (i = 0; i < r; i++) {
      printf(" [len=%u data=%.*s flags=%#x ", mm[i].msg_len,
             (int)(mm[i].msg_len < (i ? sizeof b2 : bl) ? mm[i].msg_len
                                                        : (i ? sizeof b2 : bl)),
             i ? b2 : buf, (unsigned)mm[i].msg_hdr.msg_flags);
      if (k->i3 < 0)
        printf("noaddr]");
      else {
        psa_buf(i ? &f2 : &from, fl0, mm[i].msg_hdr.msg_namelen);
        printf("]");
      }
    }
  }
  if (peer >= 0 && r >= 0 && k->i3 == 0) { /* answer at the address shown */
    char rb[32] = {0};
    struct sockaddr_storage pf;
    socklen_t pl = sizeof pf;
    ssize_t n;
    errno = SENT;
    n = sendto(fd, "back", 4, 0, (struct sockaddr *)&from, fl);
    printf(" sendback=%zd e=%s", n, en(errno));
    if (n > 0 && wait_fd(peer, POLLIN, 2000) > 0) {
      n = recvfrom(peer, rb, sizeof rb - 1, 0, (struct sockaddr *)&pf, &pl);
      printf(" client-got=%zd:%s from=", n, rb);
      psa(&pf, pl);
    } else if (n > 0) {
      printf(" client-got=none");
    }
  }
}

static void cases_recv(void)
{
  static const struct {
    const char *v;
    int flags, namelen, buflen;
  } vs[] = {{"lab4/reply", 0, 0, 0},
            {"lab4/reply", 0, 4, 0},
            {"lab4/reply", 0, 0, 3},
            {"lab4/reply", MSG_TRUNC, 0, 3},
            {"lab4/reply", MSG_PEEK, 0, 0},
            {"lab4/reply", 0, -1, 0},
            {"lab4/reply-two", 0, 0, 0},
            {"lab4/connected-reply", 0, 0, 0},
            {"lab4/widened-reply", 0, 0, 0},
            {"lab4/empty", MSG_DONTWAIT, 0, 0},
            {"lab4/empty-nonblock", 0, 0, 0},
            {"closed/connected-reply", MSG_DONTWAIT, 0, 0},
            {"badfd", 0, 0, 0},
            {"notsock", MSG_DONTWAIT, 0, 0},
            {"tcp/empty", MSG_DONTWAIT, 0, 0},
            {"v6.test/reply", 0, 0, 0},
            {"v6.test/reply", 0, 4, 0},
            {"v6.test/connected-reply", 0, 0, 0},
            {"both.test/reply", 0, 0, 0},
            {"v6client", 0, 0, 0},
            {"v6client", 0, 4, 0},
            {"v6client", MSG_DONTWAIT, 0, 0},
            {"v6client-two", MSG_DONTWAIT, 0, 0},
            {"v6client-lab6", MSG_DONTWAIT, 0, 0},
            {"v4client", MSG_DONTWAIT, 0, 0},
            {"v4client-two", MSG_DONTWAIT, 0, 0}};
  static const char *syms[] = {"recvfrom", "__recvfrom_chk", "recvmsg",
                               "recvmmsg"};
  size_t i, j;
  struct kase *k;
  for (j = 0; j < 4; j++)
    for (i = 0; i < sizeof vs / sizeof *vs; i++) {
      if (j == 3 && vs[i].flags == 0 && !strstr(vs[i].v, "reply") &&
          strcmp(vs[i].v, "badfd"))
        continue; /* recvmmsg would wait for the second datagram */
      k = add(syms[j], c_recv, "%s/%s/flags=%#x/namelen=%d/buflen=%d", syms[j],
              vs[i].v, (unsigned)vs[i].flags, vs[i].namelen, vs[i].buflen);
      k->s1 = vs[i].v, k->i1 = (int)j, k->i2 = vs[i].flags,
      k->i3 = vs[i].namelen, k->i4 = vs[i].buflen;
      if (j == 3 && strstr(vs[i].v, "reply"))
        k->i2 |= MSG_WAITFORONE;
    }
  k = add("recvmsg", c_recv, "recvmsg/lab4/reply-pktinfo");
  k->s1 = "lab4/reply-pktinfo", k->i1 = 2;
  k = add("recvmsg", c_recv, "recvmsg/v6.test/reply-pktinfo");
  k->s1 = "v6.test/reply-pktinfo", k->i1 = 2;
  k = add("recvmsg", c_recv, "recvmsg/v6client-pktinfo");
  k->s1 = "v6client-pktinfo", k->i1 = 2, k->i2 = MSG_DONTWAIT;
}

/* ---- fd calls: close, close_range, dup*, fcntl*, epoll_ctl ------------- */

/* Prints whether fd is open, and what it is. */
static void fdstate(const char *what, int fd)
{
  int f = fcntl(fd, F_GETFD);
  printf(" %s=", what);
  if (f < 0) {
    printf("closed");
    return;
  }
  printf("open%s", f & FD_CLOEXEC ? "+cloexec" : "");
  {
    int d = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN);
    if (d > -1000)
      printf(",domain=%d", d);
  }
}

/* A socket of the kind a fd case needs: "tcp", "widened", "v6.test"
 * (connected through a synthetic address), "lab4" (connected), "file" */
static int fd_sock(const char *v)
{
  if (strstr(v, "file"))
    return nonsock();
  if (strstr(v, "v6.test") || strstr(v, "widened") || strstr(v, "lab4") ||
      strstr(v, "refused") || strstr(v, "udp"))
    return opt_sock(strstr(v, "v6.test")   ? "v6.test"
                    : strstr(v, "widened") ? "widened"
                    : strstr(v, "lab4")    ? "lab4"
                    : strstr(v, "udp")     ? "udp"
                                           : "refused");
  return socket(AF_INET, SOCK_STREAM, 0);
}

static void c_close(const struct kase *k)
{
  const char *v = k->s1;
  int fd = -1, r, e;
  if (!strcmp(v, "badfd"))
    fd = -1;
  else if (!strcmp(v, "closedfd"))
    fd = 99;
  else
    fd = fd_sock(v);
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  errno = SENT;
  r = close(fd);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (strstr(v, "twice")) {
    errno = SENT;
    r = close(fd);
    printf(" again=%d e=%s", r, en(errno));
  }
  if (strstr(v, "reuse")) { /* the number comes back, as a plain socket */
    int n = socket(AF_INET, SOCK_STREAM, 0);
    printf(" newfd=%d", n);
    fdstate("new", n);
    pname("name", n, 0);
    pname("peer", n, 1);
  }
}

static void cases_close(void)
{
  static const char *vs[] = {
      "badfd",   "closedfd",      "tcp",           "file",       "tcp-twice",
      "widened", "widened-reuse", "lab4",          "lab4-reuse", "lab4-twice",
      "v6.test", "v6.test-reuse", "v6.test-twice", "refused",    "udp"};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("close", c_close, "close/%s", vs[i]);
    k->s1 = vs[i];
  }
}

/* s1 variant: a socket at fd 3.., then close_range(first, last, flags) */
static void c_close_range(const struct kase *k)
{
  const char *v = k->s1;
  int a = fd_sock(v), b = socket(AF_INET, SOCK_DGRAM, 0), r, e;
  unsigned first = (unsigned)k->i1, last = (unsigned)k->i2;
  if (a == -2) {
    printf("setup failed");
    return;
  }
  printf("fds=%d,%d", a, b);
  errno = SENT;
  r = close_range(first, last, (unsigned)k->i3);
  e = errno;
  printf(" rc=%d e=%s", r, en(e));
  fdstate("a", a);
  fdstate("b", b);
  if (strstr(v, "reuse")) {
    int n = socket(AF_INET, SOCK_STREAM, 0);
    printf(" newfd=%d", n);
    pname("peer", n, 1);
  }
}

/* closefrom(i1) after a socket of variant s1 (fd 3) and a UDP socket
 * (fd 4); then, for a translated one, a connect by name on a new socket
 * (the shim's own fds survived). */
static void c_closefrom(const struct kase *k)
{
  const char *v = k->s1;
  int a = fd_sock(v), b = socket(AF_INET, SOCK_DGRAM, 0);
  if (a == -2) {
    printf("setup failed");
    return;
  }
  printf("fds=%d,%d", a, b);
  errno = SENT;
  closefrom(k->i1);
  printf(" e=%s", en(errno));
  fdstate("a", a);
  fdstate("b", b);
  if (strstr(v, "reuse")) {
    int n = socket(AF_INET, SOCK_STREAM, 0);
    printf(" newfd=%d", n);
    pname("peer", n, 1);
    if (strstr(v, "v6.test") || strstr(v, "lab4")) {
      int c = opt_sock(strstr(v, "lab4") ? "lab4" : "v6.test");
      printf(" again=%s", c >= 0 ? "ok" : "failed");
      if (c >= 0)
        talk(c);
    }
  }
}

static void cases_closefrom(void)
{
  static const struct {
    const char *v;
    int low;
  } vs[] = {
      {"tcp/3", 3},           {"tcp/4", 4},           {"tcp/none-open", 100},
      {"tcp/negative", -1},   {"v6.test/3-reuse", 3}, {"v6.test/4-reuse", 4},
      {"widened/3-reuse", 3}, {"lab4/3-reuse", 3},    {"lab4/4-reuse", 4}};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("closefrom", c_closefrom, "closefrom/%s", vs[i].v);
    k->s1 = vs[i].v, k->i1 = vs[i].low;
  }
}

static void cases_close_range(void)
{
  static const struct {
    const char *v;
    int first, last, flags;
  } vs[] = {{"tcp/all", 3, ~0, 0},
            {"tcp/first", 3, 3, 0},
            {"tcp/second", 4, 4, 0},
            {"tcp/cloexec", 3, ~0, CLOSE_RANGE_CLOEXEC},
            {"tcp/unshare", 3, ~0, CLOSE_RANGE_UNSHARE},
            {"tcp/inverted", 10, 5, 0},
            {"tcp/badflags", 3, ~0, 0x1000},
            {"tcp/none-open", 100, 200, 0},
            {"v6.test/all-reuse", 3, ~0, 0},
            {"v6.test/first-reuse", 3, 3, 0},
            {"v6.test/cloexec", 3, ~0, CLOSE_RANGE_CLOEXEC},
            {"widened/all-reuse", 3, ~0, 0},
            {"lab4/all-reuse", 3, ~0, 0},
            {"lab4/first-reuse", 3, 3, 0},
            {"lab4/cloexec", 3, ~0, CLOSE_RANGE_CLOEXEC}};
  size_t i;
  struct kase *k;
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("close_range", c_close_range, "close_range/%s", vs[i].v);
    k->s1 = vs[i].v, k->i1 = vs[i].first, k->i2 = vs[i].last,
    k->i3 = vs[i].flags;
  }
}

/* i1: 0 dup, 1 dup2, 2 dup3, 3 fcntl, 4 fcntl64; s1 socket/variant;
 * i2 newfd or fcntl cmd; i3 flags or fcntl arg; s2: "oldbad" */
static void c_dup(const struct kase *k)
{
  const char *v = k->s1;
  int fd = fd_sock(v), r, e, nfd = k->i2;
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  if (k->s2 && !strcmp(k->s2, "oldbad"))
    fd = -1;
  if (k->s2 && !strcmp(k->s2, "oldclosed"))
    fd = 99;
  if (k->s2 && !strcmp(k->s2, "same"))
    nfd = fd;
  if (k->s2 && !strcmp(k->s2, "occupied"))
    nfd = socket(AF_INET, SOCK_DGRAM, 0);
  errno = SENT;
  switch (k->i1) {
  case 0:
    r = dup(fd);
    break;
  case 1:
    r = dup2(fd, nfd);
    break;
  case 2:
    r = dup3(fd, nfd, k->i3);
    break;
  case 3:
    r = fcntl(fd, k->i2, k->i3);
    break;
  default:
    r = fcntl64(fd, k->i2, k->i3);
    break;
  }
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (k->i1 <= 2 || k->i2 == F_DUPFD || k->i2 == F_DUPFD_CLOEXEC) {
    if (r >= 0 && r != fd) {
      fdstate("new", r);
      pname("name", r, 0);
      pname("peer", r, 1);
      if (strstr(v, "v6.test") || strstr(v, "lab4"))
        talk(r);
      close(fd); /* the copy lives on alone */
      fdstate("after-close-old", r);
      pname("peer", r, 1);
      if (strstr(v, "v6.test") || strstr(v, "lab4"))
        talk(r);
    }
  } else if (fd >= 0) {
    fdstate("fd", fd);
    fdflags(fd);
  }
}

static void cases_dup(void)
{
  static const char *socks[] = {"tcp", "file", "lab4", "widened", "v6.test"};
  static const char *syms[] = {"dup", "dup2", "dup3", "fcntl", "fcntl64"};
  size_t i, j;
  struct kase *k;
  for (i = 0; i < sizeof socks / sizeof *socks; i++) {
    k = add("dup", c_dup, "dup/%s", socks[i]);
    k->s1 = socks[i];
    k = add("dup2", c_dup, "dup2/%s/to-20", socks[i]);
    k->s1 = socks[i], k->i1 = 1, k->i2 = 20;
    k = add("dup2", c_dup, "dup2/%s/same", socks[i]);
    k->s1 = socks[i], k->i1 = 1, k->s2 = "same";
    k = add("dup2", c_dup, "dup2/%s/occupied", socks[i]);
    k->s1 = socks[i], k->i1 = 1, k->s2 = "occupied";
    k = add("dup3", c_dup, "dup3/%s/to-20/cloexec", socks[i]);
    k->s1 = socks[i], k->i1 = 2, k->i2 = 20, k->i3 = O_CLOEXEC;
    k = add("dup3", c_dup, "dup3/%s/to-20/0", socks[i]);
    k->s1 = socks[i], k->i1 = 2, k->i2 = 20;
    k = add("dup3", c_dup, "dup3/%s/occupied/cloexec", socks[i]);
    k->s1 = socks[i], k->i1 = 2, k->s2 = "occupied", k->i3 = O_CLOEXEC;
    for (j = 3; j < 5; j++) {
      k = add(syms[j], c_dup, "%s/%s/F_DUPFD/10", syms[j], socks[i]);
      k->s1 = socks[i], k->i1 = (int)j, k->i2 = F_DUPFD, k->i3 = 10;
      k = add(syms[j], c_dup, "%s/%s/F_DUPFD_CLOEXEC/0", syms[j], socks[i]);
      k->s1 = socks[i], k->i1 = (int)j, k->i2 = F_DUPFD_CLOEXEC, k->i3 = 0;
      k = add(syms[j], c_dup, "%s/%s/F_GETFL", syms[j], socks[i]);
      k->s1 = socks[i], k->i1 = (int)j, k->i2 = F_GETFL;
      k = add(syms[j], c_dup, "%s/%s/F_SETFL/nonblock", syms[j], socks[i]);
      k->s1 = socks[i], k->i1 = (int)j, k->i2 = F_SETFL, k->i3 = O_NONBLOCK;
      k = add(syms[j], c_dup, "%s/%s/F_SETFD/cloexec", syms[j], socks[i]);
      k->s1 = socks[i], k->i1 = (int)j, k->i2 = F_SETFD, k->i3 = FD_CLOEXEC;
    }
  }
  for (j = 0; j < 5; j++) {
    k = add(syms[j], c_dup, "%s/oldbad", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = j >= 3 ? F_DUPFD : 20,
    k->s2 = "oldbad";
    k = add(syms[j], c_dup, "%s/oldclosed", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = j >= 3 ? F_DUPFD : 20,
    k->s2 = "oldclosed";
  }
  k = add("dup2", c_dup, "dup2/tcp/to-neg");
  k->s1 = "tcp", k->i1 = 1, k->i2 = -1;
  k = add("dup2", c_dup, "dup2/tcp/to-huge");
  k->s1 = "tcp", k->i1 = 1, k->i2 = 1 << 30;
  k = add("dup3", c_dup, "dup3/tcp/same");
  k->s1 = "tcp", k->i1 = 2, k->s2 = "same";
  k = add("dup3", c_dup, "dup3/tcp/badflags");
  k->s1 = "tcp", k->i1 = 2, k->i2 = 20, k->i3 = 0x1234;
  for (j = 3; j < 5; j++) {
    k = add(syms[j], c_dup, "%s/tcp/F_DUPFD/neg", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = F_DUPFD, k->i3 = -1;
    k = add(syms[j], c_dup, "%s/tcp/F_DUPFD/huge", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = F_DUPFD, k->i3 = 1 << 30;
    k = add(syms[j], c_dup, "%s/tcp/badcmd", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = 12345;
    k = add(syms[j], c_dup, "%s/tcp/F_GETFD", syms[j]);
    k->s1 = "tcp", k->i1 = (int)j, k->i2 = F_GETFD;
  }
}

/* s1 variant; i1 op; i2 events */
static void c_epoll(const struct kase *k)
{
  const char *v = k->s1;
  int ep = epoll_create1(EPOLL_CLOEXEC), fd, r, e;
  struct epoll_event ev = {.events = (unsigned)k->i2, .data.u64 = 42};
  fd = fd_sock(v);
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  if (strstr(v, "badepfd"))
    ep = -1;
  if (strstr(v, "epfd-notepoll"))
    ep = nonsock();
  if (strstr(v, "badfd"))
    fd = -1;
  if (strstr(v, "self"))
    fd = ep;
  if (strstr(v, "pre-added"))
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  errno = SENT;
  r = epoll_ctl(ep, k->i1, fd, strstr(v, "nullev") ? NULL : &ev);
  e = errno;
  printf("rc=%d e=%s", r, en(e));
  if (r == 0 && k->i1 != EPOLL_CTL_DEL && ep >= 0) {
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, strstr(v, "v6.test") ? 2000 : 100);
    printf(" wait=%d", n);
    if (n > 0)
      printf(" ev=%#x data=%llu", out[0].events,
             (unsigned long long)out[0].data.u64);
  }
}

static void cases_epoll(void)
{
  static const struct {
    const char *v;
    int op, ev;
  } vs[] = {{"tcp", EPOLL_CTL_ADD, EPOLLIN},
            {"tcp-pre-added", EPOLL_CTL_ADD, EPOLLIN},
            {"tcp-pre-added", EPOLL_CTL_MOD, EPOLLOUT},
            {"tcp-pre-added", EPOLL_CTL_DEL, 0},
            {"tcp", EPOLL_CTL_MOD, EPOLLIN},
            {"tcp", EPOLL_CTL_DEL, 0},
            {"tcp", 99, EPOLLIN},
            {"tcp-nullev", EPOLL_CTL_ADD, 0},
            {"tcp-nullev", EPOLL_CTL_DEL, 0},
            {"tcp-badepfd", EPOLL_CTL_ADD, EPOLLIN},
            {"tcp-epfd-notepoll", EPOLL_CTL_ADD, EPOLLIN},
            {"tcp-badfd", EPOLL_CTL_ADD, EPOLLIN},
            {"tcp-self", EPOLL_CTL_ADD, EPOLLIN},
            {"file", EPOLL_CTL_ADD, EPOLLIN},
            {"lab4", EPOLL_CTL_ADD, EPOLLOUT},
            {"udp", EPOLL_CTL_ADD, EPOLLOUT},
            {"widened", EPOLL_CTL_ADD, EPOLLIN},
            {"v6.test", EPOLL_CTL_ADD, EPOLLOUT},
            {"lab4-pre-added", EPOLL_CTL_MOD, EPOLLOUT},
            {"lab4-pre-added", EPOLL_CTL_DEL, 0},
            {"v6.test-pre-added", EPOLL_CTL_MOD, EPOLLOUT},
            {"v6.test-pre-added", EPOLL_CTL_DEL, 0},
            {"refused", EPOLL_CTL_ADD, EPOLLOUT},
            {"tcp", EPOLL_CTL_ADD, EPOLLIN | EPOLLEXCLUSIVE},
            {"tcp-pre-added", EPOLL_CTL_MOD, EPOLLIN | EPOLLEXCLUSIVE}};
  size_t i;
  struct kase *k;
  static const char *ops[] = {"?", "add", "del", "mod"};
  for (i = 0; i < sizeof vs / sizeof *vs; i++) {
    k = add("epoll_ctl", c_epoll, "epoll_ctl/%s/%s/%#x", vs[i].v,
            vs[i].op >= 1 && vs[i].op <= 3 ? ops[vs[i].op] : "badop",
            (unsigned)vs[i].ev);
    k->s1 = vs[i].v, k->i1 = vs[i].op, k->i2 = vs[i].ev;
  }
}

/* ---- driver ------------------------------------------------------------ */

/* ---- longjmp, _longjmp, siglongjmp, __longjmp_chk ---- */

static sigjmp_buf jump_env;
static int jump_sym; /* 0 longjmp, 1 _longjmp, 2 siglongjmp, 3 chk */
static int jump_val;

/* Jumps to jump_env with jump_val by jump_sym. */
static void jump_now(void)
{
  switch (jump_sym) {
  case 0:
    longjmp(jump_env, jump_val);
  case 1:
    _longjmp(jump_env, jump_val);
  case 2:
    siglongjmp(jump_env, jump_val);
  default:
    __longjmp_chk(jump_env, jump_val);
  }
}

static void jump_handler(int sig)
{
  (void)sig;
  jump_now();
}

/* i1: the symbol (jump_sym); i2: the value; s1: "plain" (a jump from a
 * nested call), "alarm" (from a SIGALRM handler out of a blocking recv),
 * "alarm-mask" (siglongjmp's saved mask: SIGUSR1 blocked at setjmp is
 * blocked again after). After the jump, a connect to s2 (a lab name),
 * and its echo. */
static void c_jump(const struct kase *k)
{
  volatile int got;
  sigset_t m;
  int fd;
  jump_sym = k->i1;
  jump_val = k->i2;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR1);
  sigprocmask(SIG_BLOCK, &m, NULL);
  if ((got = sigsetjmp(jump_env, strstr(k->s1, "mask") != NULL)) == 0) {
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    if (!strcmp(k->s1, "plain")) {
      jump_now();
    } else {
      struct sigaction sa;
      char b[8];
      int u = socket(AF_INET, SOCK_DGRAM, 0);
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = jump_handler;
      sigaction(SIGALRM, &sa, NULL);
      alarm(1);
      recv(u, b, sizeof b, 0);
    }
    printf("not jumped");
    return;
  }
  sigprocmask(SIG_SETMASK, NULL, &m);
  printf("val=%d usr1=%s", got,
         sigismember(&m, SIGUSR1) ? "blocked" : "unblocked");
  {
    struct sockaddr_storage t;
    char to[64];
    socklen_t tl;
    snprintf(to, sizeof to, "%s:7", k->s2);
    tl = target(to, SOCK_STREAM, &t);
    if (!tl) {
      printf(" target=none");
      return;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    errno = SENT;
    printf(" connect=%d e=%s", connect(fd, (struct sockaddr *)&t, tl),
           en(errno));
    talk(fd);
  }
}

static void cases_jump(void)
{
  static const char *syms[] = {"longjmp", "_longjmp", "siglongjmp",
                               "__longjmp_chk"};
  static const char *how[] = {"plain", "alarm", "alarm-mask"};
  static const char *to[] = {"v4.test", "v6.test"};
  static const int vals[] = {0, 1, 42};
  size_t i, j, v, t;
  struct kase *k;
  for (i = 0; i < 4; i++)
    for (j = 0; j < 3; j++)
      for (v = 0; v < 3; v++)
        for (t = 0; t < 2; t++) {
          if (v != 1 && (j != 0 || t != 0))
            continue; /* values only with the plain jump */
          k = add(syms[i], c_jump, "%s/%s/%d/%s", syms[i], how[j], vals[v],
                  to[t]);
          k->i1 = (int)i, k->i2 = vals[v], k->s1 = how[j], k->s2 = to[t];
        }
}

/* ---- the exec family, posix_spawn, system, popen ---- */

/* The shell the exec'd image runs: it says its arguments, whether fd N
 * is open, and, with a socket, what the echo on it answers to "x". A
 * non-blocking socket may still be connecting, and the answer on its way
 * (EAGAIN): each step is tried again for up to 2 s. */
#define EXEC_SH                                                                \
  "n=$1; if [ -e /proc/self/fd/$n ]; then o=open; else o=closed; fi; r=; "     \
  "if [ $o = open ] && [ \"$2\" = talk ]; then i=0; "                          \
  "until printf x 2>/dev/null >&$n || [ $i -ge 20 ]; do "                      \
  "i=$((i+1)); sleep 0.1; done; i=0; "                                         \
  "while [ -z \"$r\" ] && [ $i -lt 20 ]; do "                                  \
  "r=$(timeout 5 head -c 6 2>/dev/null <&$n); [ -n \"$r\" ] || sleep 0.1; "    \
  "i=$((i+1)); done; else r=-; fi; "                                           \
  "echo \"args=$0,$1,$2 fd=$o reply=${r:-none}\"; exit 7"

extern char **environ;

/* Returns a socket for exec case variant v (-1: none, -2: setup failed):
 * "lab4" connected, "lab4-nb"/"v4.test-nb"/"v6.test-nb" non-blocking and
 * still connecting, "-cloexec" with FD_CLOEXEC. */
static int exec_sock(const char *v)
{
  struct sockaddr_storage t;
  socklen_t tl;
  int fd, nb = strstr(v, "-nb") != NULL;
  if (!strncmp(v, "none", 4))
    return -1;
  if (!strncmp(v, "lab4", 4)) {
    struct sockaddr_in s;
    sin4(&s, SRV4, TCP_PORT);
    t = *(struct sockaddr_storage *)memcpy(&t, &s, sizeof s);
    tl = sizeof s;
  } else {
    char to[64];
    snprintf(to, sizeof to, "%.*s:7", (int)(strchr(v, '-') - v), v);
    if (!(tl = target(to, SOCK_STREAM, &t)))
      return -2;
  }
  fd = socket(AF_INET,
              SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0) |
                  (strstr(v, "cloexec") ? SOCK_CLOEXEC : 0),
              0);
  if (connect(fd, (struct sockaddr *)&t, tl) < 0 && errno != EINPROGRESS)
    return -2;
  return fd;
}

/* i1: which call; s1: the socket variant; s2: "ok" (runs EXEC_SH) or
 * "enoent" (a path that does not exist). An exec replaces the case's
 * process: the new image's output (and EXIT=7) is the case's; the
 * spawning calls print their child's status and output. */
static void c_exec(const struct kase *k)
{
  const char *path = strcmp(k->s2, "ok") ? "/nonexistent/sh" : "/bin/sh";
  const char *file = strcmp(k->s2, "ok") ? "nonexistent-sh" : "sh";
  int fd = exec_sock(k->s1), p[2], st, r, e;
  char nbuf[16], out[512] = "", *argv[7];
  ssize_t n;
  pid_t pid;
  if (fd == -2) {
    printf("setup failed");
    return;
  }
  snprintf(nbuf, sizeof nbuf, "%d", fd);
  argv[0] = (char *)"sh", argv[1] = (char *)"-c", argv[2] = (char *)EXEC_SH;
  argv[3] = (char *)"conform", argv[4] = nbuf;
  argv[5] = (char *)(fd >= 0 ? "talk" : "-"), argv[6] = NULL;
  fflush(stdout);
  if (pipe(p) < 0)
    return;
  if (k->i1 >= 9) { /* posix_spawn, posix_spawnp, system, popen */
    posix_spawn_file_actions_t fa;
    char cmd[1024];
    FILE *f;
    errno = SENT;
    switch (k->i1) {
    case 9:
    case 10:
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_adddup2(&fa, p[1], 1);
      r = k->i1 == 9 ? posix_spawn(&pid, path, &fa, NULL, argv, environ)
                     : posix_spawnp(&pid, file, &fa, NULL, argv, environ);
      e = errno;
      posix_spawn_file_actions_destroy(&fa);
      close(p[1]);
      printf("rc=%s", r ? en(r) : "0");
      if (r == 0) {
        n = read(p[0], out, sizeof out - 1);
        out[n > 0 ? n : 0] = 0;
        waitpid(pid, &st, 0);
        printf(" status=%d out=%s", WEXITSTATUS(st), out);
      }
      (void)e;
      return;
    case 11:
      close(p[1]);
      snprintf(cmd, sizeof cmd, "%s -c '%s' conform %s %s", path, EXEC_SH, nbuf,
               fd >= 0 ? "talk" : "-");
      r = system(cmd);
      printf("status=%d", WIFEXITED(r) ? WEXITSTATUS(r) : -1);
      return;
    default:
      close(p[1]);
      snprintf(cmd, sizeof cmd, "%s -c '%s' conform %s %s", path, EXEC_SH, nbuf,
               fd >= 0 ? "talk" : "-");
      f = popen(cmd, "r");
      if (f == NULL) {
        printf("popen=NULL e=%s", en(errno));
        return;
      }
      n = (ssize_t)fread(out, 1, sizeof out - 1, f);
      out[n > 0 ? n : 0] = 0;
      st = pclose(f);
      printf("status=%d out=%s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
      return;
    }
  }
  /* The case's own process execs (the race, if any, is its own); what
   * the new image prints is the case's output. */
  close(p[0]);
  close(p[1]);
  {
    int dfd;
    errno = SENT;
    switch (k->i1) {
    case 0:
      r = execve(path, argv, environ);
      break;
    case 1:
      r = execv(path, argv);
      break;
    case 2:
      r = execvp(file, argv);
      break;
    case 3:
      r = execvpe(file, argv, environ);
      break;
    case 4:
      r = execl(path, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5],
                (char *)NULL);
      break;
    case 5:
      r = execle(path, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5],
                 (char *)NULL, environ);
      break;
    case 6:
      r = execlp(file, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5],
                 (char *)NULL);
      break;
    case 7:
      dfd = open(path, O_RDONLY | O_CLOEXEC);
      errno = SENT;
      r = dfd < 0 ? (errno = ENOENT, -1) : fexecve(dfd, argv, environ);
      break;
    default:
      r = execveat(AT_FDCWD, path, argv, environ, 0);
      break;
    }
    printf("rc=%d e=%s", r, en(errno));
  }
}

static void cases_exec(void)
{
  static const char *syms[] = {
      "execve",       "execv",  "execvp",  "execvpe",  "execl",
      "execle",       "execlp", "fexecve", "execveat", "posix_spawn",
      "posix_spawnp", "system", "popen"};
  static const char *socks[] = {"none",    "lab4",       "lab4-cloexec",
                                "lab4-nb", "v4.test-nb", "v6.test-nb"};
  size_t i, j;
  struct kase *k;
  for (i = 0; i < sizeof syms / sizeof *syms; i++) {
    k = add(syms[i], c_exec, "%s/none/enoent", syms[i]);
    k->i1 = (int)i, k->s1 = "none", k->s2 = "enoent";
    for (j = 0; j < sizeof socks / sizeof *socks; j++) {
      k = add(syms[i], c_exec, "%s/%s/ok", syms[i], socks[j]);
      k->i1 = (int)i, k->s1 = socks[j], k->s2 = "ok";
    }
  }
}

static void run_case(const struct kase *k)
{
  int p[2], st;
  pid_t pid;
  char out[16384];
  size_t n = 0;
  ssize_t r;
  fflush(stdout);
  if (pipe(p) < 0) {
    perror("pipe");
    exit(70);
  }
  pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(70);
  }
  if (pid == 0) {
    dup2(p[1], 1);
    if (p[0] != 1)
      close(p[0]);
    if (p[1] != 1)
      close(p[1]);
    alarm(20);
    k->fn(k);
    fflush(stdout);
    _exit(0);
  }
  close(p[1]);
  while (n < sizeof out - 1 &&
         (r = read(p[0], out + n, sizeof out - 1 - n)) != 0) {
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    n += (size_t)r;
  }
  close(p[0]);
  out[n] = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  while (n > 0 && out[n - 1] == '\n')
    out[--n] = 0;
  {
    size_t i;
    for (i = 0; i < n; i++)
      if (out[i] == '\n' || out[i] == '\t')
        out[i] = ' ';
  }
  printf("%s\t%s\t%s", k->id, k->sym, out);
  if (WIFSIGNALED(st))
    printf(" CRASH=%s",
           sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
  else if (WEXITSTATUS(st) != 0)
    printf(" EXIT=%d", WEXITSTATUS(st));
  printf("\n");
}

/* Global symbols of a version script: the names between "global:" and
 * "local:", one per "NAME;". */
static int read_exports(const char *path, char syms[][64], int max)
{
  FILE *f = fopen(path, "r");
  char line[256];
  int n = 0, in = 0;
  if (!f) {
    perror(path);
    exit(64);
  }
  while (fgets(line, sizeof line, f)) {
    char *s = line, *end;
    while (*s == ' ' || *s == '\t')
      s++;
    if (!strncmp(s, "global:", 7)) {
      in = 1;
      continue;
    }
    if (!strncmp(s, "local:", 6)) {
      in = 0;
      continue;
    }
    if (!in || !(end = strchr(s, ';')))
      continue;
    *end = 0;
    if (!*s || strchr(s, '*') || strchr(s, ' '))
      continue;
    if (n < max)
      snprintf(syms[n++], 64, "%.63s", s);
  }
  fclose(f);
  return n;
}

int main(int argc, char **argv)
{
  static char syms[256][64];
  const char *only = NULL, *prefix = NULL;
  int nsyms, i, list = 0, missing = 0;
  size_t c, d;
  if (argc < 2) {
    fprintf(stderr,
            "usage: conform EXPORTS_MAP [--list] [-s SYM,...] [-c PREFIX]\n");
    return 64;
  }
  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--list"))
      list = 1;
    else if (!strcmp(argv[i], "-s") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "-c") && i + 1 < argc)
      prefix = argv[++i];
    else {
      fprintf(stderr, "conform: bad argument %s\n", argv[i]);
      return 64;
    }
  }
  nsyms = read_exports(argv[1], syms, 256);
  if (nsyms == 0) {
    fprintf(stderr, "conform: no global symbols in %s\n", argv[1]);
    return 64;
  }
  cases_gai();
  cases_gni();
  cases_ghbn();
  cases_ghba();
  cases_accept();
  cases_bind();
  cases_connect();
  cases_name();
  cases_sockopt();
  cases_send();
  cases_recv();
  cases_close();
  cases_close_range();
  cases_closefrom();
  cases_dup();
  cases_epoll();
  cases_jump();
  cases_exec();
  for (c = 0; c < ncases; c++)
    for (d = c + 1; d < ncases; d++)
      if (!strcmp(cases[c].id, cases[d].id)) {
        fprintf(stderr, "conform: duplicate case id %s\n", cases[c].id);
        return 70;
      }
  for (i = 0; i < nsyms; i++) {
    for (c = 0; c < ncases; c++)
      if (!strcmp(cases[c].sym, syms[i]))
        break;
    if (c == ncases) {
      fprintf(stderr, "missing-case %s\n", syms[i]);
      missing++;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  for (c = 0; c < ncases; c++) {
    const struct kase *k = &cases[c];
    if (only) {
      const char *p = only;
      size_t l = strlen(k->sym);
      int hit = 0;
      while (*p) {
        size_t w = strcspn(p, ",");
        if (w == l && !strncmp(p, k->sym, l))
          hit = 1;
        p += w;
        if (*p)
          p++;
      }
      if (!hit)
        continue;
    }
    if (prefix && strncmp(k->id, prefix, strlen(prefix)))
      continue;
    if (list)
      printf("%s\t%s\n", k->id, k->sym);
    else
      run_case(k);
  }
  fflush(stdout);
  return missing ? 3 : 0;
}
