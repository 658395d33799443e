/* TCP echo server on libdualstack, written the way the README shows: a
 * protocol whose data_received writes the bytes back, with the documented
 * backpressure (pause reading while the write buffer is above the high
 * watermark).
 *
 *   echo_ds [ADDR [PORT]]      default 127.0.0.1, port 0 (picked)
 *
 * Prints "port N" once listening; runs until killed. */
#include "dualstack.h"

#include "bench.h"

static void on_made(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_set_nodelay(t, 1);
}

static void on_data(ds_tcp *t, const void *data, size_t len, void *user)
{
  (void)user;
  ds_tcp_write(t, data, len);
}

static void on_pause(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_pause_reading(t);
}

static void on_resume(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_resume_reading(t);
}

static const ds_protocol echo = {
    .connection_made = on_made,
    .data_received = on_data,
    .pause_producing = on_pause,
    .resume_producing = on_resume,
};

static int factory(void *data, ds_tcp *t, const ds_protocol **p, void **user)
{
  (void)data;
  (void)t;
  *p = &echo;
  *user = NULL;
  return 0;
}

int main(int argc, char **argv)
{
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1";
  long port = argc > 2 ? bench_num(argv[2], "port") : 0;
  ds_reactor *r;
  ds_listener *l;
  ds_addr host;
  char err[256];
  int rc;

  if (ds_reactor_new(&r) != 0)
    return 70;
  rc = ds_listen_tcp(r, (uint16_t)port, addr, 0, 0, factory, NULL, &l, err,
                     sizeof err);
  if (rc != 0) {
    fprintf(stderr, "echo_ds: %s\n", err);
    return 70;
  }
  ds_listener_get_host(l, &host);
  bench_announce_port(host.port);
  return ds_reactor_run(r) == 0 ? 0 : 70;
}
