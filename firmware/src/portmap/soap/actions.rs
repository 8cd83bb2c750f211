//! The actions: arguments in, Mapper calls, output arguments out (WANIPConnection:1 §2.4,
//! WANIPConnection:2 §2.5 for AddAnyPortMapping, DeletePortMappingRange and
//! GetListOfPortMappings, WANCommonInterfaceConfig:1 §2.4).

use std::fmt::Write as _;

use super::{put, Call, Caller, Fault, MAX_DESCRIPTION, MAX_LISTED};
use crate::portmap::xml::escape;
use crate::portmap::{MapRequest, Mapper, Mapping, Proto, Unmap, Via};

/// Output arguments, already XML.
type Out = Result<String, Fault>;

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
    }
}

fn lease_left(m: &Mapping, caller: &Caller) -> u32 {
    u32::try_from(m.secs_left(caller.now)).unwrap_or(u32::MAX)
}

/// Dispatches a WANIPConnection action.
pub(super) fn wan_ip(call: &Call, caller: &Caller, mapper: &dyn Mapper) -> Out {
    let mut out = String::new();
    match call.action.as_str() {
        "GetConnectionTypeInfo" => {
            put(&mut out, "NewConnectionType", "IP_Routed");
            put(&mut out, "NewPossibleConnectionTypes", "IP_Routed");
        }
        "GetStatusInfo" => {
            let up = mapper.external().addr.is_some();
            put(
                &mut out,
                "NewConnectionStatus",
                if up { "Connected" } else { "Disconnected" },
            );
            put(&mut out, "NewLastConnectionError", "ERROR_NONE");
            // Seconds since the mapping table started: the closest thing we know.
            put(&mut out, "NewUptime", mapper.epoch_secs());
        }
        "GetNATRSIPStatus" => {
            put(&mut out, "NewRSIPAvailable", 0);
            put(&mut out, "NewNATEnabled", 1);
        }
        "GetExternalIPAddress" => {
            let addr = mapper.external().addr.ok_or_else(|| {
                Fault::refusal(&crate::portmap::Refusal::NoExternalAddress, false)
            })?;
            put(&mut out, "NewExternalIPAddress", addr);
        }
        "AddPortMapping" => {
            add(call, caller, mapper, true)?;
        }
        "AddAnyPortMapping" => {
            let port = add(call, caller, mapper, false)?;
            put(&mut out, "NewReservedPort", port);
        }
        "DeletePortMapping" => {
            call.remote_host()?;
            let req = Unmap::External {
                client: caller.peer,
                proto: call.proto()?,
                external_port: call.num("NewExternalPort")?,
            };
            mapper.unmap(req).map_err(|r| Fault::refusal(&r, false))?;
        }
        "DeletePortMappingRange" => {
            let (first, last, proto) = range(call)?;
            call.boolean("NewManage")?;
            let req = Unmap::Range {
                client: caller.peer,
                proto,
                first,
                last,
            };
            mapper.unmap(req).map_err(|r| Fault::refusal(&r, true))?;
        }
        "GetGenericPortMappingEntry" => {
            let i: usize = call.num("NewPortMappingIndex")?;
            let all = mapper.mappings();
            let m = all
                .get(i)
                .ok_or_else(|| Fault(713, "SpecifiedArrayIndexInvalid".into()))?;
            put(
                &mut out,
                "NewRemoteHost",
                m.remote_host.map(|a| a.to_string()).unwrap_or_default(),
            );
            put(&mut out, "NewExternalPort", m.external_port);
            put(&mut out, "NewProtocol", proto_name(m.proto));
            entry(&mut out, m, caller);
        }
        "GetSpecificPortMappingEntry" => {
            let (remote, proto) = (call.remote_host()?, call.proto()?);
            let port: u16 = call.num("NewExternalPort")?;
            let all = mapper.mappings();
            let m = all
                .iter()
                .find(|m| m.proto == proto && m.external_port == port && m.remote_host == remote)
                .ok_or_else(|| Fault(714, "NoSuchEntryInArray".into()))?;
            entry(&mut out, m, caller);
        }
        "GetListOfPortMappings" => list(call, caller, mapper, &mut out)?,
        a => {
            return Err(Fault(
                401,
                format!("Invalid Action: {a} is not implemented"),
            ))
        }
    }
    Ok(out)
}

/// The outputs GetGenericPortMappingEntry and GetSpecificPortMappingEntry share.
fn entry(out: &mut String, m: &Mapping, caller: &Caller) {
    put(out, "NewInternalPort", m.internal_port);
    put(out, "NewInternalClient", m.client);
    put(out, "NewEnabled", 1);
    put(out, "NewPortMappingDescription", &m.description);
    put(out, "NewLeaseDuration", lease_left(m, caller));
}

/// AddPortMapping (`exact`) and AddAnyPortMapping; returns the external port given.
fn add(call: &Call, caller: &Caller, mapper: &dyn Mapper, exact: bool) -> Result<u16, Fault> {
    let remote_host = call.remote_host()?;
    let external_port: u16 = call.num("NewExternalPort")?;
    if exact && external_port == 0 {
        return Err(Fault(716, "WildCardNotPermittedInExtPort".into()));
    }
    let proto = call.proto()?;
    let internal_port: u16 = call.num("NewInternalPort")?;
    if internal_port == 0 {
        return Err(Fault::invalid_args("NewInternalPort must be 1 to 65535"));
    }
    let internal_client = match call.arg("NewInternalClient")? {
        // miniupnpd's reading: empty means the asking host.
        "" => caller.peer,
        v => v.parse().map_err(|_| {
            Fault::invalid_args(format!("NewInternalClient {v:?} is not an IPv4 address"))
        })?,
    };
    if !call.boolean("NewEnabled")? {
        return Err(Fault::invalid_args("disabled mappings are not supported"));
    }
    let description: String = call
        .arg("NewPortMappingDescription")
        .unwrap_or("")
        .chars()
        .take(MAX_DESCRIPTION)
        .collect();
    let req = MapRequest {
        via: Via::Upnp,
        client: caller.peer,
        mac: caller.mac,
        internal_client,
        proto,
        external_port,
        exact,
        internal_port,
        lifetime_secs: call.num("NewLeaseDuration")?,
        description,
        remote_host,
        nonce: None,
    };
    let grant = mapper.map(req).map_err(|r| Fault::refusal(&r, !exact))?;
    Ok(grant.mapping.external_port)
}

/// NewStartPort, NewEndPort (733 InconsistentParameter when reversed) and NewProtocol.
fn range(call: &Call) -> Result<(u16, u16, Proto), Fault> {
    let first: u16 = call.num("NewStartPort")?;
    let last: u16 = call.num("NewEndPort")?;
    if first > last {
        return Err(Fault(733, "InconsistentParameter".into()));
    }
    Ok((first, last, call.proto()?))
}

/// GetListOfPortMappings: the PortMappingList document (WANIPConnection:2 §2.5.21) in a
/// CDATA section, as miniupnpc reads it. NewManage 0 lists only the caller's mappings.
fn list(call: &Call, caller: &Caller, mapper: &dyn Mapper, out: &mut String) -> Result<(), Fault> {
    let (first, last, proto) = range(call)?;
    let manage = call.boolean("NewManage")?;
    let cap = match call.num::<usize>("NewNumberOfPorts")? {
        0 => MAX_LISTED,
        n => n.min(MAX_LISTED),
    };
    let all = mapper.mappings();
    let chosen: Vec<&Mapping> = all
        .iter()
        .filter(|m| m.proto == proto && (first..=last).contains(&m.external_port))
        .filter(|m| manage || m.client == caller.peer)
        .take(cap)
        .collect();
    if chosen.is_empty() {
        return Err(Fault(730, "PortMappingNotFound".into()));
    }
    out.push_str(
        "<NewPortListing><![CDATA[<p:PortMappingList \
         xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"urn:schemas-upnp-org:gw:WANIPConnection \
         http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd\">",
    );
    for m in chosen {
        let remote = m.remote_host.map(|a| a.to_string()).unwrap_or_default();
        // Escaped text never contains "]]>", so the CDATA section cannot be closed early.
        let _ = write!(
            out,
            "<p:PortMappingEntry><p:NewRemoteHost>{remote}</p:NewRemoteHost>\
             <p:NewExternalPort>{}</p:NewExternalPort><p:NewProtocol>{}</p:NewProtocol>\
             <p:NewInternalPort>{}</p:NewInternalPort>\
             <p:NewInternalClient>{}</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled>\
             <p:NewDescription>{}</p:NewDescription><p:NewLeaseTime>{}</p:NewLeaseTime>\
             </p:PortMappingEntry>",
            m.external_port,
            proto_name(m.proto),
            m.internal_port,
            m.client,
            escape(&m.description),
            lease_left(m, caller)
        );
    }
    out.push_str("</p:PortMappingList>]]></NewPortListing>");
    Ok(())
}

/// Dispatches a WANCommonInterfaceConfig action. Link rates and traffic counters are not
/// measured: they answer 0 (the spec's "unknown").
pub(super) fn wan_common(call: &Call, mapper: &dyn Mapper) -> Out {
    let mut out = String::new();
    match call.action.as_str() {
        "GetCommonLinkProperties" => {
            let up = mapper.external().addr.is_some();
            put(&mut out, "NewWANAccessType", "Ethernet");
            put(&mut out, "NewLayer1UpstreamMaxBitRate", 0);
            put(&mut out, "NewLayer1DownstreamMaxBitRate", 0);
            put(
                &mut out,
                "NewPhysicalLinkStatus",
                if up { "Up" } else { "Down" },
            );
        }
        a @ ("GetTotalBytesSent"
        | "GetTotalBytesReceived"
        | "GetTotalPacketsSent"
        | "GetTotalPacketsReceived") => {
            let name = format!("New{}", a.trim_start_matches("Get"));
            put(&mut out, &name, 0);
        }
        a => {
            return Err(Fault(
                401,
                format!("Invalid Action: {a} is not implemented"),
            ))
        }
    }
    Ok(out)
}
