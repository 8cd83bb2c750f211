//! Kernel tests of the VPN tunnel's firewall side (issue 9): the kill switch, the Port Fail
//! guard, the tunnel devices' DNS and the provider's forwarded port. They need root, `ip`
//! and `nft`.
//!
//! The host kernel has no WireGuard module, and the firewall only sees interface names and
//! marks: the "tunnel" is a veth named like one (`wgt<pid>`) to a "provider" namespace.
//! Namespaces: the router `r` (LAN, WAN and tunnel interfaces, the planned table
//! installed by the `Engine`), a LAN host `h` (192.168.1.10 and .20), the ISP `i` (the
//! WAN peer; holds the "internet" host 192.0.2.80 and the VPN endpoint 198.51.100.9)
//! and the provider `p` (10.2.0.1 on the tunnel, also 192.0.2.80). The policy routing
//! that the firmware's tunnel module installs over netlink is set up here by the test
//! with `ip rule` / `ip route` (a test-only oracle of it). The ISP counts what reaches it
//! with an `nft` ingress hook of its own.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};
use nix::sys::time::TimeVal;
use portcullis::config::{Config, ProviderForward, Timestamp, Vpn, VpnDevices, VpnPeer};
use portcullis::engine::Engine;
use portcullis::names;
use portcullis::plan::HostFacts;

#[path = "fixtures/netns.rs"]
#[allow(dead_code)] // not every helper is used by every test crate
mod netns;
use netns::Netns;

const INTERNET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const DEVICE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const OTHER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
const SHORT: Duration = Duration::from_millis(700);

/// Runs `f` in a thread inside `ns` (setns(2) changes the calling thread only); sockets
/// made there stay in that namespace.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = File::open(&path).expect("open netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

fn ip(ns: &Netns, args: &str) {
    let argv: Vec<&str> = args.split_whitespace().collect();
    let out = ns.run("ip", &argv, None);
    assert!(
        out.status.success(),
        "ip {args} in {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(ns: &Netns, key: &str) {
    let out = ns.run("sysctl", &["-qw", key], None);
    assert!(out.status.success(), "sysctl {key}");
}

/// Polls until no IPv6 address of `ns` is tentative (duplicate address detection done).
fn wait_dad(ns: &Netns) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.run("ip", &["-6", "addr", "show", "tentative"], None);
        if out.status.success() && out.stdout.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "IPv6 addresses in {} still tentative",
            ns.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP connect from `ns`, from `src` if given, giving up after `SHORT`.
fn tcp(ns: &Netns, src: Option<IpAddr>, dst: SocketAddr) -> io::Result<TcpStream> {
    in_ns(ns, move || {
        let family = if dst.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd = socket(family, SockType::Stream, SockFlag::empty(), None)?;
        // Linux bounds connect(2) by the send timeout.
        let ms = i64::try_from(SHORT.as_millis()).unwrap_or(1000);
        setsockopt(&fd, sockopt::SendTimeout, &TimeVal::new(0, ms * 1000))?;
        if let Some(s) = src {
            bind(
                fd.as_raw_fd(),
                &SockaddrStorage::from(SocketAddr::new(s, 0)),
            )?;
        }
        connect(fd.as_raw_fd(), &SockaddrStorage::from(dst))?;
        let s = TcpStream::from(fd);
        s.set_read_timeout(Some(SHORT))?;
        Ok(s)
    })
}

fn listen(ns: &Netns, at: SocketAddr) -> TcpListener {
    in_ns(ns, || TcpListener::bind(at).expect("listen"))
}

/// Accepts one connection within a few seconds (the listener polls, never blocks).
fn accept(l: &TcpListener) -> Option<TcpStream> {
    l.set_nonblocking(true).expect("nonblocking");
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                s.set_read_timeout(Some(SHORT)).expect("timeout");
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

struct Lab {
    r: Netns,
    h: Netns,
    i: Netns,
    p: Netns,
    cfg: Config,
    engine: Engine,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vpn(wg: &str, devices: VpnDevices) -> Vpn {
    Vpn {
        enabled: true,
        interface: wg.into(),
        addresses: vec!["10.2.0.2/32".parse().expect("net")],
        dns: vec![RESOLVER],
        mtu: 1420,
        listen_port: None,
        fwmark: 51_820,
        table: 51_820,
        peer: VpnPeer {
            public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            endpoint: std::net::SocketAddrV4::new(ENDPOINT, 51_820),
            allowed_ips: vec!["0.0.0.0/0".parse().expect("net")],
            persistent_keepalive: None,
        },
        devices,
        kill_switch: true,
        port_forward: Some(ProviderForward {
            gateway: RESOLVER,
            to: OTHER,
            to_port: Some(8000),
        }),
    }
}

/// Only 192.168.1.10 uses the tunnel (192.168.1.20 keeps the plain WAN).
fn only_device() -> VpnDevices {
    VpnDevices {
        all: false,
        hosts: vec!["192.168.1.10/32".parse().expect("net")],
        macs: Vec::new(),
    }
}

impl Lab {
    fn new(devices: VpnDevices) -> Lab {
        let pid = std::process::id();
        let (lan, wan, wg) = (
            format!("lan{pid}"),
            format!("wan{pid}"),
            format!("wgt{pid}"),
        );
        let (r, h, i, p) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
        for (dev, peer) in [(&lan, &h), (&wan, &i), (&wg, &p)] {
            ip(
                &r,
                &format!(
                    "link add {dev} type veth peer name eth0 netns {}",
                    peer.name
                ),
            );
            ip(&r, &format!("link set {dev} up"));
            ip(peer, "link set eth0 up");
            ip(peer, "link set lo up");
        }
        ip(&r, "link set lo up");
        for k in [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sysctl(&r, k);
        }
        sysctl(&r, &format!("net.ipv4.conf.{wg}.rp_filter=0"));
        ip(&r, &format!("addr add 192.168.1.1/24 dev {lan}"));
        ip(&r, &format!("addr add fd00:1::1/64 dev {lan} nodad"));
        ip(&r, &format!("addr add 203.0.113.2/24 dev {wan}"));
        ip(&r, &format!("addr add 2001:db8:1::2/64 dev {wan} nodad"));
        ip(&r, &format!("addr add 10.2.0.2/24 dev {wg}"));
        ip(&r, "route add default via 203.0.113.1");
        ip(&r, "-6 route add default via 2001:db8:1::1");
        ip(&h, "addr add 192.168.1.10/24 dev eth0");
        ip(&h, "addr add 192.168.1.20/24 dev eth0");
        ip(&h, "addr add fd00:1::10/64 dev eth0 nodad");
        ip(&h, "route add default via 192.168.1.1");
        ip(&h, "-6 route add default via fd00:1::1");
        ip(&i, "addr add 203.0.113.1/24 dev eth0");
        ip(&i, "addr add 2001:db8:1::1/64 dev eth0 nodad");
        ip(&i, "addr add 192.0.2.80/32 dev lo");
        ip(&i, "addr add 198.51.100.9/32 dev lo");
        ip(&i, "route add 192.168.1.0/24 via 203.0.113.2");
        ip(&i, "-6 route add default via 2001:db8:1::2");
        ip(&p, "addr add 10.2.0.1/24 dev eth0");
        ip(&p, "addr add 192.0.2.80/32 dev lo");
        // What the tunnel module does over netlink, here by hand. (Not `not fwmark F to
        // EP/32`: a rule's invert flag negates the whole match, so that rule would send
        // everything but WireGuard's own packets to the tunnel table.) WireGuard's own
        // packets by the main table; anything else to the endpoint into the tunnel.
        ip(&r, "rule add fwmark 51820 table main priority 9999");
        ip(&r, "rule add to 198.51.100.9/32 table 51820 priority 10000");
        ip(
            &r,
            "rule add fwmark 0x10000 table main suppress_prefixlength 0 priority 10001",
        );
        ip(&r, "rule add fwmark 0x10000 table 51820 priority 10002");
        ip(&r, &format!("route add default dev {wg} table 51820"));
        // The ISP counts what reaches it from the router.
        i.nft_load(
            "table netdev watch {
                counter internet4 { }
                counter internet6 { }
                counter endpoint_tcp { }
                counter endpoint_wg { }
                chain in {
                    type filter hook ingress device \"eth0\" priority 0;
                    ip daddr 192.0.2.80 counter name \"internet4\"
                    ip6 daddr 2001:db8:1::1 meta l4proto tcp counter name \"internet6\"
                    ip daddr 198.51.100.9 meta l4proto tcp counter name \"endpoint_tcp\"
                    ip daddr 198.51.100.9 udp dport 51820 counter name \"endpoint_wg\"
                }
            }",
        );

        // IPv6 forwarding waits for duplicate address detection of the link-local
        // addresses (about a second): until then a first connection through the router
        // times out and an "IPv6 is dropped" assertion would hold for the wrong reason.
        for ns in [&r, &h, &i, &p] {
            wait_dad(ns);
        }
        let mut cfg = Config::parse(include_str!("../examples/home.json")).expect("example");
        cfg.lan.interface = lan;
        cfg.wan.interface = wan;
        cfg.vpn = Some(vpn(&wg, devices));
        let dir = std::env::temp_dir().join(format!("pcx-vpn-{pid}-{}", r.name));
        std::fs::create_dir_all(&dir).expect("dir");
        let saved = dir.join("config.json");
        let engine = in_ns(&r, || Engine::open(&saved).expect("engine"));
        let mut lab = Lab {
            r,
            h,
            i,
            p,
            cfg,
            engine,
            _dir: TempDir(dir),
        };
        lab.install(None);
        lab
    }

    /// Plans and installs the config with the provider holding `port` (or none).
    fn install(&mut self, port: Option<u16>) {
        let facts = HostFacts {
            wan_addrs: vec![Ipv4Addr::new(203, 0, 113, 2)],
            ..HostFacts::default()
        };
        // The engine plans the provider's port it holds (as the owner sets it).
        self.engine
            .set_vpn_port(port.map(|p| (p, Instant::now() + Duration::from_secs(60))));
        self.engine
            .install_with(&self.cfg, &facts, now())
            .expect("install");
    }

    /// Packets of one of our named counters.
    fn ours(&self, name: &str) -> u64 {
        let mut nft = self.r.nft();
        let v = portcullis::readback::kernel_view(&mut nft, names::TABLE).expect("read back");
        v.counters.get(name).map_or(0, |c| c.0)
    }

    /// Packets of one of the ISP's counters.
    fn isp(&self, name: &str) -> u64 {
        let text = self
            .i
            .nft_cli(&["list", "counter", "netdev", "watch", name]);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packets in {text}"))
    }
}

fn at(a: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(a.into(), port)
}

#[test]
fn a_tunnel_device_goes_through_the_tunnel_and_never_the_wan() {
    let lab = Lab::new(VpnDevices::default());
    let provider = listen(&lab.p, at(INTERNET, 8080));
    let _isp = listen(&lab.i, at(INTERNET, 8080));
    let mut c = tcp(&lab.h, None, at(INTERNET, 8080)).expect("connect through the tunnel");
    let mut s = accept(&provider).expect("the provider side got it");
    c.write_all(b"hi").expect("write");
    let mut buf = [0; 2];
    s.read_exact(&mut buf).expect("read");
    assert_eq!(lab.isp("internet4"), 0, "nothing went by the WAN");
    assert_eq!(lab.ours(names::VPN_KILL_SWITCH), 0);

    // The tunnel goes down (its route is gone): the kill switch holds.
    ip(&lab.r, "route del default table 51820");
    assert!(tcp(&lab.h, None, at(INTERNET, 8080)).is_err());
    assert!(lab.ours(names::VPN_KILL_SWITCH) > 0, "kill switch counted");
    assert_eq!(lab.isp("internet4"), 0, "still nothing by the WAN");
}

#[test]
fn a_tunnel_device_has_no_ipv6_to_the_wan() {
    let lab = Lab::new(VpnDevices::default());
    let _isp = listen(&lab.i, "[2001:db8:1::1]:8080".parse().expect("addr"));
    // The router's own IPv6 reaches the ISP (the path works)...
    assert!(tcp(&lab.r, None, "[2001:db8:1::1]:8080".parse().expect("addr")).is_ok());
    let before = lab.isp("internet6");
    // ...but not a tunnel device's.
    assert!(tcp(&lab.h, None, "[2001:db8:1::1]:8080".parse().expect("addr")).is_err());
    assert_eq!(lab.isp("internet6"), before);
    assert!(lab.ours(names::VPN_KILL_SWITCH) > 0);
}

#[test]
fn a_device_not_using_the_tunnel_still_reaches_the_wan() {
    let lab = Lab::new(only_device());
    let isp = listen(&lab.i, at(INTERNET, 8080));
    let provider = listen(&lab.p, at(INTERNET, 8080));
    tcp(&lab.h, Some(OTHER.into()), at(INTERNET, 8080)).expect("plain WAN");
    assert!(accept(&isp).is_some());
    assert!(lab.isp("internet4") > 0);
    // The selected device still goes through the tunnel.
    tcp(&lab.h, Some(DEVICE.into()), at(INTERNET, 8080)).expect("tunnel");
    assert!(accept(&provider).is_some());
}

#[test]
fn lan_traffic_to_the_endpoint_never_leaves_by_the_wan() {
    let lab = Lab::new(only_device());
    let _isp = listen(&lab.i, at(ENDPOINT, 443));
    // Force the WAN route for it (as a broken routing table would).
    ip(&lab.r, "rule del priority 10000");
    assert!(tcp(&lab.h, Some(OTHER.into()), at(ENDPOINT, 443)).is_err());
    assert!(lab.ours(names::VPN_PORT_FAIL) > 0, "counted at forward");
    assert_eq!(lab.isp("endpoint_tcp"), 0);
}

#[test]
fn the_router_reaches_the_endpoint_by_wireguard_udp_only() {
    let lab = Lab::new(only_device());
    let _isp = listen(&lab.i, at(ENDPOINT, 443));
    ip(&lab.r, "rule del priority 10000");
    assert!(tcp(&lab.r, None, at(ENDPOINT, 443)).is_err());
    assert!(lab.ours(names::VPN_PORT_FAIL) > 0, "counted at output");
    assert_eq!(lab.isp("endpoint_tcp"), 0);
    // WireGuard's own packets (its fwmark) do leave by the WAN.
    let sink = in_ns(&lab.i, || {
        UdpSocket::bind(at(ENDPOINT, 51_820)).expect("bind")
    });
    sink.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    in_ns(&lab.r, || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
        setsockopt(&s, sockopt::Mark, &51_820).expect("SO_MARK");
        s.send_to(b"wg", at(ENDPOINT, 51_820)).expect("send");
    });
    let mut buf = [0; 8];
    assert_eq!(
        sink.recv_from(&mut buf).expect("WireGuard UDP arrives").0,
        2
    );
    assert!(lab.isp("endpoint_wg") > 0);
}

#[test]
fn the_provider_port_is_reachable_through_the_tunnel_only_and_follows_the_provider() {
    let mut lab = Lab::new(only_device());
    let service = listen(&lab.h, at(OTHER, 8000));
    // No port held: nothing open.
    assert!(tcp(&lab.p, Some(INTERNET.into()), at(TUNNEL_ADDR, 45_678)).is_err());
    lab.install(Some(45_678));
    // From the "internet" behind the provider: reaches the LAN service, and its replies
    // find the way back through the tunnel (192.0.2.80 routes by the WAN otherwise).
    let mut old =
        tcp(&lab.p, Some(INTERNET.into()), at(TUNNEL_ADDR, 45_678)).expect("provider port open");
    let mut old_in = accept(&service).expect("the LAN service got it");
    old.write_all(b"a").expect("write");
    let mut b = [0; 1];
    old_in.read_exact(&mut b).expect("data flows");
    // The same port from the WAN: never.
    assert!(tcp(&lab.i, None, at(Ipv4Addr::new(203, 0, 113, 2), 45_678)).is_err());

    // The provider moves the port: the old one closes, the new one opens, and the
    // connection through the old one is cut.
    let cut = lab.ours(names::FLOWS_CUT);
    lab.install(Some(45_679));
    assert!(tcp(&lab.p, Some(INTERNET.into()), at(TUNNEL_ADDR, 45_678)).is_err());
    tcp(&lab.p, Some(INTERNET.into()), at(TUNNEL_ADDR, 45_679)).expect("new port open");
    assert!(accept(&service).is_some());
    old.write_all(b"b").expect("write");
    assert!(old_in.read(&mut b).is_err(), "the old connection is cut");
    assert!(lab.ours(names::FLOWS_CUT) > cut);
}

#[test]
fn a_tunnel_device_dns_goes_to_the_tunnel_resolver() {
    let lab = Lab::new(VpnDevices::default());
    let resolver = in_ns(&lab.p, || {
        UdpSocket::bind(at(RESOLVER, 53)).expect("bind 53")
    });
    resolver
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    in_ns(&lab.h, || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
        s.send_to(b"query", at(Ipv4Addr::new(192, 168, 1, 1), 53))
            .expect("send");
    });
    let mut buf = [0; 16];
    let (n, from) = resolver.recv_from(&mut buf).expect("the query arrives");
    assert_eq!(&buf[..n], b"query");
    assert_eq!(from.ip(), IpAddr::from(TUNNEL_ADDR), "through the tunnel");
    // IPv6 DNS to the router is not resolved outside the tunnel.
    in_ns(&lab.h, || {
        let s = UdpSocket::bind("[::]:0").expect("udp6");
        s.send_to(
            b"query",
            "[fd00:1::1]:53".parse::<SocketAddr>().expect("addr"),
        )
        .expect("send");
    });
    let end = Instant::now() + Duration::from_secs(3);
    while lab.ours(names::VPN_DNS_BLOCKED) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lab.ours(names::VPN_DNS_BLOCKED) > 0);
}

/// The lab's plain IPv6 path carries a LAN host's TCP to the ISP when nothing stops it
/// (no VPN, no table): without this, `a_tunnel_device_has_no_ipv6_to_the_wan` could pass
/// for the wrong reason (it did, before the lab waited for duplicate address detection).
#[test]
fn the_labs_ipv6_path_works_without_a_vpn() {
    let mut lab = Lab::new(VpnDevices::default());
    lab.cfg.vpn = None;
    lab.install(None);
    let _isp = listen(&lab.i, "[2001:db8:1::1]:8080".parse().expect("addr"));
    let _ = lab.r.nft_cli(&["delete", "table", "inet", names::TABLE]);
    let r = tcp(&lab.h, None, "[2001:db8:1::1]:8080".parse().expect("addr"));
    assert!(
        r.is_ok(),
        "a LAN host's IPv6 never reaches the ISP even with no ruleset: {r:?}"
    );
}
