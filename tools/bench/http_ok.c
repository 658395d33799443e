/* A tiny HTTP server for the Happy Eyeballs benchmark, so that curl has
 * something to talk to: answers any request with "204 No Content" and
 * closes. Listens on [::] with IPV6_V6ONLY off, so one socket serves both
 * families.
 *
 *   http_ok PORT
 *
 * Prints "port N" once listening; runs until killed. */
#include "dualstack.h"

#include "bench.h"

static const char reply[] =
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

static void on_data(ds_tcp *t, const void *data, size_t len, void *user)
{
  (void)data;
  (void)len;
  (void)user;
  /* Any bytes mean a request began: curl sends it in one piece. */
  if (ds_tcp_write(t, reply, sizeof reply - 1) == 0)
    ds_tcp_lose_connection(t);
}

static const ds_protocol http = {.data_received = on_data};

static int factory(void *data, ds_tcp *t, const ds_protocol **p, void **user)
{
  (void)data;
  (void)t;
  *p = &http;
  *user = NULL;
  return 0;
}

int main(int argc, char **argv)
{
  long port = argc > 1 ? bench_num(argv[1], "port") : 0;
  ds_reactor *r;
  ds_listener *l;
  ds_addr host;
  char err[256];

  if (ds_reactor_new(&r) != 0)
    return 70;
  if (ds_listen_tcp(r, (uint16_t)port, "::", 0, DS_LISTEN_DUALSTACK, factory,
                    NULL, &l, err, sizeof err) != 0) {
    fprintf(stderr, "http_ok: %s\n", err);
    return 70;
  }
  ds_listener_get_host(l, &host);
  bench_announce_port(host.port);
  return ds_reactor_run(r) == 0 ? 0 : 70;
}
