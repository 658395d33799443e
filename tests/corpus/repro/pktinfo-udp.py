# dnsmasq's pattern: a UDP server on 0.0.0.0 asks IP_PKTINFO to learn the
# address each query came to, and answers from it. Prints what recvmsg
# delivered; serves one datagram.   python3 pktinfo-udp.py PORT
import socket, sys
IP_PKTINFO = 8  # <netinet/in.h>; not in Python 3.11's socket module
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
data, anc, flags, peer = s.recvmsg(512, 256)
info = [c for c in anc if c[0] == socket.IPPROTO_IP and c[1] == IP_PKTINFO]
print("from", peer, "IP_PKTINFO:", socket.inet_ntoa(info[0][2][8:12]) if info else "none", flush=True)
s.sendmsg([b"corpus-ok reply\n"], info[:1], 0, peer)
