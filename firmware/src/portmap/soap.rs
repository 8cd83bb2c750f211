//! UPnP IGD SOAP control (WANIPConnection:1 and the IGDv2 additions) over bytes.
//!
//! [`control`] reads one control request (UPnP Device Architecture 1.1 §3.2.1: the
//! SOAPAction header and a SOAP 1.1 envelope), turns it into calls on a [`Mapper`], and
//! returns the response envelope (§3.2.2) or a UPnPError fault (§3.2.2, HTTP 500). The
//! Mapper decides everything about policy; this module only translates:
//!
//! | Refusal | errorCode |
//! |---|---|
//! | `Off`, `NotAllowed`, `Pending`, `OtherHost`, `NotOwner` | 606 Action not authorized |
//! | `Conflict` | 718 ConflictInMappingEntry |
//! | `Reserved` | 718, or 729 ConflictWithOtherMechanisms for IGDv2 actions |
//! | `Quota`, `NoneFree` | 728 NoPortMapsAvailable |
//! | `NotFound` | 714 NoSuchEntryInArray, or 730 PortMappingNotFound for IGDv2 actions |
//! | `Invalid` | 402 Invalid Args |
//! | `NoExternalAddress`, `Failed` | 501 Action Failed |
//!
//! The errorDescription carries the Refusal's own words ("waiting for the owner's
//! approval in the router's UI"), so a client that shows it tells the user why.
//!
//! GetExternalIPAddress answers the WAN address even when it is not public (RFC 1918,
//! CGNAT): clients such as upnpc check for reserved addresses themselves and tell their
//! user, which is more useful than a gateway that hides the fact.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::describe::{WAN_COMMON_IF, WAN_IP_CONN};
use super::xml::{self, escape};
use super::{MapRequest, Mapper, Proto, Refusal, Unmap, Via};
use crate::config::{MacAddr, Timestamp};

mod actions;

/// Content-Type of every control answer.
pub const CONTENT_TYPE: &str = "text/xml; charset=\"utf-8\"";
/// Most characters of a client's description kept.
pub const MAX_DESCRIPTION: usize = 128;
/// Most entries GetListOfPortMappings returns (also when NewNumberOfPorts is 0).
pub const MAX_LISTED: usize = 1000;

/// The service a control URL belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// urn:schemas-upnp-org:service:WANIPConnection:1 (+ IGDv2 actions).
    WanIpConnection,
    /// urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1.
    WanCommonInterfaceConfig,
}

impl Service {
    /// The service type URN (version 1).
    pub fn urn(self) -> &'static str {
        match self {
            Service::WanIpConnection => WAN_IP_CONN,
            Service::WanCommonInterfaceConfig => WAN_COMMON_IF,
        }
    }
}

/// Who asks, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The HTTP peer: the LAN host asking.
    pub peer: Ipv4Addr,
    /// Its MAC from the neighbour table, when known.
    pub mac: Option<MacAddr>,
    /// Now, for the lease time left of listed mappings.
    pub now: Timestamp,
}

/// A control answer: HTTP status (200, or 500 for a fault) and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200, or 500 with a UPnPError.
    pub status: u16,
    /// The SOAP envelope, sent as [`CONTENT_TYPE`].
    pub body: String,
}

/// A UPnPError: code and description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault(u16, String);

impl Fault {
    fn invalid_args(why: impl Into<String>) -> Fault {
        Fault(402, format!("Invalid Args: {}", why.into()))
    }

    fn refusal(r: &Refusal, v2: bool) -> Fault {
        let code = match r {
            Refusal::Off
            | Refusal::NotAllowed(_)
            | Refusal::Pending
            | Refusal::OtherHost
            | Refusal::NotOwner => 606,
            Refusal::Conflict { .. } => 718,
            Refusal::Reserved { .. } if v2 => 729,
            Refusal::Reserved { .. } => 718,
            Refusal::Quota(_) | Refusal::NoneFree => 728,
            Refusal::NotFound if v2 => 730,
            Refusal::NotFound => 714,
            Refusal::Invalid(_) => 402,
            Refusal::NoExternalAddress | Refusal::Failed(_) => 501,
        };
        Fault(code, r.to_string())
    }
}

/// A request's action name and arguments (name, unescaped text), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    action: String,
    args: Vec<(String, String)>,
}

impl Call {
    fn arg(&self, name: &str) -> Result<&str, Fault> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .ok_or_else(|| Fault::invalid_args(format!("{name} is missing")))
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<T, Fault> {
        let v = self.arg(name)?;
        v.parse()
            .map_err(|_| Fault::invalid_args(format!("{name} is not a valid number: {v:?}")))
    }

    fn proto(&self) -> Result<Proto, Fault> {
        match self.arg("NewProtocol")? {
            p if p.eq_ignore_ascii_case("TCP") => Ok(Proto::Tcp),
            p if p.eq_ignore_ascii_case("UDP") => Ok(Proto::Udp),
            p => Err(Fault::invalid_args(format!(
                "NewProtocol {p:?} is not TCP or UDP"
            ))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, Fault> {
        match self.arg(name)? {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            v => Err(Fault::invalid_args(format!(
                "{name} is not a boolean: {v:?}"
            ))),
        }
    }

    /// NewRemoteHost: empty = any host.
    fn remote_host(&self) -> Result<Option<Ipv4Addr>, Fault> {
        match self.arg("NewRemoteHost")? {
            "" => Ok(None),
            v => v.parse().map(Some).map_err(|_| {
                Fault::invalid_args(format!("NewRemoteHost {v:?} is not an IPv4 address"))
            }),
        }
    }
}

/// Reads the envelope and checks it against the SOAPAction header (`"urn:…:service:
/// Name:v#Action"`, quotes optional; when absent the body alone decides).
fn read_call(service: Service, soap_action: Option<&str>, body: &[u8]) -> Result<Call, Fault> {
    let doc = xml::parse(body).map_err(|e| Fault(401, format!("Invalid Action: {e}")))?;
    let no_action = || Fault(401, "Invalid Action: no action in the SOAP body".into());
    let root = doc.elements.first().filter(|e| e.name == "Envelope");
    let body_el = root
        .and_then(|_| doc.child(0, "Body"))
        .ok_or_else(no_action)?;
    let action_el = doc.children(body_el).next().ok_or_else(no_action)?;
    let action = doc
        .elements
        .get(action_el)
        .ok_or_else(no_action)?
        .name
        .clone();
    if let Some(h) = soap_action {
        let h = h.trim().trim_matches('"');
        let (urn, name) = h.split_once('#').unwrap_or(("", h));
        let ours = service.urn();
        let base = ours.get(..ours.len().saturating_sub(1)).unwrap_or(ours);
        if name != action || !urn.starts_with(base) {
            return Err(Fault(
                401,
                format!("Invalid Action: SOAPAction {h:?} does not match the body or this service"),
            ));
        }
    }
    let args = doc
        .children(action_el)
        .filter_map(|i| doc.elements.get(i))
        .map(|e| (e.name.clone(), e.text.clone()))
        .collect();
    Ok(Call { action, args })
}

/// Answers one control request for `service`. Never panics; every failure is a fault.
pub fn control(
    service: Service,
    soap_action: Option<&str>,
    body: &[u8],
    caller: &Caller,
    mapper: &dyn Mapper,
) -> Reply {
    let result = read_call(service, soap_action, body).and_then(|call| {
        let out = match service {
            Service::WanIpConnection => actions::wan_ip(&call, caller, mapper),
            Service::WanCommonInterfaceConfig => actions::wan_common(&call, mapper),
        }?;
        Ok((call.action, out))
    });
    match result {
        Ok((action, out)) => Reply {
            status: 200,
            body: envelope(&format!(
                "<u:{action}Response xmlns:u=\"{}\">{out}</u:{action}Response>",
                service.urn()
            )),
        },
        Err(Fault(code, desc)) => Reply {
            status: 500,
            body: envelope(&format!(
                "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>\
                 <detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\">\
                 <errorCode>{code}</errorCode><errorDescription>{}</errorDescription>\
                 </UPnPError></detail></s:Fault>",
                escape(&desc)
            )),
        },
    }
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>{inner}</s:Body>\
         </s:Envelope>\r\n"
    )
}

/// Appends `<name>value</name>`, the value escaped.
fn put(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(&value.to_string()));
}

/// Fuzzing entry point: the first line of `data` is the SOAPAction header, the rest the
/// body; both services are asked, with a mapper that grants everything. Panics only if
/// an answer is not a 200 or a 500 fault with a code.
pub fn fuzz_soap(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            data.get(..i).unwrap_or(&[]),
            data.get(i + 1..).unwrap_or(&[]),
        ),
        None => (&[][..], data),
    };
    let action = std::str::from_utf8(head).ok().filter(|s| !s.is_empty());
    let caller = Caller {
        peer: Ipv4Addr::new(192, 168, 1, 10),
        mac: None,
        now: Timestamp(1_000),
    };
    for service in [Service::WanIpConnection, Service::WanCommonInterfaceConfig] {
        let r = control(service, action, body, &caller, &fuzz_mapper::Grant);
        assert!(r.status == 200 || (r.status == 500 && r.body.contains("<errorCode>")));
    }
}

mod fuzz_mapper {
    use super::super::{ExternalAddress, Grant as G, Mapping};
    use super::*;

    /// Grants every request, lists one mapping.
    pub(super) struct Grant;

    fn mapping(r: &MapRequest) -> Mapping {
        Mapping {
            via: Via::Upnp,
            client: r.client,
            mac: None,
            proto: r.proto,
            external_port: r.external_port,
            internal_port: r.internal_port,
            remote_host: r.remote_host,
            description: r.description.clone(),
            nonce: None,
            created_at: Timestamp(0),
            expires_at: Timestamp(2_000),
        }
    }

    impl Mapper for Grant {
        fn map(&self, req: MapRequest) -> Result<G, Refusal> {
            Ok(G {
                mapping: mapping(&req),
                lifetime_secs: 3600,
                refreshed: false,
            })
        }
        fn unmap(&self, _: Unmap) -> Result<Vec<Mapping>, Refusal> {
            Err(Refusal::NotFound)
        }
        fn mappings(&self) -> Vec<Mapping> {
            let mut r = MapRequest {
                via: Via::Upnp,
                client: Ipv4Addr::new(192, 168, 1, 10),
                mac: None,
                internal_client: Ipv4Addr::new(192, 168, 1, 10),
                proto: Proto::Tcp,
                external_port: 80,
                exact: true,
                internal_port: 80,
                lifetime_secs: 0,
                description: "a<&>".into(),
                remote_host: None,
                nonce: None,
            };
            let first = mapping(&r);
            r.proto = Proto::Udp;
            vec![first, mapping(&r)]
        }
        fn external(&self) -> ExternalAddress {
            ExternalAddress::of(Some(Ipv4Addr::new(203, 0, 113, 7)))
        }
        fn epoch_secs(&self) -> u32 {
            5
        }
    }
}

#[cfg(test)]
mod tests;
