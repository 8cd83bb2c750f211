#!/usr/bin/env python3
"""DHCP/DNS test of a Portcullis QEMU image (issue 10), driven from the host.

Boots the image (product initramfs + test overlay, like boot_test.py) and proves, with real
clients inside the guest (topology: tests/qemu/guest/usr/libexec/pcx-test/dhcp-lan.sh):
  - the image's dnsmasq (Debian's dnsmasq-base, dynamically linked: loader + library closure)
    runs, under its supervisor /etc/init.d/S40dnsmasq;
  - a config with a `dhcp` section (pool 192.168.1.100-249, domain lan), applied with
    `portcullis apply`, reaches dnsmasq (the daemon restarts it, the supervisor re-renders);
  - a LAN client (a network namespace behind a veth in the router's bridge lan0) running
    busybox udhcpc -x hostname:NAME gets an address in the pool, a default route via
    192.168.1.1 and the DNS server 192.168.1.1;
  - through that server it resolves router.lan, its own NAME.lan (its lease), and an upstream
    name (example.test) that dnsmasq forwards to the upstream DNS server of the WAN's
    resolv.conf.wan (a second dnsmasq in a namespace of the guest, which logs the query);
  - dnsmasq's DNS sockets are on the LAN address and loopback only (netstat), and nothing
    answers DNS on the WAN address;
  - a reservation of 192.168.1.42 for the client's MAC, applied, is what the client gets when
    it renews (dnsmasq refuses the old address, udhcpc starts over), and its reserved name
    resolves to it.
Each check prints `ok   ARCH: ...` or `FAIL ARCH: ...`; on failure the guest's diagnostics and the
serial log are printed. Synchronisation is by polling with bounds (scaled by --scale).
Only the Python standard library is used; boot_test.Guest drives the serial console.
"""
import base64
import json
import os
import re
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import boot_test as bt  # noqa: E402

LAN = "/usr/libexec/pcx-test/dhcp-lan.sh"
GUEST_CONFIG = "/etc/portcullis/test-config.json"
PC = f"timeout 30 /usr/sbin/portcullis --config {GUEST_CONFIG}"
RUN = "/var/run/portcullis"
UPSTREAM = "203.0.113.53"
UPSTREAM_NAME, UPSTREAM_ADDR = "example.test", "198.51.100.7"
RESERVED = "192.168.1.42"


class Dhcp:
    """The test's view of one guest: console commands and bounded polls."""

    def __init__(self, g, res, scale, tag):
        self.g, self.res, self.scale, self.tag = g, res, scale, tag

    def sh(self, cmd, timeout=60):
        try:
            return self.g.run(cmd, timeout=timeout * self.scale)
        except bt.BootTimeout as e:
            return 124, f"console timeout: {e}"

    def lan(self, args, timeout=60):
        return self.sh(f"{LAN} {args}", timeout)

    def client(self, cmd, timeout=60):
        return self.lan(f"client {self.tag} {cmd}", timeout)

    def poll(self, fn, timeout, interval=0.5):
        """Calls fn() -> (ok, detail) until ok or `timeout` (scaled) seconds pass."""
        deadline = time.monotonic() + timeout * self.scale
        while True:
            ok, detail = fn()
            if ok or time.monotonic() >= deadline:
                return ok, detail
            time.sleep(interval)

    def check(self, ok, what, detail=""):
        return self.res.check(ok, what, detail)

    def put(self, path, text):
        """Writes `text` to `path` in the guest (base64 in console-sized chunks)."""
        b = base64.b64encode(text.encode()).decode()
        self.sh(f"rm -f {path}.b64")
        for i in range(0, len(b), 512):
            self.sh(f"printf %s '{b[i:i + 512]}' >>{path}.b64")
        return self.sh(f"base64 -d {path}.b64 >{path} && rm {path}.b64")

    def lease(self):
        """The client's last recorded lease as a dict ({} before the first)."""
        rc, out = self.lan(f"lease {self.tag}")
        return dict(re.findall(r"(\w+)=(\S*)", out)) if rc == 0 else {}

    def dnsmasq_pid(self):
        rc, out = self.sh(f"cat {RUN}/dnsmasq.pid 2>/dev/null && pidof dnsmasq")
        lines = out.split()
        return lines[0] if rc == 0 and lines and lines[0] in lines[1:] else None

    def apply(self, cfg, what, want_line):
        """`portcullis apply` of cfg; then polls until the rendered dnsmasq.conf has want_line
        and a dnsmasq other than the one before runs (the daemon's restart)."""
        before = self.dnsmasq_pid()
        path = f"/tmp/dhcp-test-{self.tag}.json"
        self.put(path, json.dumps(cfg, indent=1))
        rc, out = self.sh(f"{PC} apply {path}; echo rc=$?", 60)
        self.check("rc=0" in out, f"apply: {what}", out)

        def done():
            rc, conf = self.sh(f"cat {RUN}/dnsmasq.conf")
            pid = self.dnsmasq_pid()
            return want_line in conf.splitlines() and pid is not None and pid != before, \
                f"dnsmasq pid {before} -> {pid}\n{conf}"
        ok, detail = self.poll(done, 30)
        self.check(ok, f"apply: dnsmasq restarted with the new config ({want_line})", detail)


def nslookup_addrs(out, name):
    """The IPv4 addresses busybox nslookup printed for `name`."""
    addrs = []
    for block in re.split(r"\n\s*\n", out):
        if re.search(r"Name:\s*" + re.escape(name) + r"\s*$", block, re.M):
            addrs += re.findall(r"Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)\s*$", block, re.M)
    return addrs


def dhcp_config(reservation=None):
    """The boot test's config plus a dhcp section (optionally one reservation)."""
    with open(os.path.join(HERE, "guest", "etc", "portcullis", "test-config.json")) as f:
        cfg = json.load(f)
    cfg["dhcp"] = {"enabled": True, "start": "192.168.1.100", "end": "192.168.1.249",
                   "lease_secs": 3600, "domain": "lan",
                   "reservations": [reservation] if reservation else []}
    return cfg


def in_pool(ip):
    m = re.fullmatch(r"192\.168\.1\.(\d+)", ip or "")
    return m is not None and 100 <= int(m.group(1)) <= 249


def scenario(v, host, mac):
    rc, out = v.sh("dnsmasq --version | head -1")
    v.check(rc == 0 and "Dnsmasq version 2.90" in out,
            "the image's dnsmasq runs (dynamic loader + its library closure)", out)
    ok, pid = v.poll(lambda: (lambda p: (p is not None, p))(v.dnsmasq_pid()), 30)
    v.check(ok, f"dnsmasq runs under S40dnsmasq (pid {pid} in {RUN}/dnsmasq.pid)",
            v.sh(f"ps; cat {RUN}/dnsmasq.conf")[1])
    # The overlay runs the daemon on test-config.json (/etc/default/portcullis); the supervisor
    # must render from the same file, or an applied config never reaches dnsmasq.
    rc, out = v.sh("grep -l default/portcullis /etc/init.d/S40dnsmasq")
    if rc != 0:
        print(f"     (S40dnsmasq does not read /etc/default/portcullis: restarted with "
              f"CONFIG={GUEST_CONFIG})", flush=True)
        v.sh(f"/etc/init.d/S40dnsmasq stop; CONFIG={GUEST_CONFIG} /etc/init.d/S40dnsmasq start", 60)

    rc, out = v.lan(f"upstream-up {v.tag}", 60)
    v.check(rc == 0 and "answers" in out, f"upstream DNS server {UPSTREAM} (a second dnsmasq) is up", out)
    v.sh(f"echo 'nameserver {UPSTREAM}' >{RUN}/resolv.conf.wan.tmp && "
         f"mv -f {RUN}/resolv.conf.wan.tmp {RUN}/resolv.conf.wan")

    v.apply(dhcp_config(), "a dhcp section (pool 192.168.1.100-249, domain lan)",
            "dhcp-range=192.168.1.100,192.168.1.249,3600")

    # Sockets: DNS on the LAN address and loopback only.
    rc, out = v.sh("ip -o addr show dev wan0; netstat -lnu; netstat -lnt")
    wan = set(re.findall(r"inet6? ([0-9a-f.:]+)/", out)) | {"0.0.0.0", "::"}
    dns = sorted(set(re.findall(r"^(?:udp|tcp)6?\s+\d+\s+\d+\s+(\S+):53\s", out, re.M)))
    v.check("192.168.1.1" in dns and "127.0.0.1" in dns and "10.0.2.15" in wan and not wan & set(dns),
            f"dnsmasq's DNS sockets: {', '.join(dns)} (LAN and loopback; none on the WAN's "
            f"{', '.join(sorted(wan - {'0.0.0.0', '::'}))} or a wildcard)", out)
    rc, out = v.sh("timeout 10 nslookup router.lan 127.0.0.1; echo ---; timeout 10 nslookup router.lan 10.0.2.15")
    here, wan = (out.split("---") + [""])[:2]
    v.check(nslookup_addrs(here, "router.lan") == ["192.168.1.1"] and not nslookup_addrs(wan, "router.lan"),
            "DNS answers on loopback and not on the WAN address 10.0.2.15", out)

    rc, out = v.lan(f"client-up {v.tag} {mac}")
    v.check(rc == 0 and "up" in out, f"LAN client namespace behind lan0 (MAC {mac})", out)
    v.lan(f"udhcpc {v.tag} {host}")
    ok, lease = v.poll(lambda: (lambda l: (bool(l.get("ip")), l))(v.lease()), 60)
    v.check(ok and in_pool(lease.get("ip")), f"udhcpc got {lease.get('ip')} (pool 192.168.1.100-249)",
            v.lan(f"events {v.tag}")[1] + str(lease))
    v.check(lease.get("router") == "192.168.1.1" and lease.get("dns") == "192.168.1.1"
            and lease.get("serverid") == "192.168.1.1",
            f"router {lease.get('router')}, DNS {lease.get('dns')}, from server {lease.get('serverid')} "
            "(all the router, 192.168.1.1)", lease)
    rc, out = v.client("ip route")
    v.check(re.search(r"^default via 192\.168\.1\.1 ", out, re.M) is not None,
            "the client's default route is via 192.168.1.1", out)
    server = lease.get("dns") or "192.168.1.1"
    rc, out = v.client(f"timeout 10 nslookup router.lan {server}")
    v.check(nslookup_addrs(out, "router.lan") == ["192.168.1.1"], "client resolves router.lan -> 192.168.1.1", out)
    name = f"{host}.lan"
    ok, out = v.poll(lambda: (lambda r: (nslookup_addrs(r[1], name) == [lease.get("ip")], r[1]))(
        v.client(f"timeout 10 nslookup {name} {server}")), 20)
    v.check(ok, f"client resolves its own name {name} -> {lease.get('ip')} (from its lease)", out)
    ok, out = v.poll(lambda: (lambda r: (nslookup_addrs(r[1], UPSTREAM_NAME) == [UPSTREAM_ADDR], r[1]))(
        v.client(f"timeout 10 nslookup {UPSTREAM_NAME} {server}")), 30)
    _, log = v.sh(f"cat /run/pcx-dhcp/{v.tag}.upstream.log")
    v.check(ok and re.search(rf"query\[A\] {re.escape(UPSTREAM_NAME)} from 203\.0\.113\.1\b", log) is not None,
            f"client resolves {UPSTREAM_NAME} -> {UPSTREAM_ADDR}, forwarded by the router's dnsmasq to the "
            f"upstream of resolv.conf.wan (its log shows the query from the router)", out + "\n" + log)

    # Reservation: the client's MAC gets .42; udhcpc renews, is refused, starts over.
    v.apply(dhcp_config({"name": "pcxres", "mac": mac, "address": RESERVED, "comment": "dhcp test"}),
            f"a reservation of {RESERVED} for {mac}", f"dhcp-host={mac},{RESERVED},pcxres")
    v.lan(f"renew {v.tag}")
    ok, lease2 = v.poll(lambda: (lambda l: (l.get("ip") == RESERVED, l))(v.lease()), 60)
    if not ok:  # a renewal the server answered before it restarted: renew once more
        v.lan(f"renew {v.tag}")
        ok, lease2 = v.poll(lambda: (lambda l: (l.get("ip") == RESERVED, l))(v.lease()), 30)
    _, events = v.lan(f"events {v.tag}")
    v.check(ok and lease2.get("router") == "192.168.1.1" and lease2.get("serverid") == "192.168.1.1",
            f"after renewing, the client has the reserved {RESERVED} (was {lease.get('ip')})",
            events + str(lease2))
    rc, out = v.client(f"ip -4 addr show {v.tag}-b")
    v.check(f"inet {RESERVED}/24" in out, f"the client's interface has {RESERVED}/24", out)
    ok, out = v.poll(lambda: (lambda r: (nslookup_addrs(r[1], "pcxres.lan") == [RESERVED], r[1]))(
        v.client(f"timeout 10 nslookup pcxres.lan {server}")), 20)
    v.check(ok, f"the reservation's name pcxres.lan resolves to {RESERVED}", out)
    rc, out = v.sh(f"cat {RUN}/dnsmasq.leases")
    v.check(re.search(rf"\b{re.escape(mac)} {re.escape(RESERVED)}\b", out, re.I) is not None,
            f"dnsmasq's lease file has {mac} {RESERVED}", out)


def diagnostics(v):
    v.sh(f"ps; cat {RUN}/dnsmasq.conf {RUN}/resolv.conf.wan {RUN}/dnsmasq.leases; netstat -lnu; "
         f"cat /run/pcx-dhcp/{v.tag}.*log /run/pcx-dhcp/{v.tag}-b.events; {LAN} client {v.tag} ip addr; "
         f"{LAN} client {v.tag} ip route; {PC} status --json", 120)


def run(args, res, tmp):
    initrds = [os.path.join(args.image, "initramfs.cpio"), args.test_overlay]
    logf = open(os.path.join(tmp, "serial.log"), "wb")
    g = bt.Guest(args.arch, os.path.join(args.image, "kernel"), initrds, tmp, log=logf)
    pid = os.getpid()
    tag = f"d{pid % 100000}"  # interfaces TAG-a, TAG-b, TAG-u, TAG-v: at most 8 characters
    mac = "02:00:%02x:%02x:%02x:42" % ((pid >> 16) & 0xff, (pid >> 8) & 0xff, pid & 0xff)
    v = Dhcp(g, res, args.scale, tag)
    t0 = time.monotonic()
    try:
        if bt.await_boot(g, args.boot_timeout, res) is None:
            return
        res.check(True, f"booted in {time.monotonic() - t0:.1f}s")
        try:
            scenario(v, f"pcxhost{pid % 100000}", mac)
        except Exception:  # an unexpected shape: the test fails with the traceback
            res.check(False, "the scenario raised", traceback.format_exc())
        rc, out = v.lan(f"down {tag}")
        v.check(rc == 0, "client and upstream namespaces removed", out)
    finally:
        bt.end_guest(g, res, logf, t0, lambda: diagnostics(v))


def main():
    p = bt.guest_test_parser(__doc__, "test-overlay.cpio")
    return bt.run_guest_test("dhcp", p.parse_args(), run)


if __name__ == "__main__":
    sys.exit(main())
