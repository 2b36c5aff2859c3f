#!/usr/bin/env python3
"""Cluster DNS for the dev/kube node (a stand-in for CoreDNS, which no reachable registry ships).

Standard library only. Serves A records on UDP from the API server's Services and Endpoints,
listed every 2 s:

  <svc>.<ns>.svc.<domain>             the ClusterIP; for a headless Service its ready pod IPs
  <host>.<svc>.<ns>.svc.<domain>      a pod with a hostname behind a headless Service
                                      (StatefulSet pods)

A name that exists but has no record of the asked type (AAAA, ...) gets an empty NOERROR answer;
every other name gets NXDOMAIN. Nothing is ever forwarded: no query leaves the machine.

usage:
  kube-dns.py serve --listen IP --port N --api URL --ca FILE --token-file FILE [--domain D]
  kube-dns.py resolve [--server IP] [--port N] NAME    (exit 0 and print the IPs if answered)
"""
import argparse
import json
import random
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

TTL = 5
REFRESH_SECONDS = 2.0
QTYPE_A, QTYPE_ANY = 1, 255


class Records:
    """fqdn (lower case, no trailing dot) -> list of IPv4 strings; replaced as a whole."""

    def __init__(self):
        self.table = {}
        self.loaded = threading.Event()


def api_get(args, ctx, path):
    with open(args.token_file, encoding="ascii") as f:
        token = f.read().strip()
    req = urllib.request.Request(args.api.rstrip("/") + path,
                                 headers={"Authorization": "Bearer " + token,
                                          "Accept": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.load(resp)["items"]


def build_table(services, endpoints, domain):
    table = {}
    headless = set()
    for svc in services:
        md, spec = svc["metadata"], svc.get("spec") or {}
        base = f"{md['name']}.{md['namespace']}.svc.{domain}".lower()
        ip = spec.get("clusterIP") or ""
        if spec.get("type") == "ExternalName":
            continue
        if ip == "None":
            headless.add(base)
            table.setdefault(base, [])
        elif ip:
            table[base] = [ip]
    for ep in endpoints:
        md = ep["metadata"]
        base = f"{md['name']}.{md['namespace']}.svc.{domain}".lower()
        if base not in table:
            continue  # Endpoints without a Service (or of an ExternalName one)
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                ip = addr.get("ip")
                if not ip or ":" in ip:
                    continue
                if base in headless and ip not in table[base]:
                    table[base].append(ip)
                if addr.get("hostname"):
                    table[f"{addr['hostname']}.{base}".lower()] = [ip]
    return table


def refresher(args, records):
    ctx = ssl.create_default_context(cafile=args.ca)
    failing = False
    while True:
        try:
            services = api_get(args, ctx, "/api/v1/services")
            endpoints = api_get(args, ctx, "/api/v1/endpoints")
            records.table = build_table(services, endpoints, args.domain)
            records.loaded.set()
            if failing:
                print("kube-dns: API reachable again", file=sys.stderr, flush=True)
            failing = False
        except Exception as e:  # keep serving the last good table
            if not failing:
                print(f"kube-dns: listing services failed: {e}", file=sys.stderr, flush=True)
            failing = True
        time.sleep(REFRESH_SECONDS)


def read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compression pointer in the question")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii"))
        off += 1 + n


def answer(msg, table):
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    rd = flags & 0x0100
    opcode = (flags >> 11) & 0xF
    if flags & 0x8000:
        return None  # a response, not a query
    if opcode != 0 or qdcount != 1:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | 4, 0, 0, 0, 0)  # NOTIMP
    name, off = read_name(msg, 12)
    qtype, _qclass = struct.unpack("!HH", msg[off:off + 4])
    question = msg[12:off + 4]
    ips = table.get(name.lower().rstrip("."))
    answers = []
    rcode = 0
    if ips is None:
        rcode = 3  # NXDOMAIN: not a cluster name, and nothing is forwarded
    elif qtype in (QTYPE_A, QTYPE_ANY):
        for ip in ips:
            rr = b"\xc0\x0c" + struct.pack("!HHIH", QTYPE_A, 1, TTL, 4) + socket.inet_aton(ip)
            if 12 + len(question) + sum(map(len, answers)) + len(rr) > 512:
                break  # stay within a plain UDP answer
            answers.append(rr)
    flags_out = 0x8000 | 0x0400 | rd | rcode  # QR, AA, RD copied, no RA
    return struct.pack("!HHHHHH", qid, flags_out, 1, len(answers), 0, 0) + question + b"".join(answers)


def serve(args):
    records = Records()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    threading.Thread(target=refresher, args=(args, records), daemon=True).start()
    records.loaded.wait(30)
    print(f"kube-dns: serving *.svc.{args.domain} on {args.listen}:{args.port}/udp", flush=True)
    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            reply = answer(msg, records.table)
        except Exception as e:  # malformed query: drop it
            print(f"kube-dns: bad query from {peer[0]}: {e}", file=sys.stderr, flush=True)
            continue
        if reply is not None:
            sock.sendto(reply, peer)


def resolve(args):
    qid = random.randrange(1 << 16)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in args.name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode("ascii")
    q += b"\x00" + struct.pack("!HH", QTYPE_A, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.sendto(q, (args.server, args.port))
    resp, _ = sock.recvfrom(4096)
    rid, flags, _qd, an = struct.unpack("!HHHH", resp[:8])
    if rid != qid or flags & 0xF:
        return 1
    off = len(q)  # the answer section follows the echoed question
    ips = []
    for _ in range(an):
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", resp[off + 2:off + 12])
        if rtype == QTYPE_A:
            ips.append(socket.inet_ntoa(resp[off + 12:off + 12 + rdlen]))
        off += 12 + rdlen
    if not ips:
        return 1
    print(" ".join(ips))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--port", type=int, default=53)
    s.add_argument("--api", required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--token-file", required=True)
    s.add_argument("--domain", default="cluster.local")
    r = sub.add_parser("resolve")
    r.add_argument("--server", default="10.244.0.1")
    r.add_argument("--port", type=int, default=53)
    r.add_argument("name")
    args = ap.parse_args()
    if args.cmd == "serve":
        args.domain = args.domain.strip(".").lower()
        serve(args)
        return 0
    try:
        return resolve(args)
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
