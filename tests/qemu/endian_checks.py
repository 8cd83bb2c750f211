"""The boot test's checks of the encodings that differ between little- and big-endian CPUs.

The firmware speaks nf_tables netlink itself: native-endian message headers, network-order
attribute payloads (ports, addresses, set keys, concatenations, intervals), big-endian 64-bit
counters and element timeouts. On a big-endian kernel (s390x; the most common OpenWrt routers
are big-endian MIPS) a wrong byte order shows up as wrong ports and addresses, refused batches,
absurd timeouts or counters. These checks run on every boot-tested arch and compare three
views of one ruleset: what the firmware planned (`portcullis plan`, pure code), what the
kernel holds as Debian's nft decodes it (`nft list` / `nft -j list`), and what the firmware
decodes from the kernel (`portcullis status --json`). Traffic from the host proves the
allow-lists and the rate limit in the packet path.

Only the standard library; `guest` is boot_test.Guest, `res` boot_test.Results.
"""
import json
import re
import time

CONFIG = "/etc/portcullis/endian-test-config.json"
CANDIDATE = "/tmp/endian-test-config.json"
PORTCULLIS = "/usr/sbin/portcullis --config /etc/portcullis/test-config.json"
EXPIRES_IN = 90 * 86400  # > 2^32 ms: the upper half of the 64-bit element timeout matters


def nft_text(text):
    """Parses `nft list table` / `portcullis plan` text: {"set NAME"|"chain NAME": [lines]},
    set and map entries as their elements (timeouts and expiry times dropped, sorted), chain
    entries as their normalised lines (counter values dropped). Sets created by the kernel
    from packets (flags dynamic) keep no elements."""
    out, cur, elems, dynamic = {}, None, None, False
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if elems is not None:
            elems += " " + line
            if line.endswith("}"):
                if not dynamic:
                    items = elems.strip()[:-1].split(",")
                    out[cur] = sorted(norm_elem(e) for e in items if e.strip())
                elems = None
            continue
        m = re.match(r"(set|map|chain) (\S+) \{$", line)
        if m:
            cur, dynamic = f"{'set' if m.group(1) == 'map' else m.group(1)} {m.group(2)}", False
            out[cur] = []
            continue
        if cur is None or line in ("", "}"):
            if line == "}":
                cur = None
            continue
        if line.startswith("flags") and "dynamic" in line:
            dynamic = True
        if line.startswith("elements = {"):
            elems = line[len("elements = {"):]
            if elems.endswith("}"):
                out[cur] = [] if dynamic else sorted(
                    norm_elem(e) for e in elems[:-1].split(",") if e.strip())
                elems = None
            continue
        if cur.startswith("chain "):
            out[cur].append(re.sub(r" packets \d+ bytes \d+", "", line))
    return out


def norm_elem(e):
    return " ".join(re.sub(r" (timeout|expires) \S+", "", " " + e).split())


def nft_json_key(k):
    """A key of `nft -j` set elements as text: 8080, 9000-9010, 10.0.2.0/24, a . b."""
    if isinstance(k, dict):
        if "elem" in k:
            return nft_json_key(k["elem"]["val"])
        if "range" in k:
            return "-".join(nft_json_key(x) for x in k["range"])
        if "prefix" in k:
            return f"{k['prefix']['addr']}/{k['prefix']['len']}"
        if "concat" in k:
            return " . ".join(nft_json_key(x) for x in k["concat"])
    return str(k)


def nft_json_view(doc):
    """From `nft -j list ruleset`: counters {name: (packets, bytes)} and the installed
    forwards {counter name: (proto, port text, expires secs or None)} (maps ctr_tcp/ctr_udp)."""
    counters, installed = {}, {}
    for item in doc.get("nftables", []):
        if "counter" in item:
            c = item["counter"]
            counters[c["name"]] = (c["packets"], c["bytes"])
        m = item.get("map")
        if m and m.get("table") == "portcullis" and m["name"] in ("ctr_tcp", "ctr_udp"):
            for key, value in m.get("elem", []):
                exp = key["elem"].get("expires") if isinstance(key, dict) and "elem" in key else None
                installed.setdefault(value, []).append((m["name"][4:], nft_json_key(key), exp))
    return counters, installed


def json_after(out):
    """The JSON document in a console output (from the first '{')."""
    return json.loads(out[out.index("{"):])


def apply_config(g, res):
    """Writes the endian test config with expires_at = guest now + EXPIRES_IN, applies it
    through the running daemon. Returns the guest time used, or None."""
    rc, out = g.run("date +%s")
    if not res.check(rc == 0 and out.strip().isdigit(), "guest clock readable", out):
        return None
    now = int(out.strip())
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + EXPIRES_IN))
    rc, out = g.run(f"sed 's/2030-01-01T00:00:00Z/{at}/' {CONFIG} >{CANDIDATE} && "
                    f"{PORTCULLIS} apply {CANDIDATE}", timeout=60)
    res.check(rc == 0, f"apply through the daemon: allow-lists, a rate limit, expires_at {at}, "
                       "a port range, a trigger", out)
    return now if rc == 0 else None


def traffic(g, res, http_get, token):
    """Allow-lists and the rate limit in the packet path, from the host via the WAN NIC."""
    ports = g.fwd_ports
    status, body = None, ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = http_get(ports[8081], "/token")
        if status == 200:
            break
        time.sleep(1)
    res.check(status == 200 and body.strip() == token,
              "allow_from 10.0.2.2/32: the host (QEMU's 10.0.2.2 on the WAN) reaches the LAN host",
              f"{status} {body}")
    status, body = http_get(ports[8082], "/token", timeout=5)
    res.check(status is None, "allow_from 203.0.113.0/24 only: the host gets no answer", f"{status} {body}")
    results = []
    for _ in range(6):
        status, _body = http_get(ports[8083], "/token", timeout=5)
        results.append(status)
        if status != 200:
            break
    res.check(results[0] == 200 and results[-1] is None,
              f"rate limit 1/hour burst 1: new connections pass, then are refused ({results})")
    rc, out = g.run("nft list set inet portcullis rl_1_hour_1")
    res.check(rc == 0 and re.search(r"8083 \. 10\.0\.2\.2\b", out) is not None,
              "the kernel's meter element for the limited source reads back as 8083 . 10.0.2.2", out)


def readback(g, res, now, when):
    """Planned == held, and firmware-decoded == nft-decoded (status vs nft -j).

    Held: our table as Debian's nft lists it. Reference: the same plan loaded by nft itself
    (libnftnl's encoding) into a fresh network namespace and listed the same way. Equal text
    means every rule, set element, interval and concatenation our encoder sent is what nft
    would have sent; the plan's own element lists must equal the held ones too."""
    rc0, out0 = g.run(f"/usr/sbin/portcullis plan {CANDIDATE} >/tmp/endian-plan.nft 2>/dev/null", timeout=60)
    rc1, planned = g.run("cat /tmp/endian-plan.nft")
    # The test overlay has no /etc/protocols: nft cannot resolve protocol names when loading.
    rc2, ref = g.run("sed 's/l4proto ipv6-icmp /l4proto 58 /; s/l4proto icmp /l4proto 1 /' "
                     "/tmp/endian-plan.nft >/tmp/endian-plan-n.nft && unshare -n sh -c "
                     "'nft -f /tmp/endian-plan-n.nft && nft list table inet portcullis'", timeout=60)
    rc3, held = g.run("nft list table inet portcullis", timeout=60)
    plan_sets = {k: v for k, v in nft_text(planned).items() if k.startswith("set ")}
    want, have = nft_text(ref), nft_text(held)
    diff = [f"{k}:\n  nft's own {want.get(k)}\n  ours      {have.get(k)}"
            for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)]
    diff += [f"{k}: planned {v}, held {have.get(k)}" for k, v in plan_sets.items() if have.get(k) != v]
    n_elems = sum(len(v) for k, v in have.items() if k.startswith("set "))
    n_rules = sum(len(v) for k, v in have.items() if k.startswith("chain "))
    res.check(rc0 == rc1 == rc2 == rc3 == 0 and len(plan_sets) > 10 and not diff,
              f"{when}: the kernel holds what was planned: nft lists our table exactly as the same "
              f"plan loaded by nft itself ({len(have)} sets and chains, {n_elems} elements, "
              f"{n_rules} rule and chain lines)",
              "\n".join(diff) or out0 + planned + ref + held)

    # Counters may move while the views are read (QEMU retries a refused SYN): nft is read
    # before and after status, and status must lie between (a byte-swapped 64-bit value
    # would be off by orders of magnitude).
    rc0, nj0 = g.run("nft -j list ruleset 2>/dev/null", timeout=60)
    rc1, st = g.run(f"{PORTCULLIS} status --json", timeout=60)
    rc2, nj = g.run("nft -j list ruleset 2>/dev/null", timeout=60)
    try:
        nj0, st, nj = json_after(nj0), json_after(st), json_after(nj)
    except ValueError as e:
        res.check(False, f"{when}: status --json and nft -j parse", f"{e}\n{st}\n{nj}")
        return
    before, installed0 = nft_json_view(nj0)
    counters, installed = nft_json_view(nj)

    def between(name, got):
        lo, hi = before.get(name), counters.get(name)
        return lo is not None and hi is not None and all(a <= g <= b for a, g, b in zip(lo, got, hi))

    bad = []
    for f in st.get("forwards", []):
        name = f["name"]
        hits = (f["hits_packets"], f["hits_bytes"])
        if not between(f"fwd_{name}", hits):
            bad.append(f"{name}: status hits {hits}, nft {before.get('fwd_' + name)} .. "
                       f"{counters.get('fwd_' + name)}")
        inst = installed.get(f"fwd_{name}", [])
        ports = sorted({p for _, p, _ in inst})
        if f["state"] != "active" or ports != [f["external_port"]]:
            bad.append(f"{name}: status {f['state']} port {f['external_port']}, nft {inst}")
        exps = [e for _, _, e in inst] + [e for _, _, e in installed0.get(f"fwd_{name}", [])]
        rem = f["remaining_secs"]
        if name == "expiring":
            if rem is None or None in exps or any(abs(rem - e) > 3 for e in exps) \
                    or not EXPIRES_IN - 600 < rem <= EXPIRES_IN:
                bad.append(f"{name}: status remaining {rem}s, nft expires {exps}, set {EXPIRES_IN}s "
                           f"ahead at guest time {now}")
        elif rem is not None or set(exps) != {None}:
            bad.append(f"{name}: status remaining {rem}, nft expires {exps} (no timeout expected)")
    limited = st.get("drops", {}).get("rate_limited")
    if not limited or not between("rate_limited", (limited, )):
        bad.append(f"rate_limited: status {limited}, nft {before.get('rate_limited')} .. "
                   f"{counters.get('rate_limited')}")
    rem = {f["name"]: f["remaining_secs"] for f in st.get("forwards", [])}.get("expiring")
    res.check(rc0 == rc1 == rc2 == 0 and len(st.get("forwards", [])) == 6 and not bad,
              f"{when}: status --json agrees with nft -j list ruleset read before and after it "
              f"(6 forwards: state, ports, 64-bit counters; rate_limited {limited}; "
              f"expiring: {rem}s left)",
              "\n".join(bad) or json.dumps(st)[:3000])


def run(g, res, http_get, token):
    """All endian checks before the daemon restart; returns the guest time used (or None)."""
    now = apply_config(g, res)
    if now is None:
        return None
    traffic(g, res, http_get, token)
    readback(g, res, now, "after the change")
    return now
