//! The SSDP sockets and thread: answers M-SEARCH from LAN hosts and announces the device.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

use super::http::Site;
use super::{IgdError, Ports};
use crate::portmap::ssdp::{self, Advert, Limiter};

/// Announcements at start: this many, [`REPEAT_GAP`] apart (UDP may lose one).
const STARTUP_NOTIFIES: u32 = 3;
const REPEAT_GAP: Duration = Duration::from_secs(1);
/// Announcements are renewed at half their max-age.
const RENEW: Duration = Duration::from_secs(ssdp::MAX_AGE_SECS as u64 / 2);
/// How often the thread looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

/// One sending socket per LAN address, bound to it (unicast answers leave from it, and
/// Linux sends multicast from a socket bound to an address out of that address's
/// interface, which also SO_BINDTODEVICE enforces); multicast TTL 2, no loopback.
pub(super) struct Sender {
    pub addr: Ipv4Addr,
    pub socket: UdpSocket,
}

fn udp(bind: SocketAddrV4, device: Option<&str>, reuse: bool) -> Result<UdpSocket, IgdError> {
    let io = |what: &'static str| {
        move |e: nix::errno::Errno| IgdError::Ssdp {
            what,
            addr: bind,
            source: std::io::Error::from(e),
        }
    };
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io("creating a socket"))?;
    if reuse {
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io("setting SO_REUSEADDR"))?;
    }
    if let Some(dev) = device {
        socket::setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(dev))
            .map_err(io("binding to the LAN interface"))?;
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(bind),
    )
    .map_err(io("binding"))?;
    Ok(UdpSocket::from(fd))
}

/// The listening socket (the group's port, joined on each LAN address) and the senders.
pub(super) fn open(site: &Site, ports: &Ports) -> Result<(UdpSocket, Vec<Sender>), IgdError> {
    let device = ports.bind_device.then_some(site.lan.interface.as_str());
    let listen = udp(ports.ssdp_bind, device, true)?;
    let mut senders = Vec::new();
    for &addr in &site.lan.addrs {
        if ports.join_group {
            listen
                .join_multicast_v4(&ssdp::GROUP, &addr)
                .map_err(|source| IgdError::Ssdp {
                    what: "joining 239.255.255.250 on the LAN address",
                    addr: SocketAddrV4::new(addr, 0),
                    source,
                })?;
        }
        let socket = udp(SocketAddrV4::new(addr, 0), device, false)?;
        let opt = |r: std::io::Result<()>, what| {
            r.map_err(|source| IgdError::Ssdp {
                what,
                addr: SocketAddrV4::new(addr, 0),
                source,
            })
        };
        opt(socket.set_multicast_ttl_v4(2), "setting the multicast TTL")?;
        opt(
            socket.set_multicast_loop_v4(false),
            "turning multicast loop off",
        )?;
        senders.push(Sender { addr, socket });
    }
    listen
        .set_read_timeout(Some(TICK))
        .map_err(|source| IgdError::Ssdp {
            what: "setting a read timeout",
            addr: ports.ssdp_bind,
            source,
        })?;
    Ok((listen, senders))
}

fn advert<'a>(site: &'a Site, addr: Ipv4Addr, http_port: u16, boot_id: u32) -> Advert<'a> {
    Advert {
        udns: &site.udns,
        location: format!(
            "http://{addr}:{http_port}{}",
            crate::portmap::describe::ROOT_DESC_PATH
        ),
        server: &site.server,
        boot_id,
    }
}

/// Which announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nts {
    Alive,
    ByeBye,
}

/// Sends ssdp:alive or ssdp:byebye on every sender. Best effort: a lost datagram is resent
/// with the next announcement.
pub(super) fn announce(
    site: &Site,
    senders: &[Sender],
    to: SocketAddrV4,
    http_port: u16,
    boot_id: u32,
    nts: Nts,
) {
    for s in senders {
        let ad = advert(site, s.addr, http_port, boot_id);
        let msgs = match nts {
            Nts::Alive => ssdp::notify_alive(&ad),
            Nts::ByeBye => ssdp::notify_byebye(&ad),
        };
        for m in msgs {
            if let Err(e) = s.socket.send_to(&m, to) {
                eprintln!(
                    "portcullis: upnp: SSDP announcement from {} failed: {e}",
                    s.addr
                );
                break;
            }
        }
    }
}

/// The SSDP thread: until `stop`, answers searches and renews the announcements.
pub(super) fn run(
    site: &Site,
    listen: &UdpSocket,
    senders: &[Sender],
    ports: &Ports,
    http_port: u16,
    boot_id: u32,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut limiter = Limiter::default();
    let mut buf = vec![0u8; ssdp::MAX_DATAGRAM + 1];
    let mut sent = 0u32;
    let mut next = start;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            announce(
                site,
                senders,
                ports.notify_to,
                http_port,
                boot_id,
                Nts::Alive,
            );
            sent += 1;
            next = now
                + if sent < STARTUP_NOTIFIES {
                    REPEAT_GAP
                } else {
                    RENEW
                };
        }
        let (n, src) = match listen.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                eprintln!("portcullis: upnp: SSDP receive failed: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        };
        let SocketAddr::V4(src) = src else { continue };
        if !site.lan.is_lan_host(*src.ip()) {
            continue;
        }
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let Ok(search) = ssdp::parse_search(datagram) else {
            continue;
        };
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !limiter.allow(*src.ip(), ms) {
            continue;
        }
        let addr = site.addr_for(*src.ip());
        let Some(sender) = senders.iter().find(|s| s.addr == addr) else {
            continue;
        };
        // Answered at once rather than after a random part of MX: a LAN has few devices.
        for m in ssdp::answers(&search, &advert(site, addr, http_port, boot_id)) {
            if let Err(e) = sender.socket.send_to(&m, SocketAddr::from(src)) {
                eprintln!("portcullis: upnp: SSDP answer to {src} failed: {e}");
                break;
            }
        }
    }
}
