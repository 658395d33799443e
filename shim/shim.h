/* The preload shim's private declarations. The shim is built from these
 * files and the library's objects into build/libdualstack-preload.so; it
 * exports only the libc functions it interposes (DS_HOOK). */
#ifndef DS_SHIM_H
#define DS_SHIM_H

#include "internal.h"

#include <netdb.h>
#include <stdint.h>

#define DS_HOOK __attribute__((visibility("default")))

/* The real libc functions, found with dlsym(RTLD_NEXT). */
typedef struct shim_real {
  int (*connect)(int, const struct sockaddr *, socklen_t);
  int (*bind)(int, const struct sockaddr *, socklen_t);
  int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
                     struct addrinfo **);
  void (*freeaddrinfo)(struct addrinfo *);
  struct hostent *(*gethostbyname)(const char *);
  struct hostent *(*gethostbyname2)(const char *, int);
} shim_real;

/* Configuration read once from the environment (secure_getenv). */
typedef struct shim_config {
  int disabled; /* DUALSTACK_DISABLE=1, a setuid process, or init failed */
  int observe;  /* DUALSTACK_OBSERVE=1: trace only, change nothing */
  int trace_fd; /* -1: no trace */
} shim_config;

extern shim_real shim__real;
extern shim_config shim__cfg;

/* Runs the one-time initialisation (lazy, thread-safe). Returns 0 when the
 * real functions are known; the shim then passes everything through when
 * shim__cfg.disabled is set. */
int shim__init(void);

/* Per-thread guard: the shim's own calls never re-enter its hooks. Returns
 * 1 if the caller may act (and takes the guard), 0 if it must pass the
 * call through untouched. */
int shim__enter(void);
void shim__leave(void);

/* Milliseconds since the epoch, and a monotonic clock in ms. */
int64_t shim__epoch_ms(void);
double shim__mono_ms(void);

/* Returns a fresh id linking the events of one lookup or connection. */
unsigned long shim__next_id(void);

/* Trace: a JSON object is built in a buffer and written with one write().
 * The builder never fails loudly: a line too long is cut at a field
 * boundary. */
typedef struct shim_json {
  char buf[4096];
  size_t len;
  int overflow;
} shim_json;

void shim__json_begin(shim_json *j, const char *event, unsigned long id);
void shim__json_str(shim_json *j, const char *key, const char *value);
void shim__json_int(shim_json *j, const char *key, long long value);
void shim__json_num(shim_json *j, const char *key, double value);
void shim__json_bool(shim_json *j, const char *key, int value);
/* Starts an array of strings: key, then shim__json_item() for each. */
void shim__json_array_begin(shim_json *j, const char *key);
void shim__json_item(shim_json *j, const char *value);
void shim__json_array_end(shim_json *j);
/* Closes the object and writes the line, if tracing is on. */
void shim__json_emit(shim_json *j);

/* Returns "ok" or the errno's symbolic name ("ECONNREFUSED"). */
const char *shim__errname(int err);

#endif
