/* Minimal unit test framework: each TEST runs in its own child process
 * (see runner.c) with a timeout. A test passes by returning, fails through
 * a CHECK, and is skipped with SKIP("reason").
 */
#ifndef DS_TEST_H
#define DS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualstack.h"

#define DS_TEST_SKIP_STATUS 77

typedef void (*ds_test_fn)(void);

void ds_test_register(const char *name, ds_test_fn fn, unsigned timeout_s);
void ds_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
void ds_test_skip(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* Count of open file descriptors of this process (from /proc/self/fd). */
int ds_test_count_fds(void);
/* Monotonic milliseconds. */
double ds_test_now_ms(void);
/* Runs r's turns for ms milliseconds (to see that nothing more
 * happens). */
void ds_test_run_for(ds_reactor *r, double ms);
/* Skips the test unless running as root. */
void ds_test_require_root(void);
/* Skips the test unless IPv6 loopback (::1) can be bound. */
void ds_test_require_ipv6(void);

/* Returns a port on the loopback address of family (AF_INET or AF_INET6)
 * that nothing is bound to for socket type (SOCK_STREAM or SOCK_DGRAM):
 * TCP connects there are refused, UDP datagrams get ICMP unreachable. */
unsigned short ds_test_closed_port(int family, int type);

/* Returns the value of a variable the lab runner exports (LAB_NS_B, ...);
 * skips the test when it is not running inside a lab
 * (tests/lab/lab.sh run-pair). */
const char *ds_test_lab_env(const char *name);
/* Runs a shell command (lab helpers); fails the test if it fails. */
void ds_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TEST_T(name, secs)                                                     \
  static void test_##name(void);                                               \
  __attribute__((constructor)) static void test_reg_##name(void)               \
  {                                                                            \
    ds_test_register(#name, test_##name, (secs));                              \
  }                                                                            \
  static void test_##name(void)

#define TEST(name) TEST_T(name, 20)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      ds_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                    \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond))                                                               \
      ds_test_fail(__FILE__, __LINE__, __VA_ARGS__);                           \
  } while (0)

/* Runs r's turns until cond holds, failing the test when limit_ms passes
 * first. */
#define RUN_UNTIL(r, cond, limit_ms)                                           \
  do {                                                                         \
    double ru_end_ = ds_test_now_ms() + (limit_ms);                            \
    while (!(cond) && ds_test_now_ms() < ru_end_)                              \
      ds_reactor_run_once((r), 10);                                            \
    CHECK_MSG((cond), "timed out waiting for %s", #cond);                      \
  } while (0)

#define CHECK_INT(a, op, b)                                                    \
  do {                                                                         \
    long long ds_a_ = (long long)(a), ds_b_ = (long long)(b);                  \
    if (!(ds_a_ op ds_b_))                                                     \
      ds_test_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b,  \
                   ds_a_, ds_b_);                                              \
  } while (0)

#define CHECK_EQ(a, b) CHECK_INT(a, ==, b)

#define CHECK_STR(a, b)                                                        \
  do {                                                                         \
    const char *ds_sa_ = (a), *ds_sb_ = (b);                                   \
    if (ds_sa_ == NULL || ds_sb_ == NULL || strcmp(ds_sa_, ds_sb_) != 0)       \
      ds_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b,   \
                   ds_sa_ ? ds_sa_ : "(null)", ds_sb_ ? ds_sb_ : "(null)");    \
  } while (0)

#define SKIP(...) ds_test_skip(__VA_ARGS__)

#endif
