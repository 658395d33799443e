/* UDP echo server on libdualstack: datagram_received writes each datagram
 * back to its source with ds_udp_write() (sent at once; copied to the
 * port's send queue only when the socket has no room).
 *
 *   udp_ds [ADDR [PORT]]       default 127.0.0.1, port 0 (picked)
 *
 * Prints "port N" once bound; runs until killed. */
#include "dualstack.h"

#include "bench.h"

static void on_dgram(ds_udp *u, const void *data, size_t len,
                     const ds_addr *from, void *user)
{
  (void)user;
  ds_udp_write(u, data, len, from);
}

static const ds_udp_protocol echo = {.datagram_received = on_dgram};

int main(int argc, char **argv)
{
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1";
  long port = argc > 2 ? bench_num(argv[2], "port") : 0;
  ds_reactor *r;
  ds_udp *u;
  ds_addr host;
  char err[256];

  if (ds_reactor_new(&r) != 0)
    return 70;
  if (ds_listen_udp(r, (uint16_t)port, addr, 0, 0, &echo, NULL, &u, err,
                    sizeof err) != 0) {
    fprintf(stderr, "udp_ds: %s\n", err);
    return 70;
  }
  ds_udp_get_host(u, &host);
  bench_announce_port(host.port);
  return ds_reactor_run(r) == 0 ? 0 : 70;
}
