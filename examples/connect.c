/* Connects to HOST PORT by Happy Eyeballs and says which address won.
 * cc connect.c $(pkg-config --cflags --libs dualstack) -o connect */
#include <dualstack.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void on_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  char a[DS_ADDR_STRLEN];
  if (ev->type != DS_HE_RESULT)
    return;
  ds_addr_format(&ev->addr, a, sizeof a, DS_ADDR_FMT_PORT);
  printf("+%.1f ms %s %s\n", ev->t_ms, a,
         ev->result == 0 ? "connected" : ds_err_name(ev->result));
}

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  *(int *)user = fd >= 0 ? 0 : 1;
  if (fd >= 0)
    close(fd); /* a connected, non-blocking socket: ours to use */
  else
    fprintf(stderr, "failed: %s\n", ds_strerror(err));
}

int main(int argc, char **argv)
{
  ds_reactor *r;
  ds_happy *h;
  ds_happy_opts o = {0}; /* defaults: IPv6 first, 250 ms attempt delay */
  char err[256];
  int status = -1;

  if (argc != 3)
    return 64;
  ds_reactor_new(&r);
  if (ds_happy_start(r, argv[1], (uint16_t)atoi(argv[2]), &o, on_done,
                     on_event, &status, &h, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  while (status < 0)
    ds_reactor_run_once(r, -1);
  ds_reactor_free(r);
  return status;
}
