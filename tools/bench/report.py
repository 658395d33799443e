#!/usr/bin/python3
"""Writes tools/bench/README.md from the results of tools/bench/run.sh.

    report.py RESULTS.tsv MACHINE.tsv > README.md

RESULTS has one line per run: SECTION CASE CONTENDER VALUE (tab-separated).
MACHINE has KEY VALUE lines. Every figure is the median of its runs, with
min and max; ratios are of medians, and for the rates also the median of
the ratios within each round (targets on rates are judged on that one).
tools/bench/notes.md, when
present, is appended (hand-written findings that outlive a run).
"""
import math
import os
import statistics
import sys
from collections import defaultdict


def load(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            try:
                runs[tuple(parts[:3])].append(float(parts[3]))
            except ValueError:
                pass
    return runs


def machine(path):
    info = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            info[k] = v
    return info


RUNS = {}


def med(section, case, who):
    v = RUNS.get((section, case, who))
    return statistics.median(v) if v else None


def fmt_num(x, unit):
    if x is None:
        return "n/a"
    if unit == "us":
        return "%.2f" % x
    if unit == "ms":
        if x >= 100:
            return "%.1f" % x
        return "%.2f" % x if x >= 1 else "%.3f" % x
    return "{:,.0f}".format(x)


def cell(section, case, who, unit=""):
    v = RUNS.get((section, case, who))
    if not v:
        return "n/a"
    return "%s (%s–%s)" % (fmt_num(statistics.median(v), unit),
                           fmt_num(min(v), unit), fmt_num(max(v), unit))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r, digits=2):
    """Rounded down, so that a ratio below 1 never shows as 1.00x."""
    if r is None:
        return "n/a"
    scale = 10 ** digits
    return "%.*fx" % (digits, math.floor(r * scale + 1e-9) / scale)


TARGETS = []


def target(name, ok, detail):
    if ok is None:
        TARGETS.append((name, "not measured", detail))
    else:
        TARGETS.append((name, "met" if ok else "**missed**", detail))


def rate_target(name, at_least, r, p, context):
    """A rate target, judged on the median of the ratios within each round
    (p, from paired()) where there is one, as part 6 is, the ratio of the
    medians (r) shown beside it: the contenders' slices of a round are a
    second apart, so the machine's other work, which comes and goes for
    seconds at a time, weighs on both alike."""
    j = p[0] if p is not None else r
    detail = "per round %s, ratio of medians %s%s" % (
        fmt_paired(p, False, 3), fmt_ratio(r, 3), context)
    target(name + " (per round)", None if j is None else j >= at_least,
           detail)


def why(section, case, ds, peer):
    """Context for a rate target: the peer's CPU time per operation over
    libdualstack's (above 1: libdualstack is cheaper), and how busy each
    server was (well below 100%: the load, not the server, set the rate)."""
    parts = []
    c = ratio(med(section + "_cpu", case, peer), med(section + "_cpu", case,
                                                     ds))
    if c is not None:
        parts.append("CPU per op, peer/ds %s" % fmt_ratio(c))
    ud, up = med(section + "_util", case, ds), med(section + "_util", case,
                                                    peer)
    if ud is not None and up is not None:
        parts.append("busy %.0f%% / %.0f%%" % (100 * ud, 100 * up))
    return " (%s)" % "; ".join(parts) if parts else ""


def cpu_rows(out, section, rows, whos, labels, what):
    """A table of the server's CPU microseconds per operation (from
    /proc/PID/schedstat over each slice), with the share of the slice the
    server ran: what each contender costs, whatever share of the core the
    shared machine left it, and whether the server was the bottleneck."""
    out.append("Server CPU time per %s, microseconds, median (min–max), and "
               "the median share of a slice the server was running (busy): "
               "lower CPU time is cheaper whatever the machine's other work "
               "left the server; a server busy well below 100%% was not "
               "the bottleneck (the load, or the machine, was). The last "
               "column is the load generator's own CPU time per %s, "
               "median over every slice:\n" % (what, what))
    head = "| case | " + " | ".join(labels) + " | " + " | ".join(
        "%s / %s" % (l, labels[0]) for l in labels[1:]) + " | load |"
    out.append(head)
    out.append("|---" + "|---:" * (2 * len(labels)) + "|")
    for case, label in rows:
        ds = med(section + "_cpu", case, whos[0])
        cells = []
        for w in whos:
            c = cell(section + "_cpu", case, w, "us")
            u = med(section + "_util", case, w)
            if u is not None:
                c += ", busy %.0f%%" % (100 * u)
            cells.append(c)
        rats = [fmt_ratio(ratio(med(section + "_cpu", case, w), ds))
                for w in whos[1:]]
        loads = [x for w in whos
                 for x in RUNS.get((section + "_load", case, w), [])]
        load = ("%.2f" % statistics.median(loads)) if loads else "n/a"
        out.append("| %s | %s | %s | %s |" % (label, " | ".join(cells),
                                              " | ".join(rats), load))
    out.append("")


def tcp_section(out):
    out.append("## 1. TCP echo: libdualstack, libuv, libevent\n")
    out.append("One load generator (`echo_load`, C, epoll) drives each "
               "server in turn on 127.0.0.1. Ping-pong: every connection "
               "sends one message and waits for all of it to come back "
               "before sending the next. Round trips per second, median "
               "(min–max):\n")
    out.append("| connections | message | libdualstack | libuv | libevent "
               "| ds / libuv | the same, per round | ds / libevent | the "
               "same, per round |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst_uv = worst_ev = None
    for conns in ("1", "100", "1000"):
        for size in ("64", "16384"):
            case = conns + "/" + size
            ds, uv, ev = (med("tcp_rtps", case, w) for w in ("ds", "uv", "ev"))
            ru, re_ = ratio(ds, uv), ratio(ds, ev)
            pu = paired("tcp_rtps_round", case, "ds", "uv")
            pe = paired("tcp_rtps_round", case, "ds", "ev")
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                conns, "64 B" if size == "64" else "16 KiB",
                cell("tcp_rtps", case, "ds"), cell("tcp_rtps", case, "uv"),
                cell("tcp_rtps", case, "ev"), fmt_ratio(ru),
                fmt_paired(pu, False), fmt_ratio(re_),
                fmt_paired(pe, False)))
            rate_target("TCP round trips, %s connections, %s: >= 1.0x "
                        "libuv" % (conns, "64 B" if size == "64" else
                                   "16 KiB"), 1.0, ru, pu,
                        why("tcp_rtps", case, "ds", "uv"))
            rate_target("TCP round trips, %s connections, %s: >= "
                        "libevent" % (conns, "64 B" if size == "64" else
                                      "16 KiB"), 1.0, re_, pe,
                        why("tcp_rtps", case, "ds", "ev"))
    out.append("")
    cpu_rows(out, "tcp_rtps",
             [(c + "/" + z, "%s conn, %s" % (c, "64 B" if z == "64" else
                                              "16 KiB"))
              for c in ("1", "100", "1000") for z in ("64", "16384")],
             ("ds", "uv", "ev"), ("libdualstack", "libuv", "libevent"),
             "round trip")
    ds, uv, ev = (med("tcp_cps", "32/64", w) for w in ("ds", "uv", "ev"))
    out.append("New connections per second (32 at a time; each connects, "
               "echoes 64 bytes and closes):\n")
    pu = paired("tcp_cps_round", "32/64", "ds", "uv")
    pe = paired("tcp_cps_round", "32/64", "ds", "ev")
    out.append("| libdualstack | libuv | libevent | ds / libuv | the same, "
               "per round | ds / libevent | the same, per round |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    out.append("| %s | %s | %s | %s | %s | %s | %s |\n" % (
        cell("tcp_cps", "32/64", "ds"), cell("tcp_cps", "32/64", "uv"),
        cell("tcp_cps", "32/64", "ev"), fmt_ratio(ratio(ds, uv)),
        fmt_paired(pu, False), fmt_ratio(ratio(ds, ev)),
        fmt_paired(pe, False)))
    cpu_rows(out, "tcp_cps", [("32/64", "new connection")],
             ("ds", "uv", "ev"), ("libdualstack", "libuv", "libevent"),
             "connection")
    rate_target("TCP new connections per second: >= 1.0x libuv", 1.0,
                ratio(ds, uv), pu, why("tcp_cps", "32/64", "ds", "uv"))
    rate_target("TCP new connections per second: >= libevent", 1.0,
                ratio(ds, ev), pe, why("tcp_cps", "32/64", "ds", "ev"))
    idle = INFO.get("idle", "10000")
    ds, uv, ev = (med("tcp_mem", idle, w) for w in ("ds", "uv", "ev"))
    out.append("Server resident memory per idle connection, %s connections "
               "(each made one 64-byte round trip; VmRSS after minus before, "
               "divided by the count), bytes:\n" % "{:,}".format(int(idle)))
    out.append("| libdualstack | libuv | libevent | ds / libuv |")
    out.append("|---:|---:|---:|---:|")
    out.append("| %s | %s | %s | %s |\n" % (
        cell("tcp_mem", idle, "ds"), cell("tcp_mem", idle, "uv"),
        cell("tcp_mem", idle, "ev"), fmt_ratio(ratio(ds, uv))))
    r = ratio(ds, uv)
    target("TCP memory per idle connection: <= libuv's",
           None if r is None else r <= 1.0,
           "%s vs %s bytes" % (fmt_num(ds, ""), fmt_num(uv, "")))


def udp_section(out):
    out.append("## 2. UDP echo: libdualstack and libuv\n")
    out.append("`udp_load` keeps 4 connected sockets x 16 datagrams in "
               "flight to the echo server on 127.0.0.1 (batched with "
               "`recvmmsg`/`sendmmsg`, so the server's core is the "
               "bottleneck). Echoed datagrams per second, median (min–max). "
               "libuv's `UV_UDP_RECVMMSG` (opt-in batch receive) is shown "
               "too; the target is against libuv as it comes.\n")
    out.append("| datagram | libdualstack | libuv | libuv + RECVMMSG | "
               "ds / libuv | the same, per round | ds / libuv + RECVMMSG |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for size in ("64", "1400"):
        ds, uv, um = (med("udp_dps", size, w) for w in ("ds", "uv", "uvmmsg"))
        pu = paired("udp_dps_round", size, "ds", "uv")
        out.append("| %s B | %s | %s | %s | %s | %s | %s |" % (
            size, cell("udp_dps", size, "ds"), cell("udp_dps", size, "uv"),
            cell("udp_dps", size, "uvmmsg"), fmt_ratio(ratio(ds, uv)),
            fmt_paired(pu, False), fmt_ratio(ratio(ds, um))))
        rate_target("UDP datagrams per second, %s B: >= 1.0x libuv" % size,
                    1.0, ratio(ds, uv), pu, why("udp_dps", size, "ds", "uv"))
    out.append("")
    cpu_rows(out, "udp_dps", [("64", "64 B"), ("1400", "1400 B")],
             ("ds", "uv", "uvmmsg"),
             ("libdualstack", "libuv", "libuv + RECVMMSG"), "datagram")


HE_ROWS = [
    ("literal6", "IPv6 literal `[2001:db8::2]`"),
    ("literal4", "IPv4 literal `192.0.2.2`"),
    ("both", "both families working (`both.test`)"),
    ("aaaa_late", "AAAA answer 20 ms late (`late.test`)"),
    ("blackhole", "IPv6 black-holed, first connect"),
    ("second", "IPv6 black-holed, second connect in the same process"),
    ("warm_literal6", "warm process (connects 3-5 of 5): IPv6 literal"),
    ("warm_both", "warm process (connects 3-5 of 5): `both.test`"),
]


def he_section(out):
    out.append("## 3. Happy Eyeballs: time to connected\n")
    out.append("One lab pair (`tests/lab/lab.sh run-pair`): the client in "
               "namespace A, `http_ok` on B (port 80, both families) and "
               "`dnsd` on B answering `both.test` and `late.test` with "
               "192.0.2.2 and 2001:db8::2. IPv6 black-holed: an nftables "
               "drop of TCP to [2001:db8::2]:80 on B. Milliseconds from the "
               "start (lookup included) to the connected socket, median "
               "(min–max):\n")
    out.append("- dualstack: `build/dualstack-connect -v -z` (the time of "
               "its `-> connected` line); the second connect is "
               "`he_twice`, `ds_happy_start()` twice in one process with a "
               "`ds_family_memory`.")
    out.append("- curl: `curl -w '%{time_connect}'` (its own Happy "
               "Eyeballs, 200 ms); the second connect is a second URL in "
               "the same invocation (the server closes each connection).")
    out.append("- Python: Debian's `/usr/bin/python3`, asyncio "
               "`loop.create_connection(host, 80, "
               "happy_eyeballs_delay=0.25)`, timed in-process; the second "
               "connect is a second call.\n")
    out.append("| case | dualstack | curl | Python asyncio |")
    out.append("|---|---:|---:|---:|")
    for case, label in HE_ROWS:
        out.append("| %s | %s | %s | %s |" % (
            label, cell("he", case, "ds", "ms"), cell("he", case, "curl", "ms"),
            cell("he", case, "python", "ms")))
    out.append("")
    out.append("The warm rows are `he_twice -n 5` (dualstack only): the "
               "connects after the first two of one process, without the "
               "start-up cost a fresh process pays once.\n")
    rtt = med("he", "warm_literal6", "ds")
    if rtt is not None:
        out.append("RTT is taken as dualstack's median warm connect time to "
                   "the IPv6 literal: %.3f ms (one TCP handshake, with the "
                   "socket calls around it).\n" % rtt)
        bh = med("he", "blackhole", "ds")
        lim = 250 + rtt + 5
        target("Happy Eyeballs, IPv6 black-holed: <= 250 ms + RTT + 5 ms",
               None if bh is None else bh <= lim,
               "%s ms (limit %.1f)" % (fmt_num(bh, "ms"), lim))
        sc = med("he", "second", "ds")
        lim = 2 * rtt + 5
        target("Happy Eyeballs, second connect: <= 2 RTT + 5 ms",
               None if sc is None else sc <= lim,
               "%s ms (limit %.1f)" % (fmt_num(sc, "ms"), lim))
        for both_case, lit_case, how in (
                ("both", "literal6", "fresh process (dualstack-connect)"),
                ("warm_both", "warm_literal6", "warm process")):
            both, lit = med("he", both_case, "ds"), med("he", lit_case, "ds")
            d = None if both is None or lit is None else both - lit
            target("Happy Eyeballs, both working, %s: <= IPv6 literal + "
                   "1 ms" % how, None if d is None else d <= 1.0,
                   "%s ms vs %s ms (%+.2f)" % (
                       fmt_num(both, "ms"), fmt_num(lit, "ms"),
                       d if d is not None else float("nan")))
        rows = []
        for tool, name in (("curl", "curl"), ("python", "Python")):
            lit = med("he", "literal6", tool)
            b, bh, sc = (med("he", c, tool)
                         for c in ("both", "blackhole", "second"))
            if None in (lit, b, bh, sc):
                continue
            rows.append("%s: both working %+.2f ms over its literal; "
                        "black-holed %.1f ms; second connect %.1f ms" %
                        (name, b - lit, bh, sc))
        if rows:
            out.append("The same limits applied to the peers, for "
                       "comparison: " + "; ".join(rows) + ".\n")
        x = RUNS.get(("he", "blackhole_he_twice", "ds"))
        if x:
            out.append("(`he_twice`'s own first connect, the same race as "
                       "the black-holed row: %s ms.)\n" %
                       cell("he", "blackhole_he_twice", "ds", "ms"))


def accept_section(out):
    out.append("## 4. Aggregate listening port: accepts per second\n")
    out.append("`accept_ds all` listens with `ds_listen_all()` (one listener "
               "per local address: 127.0.0.1, 192.0.2.1, 192.0.2.3, "
               "198.51.100.1, 198.51.100.3, ::1, 2001:db8::1 in the "
               "benchmark's namespace); `accept_ds any` with one "
               "`ds_listen_tcp()` on 0.0.0.0. Both run the same protocol "
               "(a one-byte greeting, close at the client's FIN). The load "
               "keeps 32 connections going, spread over 192.0.2.1, "
               "192.0.2.3, 198.51.100.1 and 198.51.100.3; each connects, "
               "reads the greeting and closes. Accepts per second, median "
               "(min–max):\n")
    a, b = med("accept_cps", "4addr", "all"), med("accept_cps", "4addr", "any")
    p = paired("accept_cps_round", "4addr", "all", "any")
    out.append("| all-interfaces endpoint | one 0.0.0.0 listener | ratio | "
               "the same, per round |")
    out.append("|---:|---:|---:|---:|")
    out.append("| %s | %s | %s | %s |\n" % (
        cell("accept_cps", "4addr", "all"), cell("accept_cps", "4addr", "any"),
        fmt_ratio(ratio(a, b)), fmt_paired(p, False)))
    cpu_rows(out, "accept_cps", [("4addr", "accept")], ("all", "any"),
             ("all-interfaces", "0.0.0.0"), "accepted connection")
    rate_target("Aggregate port accepts per second: >= 0.95x one 0.0.0.0 "
                "listener", 0.95, ratio(a, b), p,
                why("accept_cps", "4addr", "all", "any"))


def shim_section(out):
    out.append("## 5. The preload shim, client side\n")
    out.append("One plain IPv4 client, `shim_client` (libc only: "
               "`getaddrinfo()` with `AF_INET` hints, `connect()` of an "
               "`AF_INET` socket), run as is (glibc) and with "
               "`LD_PRELOAD=build/libdualstack-preload.so`, in turns, the "
               "order alternating every round after one warm-up round, "
               "%s runs each, pinned to one core (the echo server of the "
               "connect case to the other). Median (min–max) of the runs; "
               "ratios are shim over glibc (above 1.00x: the shim costs "
               "more).\n" % INFO.get("shim_reps", "?"))
    out.append("| case | glibc | with the shim | ratio |")
    out.append("|---|---:|---:|---:|")
    rows = (("shim_conn", "20000", "us",
             "connect+close to 127.0.0.1 (passthrough), us per connect, "
             "20,000 per run"),
            ("shim_gai", "first", "us",
             "getaddrinfo(AF_INET) of a hosts-file name, first of a "
             "process, us"),
            ("shim_gai", "repeat", "us",
             "the same name again, us per lookup (mean of 2,000)"),
            ("shim_name", "first", "ms",
             "IPv6 black-holed: lookup + connect by name, first, ms"),
            ("shim_name", "second", "ms",
             "IPv6 black-holed: the second in the same process, ms"))
    for sec, case, unit, label in rows:
        out.append("| %s | %s | %s | %s |" % (
            label, cell(sec, case, "bare", unit), cell(sec, case, "shim", unit),
            fmt_ratio(ratio(med(sec, case, "shim"), med(sec, case, "bare")))))
    out.append("")
    out.append("The passthrough and lookup cases run in the loopback "
               "namespace of sections 1-2, whose hosts file names "
               "`bench.test` (192.0.2.1, IPv4 only); the shim looks it up "
               "for both families, from its cache after the first time, "
               "then lets glibc answer. The black-holed case runs in the "
               "lab pair of section 3 (`both.test`, 192.0.2.2 and "
               "2001:db8::2 from `dnsd`, TCP to [2001:db8::2]:80 dropped): "
               "without the shim the program connects to 192.0.2.2 and "
               "never tries IPv6; with it, the first connect races and "
               "waits the 250 ms Connection Attempt Delay for the dead "
               "IPv6 path, the second starts with IPv4 (the family memory) "
               "and takes the name from the cache.\n")
    r = ratio(med("shim_conn", "20000", "shim"),
              med("shim_conn", "20000", "bare"))
    p = paired("shim_conn_round", "20000", "shim", "bare")
    j = p[0] if p is not None else r
    target("Shim passthrough, 20,000 connect+close to 127.0.0.1: <= 1.03x "
           "without (per round)", None if j is None else j <= 1.03,
           "per round %s, ratio of medians %s" % (fmt_paired(p),
                                                  fmt_cost(r, 3)))
    r = ratio(med("shim_gai", "repeat", "shim"),
              med("shim_gai", "repeat", "bare"))
    f = ratio(med("shim_gai", "first", "shim"),
              med("shim_gai", "first", "bare"))
    target("Shim, repeated getaddrinfo(AF_INET) of a hosts-file name: <= "
           "1.5x glibc", None if r is None else r <= 1.5,
           "%s (first lookup of a process: %s)" % (fmt_ratio(r), fmt_ratio(f)))


def fmt_cost(r, digits=2):
    """Rounded up, so that a cost above a limit never shows as at it."""
    if r is None:
        return "n/a"
    scale = 10 ** digits
    return "%.*fx" % (digits, math.ceil(r * scale - 1e-9) / scale)


def paired(section, case, num, den):
    """Median (min, max) over the rounds of num's value over den's in the
    same round (slices about a second apart), or None: on a machine whose
    other work comes and goes for seconds at a time, the slices of one
    contender can fall in two clusters, and a ratio of medians then
    compares one cluster with the other; the ratio within each round
    does not."""
    rs = []
    for (sec, c, who), v in RUNS.items():
        if sec != section or who != num or not c.startswith(case + "@"):
            continue
        d = RUNS.get((sec, c, den))
        if d and d[0] > 0 and v[0] > 0:
            rs.append(v[0] / d[0])
    if not rs:
        return None
    return statistics.median(rs), min(rs), max(rs)


def fmt_paired(p, up=True, digits=2):
    if p is None:
        return "n/a"
    if up:
        return "%s (%s–%s)" % (fmt_cost(p[0]), fmt_cost(p[1]), fmt_cost(p[2]))
    return "%s (%s–%s)" % (fmt_ratio(p[0], digits), fmt_ratio(p[1]),
                           fmt_ratio(p[2]))


SHIMSRV_ROWS = (("accept", "accepts per second (32 at a time: connect, "
                 "read the greeting, close)"),
                ("64/1", "64-byte round trips per second, 1 connection"),
                ("64/100", "64-byte round trips per second, 100 "
                 "connections"))


def shimsrv_section(out):
    out.append("## 6. The preload shim, server side\n")
    out.append("`legacy_server` (libc only: an `AF_INET` socket bound to "
               "0.0.0.0, `accept()` into a `struct sockaddr_in`; `accept` "
               "mode: accept, format the peer's address, write a one-byte "
               "greeting, close; `echo` mode: one thread, level-triggered "
               "epoll, blocking sockets, `read()` and `write()` back) runs "
               "twice at once on the server core: as is, and with "
               "`LD_PRELOAD=build/libdualstack-preload.so`, which widens "
               "its listener to a dual-stack [::]. One `echo_load` on the "
               "other core loads them in turns, a slice each, as in "
               "sections 1-4 (%s rounds here): IPv4 clients (127.0.0.1) without and with the "
               "shim, IPv6 clients (::1) with it (without the shim they "
               "cannot connect at all). Rates, median (min–max); the cost "
               "is the rate without the shim over the rate with it (above "
               "1.00x: the shim costs; rounded up), as a ratio of the "
               "medians and, beside it, as the median (min–max) of the "
               "ratios within each round, whose slices are about a second "
               "apart (the one to read when a contender's slices fall in "
               "two clusters, as the machine's other work comes and "
               "goes; the target is judged on it):\n" %
               INFO.get("shimsrv_rounds", "?"))
    out.append("| case | IPv4, no shim | IPv4, with the shim | IPv6, with "
               "the shim | cost, IPv4 (no shim / shim) | the same, per "
               "round | IPv6 with the shim / IPv4 without | the same, per "
               "round |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, label in SHIMSRV_ROWS:
        bare, s4, s6 = (med("shimsrv", case, w)
                        for w in ("bare", "shim4", "shim6"))
        six = cell("shimsrv", case, "shim6")
        if RUNS.get(("shimsrv_na", case, "shim6")):
            six = "not available (IPv6 clients refused: the shim did not " \
                  "widen the listener)"
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, cell("shimsrv", case, "bare"),
            cell("shimsrv", case, "shim4"), six,
            fmt_cost(ratio(bare, s4)),
            fmt_paired(paired("shimsrv_round", case, "bare", "shim4")),
            fmt_ratio(ratio(s6, bare)),
            fmt_paired(paired("shimsrv_round", case, "shim6", "bare"),
                       False)))
    out.append("")
    out.append("For reference, the same server written by hand the way the "
               "shim makes it (`legacy_server accept6`/`echo6`: "
               "`AF_INET6`, `IPV6_V6ONLY` 0, bound to [::], no shim), in "
               "the same slices: what the kernel's dual-stack socket costs "
               "by itself. IPv4 clients reach it as ::ffff:127.0.0.1. "
               "Rates, median (min–max):\n")
    out.append("| case | twin, IPv4 clients | twin, IPv6 clients | "
               "cost of the twin, IPv4 (no shim / twin) | shim over twin, "
               "IPv4 (twin / shim) |")
    out.append("|---|---:|---:|---:|---:|")
    for case, label in SHIMSRV_ROWS:
        bare, s4, r4 = (med("shimsrv", case, w)
                        for w in ("bare", "shim4", "ref4"))
        out.append("| %s | %s | %s | %s | %s |" % (
            label, cell("shimsrv", case, "ref4"),
            cell("shimsrv", case, "ref6"), fmt_cost(ratio(bare, r4)),
            fmt_cost(ratio(r4, s4))))
    out.append("")
    cpu_rows(out, "shimsrv", list(SHIMSRV_ROWS),
             ("bare", "shim4", "shim6", "ref4", "ref6"),
             ("IPv4, no shim", "IPv4, shim", "IPv6, shim", "IPv4, twin",
              "IPv6, twin"), "operation (accept, or round trip)")
    seen = []
    for case, label in SHIMSRV_ROWS:
        pc = {}
        for who in ("bare", "shim", "ref"):
            for k in ("accepted", "loopback", "srcpool", "other_family"):
                v = RUNS.get(("shimsrv_peers", case, "%s:%s" % (who, k)))
                if v:
                    pc[(who, k)] = int(v[-1])
        if ("shim", "accepted") in pc:
            seen.append("%s: %d accepted, %d from 127/8, %d from the "
                        "source pool 172.21.112.0/20, %d not AF_INET" % (
                            case, pc[("shim", "accepted")],
                            pc.get(("shim", "loopback"), 0),
                            pc.get(("shim", "srcpool"), 0),
                            pc.get(("shim", "other_family"), 0)))
    if seen:
        out.append("What the server with the shim saw of its peers "
                   "(counted by the server from what `accept()` gave it, "
                   "probes included): " + "; ".join(seen) + ". IPv6 "
                   "clients of the plain server: %s.\n" % (
                       "refused, as they must be" if not any(
                           RUNS.get(("shimsrv_v6bare", c, "bare"), [0])[0]
                           for c, _ in SHIMSRV_ROWS)
                       else "**connected** (something else listens on [::])"))
    for case, label in SHIMSRV_ROWS:
        bare, s4 = med("shimsrv", case, "bare"), med("shimsrv", case, "shim4")
        r = ratio(bare, s4)
        c = ratio(med("shimsrv_cpu", case, "shim4"),
                  med("shimsrv_cpu", case, "bare"))
        ub, us = med("shimsrv_util", case, "bare"), med("shimsrv_util", case,
                                                         "shim4")
        pr = paired("shimsrv_round", case, "bare", "shim4")
        detail = "cost %s" % (fmt_paired(pr) if pr is not None else "n/a")
        detail += ", ratio of medians %s" % fmt_cost(r, 3)
        pc = paired("shimsrv_round_cpu", case, "shim4", "bare")
        if c is not None:
            detail += " (server CPU per op, shim / no shim %s" % fmt_cost(c, 3)
            if pc is not None:
                detail += ", per round %s" % fmt_cost(pc[0])
            if ub is not None and us is not None:
                detail += "; busy %.0f%% / %.0f%%" % (100 * ub, 100 * us)
            detail += ")"
        s6 = ratio(med("shimsrv", case, "shim6"), bare)
        detail += "; IPv6 with the shim / IPv4 without: %s" % (
            fmt_ratio(s6) if s6 is not None else "not available")
        # Judged on the per-round ratio where there is one (see above).
        j = pr[0] if pr is not None else r
        target("Shim server side, %s, IPv4 clients: cost <= 1.05x (per "
               "round)" % label, None if j is None else j <= 1.05, detail)


INFO = {}


def main():
    global RUNS, INFO
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS.tsv MACHINE.tsv")
    RUNS = load(sys.argv[1])
    INFO = machine(sys.argv[2])
    out = []
    out.append("# Benchmarks\n")
    out.append("Written by `make bench` (`tools/bench/run.sh`, then "
               "`tools/bench/report.py`) on %s; do not edit by hand: "
               "hand-written findings go in `tools/bench/notes.md`, which is "
               "appended below. Figures and ratios only: nothing here passes "
               "or fails a build.\n" % INFO.get("date", "?"))
    out.append("Reproduce, as root on Debian 12: `make bench` (installs "
               "libuv1-dev, libevent-dev, curl and python3 with `make "
               "deps`). `BENCH_ROUNDS`, `BENCH_SLICE_MS`, "
               "`BENCH_CONNS_IDLE`, `BENCH_HE_REPS`, `BENCH_SHIM_REPS`, "
               "`BENCH_SHIMSRV_ROUNDS` and "
               "`BENCH_ONLY` (tcp udp accept he shim shimserver) change the runs; `tools/bench/run.sh` says "
               "how.\n")
    out.append("## Machine and method\n")
    for k, label in (("cpu", "CPU"), ("cores", "cores"), ("kernel", "kernel"),
                     ("mem", "memory"), ("load", "load average at the end"),
                     ("cc", "compiler"), ("libuv", "libuv"),
                     ("libevent", "libevent"), ("curl", "curl"),
                     ("python", "Python"), ("commit", "commit"),
                     ("date", "date"), ("seconds", "run time, seconds")):
        if INFO.get(k):
            out.append("- %s: %s" % (label, INFO[k]))
    out.append("- pinning: %s (taskset); loopback runs in a private "
               "network namespace of the lab" % INFO.get("cpus", "?"))
    out.append("- slices: the servers compared in a figure run at once; the "
               "load generator loads one at a time for %s ms, in turns, "
               "%s times each, the order rotating every round, after one "
               "warm-up round; each figure is the median of a contender's "
               "slices, with min and max; ratios are of medians, and for "
               "rates also, as \"per round\", the median (min–max) of the "
               "ratios between two contenders' slices of the same round, "
               "a second apart: the machine's other work, which comes and "
               "goes for seconds at a time, then weighs on both alike, "
               "where a ratio of medians can compare a contender's fast "
               "slices with another's slow ones. Rate targets are judged "
               "on the per-round ratio (both are in the targets table). "
               "Memory: "
               "one server at a time, 3 runs each. Happy Eyeballs: %s runs "
               "per case and tool, the tools taking turns"
               % (INFO.get("slice", "?"), INFO.get("rounds", "?"),
                  INFO.get("he_reps", "?")))
    out.append("- the machine is shared with other work, which comes and "
               "goes: a slice's rate depends on the share of its core the "
               "server got (the busy share in the tables), so they "
               "also give each server's CPU time per operation, which does "
               "not; compare ratios, not absolute figures, across runs\n")
    out.append("The servers, each written the usual way for its library "
               "(all set TCP_NODELAY and use the same backlog, SOMAXCONN): "
               "`echo_ds.c` (a `ds_protocol` whose `data_received` calls "
               "`ds_tcp_write`), `echo_uv.c` (`uv_try_write` from a "
               "loop-wide read buffer, `uv_write` of a copy of the rest, as "
               "Node.js does), `echo_ev.c` (evconnlistener and a socket "
               "bufferevent moving input to output), `udp_ds.c`, "
               "`udp_uv.c` (`uv_udp_try_send`, `uv_udp_send` of a copy on "
               "EAGAIN).\n")
    sections = {"tcp": tcp_section, "udp": udp_section, "he": he_section,
                "accept": accept_section, "shim": shim_section,
                "shimserver": shimsrv_section}
    prefixes = {"tcp": "tcp_", "udp": "udp_", "he": "he",
                "accept": "accept_", "shim": "shim_",
                "shimserver": "shimsrv"}
    for name in ("tcp", "udp", "he", "accept", "shim", "shimserver"):
        if any(k[0].startswith(prefixes[name]) for k in RUNS):
            sections[name](out)
        else:
            out.append("(%s: not run)\n" % name)
    out.append("## Targets\n")
    out.append("Met or missed on the figures above, as the benchmark plan "
               "states them. In brackets, for the rates: the peer's server "
               "CPU time per operation over libdualstack's (above 1.00x, "
               "libdualstack is the cheaper) and how busy each server was "
               "(libdualstack's first; well below 100%, the load set the "
               "rate rather than the server).\n")
    out.append("| target | result | figure |")
    out.append("|---|---|---|")
    for name, res, detail in TARGETS:
        out.append("| %s | %s | %s |" % (name, res, detail))
    out.append("")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            out.append(f.read().rstrip("\n") + "\n")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
