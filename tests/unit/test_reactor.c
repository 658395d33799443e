/* Reactor tests: timers, deferred and thread-safe calls, I/O dispatch when
 * a callback closes another watcher of the same epoll batch, EINTR, -EBUSY.
 */
#include "test.h"

#include "dualstack.h"
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
  int order[64];
  int n;
  ds_reactor *r;
} log_t;

/* A timer's data: the log and an id. */
typedef struct {
  log_t *lg;
  int id;
  double fired_ms;
} tdata;

static void rec_timer(ds_timer *t, void *data)
{
  tdata *d = data;
  (void)t;
  d->lg->order[d->lg->n++] = d->id;
  d->fired_ms = ds_test_now_ms();
}

TEST(reactor_timers_fire_in_order_and_on_time)
{
  ds_reactor *r;
  ds_timer *t[4];
  tdata d[4];
  log_t lg = {0};
  int delays[4] = {60, 20, 40, 20};
  double t0;
  int i;

  CHECK_EQ(ds_reactor_new(&r), 0);
  t0 = ds_test_now_ms();
  for (i = 0; i < 4; i++) {
    d[i] = (tdata){&lg, i, 0};
    CHECK_EQ(ds_timer_new(r, &t[i], rec_timer, &d[i]), 0);
    CHECK_EQ(ds_timer_start(t[i], (uint64_t)delays[i], 0), 0);
  }
  CHECK_EQ(ds_reactor_run(r), 0);
  CHECK_EQ(lg.n, 4);
  /* Equal deadlines keep arming order: 1 before 3. */
  CHECK_EQ(lg.order[0], 1);
  CHECK_EQ(lg.order[1], 3);
  CHECK_EQ(lg.order[2], 2);
  CHECK_EQ(lg.order[3], 0);
  for (i = 0; i < 4; i++) {
    double took = d[i].fired_ms - t0;
    CHECK_MSG(took >= delays[i] - 1, "timer %d fired early: %.1f ms", i, took);
    CHECK_MSG(took < delays[i] + 200, "timer %d late: %.1f ms", i, took);
    ds_timer_free(t[i]);
  }
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(reactor_timer_stop_and_rearm)
{
  ds_reactor *r;
  ds_timer *a, *b;
  log_t lg = {0};
  tdata da = {&lg, 1, 0}, db = {&lg, 2, 0};

  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_timer_new(r, &a, rec_timer, &da), 0);
  CHECK_EQ(ds_timer_new(r, &b, rec_timer, &db), 0);
  ds_timer_start(a, 10, 0);
  ds_timer_start(b, 20, 0);
  CHECK(ds_timer_active(a));
  ds_timer_stop(a);
  CHECK(!ds_timer_active(a));
  ds_timer_start(b, 30, 0); /* re-arm moves it, no duplicate */
  ds_reactor_run(r);
  CHECK_EQ(lg.n, 1);
  CHECK_EQ(lg.order[0], 2);
  ds_timer_free(a);
  ds_timer_free(b);
  CHECK_EQ(ds_reactor_free(r), 0);
}

typedef struct {
  int count;
  int stop_at;
} rep_t;

static void repeat_cb(ds_timer *t, void *data)
{
  rep_t *rp = data;
  if (++rp->count == rp->stop_at)
    ds_timer_stop(t);
}

TEST(reactor_repeating_timer)
{
  ds_reactor *r;
  ds_timer *t;
  rep_t rp = {0, 5};
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_timer_new(r, &t, repeat_cb, &rp), 0);
  ds_timer_start(t, 1, 2);
  CHECK_EQ(ds_reactor_run(r), 0);
  CHECK_EQ(rp.count, 5);
  ds_timer_free(t);
  CHECK_EQ(ds_reactor_free(r), 0);
}

static void count_cb(ds_timer *t, void *data)
{
  (void)t;
  (*(int *)data)++;
}

TEST(reactor_many_timers)
{
  enum { N = 30000 };
  ds_reactor *r;
  static ds_timer *t[N];
  int fired = 0, i;
  double t0;

  CHECK_EQ(ds_reactor_new(&r), 0);
  t0 = ds_test_now_ms();
  for (i = 0; i < N; i++) {
    CHECK_EQ(ds_timer_new(r, &t[i], count_cb, &fired), 0);
    CHECK_EQ(ds_timer_start(t[i], (uint64_t)(i % 50), 0), 0);
  }
  /* Cancel every other one: O(log n) each. */
  for (i = 0; i < N; i += 2)
    ds_timer_stop(t[i]);
  CHECK_EQ(ds_reactor_run(r), 0);
  CHECK_EQ(fired, N / 2);
  for (i = 0; i < N; i++)
    ds_timer_free(t[i]);
  CHECK_EQ(ds_reactor_free(r), 0);
  /* Generous bound: 30000 timers must not take seconds. */
  CHECK_MSG(ds_test_now_ms() - t0 < 3000, "took %.0f ms",
            ds_test_now_ms() - t0);
}

typedef struct {
  ds_reactor *r;
  int turn_of_a, turn_of_b, turns;
  int ran_inside;
} soon_t;

static void soon_b(void *p)
{
  soon_t *s = p;
  s->turn_of_b = s->turns;
}

static void soon_a(void *p)
{
  soon_t *s = p;
  s->turn_of_a = s->turns;
  s->ran_inside = 1;
  ds_reactor_call_soon(s->r, soon_b, s);
  s->ran_inside = 0;
}

TEST(reactor_call_soon_runs_on_next_turn)
{
  soon_t s = {0};
  CHECK_EQ(ds_reactor_new(&s.r), 0);
  CHECK_EQ(ds_reactor_call_soon(s.r, soon_a, &s), 0);
  CHECK_EQ(s.turn_of_a, 0); /* never inside the call */
  while (ds_reactor_run_once(s.r, 0) > 0)
    s.turns++;
  CHECK_EQ(s.turn_of_a, 0);
  CHECK_EQ(s.turn_of_b, 1);
  CHECK_EQ(ds_reactor_free(s.r), 0);
}

TEST(reactor_free_with_pending_call_soon)
{
  ds_reactor *r;
  soon_t s = {0};
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_reactor_call_soon(r, soon_b, &s), 0);
  CHECK_EQ(ds_reactor_free(r), 0); /* the node is freed (ASan: no leak) */
}

typedef struct {
  ds_reactor *r;
  pthread_t reactor_thread, ran_on;
  int ran;
  ds_timer *keepalive;
} ts_t;

static void ts_fn(void *p)
{
  ts_t *s = p;
  s->ran_on = pthread_self();
  s->ran = 1;
  ds_timer_stop(s->keepalive);
}

static void *ts_thread(void *p)
{
  ts_t *s = p;
  usleep(50000);
  ds_reactor_call_threadsafe(s->r, ts_fn, s);
  return NULL;
}

static void never(ds_timer *t, void *d)
{
  (void)t;
  (void)d;
  ds_test_fail(__FILE__, __LINE__, "keepalive timer fired: no wakeup");
}

TEST(reactor_call_threadsafe_wakes_reactor)
{
  ts_t s = {0};
  pthread_t th;
  double t0;
  CHECK_EQ(ds_reactor_new(&s.r), 0);
  s.reactor_thread = pthread_self();
  /* Something to wait on, much longer than the thread's delay. */
  CHECK_EQ(ds_timer_new(s.r, &s.keepalive, never, NULL), 0);
  ds_timer_start(s.keepalive, 10000, 0);
  t0 = ds_test_now_ms();
  CHECK_EQ(pthread_create(&th, NULL, ts_thread, &s), 0);
  CHECK_EQ(ds_reactor_run(s.r), 0);
  pthread_join(th, NULL);
  CHECK(s.ran);
  CHECK(pthread_equal(s.ran_on, s.reactor_thread));
  CHECK_MSG(ds_test_now_ms() - t0 < 5000, "woke late");
  ds_timer_free(s.keepalive);
  CHECK_EQ(ds_reactor_free(s.r), 0);
}

TEST(reactor_free_with_handles_is_ebusy)
{
  ds_reactor *r;
  ds_timer *t;
  ds_io *w;
  int sv[2];
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_timer_new(r, &t, count_cb, NULL), 0);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_timer_free(t);
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CHECK_EQ(ds_io_new(r, &w, sv[0], NULL, NULL), 0);
  CHECK_EQ(ds_reactor_free(r), -EBUSY);
  ds_io_free(w);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(sv[0]);
  close(sv[1]);
}

/* Two readable watchers in one batch: whichever runs first closes the
 * other's fd, frees its watcher, and opens a new fd that reuses the number
 * with a watcher of its own that must not see the stale event. */
typedef struct {
  ds_reactor *r;
  ds_io *w[2];
  int fd[2], peer[2];
  int calls[2];
  int reused_fd;
  ds_io *reused;
  int reused_calls;
} batch_t;

static batch_t *g_batch;

static void reused_cb(ds_io *w, unsigned ev, void *data)
{
  (void)w;
  (void)ev;
  (void)data;
  g_batch->reused_calls++;
}

static void batch_cb(ds_io *w, unsigned ev, void *data)
{
  batch_t *b = g_batch;
  int me = (int)(intptr_t)data, other = 1 - me;
  int sv[2];
  (void)w;
  (void)ev;
  b->calls[me]++;
  if (b->w[other] != NULL) {
    ds_io_free(b->w[other]);
    b->w[other] = NULL;
    close(b->fd[other]);
    /* The lowest free number is the one just closed. */
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    b->reused_fd = sv[0];
    close(sv[1]);
    CHECK_EQ(ds_io_new(b->r, &b->reused, sv[0], reused_cb, NULL), 0);
    /* sv[1] closed: sv[0] is readable (EOF), but only on a later turn. */
  }
  ds_io_free(b->w[me]);
  b->w[me] = NULL;
  ds_reactor_stop(b->r);
}

TEST(reactor_callback_closes_other_fd_in_same_batch)
{
  batch_t b = {0};
  int sv[2], i;
  g_batch = &b;
  CHECK_EQ(ds_reactor_new(&b.r), 0);
  for (i = 0; i < 2; i++) {
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    b.fd[i] = sv[0];
    b.peer[i] = sv[1];
    CHECK_EQ(ds_io_new(b.r, &b.w[i], sv[0], batch_cb, (void *)(intptr_t)i),
             0);
    CHECK_EQ(ds_io_set(b.w[i], DS_READABLE), 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
  }
  /* Both are readable now, so one epoll_wait returns both. */
  CHECK_EQ(ds_reactor_run_once(b.r, 1000) >= 0, 1);
  CHECK_EQ(b.calls[0] + b.calls[1], 1);
  CHECK_EQ(b.reused_fd, b.fd[b.calls[0] ? 1 : 0]);
  CHECK_EQ(b.reused_calls, 0);
  ds_io_free(b.reused);
  CHECK_EQ(ds_reactor_free(b.r), 0);
  close(b.reused_fd);
  close(b.fd[b.calls[0] ? 0 : 1]);
  close(b.peer[0]);
  close(b.peer[1]);
}

static void count_io(ds_io *w, unsigned ev, void *data)
{
  (void)w;
  (void)ev;
  (*(int *)data)++;
}

/* A watcher freed by ds__io_free_closing() whose socket something else
 * still holds open (a dup here; /proc/PID/fd readers do it for a moment)
 * stays in epoll, under the freed watcher's slot and generation: its
 * events are dropped, also once a new watcher has the slot (a new
 * watcher that the old key named would be called for a socket it does
 * not watch; under ASan, dispatching to the freed one is a
 * use-after-free). */
TEST(reactor_event_for_a_freed_watcher_still_in_epoll_is_dropped)
{
  ds_reactor *r;
  ds_io *w, *w2;
  int a[2], b[2], held, calls = 0, calls2 = 0, i;
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
  CHECK_EQ(ds_io_new(r, &w, a[0], count_io, &calls), 0);
  CHECK_EQ(ds_io_set(w, DS_READABLE), 0);
  held = dup(a[0]);
  CHECK(held >= 0);
  ds__io_free_closing(w);
  close(a[0]);
  /* The new watcher takes the freed slot; its own socket stays quiet. */
  CHECK_EQ(ds_io_new(r, &w2, b[0], count_io, &calls2), 0);
  CHECK_EQ(ds_io_set(w2, DS_READABLE), 0);
  CHECK_EQ(write(a[1], "x", 1), 1);
  for (i = 0; i < 5; i++)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(calls2, 0);
  CHECK_EQ(calls, 0);
  /* The slot free again: still dropped. */
  ds_io_free(w2);
  CHECK_EQ(write(a[1], "y", 1), 1);
  for (i = 0; i < 5; i++)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(calls + calls2, 0);
  /* And the new watcher still hears its own socket. */
  CHECK_EQ(ds_io_new(r, &w2, b[0], count_io, &calls2), 0);
  CHECK_EQ(ds_io_set(w2, DS_READABLE), 0);
  CHECK_EQ(write(b[1], "z", 1), 1);
  for (i = 0; i < 5 && calls2 == 0; i++)
    ds_reactor_run_once(r, 200);
  CHECK_EQ(calls2, 1);
  ds_io_free(w2);
  close(held);
  CHECK_EQ(ds_reactor_free(r), 0);
  close(a[1]);
  close(b[0]);
  close(b[1]);
}

static void on_alarm(int sig)
{
  (void)sig;
}

TEST(reactor_survives_eintr)
{
  ds_reactor *r;
  ds_timer *t;
  log_t lg = {0};
  tdata d = {&lg, 7, 0};
  struct sigaction sa = {0};
  struct itimerval it = {{0, 5000}, {0, 5000}};
  double t0;

  sa.sa_handler = on_alarm; /* no SA_RESTART: epoll_wait gets EINTR */
  sigaction(SIGALRM, &sa, NULL);
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_timer_new(r, &t, rec_timer, &d), 0);
  ds_timer_start(t, 100, 0);
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = ds_test_now_ms();
  CHECK_EQ(ds_reactor_run(r), 0);
  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  CHECK_EQ(lg.n, 1);
  CHECK_MSG(d.fired_ms - t0 >= 99, "fired early after EINTR: %.1f",
            d.fired_ms - t0);
  ds_timer_free(t);
  CHECK_EQ(ds_reactor_free(r), 0);
}

static void stop_cb(ds_timer *t, void *data)
{
  (void)t;
  ds_reactor_stop(data);
}

TEST(reactor_stop_returns_from_run)
{
  ds_reactor *r;
  ds_timer *stopper, *later;
  int fired = 0;
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_timer_new(r, &stopper, stop_cb, r), 0);
  CHECK_EQ(ds_timer_new(r, &later, count_cb, &fired), 0);
  ds_timer_start(stopper, 5, 0);
  ds_timer_start(later, 5000, 0);
  CHECK_EQ(ds_reactor_run(r), 0);
  CHECK_EQ(fired, 0);
  CHECK(ds_timer_active(later));
  ds_timer_free(stopper);
  ds_timer_free(later);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(reactor_run_returns_when_nothing_left)
{
  ds_reactor *r;
  double t0 = ds_test_now_ms();
  CHECK_EQ(ds_reactor_new(&r), 0);
  CHECK_EQ(ds_reactor_run(r), 0);
  CHECK(ds_test_now_ms() - t0 < 1000);
  CHECK_EQ(ds_reactor_free(r), 0);
}

TEST(error_names_and_texts)
{
  CHECK_STR(ds_err_name(-ECONNREFUSED), "ECONNREFUSED");
  CHECK_STR(ds_err_name(DS_ENOTFOUND), "DS_ENOTFOUND");
  CHECK_STR(ds_strerror(DS_EFAMILY), "address family mismatch");
  CHECK_STR(ds_strerror(-ETIMEDOUT), "Connection timed out");
  CHECK_STR(ds_err_name(-99999), "UNKNOWN");
  CHECK_STR(ds_strerror(12345), "unknown error");
}
