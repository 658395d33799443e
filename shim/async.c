/* connect() to a name: the Happy Eyeballs race runs in a helper thread,
 * started on first use (never in a constructor) and again in a forked
 * child that needs it, for blocking and non-blocking sockets alike.
 *
 * While the race runs, the application's own socket stands in: it is
 * connected to a private loopback listener whose accept queue is kept
 * full, so it sits in SYN_SENT, exactly like a connect in progress (poll
 * and epoll report nothing, SO_ERROR is 0, getpeername says ENOTCONN),
 * and the application's epoll registrations on it stay valid. A
 * non-blocking connect() returns EINPROGRESS at once. A blocking one
 * waits in a real connect() on the stand-in (shim__async_wait), so the
 * kernel itself applies the signal rules of socket(7) and signal(7):
 * EINTR when a handler without SA_RESTART returns (the race goes on, and
 * the next connect() waits again), a restart with SA_RESTART, and
 * SO_SNDTIMEO's EINPROGRESS. Nothing of the race lives on the caller's
 * stack, so a longjmp or a thread cancellation out of the wait leaves it
 * to finish in the helper thread, as the kernel's connection would.
 *
 * When the race is won, the winner goes onto the fd under the
 * application: the stand-in is kept alive by a private dup, the fd's epoll
 * registrations (recorded by the epoll_ctl hook) are deleted, the winner is
 * dup3()ed onto the fd with the fd's flags, the registrations are added
 * again (epoll reports the winner writable at once), and the stand-in is
 * disconnected (connect AF_UNSPEC), which wakes poll(), select() and a
 * waiting connect(); they look at the fd again and find the winner. When
 * the race fails, the stand-in is disconnected and SO_ERROR (or the
 * waiting connect) reports the race's error (ECONNREFUSED, ETIMEDOUT,
 * ...) instead of the stand-in's.
 *
 * Closing the fd while its race runs disconnects the stand-in first: a
 * copy of it elsewhere (a forked child, a dup) reports ECONNRESET at
 * once instead of connecting to the listener until the kernel gives up.
 *
 * A socket never takes a blocking path of the shim's own: when the race cannot
 * run here (the helper thread or the listener cannot be had, out of fds
 * or memory; an fd beyond SHIM_FD_MAX, which the shim cannot track), a
 * real IPv4 address of a dual-stack name is connected as asked, as the
 * kernel would without the shim, and a synthetic one fails at once with
 * the reason's errno (docs/race.md).
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct job {
  int fd;
  dev_t dev;
  ino_t ino;
  char name[256];
  struct sockaddr_in asked;
  shim_race rs;
  ds_happy *h;
  int cancelled;
  int blocking; /* the application's connect() waits (shim__async_wait) */
  int hold;     /* blocking: a private dup of the stand-in, or -1 */
  struct job *next;
} job;

/* Epoll registrations per fd, recorded by the epoll_ctl hook. */
#define EP_MAX 4
typedef struct epreg {
  int n;
  struct {
    int epfd;
    struct epoll_event ev;
  } r[EP_MAX];
} epreg;

static struct {
  pthread_mutex_t lock;
  pid_t pid;     /* the process the thread runs in (0: none) */
  ds_reactor *r; /* the helper thread's */
  ino_t rino;    /* its epoll fd's inode (closefrom() may take it) */
  job *jobs;     /* races running */
  int lfd;       /* the loopback listener with a full queue, or -1 */
  int filler;    /* the connection that fills its queue */
  int hold;      /* holds the stand-in during a swap; else lfd's twin */
  struct sockaddr_in laddr;
  ino_t lino; /* lfd's inode */
} A = {PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
       0,
       NULL,
       0,
       NULL,
       -1,
       -1,
       -1,
       {0},
       0};

/* Helper threads' reactors whose fds went behind the shim's back. */
#define LOST_MAX 4
static ds_reactor *lost_reactors[LOST_MAX];
static unsigned lost_n;
static struct job *lost_jobs;

/* How the last races whose fd no longer held their stand-in ended, by
 * the stand-in's identity: for a blocking connect() waiting on it. */
#define ENDED_MAX 16
static struct {
  dev_t dev;
  ino_t ino;
  int err; /* 0: won */
} ended[ENDED_MAX];
static unsigned ended_next;

/* Epoll registrations by fd, under A.lock (apart from A: zero pages). */
static epreg *eps[SHIM_FD_MAX];

static int still_there(const struct job *j);

/* Returns the inode of the socket under fd (0: none). */
static ino_t ino_of(int fd)
{
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* Forgets private fd (closed behind the shim's back, or by it). */
static void lost(int *fd)
{
  if (*fd >= 0)
    shim__fd_public(*fd);
  *fd = -1;
}

/* Sets up the stand-in listener (once per process, and again when a
 * close the shim never saw took it: glibc's closefrom() makes the
 * close_range system call itself). Returns 0 or -1. */
static int listener_locked(void)
{
  socklen_t len = sizeof A.laddr;
  int err;
  if (A.lfd >= 0 && ino_of(A.lfd) == A.lino && A.lino != 0)
    return 0;
  if (A.lfd >= 0) {
    lost(&A.lfd);
    lost(&A.filler);
    lost(&A.hold);
  }
  A.lfd = ds__sys.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (A.lfd < 0)
    return -1; /* errno: EMFILE, ENFILE, ... */
  A.lfd = ds__move_high(A.lfd);
  memset(&A.laddr, 0, sizeof A.laddr);
  A.laddr.sin_family = AF_INET;
  A.laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (ds__sys.bind(A.lfd, (struct sockaddr *)&A.laddr, sizeof A.laddr) != 0 ||
      ds__sys.listen(A.lfd, 0) != 0 ||
      ds__sys.getsockname(A.lfd, (struct sockaddr *)&A.laddr, &len) != 0)
    goto fail;
  /* With a backlog of 0 the queue holds one connection; once it is there,
   * every further SYN is dropped and its connect stays in progress. */
  A.filler = ds__sys.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (A.filler < 0)
    goto fail;
  A.filler = ds__move_high(A.filler);
  if (ds__sys.connect(A.filler, (struct sockaddr *)&A.laddr, sizeof A.laddr) !=
      0)
    goto fail;
  /* A slot of its own, so that installing a winner needs no new fd: a
   * process out of fds still gets the race it won. */
  A.hold = ds__dup_high(A.lfd);
  if (A.hold < 0)
    goto fail;
  shim__fd_private(A.lfd);
  shim__fd_private(A.filler);
  shim__fd_private(A.hold);
  A.lino = ino_of(A.lfd);
  return 0;
fail:
  err = errno;
  if (A.filler >= 0)
    ds__sys.close(A.filler);
  ds__sys.close(A.lfd);
  A.lfd = A.filler = -1;
  errno = err;
  return -1;
}

/* The helper thread: runs its reactor for good, or until its epoll fd
 * is closed behind the shim's back (a closefrom() system call), when the
 * next race starts another. */
static void *helper(void *arg)
{
  ds_reactor *r = arg;
  int rc;
  for (;;)
    if ((rc = ds_reactor_run_once(r, -1)) < 0) {
      if (rc == -EBADF || rc == -EINVAL)
        return NULL;
      usleep(1000);
    }
  return NULL;
}

/* The helper thread's fds were closed behind the shim's back: its races
 * end with ECONNABORTED on their fds, and the next race starts a new
 * thread. What the old one owned is left (it may still be running). */
static void helper_lost_locked(void)
{
  struct sockaddr sa = {.sa_family = AF_UNSPEC};
  shim_fd e = {0};
  job *j;
  int epfd, wakefd;
  for (j = A.jobs; j != NULL; j = j->next)
    if (!j->cancelled && still_there(j)) {
      j->cancelled = 1;
      e.kind = SHIM_FD_PENDING;
      e.family = AF_INET;
      e.peer = j->asked;
      e.err = ECONNABORTED;
      shim__fd_set(j->fd, &e);
      ds__sys.connect(j->fd, &sa, sizeof sa);
    }
  /* The races stay with the old thread's reactor (not freed: it may
   * still be on its way out), listed so a leak checker knows them. */
  if (A.jobs != NULL) {
    for (j = A.jobs; j->next != NULL; j = j->next) {
    }
    j->next = lost_jobs;
    lost_jobs = A.jobs;
  }
  A.jobs = NULL;
  ds__reactor_fds(A.r, &epfd, &wakefd);
  lost(&epfd);
  lost(&wakefd);
  /* Kept (the old thread may still be on its way out), and known, so a
   * leak checker does not take it for a leak. */
  lost_reactors[lost_n++ % LOST_MAX] = A.r;
  A.r = NULL;
  A.pid = 0;
}

/* In a forked child the thread is gone: the next race starts another.
 * Whatever the parent's thread owned is left as it is (not freed: its
 * state may be half-changed). A.lock is recursive: paths that hold it
 * (a swap) call others that take it (clearing an fd). */
void shim__async_fork(int phase)
{
  ds__fork_mutex(&A.lock, phase, 1);
  if (phase == DS__FORK_CHILD) {
    A.pid = 0;
    A.r = NULL;
    A.jobs = NULL;
  }
}

/* Starts the helper thread if this process has none. Returns 0, or -1 with
 * errno set. */
static int thread_locked(void)
{
  pthread_attr_t attr;
  pthread_t t;
  sigset_t all, old;
  ds_reactor *r;
  int rc;
  if (A.pid == getpid() && A.r != NULL) {
    int epfd, wakefd;
    ds__reactor_fds(A.r, &epfd, &wakefd);
    if (ino_of(epfd) == A.rino)
      return 0;
    helper_lost_locked();
  }
  if ((rc = ds_reactor_new(&r)) != 0) {
    errno = -rc;
    return -1;
  }
  /* The application's signals are not the helper's business. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  rc = pthread_create(&t, &attr, helper, r);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    ds_reactor_free(r);
    errno = rc;
    return -1;
  }
  A.r = r;
  A.pid = getpid();
  {
    int epfd, wakefd;
    ds__reactor_fds(r, &epfd, &wakefd);
    shim__fd_private(epfd);
    shim__fd_private(wakefd);
    A.rino = ino_of(epfd);
  }
  return 0;
}

/* Unlinks j from the running races. */
static void unlink_locked(job *j)
{
  job **p;
  for (p = &A.jobs; *p != NULL; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

/* Returns 1 if fd still holds the stand-in j was started with. */
static int still_there(const struct job *j)
{
  struct stat st;
  return fstat(j->fd, &st) == 0 && st.st_ino == j->ino && st.st_dev == j->dev;
}

/* Puts winner w on j's fd (see the top of the file). Returns 0 or -1. */
static int swap_locked(job *j, int w)
{
  int fd = j->fd, old = A.hold, fdflags, flflags, i;
  struct sockaddr sa = {.sa_family = AF_UNSPEC};
  epreg *ep = fd < SHIM_FD_MAX ? eps[fd] : NULL;
  int readd[EP_MAX];
  shim_fd e = {0};

  fdflags = ds__sys.fcntl(fd, F_GETFD);
  flflags = ds__sys.fcntl(fd, F_GETFL);
  /* The stand-in is kept alive in A.hold (not a new dup, which a process
   * out of fds could not have) until it has woken its waiters. */
  if (fdflags < 0 || flflags < 0 || ds__sys.dup3(fd, old, O_CLOEXEC) < 0)
    return -1;
  /* A registration the record has but epoll does not (the epoll fd was
   * closed, or the fd removed behind the shim) fails to delete: skip. */
  for (i = 0; ep != NULL && i < ep->n; i++)
    readd[i] = ds__sys.epoll_ctl(ep->r[i].epfd, EPOLL_CTL_DEL, fd, NULL) == 0;
  /* The entry first: an application woken by the swap must find it. */
  e.kind = SHIM_FD_CLIENT;
  e.family = shim__sock_int(w, SO_DOMAIN);
  /* Options the application set while the race ran. */
  shim__opt_replay(fd, w, e.family, 0);
  e.peer = j->asked;
  shim__fd_set_as(fd, w, &e);
  if (ds__sys.dup3(w, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
    for (i = 0; ep != NULL && i < ep->n; i++)
      if (readd[i])
        ds__sys.epoll_ctl(ep->r[i].epfd, EPOLL_CTL_ADD, fd, &ep->r[i].ev);
    ds__sys.dup3(A.lfd, old, O_CLOEXEC);
    return -1;
  }
  ds__sys.fcntl(fd, F_SETFL, flflags);
  for (i = 0; ep != NULL && i < ep->n; i++)
    if (readd[i])
      ds__sys.epoll_ctl(ep->r[i].epfd, EPOLL_CTL_ADD, fd, &ep->r[i].ev);
  /* Wake whoever waits on the stand-in; they find the winner. */
  ds__sys.connect(old, &sa, sizeof sa);
  ds__sys.dup3(A.lfd, old, O_CLOEXEC); /* lets the stand-in go */
  return 0;
}

/* The race failed (or its winner could not be installed): the stand-in is
 * disconnected, which wakes the application, and SO_ERROR will say err. */
static void fail_locked(job *j, int err)
{
  struct sockaddr sa = {.sa_family = AF_UNSPEC};
  shim_fd e = {0};
  e.kind = SHIM_FD_PENDING;
  e.family = AF_INET;
  e.peer = j->asked;
  e.err = err;
  shim__fd_set(j->fd, &e);
  ds__sys.connect(j->fd, &sa, sizeof sa);
}

/* Traces the end of a race run for fd. */
static void trace_end(job *j, int err)
{
  struct sockaddr_in *sin = &j->asked;
  if (shim__cfg.trace_fd < 0)
    return;
  shim__race_trace_rest(&j->rs);
  {
    shim_json js;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    shim__json_begin(&js, "connect", j->rs.id);
    shim__json_host(&js, "name", j->name);
    shim__json_str(&js, "addr", text);
    shim__json_int(&js, "port", ntohs(sin->sin_port));
    shim__json_str(&js, "family", "ipv4");
    shim__json_str(&js, "result", shim__errname(err));
    if (!j->blocking)
      shim__json_bool(&js, "nonblocking", 1);
    shim__json_num(&js, "ms", ds__mono_ms() - j->rs.t0);
    shim__json_emit(&js);
  }
}

/* Frees j, with its private dup of the stand-in. */
static void job_free(job *j)
{
  if (j->hold >= 0) {
    shim__fd_public(j->hold);
    ds__sys.close(j->hold);
  }
  free(j);
}

/* A race whose fd no longer holds its stand-in (a dup2 over it, a close
 * the shim never saw) ended with err (0: won): noted for a connect()
 * still waiting on the stand-in, which is disconnected to wake it. */
static void ended_locked(job *j, int err)
{
  struct sockaddr sa = {.sa_family = AF_UNSPEC};
  if (j->hold < 0)
    return;
  ended[ended_next % ENDED_MAX].dev = j->dev;
  ended[ended_next % ENDED_MAX].ino = j->ino;
  ended[ended_next % ENDED_MAX].err = err;
  ended_next++;
  ds__sys.connect(j->hold, &sa, sizeof sa);
}

static void on_done(ds_happy *h, int w, int err, void *user)
{
  job *j = (job *)((char *)user - offsetof(job, rs));
  int e = w >= 0 ? 0 : shim__race_errno(err);
  (void)h;
  /* j stays on the list until its result is on the fd: a blocking
   * connect waiting in shim__async_wait() looks there. */
  pthread_mutex_lock(&A.lock);
  if (j->cancelled || !still_there(j))
    goto drop;
  /* Traced before the application is woken (it may exit at once), and
   * not under the lock (the trace may be a slow pipe). */
  pthread_mutex_unlock(&A.lock);
  trace_end(j, e);
  pthread_mutex_lock(&A.lock);
  if (j->cancelled || !still_there(j))
    goto drop;
  if (w >= 0 && swap_locked(j, w) != 0) {
    e = errno != 0 ? errno : EIO;
    trace_end(j, e);
  }
  if (w >= 0)
    ds__sys.close(w);
  if (e != 0)
    fail_locked(j, e);
  unlink_locked(j);
  pthread_mutex_unlock(&A.lock);
  job_free(j);
  return;
drop:
  if (w >= 0)
    ds__sys.close(w);
  if (!j->cancelled)
    ended_locked(j, e);
  unlink_locked(j);
  pthread_mutex_unlock(&A.lock);
  shim__race_trace_rest(&j->rs);
  job_free(j);
}

/* On the helper thread: starts j's race. */
static void start_job(void *arg)
{
  job *j = arg;
  int rc;
  pthread_mutex_lock(&A.lock);
  if (j->cancelled) {
    unlink_locked(j);
    pthread_mutex_unlock(&A.lock);
    job_free(j);
    return;
  }
  pthread_mutex_unlock(&A.lock);
  rc = ds_happy_start(A.r, j->name, ntohs(j->asked.sin_port), &j->rs.o, on_done,
                      shim__race_event, &j->rs, &j->h, NULL, 0);
  if (rc != 0)
    on_done(NULL, -1, rc, &j->rs);
}

/* On the helper thread: cancels the races whose fd was closed. */
static void sweep_cancelled(void *arg)
{
  job *j, *next, *dead = NULL;
  (void)arg;
  pthread_mutex_lock(&A.lock);
  for (j = A.jobs; j != NULL; j = next) {
    next = j->next;
    if (j->cancelled && j->h != NULL) {
      unlink_locked(j);
      j->next = dead;
      dead = j;
    }
  }
  pthread_mutex_unlock(&A.lock);
  for (j = dead; j != NULL; j = next) {
    next = j->next;
    ds_happy_cancel(j->h);
    shim__race_trace_rest(&j->rs);
    job_free(j);
  }
}

/* Connects the stand-in fd to the listener without waiting, whatever
 * fd's O_NONBLOCK (a blocking fd has it for the one call). Returns as
 * connect() does: -1 with EINPROGRESS when the stand-in is in place. */
static int stand_in(int fd)
{
  int fl = ds__sys.fcntl(fd, F_GETFL), rc, err;
  if (fl < 0)
    return -1;
  if (!(fl & O_NONBLOCK) && ds__sys.fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
    return -1;
  rc = ds__sys.connect(fd, (struct sockaddr *)&A.laddr, sizeof A.laddr);
  err = errno;
  if (!(fl & O_NONBLOCK))
    ds__sys.fcntl(fd, F_SETFL, fl);
  errno = err;
  return rc;
}

int shim__async_connect(int fd, const char *name,
                        const struct sockaddr_in *asked, unsigned long id,
                        int blocking, int *started)
{
  struct stat st;
  shim_fd e = {0};
  job *j;
  int rc, err;

  *started = 0;
  /* Beyond the fd table the shim could not keep the race's state or
   * show the winner as IPv4: no race, and no pool address out. */
  if (fd >= SHIM_FD_MAX)
    return shim__connect_as_asked(fd, asked, -ENETUNREACH);
  j = calloc(1, sizeof *j);
  if (j == NULL)
    return shim__connect_as_asked(fd, asked, -ENOMEM);
  j->hold = -1;
  if (shim__race_setup(&j->rs, fd) != 0) {
    free(j);
    return -1;
  }
  j->fd = fd;
  j->blocking = blocking;
  j->asked = *asked;
  j->rs.id = id;
  snprintf(j->name, sizeof j->name, "%s", name);
  pthread_mutex_lock(&A.lock);
  if (thread_locked() != 0 || listener_locked() != 0)
    goto no_race;
  /* The stand-in: the application's socket, connecting for as long as
   * the race runs. */
  rc = stand_in(fd);
  if (rc == 0 || errno != EINPROGRESS) {
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    err = errno;
    if (rc == 0)
      ds__sys.connect(fd, &sa, sizeof sa);
    errno = rc == 0 ? EIO : err;
    goto no_race;
  }
  if (fstat(fd, &st) != 0) {
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    err = errno;
    ds__sys.connect(fd, &sa, sizeof sa); /* the stand-in goes */
    errno = err;
    goto no_race;
  }
  j->dev = st.st_dev;
  j->ino = st.st_ino;
  /* A blocking connect waits on the stand-in: if the fd stops holding
   * it (a dup2 over it), the race still has it to wake the waiter. */
  j->hold = blocking ? ds__dup_high(fd) : -1;
  if (j->hold >= 0)
    shim__fd_private(j->hold);
  e.kind = SHIM_FD_PENDING;
  e.family = AF_INET;
  e.peer = *asked;
  shim__fd_set(fd, &e);
  j->next = A.jobs;
  A.jobs = j;
  if ((rc = ds_reactor_call_threadsafe(A.r, start_job, j)) != 0) {
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    unlink_locked(j);
    shim__fd_clear(fd);
    ds__sys.connect(fd, &sa, sizeof sa); /* the stand-in goes */
    errno = rc < 0 ? -rc : ENOMEM;
    goto no_race;
  }
  pthread_mutex_unlock(&A.lock);
  *started = 1;
  errno = EINPROGRESS;
  return -1;
no_race:
  err = errno;
  pthread_mutex_unlock(&A.lock);
  job_free(j);
  return shim__connect_as_asked(fd, asked, -err);
}

/* Notices a helper thread whose fds were closed behind the shim's back
 * (helper_lost_locked): its races will never end. */
static void helper_check_locked(void)
{
  int epfd, wakefd;
  if (A.r == NULL || A.pid != getpid())
    return;
  ds__reactor_fds(A.r, &epfd, &wakefd);
  if (ino_of(epfd) != A.rino)
    helper_lost_locked();
}

/* Returns the fd a connect() waiting for the race of the stand-in
 * (dev, ino) waits on: fd while it holds the stand-in, else the race's
 * own dup of it; -1 when no race of that stand-in runs. */
static int wait_on(dev_t dev, ino_t ino, int fd)
{
  job *j;
  int w = -1;
  pthread_mutex_lock(&A.lock);
  helper_check_locked();
  for (j = A.jobs; j != NULL; j = j->next)
    if (j->dev == dev && j->ino == ino && !j->cancelled) {
      w = still_there(j) ? fd : j->hold;
      break;
    }
  pthread_mutex_unlock(&A.lock);
  return w;
}

int shim__async_running(int fd)
{
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 &&
         wait_on(st.st_dev, st.st_ino, fd) >= 0;
}

/* Returns 1 and sets *err if the race of stand-in (dev, ino) ended
 * after its fd stopped holding it. */
static int ended_as(dev_t dev, ino_t ino, int *err)
{
  unsigned i;
  int found = 0;
  pthread_mutex_lock(&A.lock);
  for (i = 0; i < ENDED_MAX && !found; i++)
    if (ended[i].ino == ino && ended[i].dev == dev && ino != 0) {
      *err = ended[i].err;
      found = 1;
    }
  pthread_mutex_unlock(&A.lock);
  return found;
}

int shim__async_wait(int fd, int first)
{
  /* An address no AF_INET socket takes: on the stand-in, connecting,
   * the kernel ignores it and waits as for the application's own
   * blocking connect (signals, SA_RESTART and SO_SNDTIMEO as it applies
   * them to connect); on a stand-in the race has disconnected it fails
   * at once (EAFNOSUPPORT) instead of starting a new connection; on a
   * winner it marks the socket connected. */
  static const struct sockaddr_in6 nowhere = {.sin6_family = AF_INET6};
  struct stat st;
  int rearmed = 0, w, err;
  shim_fd e;
  if (fstat(fd, &st) != 0)
    return -1; /* EBADF */
  while ((w = wait_on(st.st_dev, st.st_ino, fd)) >= 0) {
    if (ds__sys.connect(w, (const struct sockaddr *)&nowhere,
                        sizeof(struct sockaddr_in)) == 0)
      continue;
    switch (errno) {
    case EINTR:
      return -1; /* the race goes on */
    case EALREADY:
      /* SO_SNDTIMEO ran out: the kernel says EINPROGRESS to the connect
       * that started the connection, EALREADY to a later one. */
      if (wait_on(st.st_dev, st.st_ino, fd) < 0)
        continue;
      errno = first ? EINPROGRESS : EALREADY;
      return -1;
    case EAFNOSUPPORT:
      /* The stand-in was disconnected while the race runs: the kernel
       * gave up on it after its SYN retries (connected again), or its
       * listener is gone (closed behind the shim's back: the race is
       * given up). */
      if (++rearmed > 3) {
        shim__fd_clear(fd);
        errno = ECONNABORTED;
        return -1;
      }
      pthread_mutex_lock(&A.lock);
      if (wait_on(st.st_dev, st.st_ino, fd) == w)
        stand_in(w);
      pthread_mutex_unlock(&A.lock);
      continue;
    default:
      continue; /* woken: the race ended, or the fd changed */
    }
  }
  if (shim__fd_get(fd, &e) && e.kind == SHIM_FD_PENDING && e.err != 0) {
    /* Reported once, as the kernel reports a failed connect; the
     * stand-in's own error (ECONNRESET from its disconnection) is taken,
     * so SO_ERROR and poll() say what the kernel's would. */
    int ignored;
    socklen_t l = sizeof ignored;
    ds__sys.getsockopt(fd, SOL_SOCKET, SO_ERROR, &ignored, &l);
    shim__fd_clear(fd);
    /* No attempt could have a socket: a real address is connected as
     * asked on the application's own, which needs no fd. */
    if (e.err == EMFILE || e.err == ENFILE)
      return shim__connect_as_asked(fd, &e.peer, -e.err);
    errno = e.err;
    return -1;
  }
  if (shim__fd_get(fd, &e) && e.kind == SHIM_FD_CLIENT) {
    /* As after the kernel's blocking connect: the next one says
     * EISCONN. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (ds__sys.getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
      ds__sys.connect(fd, (struct sockaddr *)&ss, sl);
    return 0;
  }
  /* The fd no longer holds the stand-in: closed (EBADF, as the kernel
   * says to a connect on it), or replaced by another socket (a dup2 over
   * it): the race's result, as the kernel's connect on the socket it
   * started with would give, when the race ended. */
  if (ds__sys.fcntl(fd, F_GETFD) < 0)
    return -1;
  {
    /* Or a copy of the stand-in (a dup) whose race put its winner on the
     * fd it was started for: the stand-in was disconnected. */
    struct stat now;
    if (fstat(fd, &now) == 0 && now.st_ino == st.st_ino &&
        now.st_dev == st.st_dev) {
      shim__fd_clear(fd);
      errno = ECONNRESET;
      return -1;
    }
  }
  if (ended_as(st.st_dev, st.st_ino, &err)) {
    if (err == 0)
      return 0;
    errno = err;
    return -1;
  }
  errno = ECONNABORTED;
  return -1;
}

/* Returns an fd whose race runs and which an exec would pass on (no
 * FD_CLOEXEC), or -1. */
static int inherited_race(void)
{
  job *j;
  int fd = -1, fl;
  pthread_mutex_lock(&A.lock);
  for (j = A.pid == getpid() ? A.jobs : NULL; j != NULL && fd < 0; j = j->next)
    if (!j->cancelled && still_there(j) &&
        (fl = ds__sys.fcntl(j->fd, F_GETFD)) >= 0 && !(fl & FD_CLOEXEC))
      fd = j->fd;
  pthread_mutex_unlock(&A.lock);
  return fd;
}

void shim__async_settle(unsigned ms)
{
  uint64_t end = ds__mono_ms_u64() + ms, now;
  struct pollfd p;
  int fd;
  if (A.jobs == NULL || !shim__enter())
    return; /* no race (read unlocked: a hint), or inside a hook */
  while ((fd = inherited_race()) >= 0 && (now = ds__mono_ms_u64()) < end) {
    /* The stand-in wakes when the race puts its result on the fd. */
    p.fd = fd;
    p.events = POLLOUT;
    poll(&p, 1, end - now < 50 ? (int)(end - now) : 50);
  }
  shim__leave();
}

void shim__async_cancel(int fd)
{
  struct sockaddr sa = {.sa_family = AF_UNSPEC};
  job *j;
  int any = 0;
  pthread_mutex_lock(&A.lock);
  for (j = A.jobs; j != NULL; j = j->next)
    if (j->fd == fd && !j->cancelled && still_there(j)) {
      j->cancelled = 1;
      any = 1;
      /* Copies of the stand-in elsewhere (a dup, a forked child's fd)
       * would otherwise stay connecting to the listener until the
       * kernel gives up (about 127 s): disconnected, they report
       * ECONNRESET at once. */
      ds__sys.connect(fd, &sa, sizeof sa);
    }
  if (any && A.r != NULL && A.pid == getpid())
    ds_reactor_call_threadsafe(A.r, sweep_cancelled, NULL);
  pthread_mutex_unlock(&A.lock);
}

void shim__epoll_record(int epfd, int op, int fd, const struct epoll_event *ev)
{
  epreg *ep;
  int i;
  if (fd < 0 || fd >= SHIM_FD_MAX)
    return;
  pthread_mutex_lock(&A.lock);
  ep = eps[fd];
  for (i = 0; ep != NULL && i < ep->n; i++)
    if (ep->r[i].epfd == epfd)
      break;
  if (op == EPOLL_CTL_DEL) {
    if (ep != NULL && i < ep->n)
      ep->r[i] = ep->r[--ep->n];
    goto done;
  }
  if (ev == NULL)
    goto done;
  if (ep == NULL && (ep = eps[fd] = calloc(1, sizeof *ep)) == NULL)
    goto done;
  if (i == ep->n) {
    if (ep->n == EP_MAX)
      goto done; /* more epoll sets than kept: this one is not moved */
    ep->n++;
  }
  ep->r[i].epfd = epfd;
  ep->r[i].ev = *ev;
  shim__fd_mark(fd);
done:
  pthread_mutex_unlock(&A.lock);
}

void shim__epoll_forget(int fd)
{
  if (fd < 0 || fd >= SHIM_FD_MAX)
    return;
  /* The record stays allocated for the next fd of that number. */
  pthread_mutex_lock(&A.lock);
  if (eps[fd] != NULL)
    eps[fd]->n = 0;
  pthread_mutex_unlock(&A.lock);
}

int shim__epoll_carry(int fd, int (*swap)(int fd, void *arg), void *arg)
{
  epreg saved;
  sigset_t all, old;
  int readd[EP_MAX], i, rc, err;
  memset(&saved, 0, sizeof saved);
  /* No signal handler runs in the middle of the swap: one that closes
   * or dups fd would land between the dup3 and the registrations. (Rare:
   * a narrowing, not the pass-through path.) */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_mutex_lock(&A.lock);
  if (fd >= 0 && fd < SHIM_FD_MAX && eps[fd] != NULL)
    saved = *eps[fd];
  /* Deleted first, as a race's swap does: the old description may live
   * on (a dup elsewhere), and its registration under this number would
   * then report for a socket the fd no longer holds. A registration the
   * record has but epoll does not fails to delete: it is not added. */
  for (i = 0; i < saved.n; i++)
    readd[i] = ds__sys.epoll_ctl(saved.r[i].epfd, EPOLL_CTL_DEL, fd, NULL) == 0;
  rc = swap(fd, arg);
  err = errno;
  /* Added back whether the swap worked or not: on failure the old socket
   * is still there, or a socket of the same number that the application
   * believes is the one it registered. */
  for (i = 0; i < saved.n; i++)
    if (readd[i])
      ds__sys.epoll_ctl(saved.r[i].epfd, EPOLL_CTL_ADD, fd, &saved.r[i].ev);
  /* The swap may have forgotten fd (a narrowing clears its entry). */
  if (saved.n > 0 && eps[fd] != NULL) {
    *eps[fd] = saved;
    shim__fd_mark(fd);
  }
  pthread_mutex_unlock(&A.lock);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return rc;
}

void shim__async_lock(void)
{
  pthread_mutex_lock(&A.lock);
}

void shim__async_unlock(void)
{
  pthread_mutex_unlock(&A.lock);
}
