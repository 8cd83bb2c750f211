//! The IGD's HTTP routes, pure: a request (as the gate hands it over) in, a response out.
//!
//! | Method | Path | Answer |
//! |---|---|---|
//! | GET, HEAD | `/rootDesc.xml`, `/WANIPCn.xml`, `/WANCfg.xml` | the descriptions |
//! | POST | `/ctl/IPConn`, `/ctl/CmnIfCfg` | SOAP control ([`soap::control`]) |
//! | SUBSCRIBE, UNSUBSCRIBE | any | 501: no eventing |
//! | other | known path | 405 |
//! | any | other path | 404 |
//!
//! Only LAN hosts (`LanSide::is_lan_host`) get any of it; everyone else gets 403.
//!
//! No eventing: every `eventSubURL` is empty (UDA 1.1 §2.3, a service without evented
//! variables) and SUBSCRIBE/UNSUBSCRIBE get 501 Not Implemented (UDA 1.1 §4.1.2 allows a
//! 5xx when a publisher cannot accept a subscription). The IGD therefore never sends a
//! request to a URL a client chose (CallStranger, CVE-2020-12695).
//!
//! Against web pages in a LAN browser: control needs a `SOAPAction` header and a
//! `text/xml` body (a cross-site form can send neither without a CORS preflight, which
//! is never granted), and a `Host` header, when present, must be one of the router's
//! LAN addresses (DNS rebinding sends the attacker's name).

use std::net::{IpAddr, Ipv4Addr};

use crate::config::Timestamp;
use crate::portmap::describe::{self, DescribeInput, Udns};
use crate::portmap::soap::{self, Caller, Service};
use crate::portmap::{LanSide, Mapper};
use crate::web::http::{Request, Response};

/// What the routes need to know.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub lan: LanSide,
    pub udns: Udns,
    pub web_port: u16,
    pub server: String,
}

impl Site {
    /// The router's LAN address on `peer`'s subnet (else its first LAN address).
    pub(crate) fn addr_for(&self, peer: Ipv4Addr) -> Ipv4Addr {
        let on_subnet = self.lan.addrs.iter().copied().find(|a| {
            self.lan
                .subnets
                .iter()
                .any(|n| n.contains(*a) && n.contains(peer))
        });
        on_subnet
            .or_else(|| self.lan.addrs.first().copied())
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

fn text(status: u16, body: &str) -> Response {
    Response::bytes(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn xml(status: u16, body: String) -> Response {
    Response::bytes(status, soap::CONTENT_TYPE, body.into_bytes())
}

/// Whether the Host header (if any) names one of our LAN addresses.
fn host_ok(site: &Site, req: &Request) -> bool {
    let Some(host) = req.header("Host") else {
        return true;
    };
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    name.trim()
        .parse::<Ipv4Addr>()
        .is_ok_and(|a| site.lan.addrs.contains(&a))
}

/// Answers one request at `now`.
pub(crate) fn route(site: &Site, mapper: &dyn Mapper, req: &Request, now: Timestamp) -> Response {
    let peer = match req.peer {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let method = req.method.as_str();
    if method == "SUBSCRIBE" || method == "UNSUBSCRIBE" {
        return text(501, "this gateway does not support eventing");
    }
    let service = match req.path.as_str() {
        describe::WAN_IP_CONTROL_PATH => Some(Service::WanIpConnection),
        describe::WAN_COMMON_CONTROL_PATH => Some(Service::WanCommonInterfaceConfig),
        _ => None,
    };
    let page = match req.path.as_str() {
        describe::ROOT_DESC_PATH => Some(describe::root_description(&DescribeInput {
            udns: &site.udns,
            lan_addr: site.addr_for(peer),
            web_port: site.web_port,
            version: env!("CARGO_PKG_VERSION"),
        })),
        describe::WAN_IP_SCPD_PATH => Some(describe::wan_ip_scpd()),
        describe::WAN_COMMON_SCPD_PATH => Some(describe::wan_common_scpd()),
        _ => None,
    };
    let resp = if !site.lan.is_lan_host(peer) {
        // The listeners are on LAN addresses, but a router also accepts packets for them
        // on the WAN side (weak host model): nothing here is for anyone else.
        text(403, "only LAN hosts may use this gateway")
    } else if !host_ok(site, req) {
        text(421, "use the router's LAN address")
    } else if let Some(page) = page {
        match method {
            "GET" => xml(200, page),
            "HEAD" => Response::bytes(200, soap::CONTENT_TYPE, Vec::new()),
            _ => text(405, "method not allowed"),
        }
    } else if let Some(service) = service {
        let content_type = req.header("Content-Type").unwrap_or("");
        if method != "POST" {
            text(405, "method not allowed")
        } else if !content_type
            .get(..8)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/xml"))
        {
            text(415, "send a SOAP envelope as text/xml")
        } else if let Some(action) = req.header("SOAPAction") {
            let caller = Caller {
                peer,
                // For MAC rules and the UI; the kernel's neighbour table is the source.
                mac: crate::portmap::neigh::mac_of(peer),
                now,
            };
            let r = soap::control(service, Some(action), &req.body, &caller, mapper);
            xml(r.status, r.body)
        } else {
            text(400, "a SOAPAction header is required")
        }
    } else {
        text(404, "not found")
    };
    resp.header("Server", &site.server).header("EXT", "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ipv4Net;
    use crate::portmap::{ExternalAddress, Grant, MapRequest, Mapping, Refusal, Unmap};

    struct Nobody;
    impl Mapper for Nobody {
        fn map(&self, _: MapRequest) -> Result<Grant, Refusal> {
            Err(Refusal::Pending)
        }
        fn unmap(&self, _: Unmap) -> Result<Vec<Mapping>, Refusal> {
            Err(Refusal::NotFound)
        }
        fn mappings(&self) -> Vec<Mapping> {
            Vec::new()
        }
        fn external(&self) -> ExternalAddress {
            ExternalAddress::default()
        }
        fn epoch_secs(&self) -> u32 {
            0
        }
    }

    fn site() -> Site {
        Site {
            lan: LanSide {
                interface: "lan".into(),
                addrs: vec![Ipv4Addr::new(192, 168, 1, 1)],
                subnets: vec![Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 24).unwrap()],
                http_port: 5000,
                web_port: 80,
            },
            udns: Udns::from_mac(&[2, 0, 0, 0, 0, 1]),
            web_port: 80,
            server: "Linux UPnP/1.1 Portcullis/0".into(),
        }
    }

    fn req(method: &str, path: &str, peer: [u8; 4], headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: b"<s:Envelope><s:Body><u:GetStatusInfo/></s:Body></s:Envelope>".to_vec(),
            peer: IpAddr::V4(peer.into()),
        }
    }

    #[test]
    fn routes_answer_by_method_path_peer_and_headers() {
        let s = site();
        let lan = [192, 168, 1, 20];
        let soap_headers = [
            ("Host", "192.168.1.1:5000"),
            ("Content-Type", "text/xml; charset=\"utf-8\""),
            (
                "SOAPAction",
                "\"urn:schemas-upnp-org:service:WANIPConnection:1#GetStatusInfo\"",
            ),
        ];
        let status = |r: Request| route(&s, &Nobody, &r, Timestamp(0)).status;
        let root = route(
            &s,
            &Nobody,
            &req("GET", "/rootDesc.xml", lan, &[]),
            Timestamp(0),
        );
        assert_eq!(root.status, 200);
        assert_eq!(root.get("Content-Type"), Some(soap::CONTENT_TYPE));
        assert!(String::from_utf8(root.body)
            .unwrap()
            .contains("<presentationURL>http://192.168.1.1:80/</presentationURL>"));
        assert_eq!(status(req("GET", "/WANIPCn.xml", lan, &[])), 200);
        assert_eq!(status(req("GET", "/WANCfg.xml", lan, &[])), 200);
        assert_eq!(status(req("POST", "/ctl/IPConn", lan, &soap_headers)), 200);
        assert_eq!(
            status(req("POST", "/ctl/IPConn", [10, 0, 0, 5], &soap_headers)),
            403
        );
        assert_eq!(
            status(req("POST", "/ctl/IPConn", [192, 168, 1, 1], &soap_headers)),
            403
        );
        assert_eq!(
            status(req("POST", "/ctl/IPConn", lan, &soap_headers[..2])),
            400
        );
        let form = [
            soap_headers[0],
            ("Content-Type", "text/plain"),
            soap_headers[2],
        ];
        assert_eq!(status(req("POST", "/ctl/IPConn", lan, &form)), 415);
        let rebound = [
            ("Host", "evil.example:5000"),
            soap_headers[1],
            soap_headers[2],
        ];
        assert_eq!(status(req("POST", "/ctl/IPConn", lan, &rebound)), 421);
        assert_eq!(status(req("SUBSCRIBE", "/ctl/IPConn", lan, &[])), 501);
        assert_eq!(status(req("UNSUBSCRIBE", "/", lan, &[])), 501);
        assert_eq!(status(req("GET", "/ctl/IPConn", lan, &[])), 405);
        assert_eq!(status(req("POST", "/rootDesc.xml", lan, &[])), 405);
        assert_eq!(status(req("GET", "/", lan, &[])), 404);
        assert_eq!(
            status(req("GET", "/rootDesc.xml", [203, 0, 113, 9], &[])),
            403
        );
    }
}
