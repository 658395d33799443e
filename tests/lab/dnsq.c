/* dnsq: sends one DNS query and times it.
 *
 *   dnsq [-t TIMEOUT_MS] [-T] SERVER[:PORT] NAME TYPE
 *
 * Prints one line: the rcode name, the addresses answered (other record
 * types as TYPEn), "tc" when the reply was truncated, and the time from
 * sending the query to reading the reply, e.g.
 *   NOERROR 192.0.2.10 ms=201.3
 * Tests use it to check the test DNS server's answers and delays, and
 * whether a UDP path is black-holed (timeout) or refused (ICMP error).
 * The UDP socket is connected, so an ICMP port unreachable shows as
 * ECONNREFUSED instead of a timeout.
 *
 * Exit status: 0 any reply, 2 timeout, 3 network error (the errno name is
 * printed instead of an rcode), 1 other failure, 64 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_TIMEOUT 2
#define EXIT_NETERR 3
#define EXIT_USAGE 64
#define MAX_REPLY 65535

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(void)
{
  fputs("usage: dnsq [-t TIMEOUT_MS] [-T] SERVER[:PORT] NAME TYPE\n"
        "  TYPE: A AAAA ANY CNAME MX NS PTR SOA SRV TXT or a number\n"
        "  -T: over TCP.  Exit: 0 reply, 2 timeout, 3 network error\n",
        stderr);
}

static const struct {
  const char *name;
  unsigned type;
} types[] = {{"A", 1},   {"NS", 2},   {"CNAME", 5}, {"SOA", 6},  {"PTR", 12},
             {"MX", 15}, {"TXT", 16}, {"AAAA", 28}, {"SRV", 33}, {"ANY", 255}};

/* Returns the type number for NAME ("AAAA" or "28"), or -1. */
static int parse_type(const char *name)
{
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    if (strcasecmp(name, types[i].name) == 0)
      return (int)types[i].type;
  char *end;
  long v = strtol(name, &end, 10);
  return (*name != '\0' && *end == '\0' && v > 0 && v < 65536) ? (int)v : -1;
}

static const char *errno_name(int e)
{
  switch (e) {
  case ECONNREFUSED:
    return "ECONNREFUSED";
  case ECONNRESET:
    return "ECONNRESET";
  case EHOSTUNREACH:
    return "EHOSTUNREACH";
  case ENETUNREACH:
    return "ENETUNREACH";
  case ETIMEDOUT:
    return "ETIMEDOUT";
  case EPERM:
    return "EPERM";
  case EACCES:
    return "EACCES";
  case EADDRNOTAVAIL:
    return "EADDRNOTAVAIL";
  default:
    return "ENETERR";
  }
}

static const char *rcode_name(unsigned rc, char *buf, size_t len)
{
  static const char *names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                "NXDOMAIN", "NOTIMP",  "REFUSED"};
  if (rc < sizeof(names) / sizeof(names[0]))
    return names[rc];
  snprintf(buf, len, "RCODE%u", rc);
  return buf;
}

/* Parses SERVER[:PORT] ("192.0.2.2", "192.0.2.2:53", "2001:db8::2",
 * "[2001:db8::2]:53", "[fe80::2%eth0]:53"). Returns 0 or -1. */
static int parse_server(const char *arg, struct sockaddr_storage *sa,
                        socklen_t *salen)
{
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  const char *port = "53";
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

/* Encodes a query for NAME and TYPE into Q (at least 512 bytes). Returns
 * its length, or 0 when NAME is not a valid domain name. */
static size_t build_query(uint8_t *q, uint16_t id, const char *name,
                          unsigned type)
{
  size_t off = 12;
  memset(q, 0, 12);
  q[0] = (uint8_t)(id >> 8);
  q[1] = (uint8_t)id;
  q[2] = 0x01; /* RD, as a stub resolver sends */
  q[5] = 1;
  if (strcmp(name, ".") != 0) {
    const char *p = name;
    while (*p != '\0') {
      const char *dot = strchr(p, '.');
      size_t l = dot ? (size_t)(dot - p) : strlen(p);
      if (l == 0 || l > 63 || off + 1 + l > 12 + 254)
        return 0;
      q[off++] = (uint8_t)l;
      memcpy(q + off, p, l);
      off += l;
      p += l;
      if (*p == '.')
        p++;
    }
  }
  q[off++] = 0;
  q[off++] = (uint8_t)(type >> 8);
  q[off++] = (uint8_t)type;
  q[off++] = 0;
  q[off++] = 1; /* class IN */
  return off;
}

/* Returns the offset just past the (possibly compressed) name at OFF in R,
 * or 0 when it runs past LEN. */
static size_t skip_name(const uint8_t *r, size_t len, size_t off)
{
  while (off < len) {
    unsigned l = r[off];
    if (l == 0)
      return off + 1;
    if ((l & 0xc0) == 0xc0)
      return off + 2 <= len ? off + 2 : 0;
    if (l > 63)
      return 0;
    off += 1 + l;
  }
  return 0;
}

/* Prints the rcode and answers of reply R. Returns 0, or -1 when it is
 * malformed. */
static int print_reply(const uint8_t *r, size_t len, double ms)
{
  char buf[INET6_ADDRSTRLEN], rbuf[16];
  unsigned qd = (unsigned)r[4] << 8 | r[5];
  unsigned an = (unsigned)r[6] << 8 | r[7];
  size_t off = 12;
  printf("%s", rcode_name(r[3] & 0xf, rbuf, sizeof(rbuf)));
  for (unsigned i = 0; i < qd; i++) {
    off = skip_name(r, len, off);
    if (off == 0 || len - off < 4)
      return -1;
    off += 4;
  }
  for (unsigned i = 0; i < an; i++) {
    off = skip_name(r, len, off);
    if (off == 0 || len - off < 10)
      return -1;
    unsigned type = (unsigned)r[off] << 8 | r[off + 1];
    size_t rdlen = (size_t)r[off + 8] << 8 | r[off + 9];
    off += 10;
    if (len - off < rdlen)
      return -1;
    if (type == 1 && rdlen == 4)
      printf(" %s", inet_ntop(AF_INET, r + off, buf, sizeof(buf)));
    else if (type == 28 && rdlen == 16)
      printf(" %s", inet_ntop(AF_INET6, r + off, buf, sizeof(buf)));
    else
      printf(" TYPE%u", type);
    off += rdlen;
  }
  printf("%s ms=%.1f\n", (r[2] & 0x02) ? " tc" : "", ms);
  return 0;
}

/* Waits until FD has EVENTS or DEADLINE (monotonic ms) passes. Returns 1,
 * 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, double deadline)
{
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0)
      return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)left + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r;
    return 1;
  }
}

/* Reads exactly LEN bytes from the stream FD before DEADLINE. Returns 1,
 * 0 on timeout, -1 on error or end of stream (errno set). */
static int read_full(int fd, uint8_t *buf, size_t len, double deadline)
{
  size_t got = 0;
  while (got < len) {
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0)
      return w;
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = ECONNRESET;
      return -1;
    }
    got += (size_t)n;
  }
  return 1;
}

/* Whether reply R (LEN bytes) answers query Q (QLEN bytes): same id, and
 * the same question, so a stray datagram is not taken for the reply. */
static bool matches(const uint8_t *r, size_t len, const uint8_t *q, size_t qlen)
{
  if (len < qlen || r[0] != q[0] || r[1] != q[1] || !(r[2] & 0x80))
    return false;
  /* A FORMERR reply may carry no question. */
  if (r[4] == 0 && r[5] == 0)
    return true;
  return memcmp(r + 12, q + 12, qlen - 12) == 0;
}

int main(int argc, char **argv)
{
  long timeout_ms = 5000;
  bool tcp = false;
  int opt, fd = -1, rc = 1;
  struct sockaddr_storage sa;
  socklen_t salen;
  uint8_t q[512];
  uint8_t *r = malloc(MAX_REPLY);
  uint16_t id;

  if (r == NULL)
    return 1;
  while ((opt = getopt(argc, argv, "t:T")) != -1) {
    if (opt == 't') {
      char *end;
      timeout_ms = strtol(optarg, &end, 10);
      if (*end != '\0' || timeout_ms <= 0)
        opt = '?';
    } else if (opt == 'T') {
      tcp = true;
    }
    if (opt == '?') {
      usage();
      rc = EXIT_USAGE;
      goto done;
    }
  }
  int type = optind + 3 == argc ? parse_type(argv[optind + 2]) : -1;
  if (type < 0 || parse_server(argv[optind], &sa, &salen) != 0) {
    usage();
    rc = EXIT_USAGE;
    goto done;
  }
  if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
    id = (uint16_t)(getpid() ^ (unsigned)time(NULL));
  size_t qlen = build_query(q, id, argv[optind + 1], (unsigned)type);
  if (qlen == 0) {
    fprintf(stderr, "dnsq: bad name: %s\n", argv[optind + 1]);
    rc = EXIT_USAGE;
    goto done;
  }

  fd = socket(sa.ss_family,
              (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
              0);
  if (fd < 0) {
    perror("dnsq: socket");
    goto done;
  }
  double start = now_ms(), deadline = start + (double)timeout_ms;
  size_t rlen = 0;
  int w = 1, err = 0;
  if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
    } else {
      socklen_t elen = sizeof(err);
      w = wait_fd(fd, POLLOUT, deadline);
      if (w > 0)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    }
  }
  if (w > 0 && err == 0 && tcp) {
    uint8_t msg[2 + sizeof(q)];
    msg[0] = (uint8_t)(qlen >> 8);
    msg[1] = (uint8_t)qlen;
    memcpy(msg + 2, q, qlen);
    if (send(fd, msg, qlen + 2, MSG_NOSIGNAL) != (ssize_t)(qlen + 2))
      err = errno ? errno : EIO;
    uint8_t lenbuf[2];
    if (err == 0 && (w = read_full(fd, lenbuf, 2, deadline)) > 0) {
      rlen = (size_t)lenbuf[0] << 8 | lenbuf[1];
      w = read_full(fd, r, rlen, deadline);
    }
    if (w < 0)
      err = errno;
  } else if (w > 0 && err == 0) {
    if (send(fd, q, qlen, 0) != (ssize_t)qlen)
      err = errno;
    while (err == 0 && (w = wait_fd(fd, POLLIN, deadline)) > 0) {
      ssize_t n = recv(fd, r, MAX_REPLY, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (n < 0) {
        err = errno;
        break;
      }
      if (matches(r, (size_t)n, q, qlen)) {
        rlen = (size_t)n;
        break;
      }
    }
  }
  double ms = now_ms() - start;
  if (err != 0) {
    printf("%s ms=%.1f\n", errno_name(err), ms);
    rc = EXIT_NETERR;
  } else if (w <= 0) {
    printf("TIMEOUT ms=%.1f\n", ms);
    rc = EXIT_TIMEOUT;
  } else if (rlen < 12 || !matches(r, rlen, q, qlen)) {
    printf("MALFORMED ms=%.1f\n", ms);
    rc = 1;
  } else if (print_reply(r, rlen, ms) != 0) {
    printf(" MALFORMED ms=%.1f\n", ms);
    rc = 1;
  } else {
    rc = 0;
  }
done:
  if (fd >= 0)
    close(fd);
  free(r);
  return rc;
}
