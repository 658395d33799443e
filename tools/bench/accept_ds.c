/* Accept-rate server for the aggregate listening port benchmark: greets
 * every connection with one byte and closes when the client does.
 *
 *   accept_ds all [PORT]   the all-interfaces server endpoint
 *                          (ds_listen_all): one listener per local address
 *   accept_ds any [PORT]   one ds_listen_tcp() listener on 0.0.0.0
 *
 * The same protocol serves both, so the two differ only in how they
 * listen. Prints "port N" once listening (and, for `all`, one "bound ADDR"
 * line per address on stderr); runs until killed. */
#include "dualstack.h"

#include "bench.h"

static void on_made(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_write(t, "+", 1);
}

static void on_data(ds_tcp *t, const void *data, size_t len, void *user)
{
  (void)t;
  (void)data;
  (void)len;
  (void)user;
}

static const ds_protocol greet = {
    .connection_made = on_made,
    .data_received = on_data,
};

static int factory(void *data, ds_tcp *t, const ds_protocol **p, void **user)
{
  (void)data;
  (void)t;
  *p = &greet;
  *user = NULL;
  return 0;
}

int main(int argc, char **argv)
{
  long port = argc > 2 ? bench_num(argv[2], "port") : 0;
  ds_reactor *r;
  char err[256];
  int rc;

  if (argc < 2 || (strcmp(argv[1], "all") && strcmp(argv[1], "any"))) {
    fprintf(stderr, "usage: accept_ds all|any [PORT]\n");
    return 64;
  }
  if (ds_reactor_new(&r) != 0)
    return 70;
  if (strcmp(argv[1], "all") == 0) {
    ds_server *s;
    ds_server_addr a[64];
    size_t i, n;
    rc = ds_listen_all(r, (uint16_t)port, NULL, factory, NULL, &s, err,
                       sizeof err);
    if (rc != 0)
      goto fail;
    n = ds_server_addrs(s, DS_SERVER_BOUND, a, 64);
    for (i = 0; i < n && i < 64; i++)
      fprintf(stderr, "bound %s\n", a[i].text);
    bench_announce_port(ds_server_port(s));
  } else {
    ds_listener *l;
    ds_addr host;
    rc = ds_listen_tcp(r, (uint16_t)port, "0.0.0.0", 0, 0, factory, NULL, &l,
                       err, sizeof err);
    if (rc != 0)
      goto fail;
    ds_listener_get_host(l, &host);
    bench_announce_port(host.port);
  }
  return ds_reactor_run(r) == 0 ? 0 : 70;
fail:
  fprintf(stderr, "accept_ds: %s\n", err);
  return 70;
}
