//! The whole IGD on loopback: announcements, a search, descriptions and one control
//! request, with a fake Mapper. Hermetic (ephemeral ports, no group join, no
//! SO_BINDTODEVICE, so no root needed); waits with socket timeouts, never sleeps.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::config::Ipv4Net;
use crate::portmap::{ExternalAddress, Grant, MapRequest, Mapping, Refusal, Unmap};

#[derive(Default)]
struct Fake {
    maps: Mutex<Vec<MapRequest>>,
}

impl Mapper for Fake {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        self.maps.lock().unwrap().push(req);
        Err(Refusal::Pending)
    }
    fn unmap(&self, _: Unmap) -> Result<Vec<Mapping>, Refusal> {
        Err(Refusal::NotFound)
    }
    fn mappings(&self) -> Vec<Mapping> {
        Vec::new()
    }
    fn external(&self) -> ExternalAddress {
        ExternalAddress::of(Some(Ipv4Addr::new(198, 51, 100, 4)))
    }
    fn epoch_secs(&self) -> u32 {
        1
    }
}

const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A TCP connection from 127.0.0.2 (a LAN host here; 127.0.0.1 is the router).
fn connect_from_host(to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd as _;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(HOST, 0)),
    )
    .unwrap();
    let SocketAddr::V4(to) = to else { panic!() };
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    TcpStream::from(fd)
}

fn exchange(to: SocketAddr, request: &str) -> String {
    let mut s = connect_from_host(to);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn recv_n(sock: &UdpSocket, n: usize) -> Vec<String> {
    let mut buf = [0u8; 2048];
    (0..n)
        .map(|_| {
            let (len, _) = sock.recv_from(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        })
        .collect()
}

#[test]
fn the_igd_on_loopback_announces_answers_describes_and_controls() {
    let watcher = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 3), 0)).unwrap();
    watcher
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let SocketAddr::V4(notify_to) = watcher.local_addr().unwrap() else {
        panic!()
    };
    let lan = LanSide {
        interface: "lo".into(),
        addrs: vec![Ipv4Addr::LOCALHOST],
        subnets: vec![Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap()],
        http_port: 0,
        web_port: 80,
    };
    let ports = Ports {
        ssdp_bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        notify_to,
        join_group: false,
        bind_device: false,
        http: 0,
    };
    let dir = std::env::temp_dir().join(format!("pcx-igd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = IgdOptions {
        run_dir: dir.clone(),
        web_port: 8080,
    };
    let fake = Arc::new(Fake::default());
    let svc = start_on(&lan, fake.clone(), &opts, &ports).unwrap();
    let port = svc.http_port();
    let location = format!("LOCATION: http://127.0.0.1:{port}/rootDesc.xml\r\n");

    let alive = recv_n(&watcher, 9);
    assert!(alive
        .iter()
        .all(|m| m.contains("NTS: ssdp:alive") && m.contains(&location)));

    let client = UdpSocket::bind((HOST, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let search = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: ssdp:all\r\n\
                  MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n";
    client
        .send_to(search.as_bytes(), svc.ssdp_addr().unwrap())
        .unwrap();
    let answers = recv_n(&client, 9);
    assert!(answers[0].starts_with("HTTP/1.1 200 OK\r\n") && answers[0].contains(&location));
    assert!(answers[8].contains("ST: urn:schemas-upnp-org:service:WANIPConnection:1\r\n"));

    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let desc = exchange(
        to,
        &format!("GET /rootDesc.xml HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    );
    assert!(desc.starts_with("HTTP/1.1 200"), "{desc}");
    assert!(desc.contains("<presentationURL>http://127.0.0.1:8080/</presentationURL>"));

    let body = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:AddPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\
         <NewRemoteHost></NewRemoteHost><NewExternalPort>6881</NewExternalPort>\
         <NewProtocol>UDP</NewProtocol><NewInternalPort>6881</NewInternalPort>\
         <NewInternalClient>127.0.0.2</NewInternalClient><NewEnabled>1</NewEnabled>\
         <NewPortMappingDescription>torrent</NewPortMappingDescription>\
         <NewLeaseDuration>3600</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>\r\n";
    let post = format!(
        "POST /ctl/IPConn HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: test\r\n\
         Content-Length: {}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         SOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(to, &post);
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.contains("<errorCode>606</errorCode>"));
    let maps = fake.maps.lock().unwrap().clone();
    assert_eq!(maps.len(), 1);
    assert_eq!((maps[0].client, maps[0].external_port), (HOST, 6881));
    assert_eq!(maps[0].lifetime_secs, 3600);

    svc.stop();
    // Repeated ssdp:alive may still be in flight; the nine byebye follow.
    let mut bye = 0;
    while bye < 9 {
        let m = recv_n(&watcher, 1).remove(0);
        if m.contains("NTS: ssdp:byebye") {
            bye += 1;
        } else {
            assert!(m.contains("NTS: ssdp:alive"), "{m}");
        }
    }
    assert!(!dir
        .join(format!("{SOCKET_PREFIX}{}.sock", std::process::id()))
        .exists());
    let _ = std::fs::remove_dir_all(&dir);
}
