/* dnsd: the project's test DNS server.
 *
 * Network tests need resolution behaviours a real server cannot be made to
 * show on demand: AAAA late, A late, SERVFAIL, NODATA, NXDOMAIN, no answer
 * at all. dnsd serves A and AAAA answers from a small table in which every
 * name and type has its own answer and delay. Delayed replies wait in a
 * queue with deadlines, so a slow name never holds up a fast one. It listens
 * on UDP and on TCP (stub resolvers retry over TCP after a truncated reply),
 * logs every query on one line so tests can assert what was asked, and exits
 * cleanly on SIGTERM. SIGHUP reloads the table.
 *
 *   dnsd -l ADDR[:PORT] [-l ...] [-c CONFIG] [-q QUERYLOG] [-p PIDFILE]
 *
 * The table format is described in tests/lab/README.md and in usage().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 53
#define MAX_LISTEN 8
#define MAX_CONNS 64
#define MAX_PENDING 4096
#define MAX_ADDRS 32
#define MAX_MSG 4096   /* largest query read, over UDP or TCP */
#define UDP_LIMIT 512  /* no EDNS here: the classic UDP reply limit */
#define REPLY_MAX 2048 /* > 12 + 259 (question) + MAX_ADDRS * 28 */
#define MAX_DELAY_MS 600000u
#define DEFAULT_TTL 60u
#define NS_PER_MS INT64_C(1000000)
#define TCP_IDLE_NS (INT64_C(10000) * NS_PER_MS)

#define T_A 1
#define T_AAAA 28
#define T_ALL 0 /* a "*" table line: applies to every query type */
#define C_IN 1
#define C_ANY 255

#define R_NOERROR 0
#define R_FORMERR 1
#define R_SERVFAIL 2
#define R_NXDOMAIN 3
#define R_NOTIMP 4
#define R_REFUSED 5
#define R_DROP (-1) /* not an rcode: send nothing */

enum kind { K_ADDRS, K_NODATA, K_NXDOMAIN, K_SERVFAIL, K_DROP };

struct addr {
  int family;
  unsigned char bytes[16];
};

struct entry {
  char name[256]; /* lower case, no trailing dot */
  int type;       /* T_A, T_AAAA or T_ALL */
  enum kind kind;
  int naddrs;
  struct addr addrs[MAX_ADDRS];
  unsigned delay_ms;
  uint32_t ttl;
};

struct table {
  struct entry *v;
  size_t n;
  size_t cap;
};

struct listener {
  int udp;
  int tcp;
  bool wildcard; /* bound to 0.0.0.0 or ::: replies need IP_PKTINFO */
  char text[INET6_ADDRSTRLEN + 24];
};

/* Where a query came from, and so where its reply goes. */
struct origin {
  bool tcp;
  int udp_fd;      /* UDP: the socket it arrived on */
  int conn;        /* TCP: the connection slot ... */
  uint64_t serial; /* ... while it still holds the same connection */
  struct sockaddr_storage peer;
  socklen_t peerlen;
  bool have_local; /* UDP on a wildcard socket: reply from this address */
  struct sockaddr_storage local;
  int ifindex;
};

struct pending {
  int64_t due_ns;
  struct origin to;
  size_t len;
  uint8_t *msg;
};

struct conn {
  int fd; /* -1: free slot */
  uint64_t serial;
  int64_t last_ns;
  bool eof;
  unsigned npending;
  size_t inlen;
  uint8_t in[2 + MAX_MSG];
  uint8_t *out;
  size_t outlen;
  size_t outcap;
};

struct server {
  struct listener ls[MAX_LISTEN];
  int nls;
  struct conn conns[MAX_CONNS];
  struct pending *pend;
  size_t npend;
  size_t pendcap;
  struct table table;
  const char *config;
  int logfd;
  int sigfd;
  uint64_t next_serial;
};

/* The decision for one query. */
struct answer {
  int rcode; /* or R_DROP */
  const char *outcome;
  unsigned delay_ms;
  uint32_t ttl;
  const struct entry *e; /* addresses from here ... */
  int family;            /* ... of this family only (0: none) */
};

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f)
{
  fputs("usage: dnsd -l ADDR[:PORT] [-l ...] [-c CONFIG] [-q QUERYLOG] "
        "[-p PIDFILE]\n"
        "  ADDR is 192.0.2.2, 2001:db8::2 or [2001:db8::2]:5353; PORT 0 "
        "picks one.\n"
        "  CONFIG lines: NAME TYPE ANSWER [delay=MS] [ttl=S]\n"
        "    TYPE   A, AAAA, or * (every type; addresses split by family)\n"
        "    ANSWER ADDR[,ADDR...] | NODATA | NXDOMAIN | SERVFAIL | DROP\n"
        "  Names not in the table: NXDOMAIN; known names, other types: "
        "NODATA.\n"
        "  Query log lines: EPOCH_MS PROTO CLIENT#PORT NAME TYPE OUTCOME "
        "delay=MS\n",
        f);
}

/* Lower-cases NAME in place and strips one trailing dot. Returns 0, or -1
 * when it is not a name the table can hold: empty labels, labels over 63
 * bytes, over 253 bytes in all, or bytes other than letters, digits, '-'
 * and '_' (so that no query label containing a dot can match). */
static int normalize_name(char *name)
{
  size_t n = strlen(name), label = 0;
  if (n > 0 && name[n - 1] == '.')
    name[--n] = '\0';
  if (n == 0 || n > 253)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z')
      name[i] = (char)(c - 'A' + 'a');
    if (c == '.') {
      if (label == 0)
        return -1;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63)
      return -1;
  }
  return label == 0 ? -1 : 0;
}

/* Parses a decimal option value into *OUT. Returns 0, or -1 when the text
 * is not a number in [0, MAX]. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
  char *end;
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return -1;
  *out = v;
  return 0;
}

/* Parses the address list of a table line into E. Returns NULL, or the
 * reason it is wrong. */
static const char *parse_addrs(char *list, struct entry *e)
{
  char *save = NULL;
  if (list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,"))
    return "empty address in list";
  for (char *tok = strtok_r(list, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    struct addr a;
    if (inet_pton(AF_INET, tok, a.bytes) == 1)
      a.family = AF_INET;
    else if (inet_pton(AF_INET6, tok, a.bytes) == 1)
      a.family = AF_INET6;
    else
      return "not an address, NODATA, NXDOMAIN, SERVFAIL or DROP";
    if ((e->type == T_A && a.family != AF_INET) ||
        (e->type == T_AAAA && a.family != AF_INET6))
      return "address family does not match the type";
    if (e->naddrs == MAX_ADDRS)
      return "too many addresses";
    e->addrs[e->naddrs++] = a;
  }
  return NULL;
}

/* Parses one table line (comments already cut off) into E. Returns 1 for
 * an entry, 0 for a blank line, or -1 with *WHY set. */
static int parse_line(char *line, struct entry *e, const char **why)
{
  static const struct {
    const char *word;
    enum kind kind;
  } words[] = {{"NODATA", K_NODATA},
               {"NXDOMAIN", K_NXDOMAIN},
               {"SERVFAIL", K_SERVFAIL},
               {"DROP", K_DROP}};
  char *save = NULL;
  char *name = strtok_r(line, " \t\r\n", &save);
  if (name == NULL)
    return 0;
  char *type = strtok_r(NULL, " \t\r\n", &save);
  char *ans = strtok_r(NULL, " \t\r\n", &save);
  memset(e, 0, sizeof(*e));
  e->ttl = DEFAULT_TTL;
  *why = "expected NAME TYPE ANSWER [delay=MS] [ttl=S]";
  if (type == NULL || ans == NULL)
    return -1;
  *why = "bad name";
  if (strlen(name) >= sizeof(e->name))
    return -1;
  strcpy(e->name, name);
  if (normalize_name(e->name) != 0)
    return -1;
  if (strcasecmp(type, "A") == 0)
    e->type = T_A;
  else if (strcasecmp(type, "AAAA") == 0)
    e->type = T_AAAA;
  else if (strcmp(type, "*") == 0)
    e->type = T_ALL;
  else {
    *why = "TYPE must be A, AAAA or *";
    return -1;
  }
  e->kind = K_ADDRS;
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strcasecmp(ans, words[i].word) == 0)
      e->kind = words[i].kind;
  if (e->kind == K_ADDRS && (*why = parse_addrs(ans, e)) != NULL)
    return -1;
  for (char *opt = strtok_r(NULL, " \t\r\n", &save); opt != NULL;
       opt = strtok_r(NULL, " \t\r\n", &save)) {
    unsigned long v;
    if (strncmp(opt, "delay=", 6) == 0 &&
        parse_uint(opt + 6, MAX_DELAY_MS, &v) == 0)
      e->delay_ms = (unsigned)v;
    else if (strncmp(opt, "ttl=", 4) == 0 &&
             parse_uint(opt + 4, INT32_MAX, &v) == 0)
      e->ttl = (uint32_t)v;
    else {
      *why = "bad option (delay=0..600000, ttl=0..2147483647)";
      return -1;
    }
  }
  return 1;
}

static const struct entry *find_entry(const struct table *t, const char *name,
                                      int type)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].type == type && strcmp(t->v[i].name, name) == 0)
      return &t->v[i];
  return NULL;
}

static bool name_known(const struct table *t, const char *name)
{
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->v[i].name, name) == 0)
      return true;
  return false;
}

/* Reads the table at PATH into *OUT, which keeps its old contents when
 * anything is wrong. Returns 0, or -1 after printing FILE:LINE: reason. */
static int load_table(const char *path, struct table *out)
{
  struct table t = {NULL, 0, 0};
  char *line = NULL;
  size_t linecap = 0;
  unsigned lineno = 0;
  int rc = -1;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    fprintf(stderr, "dnsd: %s: %s\n", path, strerror(errno));
    return -1;
  }
  while (getline(&line, &linecap, f) >= 0) {
    struct entry e;
    const char *why = NULL;
    lineno++;
    char *hash = strchr(line, '#');
    if (hash != NULL)
      *hash = '\0';
    int r = parse_line(line, &e, &why);
    if (r == 0)
      continue;
    if (r < 0 || find_entry(&t, e.name, e.type) != NULL) {
      fprintf(stderr, "dnsd: %s:%u: %s\n", path, lineno,
              r < 0 ? why : "duplicate NAME TYPE");
      goto done;
    }
    if (t.n == t.cap) {
      size_t cap = t.cap ? t.cap * 2 : 16;
      struct entry *v = realloc(t.v, cap * sizeof(*v));
      if (v == NULL) {
        fprintf(stderr, "dnsd: out of memory\n");
        goto done;
      }
      t.v = v;
      t.cap = cap;
    }
    t.v[t.n++] = e;
  }
  if (ferror(f)) {
    fprintf(stderr, "dnsd: %s: read error\n", path);
    goto done;
  }
  free(out->v);
  *out = t;
  t.v = NULL;
  rc = 0;
done:
  free(t.v);
  free(line);
  fclose(f);
  return rc;
}

/* Decides the reply to NAME (normalized) and QTYPE from the table. */
static void decide(const struct table *t, const char *name, int qtype,
                   struct answer *a)
{
  const struct entry *e = NULL;
  memset(a, 0, sizeof(*a));
  if (qtype == T_A || qtype == T_AAAA)
    e = find_entry(t, name, qtype);
  if (e == NULL)
    e = find_entry(t, name, T_ALL);
  if (e == NULL) {
    /* A name present under another type exists: NODATA, not NXDOMAIN. */
    bool known = name_known(t, name);
    a->rcode = known ? R_NOERROR : R_NXDOMAIN;
    a->outcome = known ? "NODATA" : "NXDOMAIN";
    a->ttl = DEFAULT_TTL;
    return;
  }
  a->delay_ms = e->delay_ms;
  a->ttl = e->ttl;
  switch (e->kind) {
  case K_ADDRS:
    a->rcode = R_NOERROR;
    a->e = e;
    a->family = qtype == T_A ? AF_INET : qtype == T_AAAA ? AF_INET6 : 0;
    a->outcome = "NODATA";
    for (int i = 0; i < e->naddrs; i++)
      if (e->addrs[i].family == a->family)
        a->outcome = "NOERROR";
    break;
  case K_NODATA:
    a->rcode = R_NOERROR;
    a->outcome = "NODATA";
    break;
  case K_NXDOMAIN:
    a->rcode = R_NXDOMAIN;
    a->outcome = "NXDOMAIN";
    break;
  case K_SERVFAIL:
    a->rcode = R_SERVFAIL;
    a->outcome = "SERVFAIL";
    break;
  case K_DROP:
    a->rcode = R_DROP;
    a->outcome = "DROP";
    break;
  }
}

static void put16(uint8_t *p, unsigned v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
  return (unsigned)p[0] << 8 | p[1];
}

/* Reads the question of the query PKT (LEN bytes, LEN >= 12) into NAME
 * (lower case, dotted, "." for the root; at least 256 bytes), *QTYPE and
 * *QCLASS. Bytes a table name cannot hold are shown as '?', so such labels
 * never match. Returns the offset just past the question, or 0 when it is
 * malformed (compression pointers have no place in a query's question). */
static size_t parse_question(const uint8_t *pkt, size_t len, char *name,
                             unsigned *qtype, unsigned *qclass)
{
  size_t off = 12, out = 0, wire = 1;
  for (;;) {
    if (off >= len)
      return 0;
    unsigned l = pkt[off++];
    if (l == 0)
      break;
    wire += l + 1;
    if (l > 63 || wire > 255 || l > len - off)
      return 0;
    if (out > 0)
      name[out++] = '.';
    for (unsigned i = 0; i < l; i++) {
      unsigned char c = pkt[off + i];
      if (c >= 'A' && c <= 'Z')
        c = (unsigned char)(c - 'A' + 'a');
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_';
      name[out++] = ok ? (char)c : '?';
    }
    off += l;
  }
  if (len - off < 4)
    return 0;
  if (out == 0)
    name[out++] = '.';
  name[out] = '\0';
  *qtype = get16(pkt + off);
  *qclass = get16(pkt + off + 2);
  return off + 4;
}

/* Builds into OUT the reply with A's rcode to the query Q, repeating its
 * question (Q[12..QEND), none when QEND is 0) byte for byte, since
 * resolvers compare it with what they sent. Answers that would not fit in
 * LIMIT bytes are left out and TC is set, so the client retries over TCP.
 * Returns the length. */
static size_t build_reply(uint8_t *out, size_t limit, const uint8_t *q,
                          size_t qend, unsigned qtype, const struct answer *a)
{
  unsigned qflags = get16(q + 2), count = 0;
  unsigned flags = 0x8000 | (qflags & 0x7800) | (qflags & 0x0100) | 0x0080 |
                   (unsigned)(a->rcode & 0xf);
  size_t off = 12;
  if (a->rcode == R_NOERROR || a->rcode == R_NXDOMAIN)
    flags |= 0x0400; /* authoritative */
  memset(out, 0, 12);
  memcpy(out, q, 2);
  if (qend > 12) {
    memcpy(out + 12, q + 12, qend - 12);
    off = qend;
    out[5] = 1;
  }
  for (int i = 0; a->e != NULL && i < a->e->naddrs; i++) {
    const struct addr *ad = &a->e->addrs[i];
    size_t rdlen = ad->family == AF_INET ? 4 : 16;
    if (ad->family != a->family)
      continue;
    if (off + 12 + rdlen > limit) {
      flags |= 0x0200; /* truncated */
      break;
    }
    put16(out + off, 0xc00c); /* the name: a pointer to the question's */
    put16(out + off + 2, qtype);
    put16(out + off + 4, C_IN);
    put16(out + off + 6, a->ttl >> 16);
    put16(out + off + 8, a->ttl & 0xffff);
    put16(out + off + 10, (unsigned)rdlen);
    memcpy(out + off + 12, ad->bytes, rdlen);
    off += 12 + rdlen;
    count++;
  }
  put16(out + 2, flags);
  put16(out + 6, count);
  return off;
}

static const char *type_name(unsigned t, char *buf, size_t len)
{
  static const struct {
    unsigned t;
    const char *name;
  } names[] = {{1, "A"},    {2, "NS"},    {5, "CNAME"},  {6, "SOA"},
               {12, "PTR"}, {15, "MX"},   {16, "TXT"},   {28, "AAAA"},
               {33, "SRV"}, {64, "SVCB"}, {65, "HTTPS"}, {255, "ANY"}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (names[i].t == t)
      return names[i].name;
  snprintf(buf, len, "TYPE%u", t);
  return buf;
}

/* Writes ADDR#PORT of SA into BUF (a scope id shows as %ifname). */
static void format_peer(const struct sockaddr_storage *sa, socklen_t salen,
                        char *buf, size_t len)
{
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo((const struct sockaddr *)sa, salen, host, sizeof(host), serv,
                  sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    snprintf(buf, len, "?#?");
  else
    snprintf(buf, len, "%s#%s", host, serv);
}

/* Appends one line for a query to the query log with a single write(), so
 * lines are whole and visible at once even while tests read the file. */
static void log_query(const struct server *s, const struct origin *o,
                      const char *name, const char *type, const char *outcome,
                      unsigned delay_ms)
{
  char peer[NI_MAXHOST + NI_MAXSERV + 2], line[512];
  struct timespec ts;
  if (s->logfd < 0)
    return;
  clock_gettime(CLOCK_REALTIME, &ts);
  format_peer(&o->peer, o->peerlen, peer, sizeof(peer));
  int n = snprintf(line, sizeof(line), "%lld %s %s %s %s %s delay=%u\n",
                   (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                   o->tcp ? "tcp" : "udp", peer, name, type, outcome, delay_ms);
  if (n > 0 && (size_t)n < sizeof(line) && write(s->logfd, line, n) != n)
    fprintf(stderr, "dnsd: query log: %s\n", strerror(errno));
}

/* Queues MSG for sending to O at DUE. Drops it when the queue is full or
 * memory is short: a test server may lose a reply, never crash. */
static void enqueue(struct server *s, const struct origin *o, int64_t due,
                    const uint8_t *msg, size_t len)
{
  if (s->npend == MAX_PENDING) {
    fprintf(stderr, "dnsd: pending queue full, reply dropped\n");
    return;
  }
  if (s->npend == s->pendcap) {
    size_t cap = s->pendcap ? s->pendcap * 2 : 64;
    struct pending *p = realloc(s->pend, cap * sizeof(*p));
    if (p == NULL)
      return;
    s->pend = p;
    s->pendcap = cap;
  }
  uint8_t *copy = malloc(len);
  if (copy == NULL)
    return;
  memcpy(copy, msg, len);
  s->pend[s->npend++] = (struct pending){due, *o, len, copy};
  if (o->tcp)
    s->conns[o->conn].npending++;
}

/* Answers (or not) one query PKT of LEN bytes that arrived at NOW. */
static void handle_query(struct server *s, const uint8_t *pkt, size_t len,
                         const struct origin *o, int64_t now)
{
  char name[256] = "-", tbuf[16];
  const char *type = "-";
  unsigned qtype = 0, qclass = 0;
  size_t qend = 0;
  struct answer a;
  uint8_t reply[REPLY_MAX];

  if (len < 12) {
    /* Without a whole header there is no id to answer to. */
    log_query(s, o, "-", "-", "IGNORED", 0);
    return;
  }
  if (pkt[2] & 0x80)
    return; /* a response: never answer one, or two servers could loop */
  memset(&a, 0, sizeof(a));
  if (((pkt[2] >> 3) & 0xf) != 0) {
    a.rcode = R_NOTIMP;
    a.outcome = "NOTIMP";
  } else if (get16(pkt + 4) != 1 ||
             (qend = parse_question(pkt, len, name, &qtype, &qclass)) == 0) {
    strcpy(name, "-");
    a.rcode = R_FORMERR;
    a.outcome = "FORMERR";
  } else {
    type = type_name(qtype, tbuf, sizeof(tbuf));
    if (qclass != C_IN && qclass != C_ANY) {
      a.rcode = R_REFUSED;
      a.outcome = "REFUSED";
    } else {
      decide(&s->table, name, (int)qtype, &a);
    }
  }
  log_query(s, o, name, type, a.outcome, a.delay_ms);
  if (a.rcode == R_DROP)
    return;
  size_t n = build_reply(reply, o->tcp ? sizeof(reply) : UDP_LIMIT, pkt, qend,
                         qtype, &a);
  enqueue(s, o, now + (int64_t)a.delay_ms * NS_PER_MS, reply, n);
}

static void conn_close(struct server *s, int i)
{
  struct conn *c = &s->conns[i];
  close(c->fd);
  free(c->out);
  c->fd = -1;
  c->out = NULL;
  c->outlen = c->outcap = c->inlen = 0;
  c->npending = 0;
  c->eof = false;
}

/* Writes what connection I has buffered. Returns 0, or -1 after closing it
 * on an error. */
static int conn_flush(struct server *s, int i)
{
  struct conn *c = &s->conns[i];
  size_t done = 0;
  while (done < c->outlen) {
    ssize_t n = send(c->fd, c->out + done, c->outlen - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      conn_close(s, i);
      return -1;
    }
    done += (size_t)n;
  }
  memmove(c->out, c->out + done, c->outlen - done);
  c->outlen -= done;
  return 0;
}

/* Sends a UDP reply, from the address the query was sent to when the
 * socket is bound to a wildcard address. */
static void udp_send(const struct pending *p)
{
  const struct origin *o = &p->to;
  struct iovec iov = {p->msg, p->len};
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } cbuf;
  struct msghdr mh = {.msg_name = (void *)&o->peer,
                      .msg_namelen = o->peerlen,
                      .msg_iov = &iov,
                      .msg_iovlen = 1};
  memset(&cbuf, 0, sizeof(cbuf));
  if (o->have_local) {
    struct cmsghdr *cm = (struct cmsghdr *)cbuf.buf;
    mh.msg_control = cbuf.buf;
    if (o->local.ss_family == AF_INET) {
      struct in_pktinfo pi = {0};
      pi.ipi_spec_dst = ((const struct sockaddr_in *)&o->local)->sin_addr;
      cm->cmsg_level = IPPROTO_IP;
      cm->cmsg_type = IP_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(pi));
      memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
      mh.msg_controllen = CMSG_SPACE(sizeof(pi));
    } else {
      struct in6_pktinfo pi = {0};
      pi.ipi6_addr = ((const struct sockaddr_in6 *)&o->local)->sin6_addr;
      pi.ipi6_ifindex = (unsigned)o->ifindex;
      cm->cmsg_level = IPPROTO_IPV6;
      cm->cmsg_type = IPV6_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(pi));
      memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
      mh.msg_controllen = CMSG_SPACE(sizeof(pi));
    }
  }
  if (sendmsg(o->udp_fd, &mh, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
    fprintf(stderr, "dnsd: sendmsg: %s\n", strerror(errno));
}

/* Sends every queued reply that is due at NOW. A TCP reply whose
 * connection has gone (or whose slot now holds another one) is dropped. */
static void send_due(struct server *s, int64_t now)
{
  size_t i = 0;
  while (i < s->npend) {
    struct pending *p = &s->pend[i];
    if (p->due_ns > now) {
      i++;
      continue;
    }
    if (!p->to.tcp) {
      udp_send(p);
    } else {
      struct conn *c = &s->conns[p->to.conn];
      if (c->fd >= 0 && c->serial == p->to.serial) {
        size_t need = c->outlen + 2 + p->len;
        if (need > c->outcap) {
          uint8_t *o = realloc(c->out, need);
          if (o != NULL) {
            c->out = o;
            c->outcap = need;
          }
        }
        if (need <= c->outcap) {
          put16(c->out + c->outlen, (unsigned)p->len);
          memcpy(c->out + c->outlen + 2, p->msg, p->len);
          c->outlen = need;
        }
        c->npending--;
        c->last_ns = now;
        conn_flush(s, p->to.conn);
      }
    }
    free(p->msg);
    *p = s->pend[--s->npend];
  }
}

/* Reads every waiting datagram of listener socket FD (a bounded number per
 * turn, so a flood cannot starve the timers). */
static void udp_read(struct server *s, int fd, bool wildcard)
{
  for (int turn = 0; turn < 64; turn++) {
    uint8_t pkt[MAX_MSG];
    union {
      char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
               CMSG_SPACE(sizeof(struct in_pktinfo))];
      struct cmsghdr align;
    } cbuf;
    struct origin o;
    memset(&o, 0, sizeof(o));
    struct iovec iov = {pkt, sizeof(pkt)};
    struct msghdr mh = {.msg_name = &o.peer,
                        .msg_namelen = sizeof(o.peer),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf.buf,
                        .msg_controllen = sizeof(cbuf.buf)};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0)
      return;
    int64_t now = mono_ns();
    o.udp_fd = fd;
    o.peerlen = mh.msg_namelen;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); wildcard && cm != NULL;
         cm = CMSG_NXTHDR(&mh, cm)) {
      if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        struct sockaddr_in *sin = (struct sockaddr_in *)&o.local;
        memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
        sin->sin_family = AF_INET;
        sin->sin_addr = pi.ipi_addr;
        o.have_local = true;
      } else if (cm->cmsg_level == IPPROTO_IPV6 &&
                 cm->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o.local;
        memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = pi.ipi6_addr;
        o.ifindex = (int)pi.ipi6_ifindex;
        o.have_local = true;
      }
    }
    handle_query(s, pkt, (size_t)n, &o, now);
  }
}

static void tcp_accept(struct server *s, int lfd, int64_t now)
{
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int i = 0;
    while (i < MAX_CONNS && s->conns[i].fd >= 0)
      i++;
    if (i == MAX_CONNS) {
      close(fd); /* full: the client sees a reset and retries */
      continue;
    }
    struct conn *c = &s->conns[i];
    c->fd = fd;
    c->serial = ++s->next_serial;
    c->last_ns = now;
  }
}

/* Reads from connection I and handles each whole length-prefixed query. */
static void tcp_read(struct server *s, int i)
{
  struct conn *c = &s->conns[i];
  ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0) {
    conn_close(s, i);
    return;
  }
  int64_t now = mono_ns();
  c->last_ns = now;
  if (n == 0) {
    c->eof = true;
    return;
  }
  c->inlen += (size_t)n;
  while (c->inlen >= 2) {
    size_t mlen = get16(c->in);
    if (mlen > MAX_MSG) {
      conn_close(s, i); /* no query is that long */
      return;
    }
    if (c->inlen < 2 + mlen)
      break;
    struct origin o;
    memset(&o, 0, sizeof(o));
    o.tcp = true;
    o.udp_fd = -1;
    o.conn = i;
    o.serial = c->serial;
    o.peerlen = sizeof(o.peer);
    if (getpeername(c->fd, (struct sockaddr *)&o.peer, &o.peerlen) != 0)
      o.peerlen = 0;
    handle_query(s, c->in + 2, mlen, &o, now);
    memmove(c->in, c->in + 2 + mlen, c->inlen - 2 - mlen);
    c->inlen -= 2 + mlen;
  }
}

/* Parses ADDR[:PORT] ("192.0.2.2", "192.0.2.2:53", "2001:db8::2",
 * "[2001:db8::2]:53", "[fe80::1%eth0]:53") into *SA. Returns 0 or -1. */
static int parse_listen(const char *arg, struct sockaddr_storage *sa,
                        socklen_t *salen)
{
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  const char *port = NULL;
  char portbuf[8];
  size_t hl;
  if (arg[0] == '[') {
    const char *end = strchr(arg, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      return -1;
    hl = (size_t)(end - arg - 1);
    if (hl >= sizeof(host))
      return -1;
    memcpy(host, arg + 1, hl);
    host[hl] = '\0';
    if (end[1] == ':')
      port = end + 2;
  } else {
    const char *colon = strchr(arg, ':');
    bool v4 = colon != NULL && strchr(colon + 1, ':') == NULL;
    hl = v4 ? (size_t)(colon - arg) : strlen(arg);
    if (hl >= sizeof(host))
      return -1;
    memcpy(host, arg, hl);
    host[hl] = '\0';
    if (v4)
      port = colon + 1;
  }
  if (port == NULL) {
    snprintf(portbuf, sizeof(portbuf), "%d", DEFAULT_PORT);
    port = portbuf;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host, port, &hints, &res) != 0)
    return -1;
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *salen = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static int open_socket(int family, int type, const struct sockaddr *sa,
                       socklen_t salen)
{
  int one = 1;
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (type == SOCK_STREAM)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, sa, salen) != 0 || (type == SOCK_STREAM && listen(fd, 64))) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Opens the UDP and TCP sockets of listener L on ARG. With port 0 the TCP
 * socket takes the port the kernel gave the UDP one (retrying a few times
 * if another socket holds it for TCP). Returns 0, or -1 with a message. */
static int open_listener(struct listener *l, const char *arg)
{
  struct sockaddr_storage sa;
  socklen_t salen;
  int one = 1;
  if (parse_listen(arg, &sa, &salen) != 0) {
    fprintf(stderr, "dnsd: bad listen address: %s\n", arg);
    return -1;
  }
  int family = sa.ss_family;
  uint16_t *portp = family == AF_INET
                        ? &((struct sockaddr_in *)&sa)->sin_port
                        : &((struct sockaddr_in6 *)&sa)->sin6_port;
  bool any_port = *portp == 0;
  l->wildcard =
      family == AF_INET
          ? ((struct sockaddr_in *)&sa)->sin_addr.s_addr == INADDR_ANY
          : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&sa)->sin6_addr);
  for (int attempt = 0; attempt < 10; attempt++) {
    if (any_port)
      *portp = 0;
    l->udp = open_socket(family, SOCK_DGRAM, (struct sockaddr *)&sa, salen);
    if (l->udp < 0)
      break;
    socklen_t len = salen;
    getsockname(l->udp, (struct sockaddr *)&sa, &len);
    l->tcp = open_socket(family, SOCK_STREAM, (struct sockaddr *)&sa, salen);
    if (l->tcp >= 0)
      break;
    int e = errno;
    close(l->udp);
    l->udp = -1;
    errno = e;
    if (!any_port || e != EADDRINUSE)
      break;
  }
  if (l->udp < 0 || l->tcp < 0) {
    fprintf(stderr, "dnsd: listen %s: %s\n", arg, strerror(errno));
    return -1;
  }
  if (l->wildcard && family == AF_INET)
    setsockopt(l->udp, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
  else if (l->wildcard)
    setsockopt(l->udp, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo((struct sockaddr *)&sa, salen, host, sizeof(host), serv,
                  sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    snprintf(l->text, sizeof(l->text), "%s", arg);
  else
    snprintf(l->text, sizeof(l->text), family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             host, serv);
  return 0;
}

/* Writes the pid to PATH through a temporary file and a rename, so that a
 * reader waiting for the file never sees it empty. */
static int write_pidfile(const char *path)
{
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
    return -1;
  FILE *f = fopen(tmp, "we");
  if (f == NULL)
    return -1;
  fprintf(f, "%ld\n", (long)getpid());
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Returns the ppoll timeout until the next reply or idle deadline after
 * NOW, or -1 (no timeout) through *INFINITE. */
static struct timespec next_timeout(const struct server *s, int64_t now,
                                    bool *infinite)
{
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < s->npend; i++)
    if (s->pend[i].due_ns < next)
      next = s->pend[i].due_ns;
  for (int i = 0; i < MAX_CONNS; i++)
    if (s->conns[i].fd >= 0 && s->conns[i].npending == 0 &&
        s->conns[i].last_ns + TCP_IDLE_NS < next)
      next = s->conns[i].last_ns + TCP_IDLE_NS;
  *infinite = next == INT64_MAX;
  int64_t d = next > now ? next - now : 0;
  return (struct timespec){(time_t)(d / 1000000000), (long)(d % 1000000000)};
}

/* Closes connections that are finished (peer closed and nothing owed) or
 * idle too long. */
static void reap_conns(struct server *s, int64_t now)
{
  for (int i = 0; i < MAX_CONNS; i++) {
    struct conn *c = &s->conns[i];
    if (c->fd < 0 || c->npending > 0)
      continue;
    if ((c->eof && c->outlen == 0) || c->last_ns + TCP_IDLE_NS <= now)
      conn_close(s, i);
  }
}

/* Runs until SIGTERM or SIGINT. Returns 0. */
static int serve(struct server *s)
{
  struct pollfd fds[1 + 2 * MAX_LISTEN + MAX_CONNS];
  int connof[1 + 2 * MAX_LISTEN + MAX_CONNS];
  for (;;) {
    int64_t now = mono_ns();
    send_due(s, now);
    reap_conns(s, now);
    int n = 0;
    fds[n++] = (struct pollfd){s->sigfd, POLLIN, 0};
    for (int i = 0; i < s->nls; i++) {
      fds[n++] = (struct pollfd){s->ls[i].udp, POLLIN, 0};
      fds[n++] = (struct pollfd){s->ls[i].tcp, POLLIN, 0};
    }
    int first_conn = n;
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &s->conns[i];
      if (c->fd < 0)
        continue;
      short ev = (short)((c->eof ? 0 : POLLIN) | (c->outlen ? POLLOUT : 0));
      connof[n] = i;
      fds[n++] = (struct pollfd){c->fd, ev, 0};
    }
    bool infinite;
    struct timespec ts = next_timeout(s, now, &infinite);
    int r = ppoll(fds, (nfds_t)n, infinite ? NULL : &ts, NULL);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      fprintf(stderr, "dnsd: ppoll: %s\n", strerror(errno));
      return 1;
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
          if (s->config && load_table(s->config, &s->table) == 0)
            fprintf(stderr, "dnsd: reloaded %s\n", s->config);
        } else {
          return 0;
        }
      }
    }
    for (int i = 0; i < s->nls; i++) {
      if (fds[1 + 2 * i].revents)
        udp_read(s, s->ls[i].udp, s->ls[i].wildcard);
      if (fds[2 + 2 * i].revents)
        tcp_accept(s, s->ls[i].tcp, mono_ns());
    }
    for (int k = first_conn; k < n; k++) {
      int i = connof[k];
      struct conn *c = &s->conns[i];
      if (c->fd != fds[k].fd || fds[k].revents == 0)
        continue; /* closed (or reused) earlier in this batch */
      if ((fds[k].revents & POLLOUT) && conn_flush(s, i) != 0)
        continue;
      if (c->eof && (fds[k].revents & (POLLHUP | POLLERR)))
        conn_close(s, i); /* gone both ways: nothing can be delivered */
      else if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
        tcp_read(s, i);
    }
  }
}

int main(int argc, char **argv)
{
  const char *listens[MAX_LISTEN], *qlog = NULL, *pidfile = NULL;
  int nlisten = 0, opt, rc = 1;
  bool wrote_pid = false;
  sigset_t mask;
  struct server *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return 1;
  s->logfd = s->sigfd = -1;
  for (int i = 0; i < MAX_CONNS; i++)
    s->conns[i].fd = -1;
  while ((opt = getopt(argc, argv, "l:c:q:p:h")) != -1) {
    switch (opt) {
    case 'l':
      if (nlisten == MAX_LISTEN) {
        fprintf(stderr, "dnsd: at most %d -l\n", MAX_LISTEN);
        goto done;
      }
      listens[nlisten++] = optarg;
      break;
    case 'c':
      s->config = optarg;
      break;
    case 'q':
      qlog = optarg;
      break;
    case 'p':
      pidfile = optarg;
      break;
    case 'h':
      usage(stdout);
      rc = 0;
      goto done;
    default:
      usage(stderr);
      rc = 64;
      goto done;
    }
  }
  if (nlisten == 0 || optind != argc) {
    usage(stderr);
    rc = 64;
    goto done;
  }
  if (s->config != NULL && load_table(s->config, &s->table) != 0)
    goto done;
  if (qlog != NULL) {
    s->logfd = open(qlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->logfd < 0) {
      fprintf(stderr, "dnsd: %s: %s\n", qlog, strerror(errno));
      goto done;
    }
  }
  /* Signals arrive through a descriptor, so the loop has no handler state
   * and no race between checking a flag and sleeping. */
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
      (s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
    fprintf(stderr, "dnsd: signalfd: %s\n", strerror(errno));
    goto done;
  }
  for (int i = 0; i < nlisten; i++) {
    s->ls[i].udp = s->ls[i].tcp = -1;
    s->nls = i + 1;
    if (open_listener(&s->ls[i], listens[i]) != 0)
      goto done;
    printf("listening %s\n", s->ls[i].text);
  }
  fflush(stdout);
  if (pidfile != NULL) {
    if (write_pidfile(pidfile) != 0) {
      fprintf(stderr, "dnsd: %s: %s\n", pidfile, strerror(errno));
      goto done;
    }
    wrote_pid = true;
  }
  rc = serve(s);
done:
  if (wrote_pid)
    unlink(pidfile);
  for (int i = 0; i < s->nls; i++) {
    if (s->ls[i].udp >= 0)
      close(s->ls[i].udp);
    if (s->ls[i].tcp >= 0)
      close(s->ls[i].tcp);
  }
  for (int i = 0; i < MAX_CONNS; i++)
    if (s->conns[i].fd >= 0)
      conn_close(s, i);
  for (size_t i = 0; i < s->npend; i++)
    free(s->pend[i].msg);
  free(s->pend);
  free(s->table.v);
  if (s->logfd >= 0)
    close(s->logfd);
  if (s->sigfd >= 0)
    close(s->sigfd);
  free(s);
  return rc;
}
