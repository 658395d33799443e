/* The test DNS server on loopback for the resolver's tests (dnstest.c). */
#ifndef DS_DNSTEST_H
#define DS_DNSTEST_H

#include "test.h"

#include <sys/types.h>

typedef struct dns {
  pid_t pid;
  unsigned port;
  int logfd;
  char server[64]; /* for opts.servers */
} dns;

int memfile(const char *name, const char *text);
const char *dnsd_path(char *buf, size_t len);
void dns_start_on(dns *d, const char *listen, const char *config);
void dns_start(dns *d, const char *config);
void dns_stop(dns *d);
const char *dns_log(const dns *d);
int dns_queries(const dns *d, const char *name, const char *type);
int dns_count_queries(const char *log, const char *name, const char *type);

#endif
