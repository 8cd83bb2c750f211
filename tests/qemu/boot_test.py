#!/usr/bin/env python3
"""Boot test of a Portcullis QEMU image, driven from the host.

Boots the image (kernel + product initramfs + the test overlay cpio) with two NICs on QEMU
user-mode networks and proves, from the host through QEMU's port forwarding and the serial
console:
  - the guest boots to the end of its init scripts within a bounded time (else: the serial
    log is printed and the test fails, QEMU is killed);
  - portcullis runs as the supervised main service (killed with SIGKILL, it comes back);
  - its ruleset is in the guest kernel (Debian's nft, test overlay only, lists it);
  - a static forward works: a client on the WAN side (the host, via the WAN NIC) reaches a
    web server on a LAN host (a network namespace behind the router's LAN bridge);
  - the management port answers on the LAN side and not on the WAN side;
  - the WireGuard kernel module is available (a wireguard link can be created);
  - the encodings that differ between little- and big-endian CPUs (the reason this test also
    runs on s390x, a big-endian kernel): a config with allow-lists, a rate limit, an expiring
    forward, a port range and a trigger (guest/etc/portcullis/endian-test-config.json) applied
    through the daemon: the allow-list lets the host (10.0.2.2) through one forward and not
    through another, the rate limit refuses and its kernel-built meter element is readable, and
    what the kernel holds equals what the firmware planned and reports: every set element and
    rule as Debian's nft lists them against `portcullis plan`; counters, installed ports and
    element timeouts in `portcullis status --json` against `nft -j list ruleset`. Checked after
    the change through the daemon and again after its restart (a full table install);
  - power-off is clean (init scripts stop, QEMU exits 0).

Also: `--hang-check` proves that a hanging boot fails within the bound and prints the log.

Only the Python standard library is used. Every QEMU process runs in its own process group
and is killed on every path; temporary files live in one temp dir that is always removed.
"""
import argparse
import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import endian_checks

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
RUN_QEMU = os.path.join(TOP, "board", "debian-qemu", "run-qemu.sh")
READY = re.compile(rb"portcullis-image: boot complete after ([0-9.]+)s uptime")
# endian-test-config.json's forwards on the WAN (tests/qemu/endian_checks.py): allowed (from
# 10.0.2.2), denied (only from 203.0.113.0/24), limited (rate limit), expiring (expires_at).
ENDIAN_PORTS = (8081, 8082, 8083, 8084)


class BootTimeout(Exception):
    pass


def free_ports(n):
    """n distinct free ports: all sockets stay bound until every port is known (one at a
    time, the kernel may hand out a port just released: QEMU then refused two forwards on
    the same host port)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Guest:
    """One QEMU guest whose serial console is a pipe."""

    def __init__(self, arch, kernel, initrds, tmp, append="", log=None):
        self.arch = arch
        ports = free_ports(3 + len(ENDIAN_PORTS))
        self.ports = dict(zip(("ui", "wan_ui", "wan_fwd"), ports))
        # The forwards of endian-test-config.json, by external port.
        self.fwd_ports = dict(zip(ENDIAN_PORTS, ports[3:]))
        initrd = os.path.join(tmp, "initrd.cpio")
        with open(initrd, "wb") as out:
            for part in initrds:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        env = dict(os.environ, SERIAL="stdio", UI_PORT=str(self.ports["ui"]),
                   WAN_FWD=f"{self.ports['wan_ui']}:80 {self.ports['wan_fwd']}:8080 "
                           + " ".join(f"{h}:{p}" for p, h in self.fwd_ports.items()),
                   APPEND=append, TMPDIR=tmp)
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.log = log
        self.started = time.monotonic()
        self.proc = subprocess.Popen([RUN_QEMU, arch, kernel, initrd], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.seq = 0

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                break
            with self.cond:
                self.buf += chunk
                self.cond.notify_all()
            if self.log:
                self.log.write(chunk)
                self.log.flush()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern, timeout, start=0):
        """Waits until `pattern` (bytes regex) appears in the console output after `start`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = pattern.search(self.buf, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BootTimeout(f"no {pattern.pattern!r} on the console after {timeout}s")
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise BootTimeout(f"QEMU exited ({self.proc.returncode}) before {pattern.pattern!r}")
                self.cond.wait(min(left, 1.0))

    def run(self, cmd, timeout=30):
        """Runs a shell command on the serial console; returns (exit status, output)."""
        self.seq += 1
        tag = f"C{self.seq}x{os.getpid()}"
        with self.cond:
            start = len(self.buf)
        # The markers are printed by printf so that the console's echo of the typed command
        # (which contains '%s') never matches them.
        line = f"printf '@@%s@@\\n' B{tag}; {cmd}; printf '@@%s %s@@\\n' E{tag} $?\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        b = self.wait_for(re.compile(rb"@@B" + tag.encode() + rb"@@\r?\n"), timeout, start)
        e = self.wait_for(re.compile(rb"@@E" + tag.encode() + rb" (\d+)@@"), timeout, b.end())
        out = self.buf[b.end():e.start()].decode(errors="replace").replace("\r", "")
        return int(e.group(1)), out

    def serial_log(self, start=0):
        """The console output (from byte offset `start`), without carriage returns."""
        with self.cond:
            return self.buf[start:].decode(errors="replace").replace("\r", "")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.reader.join(5)


def http_get(port, path="/", timeout=6):
    """Returns (status, body) or (None, error text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception as e:  # connection reset, timeout, empty reply: no HTTP answer
        return None, f"{type(e).__name__}: {e}"


class Results:
    def __init__(self, label):
        self.label, self.passed, self.failed = label, 0, 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {self.label}: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {self.label}: {what}", flush=True)
            if detail:
                print("\n".join("     | " + l for l in str(detail).rstrip().splitlines()[-40:]), flush=True)
        return ok


def print_log(guest, why):
    print(f"---- serial log ({guest.arch}, {why}) ----")
    print(guest.serial_log().rstrip())
    print("---- end of serial log ----", flush=True)


def await_boot(g, timeout, res):
    """Waits for the ready line; on a hang or crash records the failure, prints the serial log
    and kills QEMU. Returns the match or None."""
    try:
        return g.wait_for(READY, timeout)
    except BootTimeout as e:
        res.check(False, f"boot within {timeout:.0f}s ({e})")
        print_log(g, "boot did not complete")
        g.kill()
        return None


def guest_test_parser(doc, overlay_help):
    """The arguments of the end-to-end guest tests (vpn_test.py, dhcp_test.py)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=["mipsel", "aarch64", "armhf"])
    p.add_argument("--image", required=True, help="dir with kernel and initramfs.cpio")
    p.add_argument("--test-overlay", required=True, help=overlay_help)
    p.add_argument("--boot-timeout", type=float, default=150)
    p.add_argument("--scale", type=float, default=None, help="timeout factor (default 1, mipsel 2.5)")
    return p


def run_guest_test(name, args, run):
    """Runs run(args, res, tmp) with a temp dir that is always removed (also on SIGTERM),
    prints `NAME-ARCH: P passed, F failed` and returns the exit status."""
    if args.scale is None:
        args.scale = 2.5 if args.arch == "mipsel" else 1.0
    res = Results(args.arch)
    tmp = tempfile.mkdtemp(prefix=f"portcullis-{name}-")
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, res, tmp)
    finally:
        signal.signal(signal.SIGTERM, old)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}-{args.arch}: {res.passed} passed, {res.failed} failed", flush=True)
    return 1 if res.failed else 0


def end_guest(g, res, logf, t0, diagnose):
    """The end of a guest test on every path: after a failure, `diagnose()` while the guest
    still runs; QEMU killed and its log file closed; after a failure, the serial log."""
    try:
        if res.failed and g.proc.poll() is None:
            diagnose()
    finally:
        g.kill()
        logf.close()
    if res.failed:
        print_log(g, "test failed")
    print(f"     (total {time.monotonic() - t0:.0f}s)", flush=True)


def boot_test(args, res, tmp):
    initrds = [os.path.join(args.image, "initramfs.cpio"), args.test_overlay]
    logf = open(os.path.join(tmp, "serial.log"), "wb")
    g = Guest(args.arch, os.path.join(args.image, "kernel"), initrds, tmp, log=logf)
    try:
        m = await_boot(g, args.boot_timeout, res)
        if m is None:
            return
        ready_s = time.monotonic() - g.started
        log = g.serial_log()
        res.check(True, f"booted: boot-to-ready {ready_s:.1f}s on the host clock, "
                        f"{float(m.group(1)):.1f}s guest uptime")
        print(f"BOOT-TIME {args.arch} with-portcullis {ready_s:.1f} {float(m.group(1)):.1f}", flush=True)
        res.check("portcullis: ready (ruleset installed" in log,
                  "init script started portcullis and saw its ruleset in the kernel", log)
        res.check(re.search(r"Starting test LAN host 192\.168\.1\.10: OK", log) is not None,
                  "test LAN host up", log)

        rc, out = g.run("pidof portcullis; cat /var/run/portcullis.pid")
        pids = out.split()
        res.check(rc == 0 and len(pids) == 2, "portcullis serve runs under its supervisor", out)

        rc, out = g.run("nft list table inet portcullis")
        res.check(rc == 0 and "policy drop" in out and "dnat" in out and "8080" in out
                  and "192.168.1.10" in out,
                  "ruleset in the guest kernel (nft list table inet portcullis: the forward "
                  "8080 -> 192.168.1.10, dnat, policy drop)", out)
        rc, out = g.run("nft list chain inet portcullis input")
        res.check(rc == 0 and "policy drop" in out, "input chain: policy drop", out)

        rc, out = g.run("modprobe wireguard && ip link add wgtest type wireguard && "
                        "ip link show wgtest && ip link del wgtest")
        res.check(rc == 0 and "wgtest" in out, "WireGuard module loads, a wireguard link can be made", out)

        # From the host, through QEMU's port forwarding.
        token_rc, token = g.run("cat /srv/lanhost/token")
        token = token.strip()
        status, body = None, ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = http_get(g.ports["wan_fwd"], "/token")
            if status == 200:
                break
            time.sleep(1)
        res.check(token_rc == 0 and status == 200 and body.strip() == token,
                  "static forward: a WAN-side client reaches the LAN host's web server "
                  f"(WAN :8080 -> 192.168.1.10:80, token {token[:24]}...)", f"{status} {body}")

        status, body = None, ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = http_get(g.ports["ui"], "/")
            if status == 200:
                break
            time.sleep(1)
        res.check(status == 200 and "<title>Portcullis</title>" in body,
                  "management port: the web UI answers on the LAN side (192.168.1.1:80)",
                  f"{status} {body[:500]}")
        status, body = http_get(g.ports["wan_ui"], "/", timeout=8)
        res.check(status is None, "management port: nothing answers on the WAN side (10.0.2.15:80)",
                  f"{status} {body}")

        # Big-endian-sensitive encodings: allow-lists, a rate limit, element timeouts, readback.
        t0 = time.monotonic()
        endian_now = endian_checks.run(g, res, http_get, token)

        # Supervision: the daemon killed outright comes back with its ruleset.
        rc, out = g.run("old=$(pidof portcullis); kill -9 $old; i=0; "
                        "while [ $i -lt 40 ]; do new=$(pidof portcullis); "
                        "[ -n \"$new\" ] && [ \"$new\" != \"$old\" ] && break; usleep 250000; i=$((i+1)); done; "
                        "echo old=$old new=$new; [ -n \"$new\" ] && [ \"$new\" != \"$old\" ]", timeout=40)
        res.check(rc == 0, "supervised: portcullis killed with SIGKILL is restarted", out)
        rc, out = g.run("sleep 2; /usr/sbin/portcullis --config /etc/portcullis/test-config.json "
                        "status --json", timeout=40)
        res.check(rc == 0 and re.search(r'"table_present": *true', out) is not None and "lanweb" in out,
                  "after the restart the ruleset is in place (portcullis status)", out)
        if endian_now is not None:
            # The restarted daemon installed the whole table from the saved config at once.
            endian_checks.readback(g, res, endian_now, "after the restart")
        print(f"ENDIAN-CHECKS {args.arch} {time.monotonic() - t0:.1f}s", flush=True)

        # Clean power-off: init scripts stop (the supervisor reports), QEMU exits 0.
        start = len(g.buf)
        g.proc.stdin.write(b"poweroff\n")
        g.proc.stdin.flush()
        try:
            g.proc.wait(timeout=args.poweroff_timeout)
            g.reader.join(5)
            tail = g.serial_log(start)
            # s390x: the SCLP console drops the kernel's last line ("reboot: Power down") when
            # the machine stops; busybox's "Requesting system poweroff" precedes it.
            down = "reboot: Power down" in tail or (
                args.arch == "s390x" and "Requesting system poweroff" in tail)
            res.check(g.proc.returncode == 0 and "Stopping portcullis: " in tail
                      and "portcullis: stopped" in tail and down,
                      f"clean power-off: services stopped, QEMU exited {g.proc.returncode}", tail)
        except subprocess.TimeoutExpired:
            res.check(False, f"power-off within {args.poweroff_timeout}s", g.serial_log(start))
    finally:
        g.kill()
        logf.close()
        if res.failed:
            print_log(g, "test failed")


def hang_check(args, res, tmp):
    """A boot that never reaches the ready marker must fail within the bound, with the log."""
    bound = 20
    g = Guest(args.arch, os.path.join(args.image, "kernel"),
              [os.path.join(args.image, "initramfs.cpio")], tmp, append="rdinit=/bin/cat")
    t0 = time.monotonic()
    inner = Results(args.arch)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            m = await_boot(g, bound, inner)
    finally:
        g.kill()
    took = time.monotonic() - t0
    text = out.getvalue()
    res.check(m is None and inner.failed == 1 and took < bound + 10,
              f"a hanging boot (rdinit=/bin/cat) fails after {took:.0f}s (bound {bound}s)", text)
    res.check("---- serial log" in text and "Linux version" in text,
              f"... and prints the serial log ({len(text.splitlines())} lines)", text)
    print("\n".join("     | " + l for l in text.splitlines()[:3]))
    res.check(g.proc.returncode is not None, "the hung QEMU was killed")


def bench(args, res, tmp):
    """Boot-to-ready of an image (with or without portcullis), several runs."""
    times = []
    for i in range(args.runs):
        g = Guest(args.arch, os.path.join(args.image, "kernel"),
                  [os.path.join(args.image, "initramfs.cpio")], tmp)
        try:
            m = g.wait_for(READY, args.boot_timeout)
            times.append((time.monotonic() - g.started, float(m.group(1))))
        except BootTimeout as e:
            res.check(False, f"bench boot {i + 1}: {e}")
            print_log(g, "bench boot")
            return
        finally:
            g.kill()
    host = sorted(t[0] for t in times)
    guest = sorted(t[1] for t in times)
    med = lambda xs: xs[len(xs) // 2]
    print(f"BOOT-BENCH {args.arch} {args.label} runs={len(times)} host_median={med(host):.1f} "
          f"host_min={host[0]:.1f} host_max={host[-1]:.1f} guest_median={med(guest):.1f}", flush=True)
    res.check(True, f"bench {args.label}: median {med(host):.1f}s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=["mipsel", "aarch64", "armhf", "s390x"])
    p.add_argument("--image", required=True, help="dir with kernel and initramfs.cpio")
    p.add_argument("--test-overlay", help="test-overlay.cpio")
    p.add_argument("--boot-timeout", type=float, default=150)
    p.add_argument("--poweroff-timeout", type=float, default=60)
    p.add_argument("--hang-check", action="store_true")
    p.add_argument("--bench", action="store_true")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--label", default="image")
    args = p.parse_args()
    res = Results(args.arch)
    tmp = tempfile.mkdtemp(prefix="portcullis-boot-")
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.bench:
            bench(args, res, tmp)
        elif args.hang_check:
            hang_check(args, res, tmp)
        else:
            boot_test(args, res, tmp)
    finally:
        signal.signal(signal.SIGTERM, old)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"boot-{args.arch}: {res.passed} passed, {res.failed} failed", flush=True)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
