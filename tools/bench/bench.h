/* Small helpers shared by the benchmark programs in tools/bench/: clocks,
 * the fd limit, address parsing, and the "port N" line a server prints so
 * that run.sh knows where to send the load. Header-only, so that each
 * benchmark stays one file and links only its own library. */
#ifndef DS_BENCH_H
#define DS_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Returns the monotonic clock in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Raises the soft fd limit to the hard one: 10,000 connections need more
 * than the usual 1024. Returns the new soft limit. */
static inline long bench_raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return (long)rl.rlim_cur;
}

/* Parses "192.0.2.1:80" or "[2001:db8::1]:80" (numeric only) into ss.
 * Returns 0 or -1 with a message on stderr. */
static inline int bench_parse_hostport(const char *text,
                                       struct sockaddr_storage *ss,
                                       socklen_t *len)
{
  char host[128];
  const char *colon, *h = text;
  size_t hl;
  struct addrinfo hints, *ai = NULL;

  colon = strrchr(text, ':');
  if (colon == NULL)
    goto bad;
  hl = (size_t)(colon - text);
  if (text[0] == '[') {
    if (hl < 2 || text[hl - 1] != ']')
      goto bad;
    h = text + 1;
    hl -= 2;
  }
  if (hl == 0 || hl >= sizeof host)
    goto bad;
  memcpy(host, h, hl);
  host[hl] = '\0';
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
    goto bad;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
bad:
  fprintf(stderr, "bad address '%s' (want 192.0.2.1:80 or [::1]:80)\n", text);
  return -1;
}

/* Returns the nanoseconds process pid's main thread has run on a CPU
 * (the first field of /proc/PID/schedstat), or 0 when unknown. The servers
 * are single-threaded, so this is their whole CPU time. */
static inline uint64_t bench_cpu_ns(long pid)
{
  char path[64];
  unsigned long long ns = 0;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return 0;
  if (fscanf(f, "%llu", &ns) != 1)
    ns = 0;
  fclose(f);
  return (uint64_t)ns;
}

/* Returns the CPU time of the calling thread in nanoseconds. */
static inline uint64_t bench_self_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints the line run.sh waits for, at once (stdout is a pipe). */
static inline void bench_announce_port(unsigned port)
{
  printf("port %u\n", port);
  fflush(stdout);
}

/* Parses a non-negative decimal option value or exits with usage 64. */
static inline long bench_num(const char *text, const char *what)
{
  char *end;
  long v;
  errno = 0;
  v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0) {
    fprintf(stderr, "bad %s: '%s'\n", what, text);
    exit(64);
  }
  return v;
}

#endif
