use std::sync::Mutex;

use super::*;

mod listing;
use crate::portmap::{ExternalAddress, Grant, Mapping};

/// A fake Mapper: records requests, answers `refuse` when set, lists `table`.
struct Fake {
    maps: Mutex<Vec<MapRequest>>,
    unmaps: Mutex<Vec<Unmap>>,
    refuse: Option<Refusal>,
    table: Vec<Mapping>,
    external: Option<Ipv4Addr>,
}

fn fake() -> Fake {
    Fake {
        maps: Mutex::new(Vec::new()),
        unmaps: Mutex::new(Vec::new()),
        refuse: None,
        table: Vec::new(),
        external: Some(Ipv4Addr::new(192, 168, 100, 2)),
    }
}

fn mapping(proto: Proto, port: u16, client: [u8; 4], desc: &str) -> Mapping {
    Mapping {
        via: Via::Upnp,
        client: client.into(),
        mac: None,
        proto,
        external_port: port,
        internal_port: port + 1,
        remote_host: None,
        description: desc.into(),
        nonce: None,
        created_at: Timestamp(100),
        expires_at: Timestamp(4_100),
    }
}

impl Mapper for Fake {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        self.maps.lock().unwrap().push(req.clone());
        if let Some(r) = &self.refuse {
            return Err(r.clone());
        }
        let mut m = mapping(req.proto, req.external_port, req.client.octets(), "");
        if !req.exact {
            m.external_port = 40_000;
        }
        Ok(Grant {
            mapping: m,
            lifetime_secs: 3600,
            refreshed: false,
        })
    }
    fn unmap(&self, req: Unmap) -> Result<Vec<Mapping>, Refusal> {
        self.unmaps.lock().unwrap().push(req);
        match &self.refuse {
            Some(r) => Err(r.clone()),
            None => Ok(self.table.clone()),
        }
    }
    fn mappings(&self) -> Vec<Mapping> {
        self.table.clone()
    }
    fn external(&self) -> ExternalAddress {
        ExternalAddress::of(self.external)
    }
    fn epoch_secs(&self) -> u32 {
        42
    }
}

const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

fn caller() -> Caller {
    Caller {
        peer: PEER,
        mac: None,
        now: Timestamp(1_100),
    }
}

/// An envelope as miniupnpc 2.2.4 writes it (miniupnpc.c, simpleUPnPcommand).
fn envelope_of(action: &str, args: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{WAN_IP_CONN}\">"
    );
    for (n, v) in args {
        s += &format!("<{n}>{v}</{n}>");
    }
    s + &format!("</u:{action}></s:Body></s:Envelope>\r\n")
}

fn ask(m: &Fake, action: &str, args: &[(&str, &str)]) -> Reply {
    let header = format!("\"{WAN_IP_CONN}#{action}\"");
    let body = envelope_of(action, args);
    control(
        Service::WanIpConnection,
        Some(&header),
        body.as_bytes(),
        &caller(),
        m,
    )
}

const ADD: &[(&str, &str)] = &[
    ("NewRemoteHost", ""),
    ("NewExternalPort", "8080"),
    ("NewProtocol", "TCP"),
    ("NewInternalPort", "80"),
    ("NewInternalClient", "192.168.1.10"),
    ("NewEnabled", "1"),
    ("NewPortMappingDescription", "libminiupnpc & co"),
    ("NewLeaseDuration", "0"),
];

fn fault(code: u16, desc: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault>\
         <faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
         <UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode>\
         <errorDescription>{desc}</errorDescription></UPnPError></detail></s:Fault></s:Body>\
         </s:Envelope>\r\n"
    )
}

#[test]
fn add_port_mapping_as_miniupnpc_sends_it_becomes_one_exact_request() {
    let m = fake();
    let r = ask(&m, "AddPortMapping", ADD);
    assert_eq!(
        r,
        Reply {
            status: 200,
            body: format!(
                "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
                 s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
                 <u:AddPortMappingResponse xmlns:u=\"{WAN_IP_CONN}\"></u:AddPortMappingResponse>\
                 </s:Body></s:Envelope>\r\n"
            )
        }
    );
    assert_eq!(
        *m.maps.lock().unwrap(),
        [MapRequest {
            via: Via::Upnp,
            client: PEER,
            mac: None,
            internal_client: PEER,
            proto: Proto::Tcp,
            external_port: 8080,
            exact: true,
            internal_port: 80,
            lifetime_secs: 0,
            description: "libminiupnpc & co".into(),
            remote_host: None,
            nonce: None,
        }]
    );
}

#[test]
fn add_any_port_mapping_is_not_exact_and_reports_the_port_given() {
    let m = fake();
    let r = ask(&m, "AddAnyPortMapping", ADD);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<NewReservedPort>40000</NewReservedPort>"));
    assert!(!m.maps.lock().unwrap()[0].exact);
}

#[test]
fn refusals_become_upnp_errors_with_the_reason() {
    let cases = [
        (Refusal::Pending, false, 606),
        (Refusal::OtherHost, false, 606),
        (
            Refusal::Conflict {
                port: 8080,
                proto: "tcp",
            },
            false,
            718,
        ),
        (
            Refusal::Reserved {
                port: 80,
                proto: "tcp",
                what: "the web UI".into(),
            },
            false,
            718,
        ),
        (
            Refusal::Reserved {
                port: 80,
                proto: "tcp",
                what: "the web UI".into(),
            },
            true,
            729,
        ),
        (Refusal::Quota(64), false, 728),
        (Refusal::NoneFree, true, 728),
        (Refusal::NoExternalAddress, false, 501),
    ];
    for (refusal, any, code) in cases {
        let m = Fake {
            refuse: Some(refusal.clone()),
            ..fake()
        };
        let action = if any {
            "AddAnyPortMapping"
        } else {
            "AddPortMapping"
        };
        let r = ask(&m, action, ADD);
        assert_eq!(r.status, 500);
        assert_eq!(
            r.body,
            fault(code, &escape(&refusal.to_string())),
            "{refusal:?}"
        );
    }
    let m = Fake {
        refuse: Some(Refusal::Pending),
        ..fake()
    };
    assert!(ask(&m, "AddPortMapping", ADD)
        .body
        .contains("waiting for the owner&apos;s approval"));
}

#[test]
fn bad_arguments_and_actions_are_faults() {
    let m = fake();
    let with = |name: &str, value: &str| -> Vec<(&str, String)> {
        ADD.iter()
            .map(|&(n, v)| {
                (
                    n,
                    if n == name {
                        value.to_string()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect()
    };
    let run = |args: Vec<(&str, String)>| {
        let a: Vec<(&str, &str)> = args.iter().map(|(n, v)| (*n, v.as_str())).collect();
        ask(&m, "AddPortMapping", &a)
    };
    assert!(run(with("NewExternalPort", "0"))
        .body
        .contains("<errorCode>716<"));
    for (name, value) in [
        ("NewExternalPort", "65536"),
        ("NewProtocol", "SCTP"),
        ("NewInternalPort", "0"),
        ("NewInternalClient", "host.lan"),
        ("NewRemoteHost", "example.com"),
        ("NewLeaseDuration", "-1"),
        ("NewEnabled", "maybe"),
    ] {
        let r = run(with(name, value));
        assert!(r.body.contains("<errorCode>402<"), "{name}: {}", r.body);
    }
    let missing: Vec<(&str, &str)> = ADD[1..].to_vec();
    assert!(ask(&m, "AddPortMapping", &missing)
        .body
        .contains("<errorCode>402<"));
    assert!(ask(&m, "ForceTermination", &[])
        .body
        .contains("<errorCode>401<"));
    // The header and the body must name the same action of this service.
    let body = envelope_of("GetStatusInfo", &[]);
    for header in [
        format!("\"{WAN_IP_CONN}#AddPortMapping\""),
        format!("\"{WAN_COMMON_IF}#GetStatusInfo\""),
    ] {
        let r = control(
            Service::WanIpConnection,
            Some(&header),
            body.as_bytes(),
            &caller(),
            &m,
        );
        assert!(r.body.contains("<errorCode>401<"), "{header}");
    }
    for junk in [&b"not xml"[..], b"<a/>", b"<Envelope><Body/></Envelope>"] {
        let r = control(Service::WanIpConnection, None, junk, &caller(), &m);
        assert!(r.status == 500 && r.body.contains("<errorCode>401<"));
    }
    // An IGDv2 header is accepted for an action we implement.
    let r = control(
        Service::WanIpConnection,
        Some("urn:schemas-upnp-org:service:WANIPConnection:2#GetStatusInfo"),
        body.as_bytes(),
        &caller(),
        &m,
    );
    assert_eq!(r.status, 200);
    assert!(m.maps.lock().unwrap().is_empty());
}

#[test]
fn status_address_and_connection_type_answers() {
    let m = fake();
    let r = ask(&m, "GetExternalIPAddress", &[]);
    // A private WAN address is still told (upnpc warns about it itself).
    assert!(r.body.contains(&format!(
        "<u:GetExternalIPAddressResponse xmlns:u=\"{WAN_IP_CONN}\">\
         <NewExternalIPAddress>192.168.100.2</NewExternalIPAddress>"
    )));
    assert!(ask(&m, "GetStatusInfo", &[]).body.contains(
        "<NewConnectionStatus>Connected</NewConnectionStatus>\
         <NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>42</NewUptime>"
    ));
    assert!(ask(&m, "GetConnectionTypeInfo", &[]).body.contains(
        "<NewConnectionType>IP_Routed</NewConnectionType>\
         <NewPossibleConnectionTypes>IP_Routed</NewPossibleConnectionTypes>"
    ));
    assert!(ask(&m, "GetNATRSIPStatus", &[])
        .body
        .contains("<NewRSIPAvailable>0</NewRSIPAvailable><NewNATEnabled>1</NewNATEnabled>"));
    let down = Fake {
        external: None,
        ..fake()
    };
    assert!(ask(&down, "GetStatusInfo", &[])
        .body
        .contains(">Disconnected<"));
    assert!(ask(&down, "GetExternalIPAddress", &[])
        .body
        .contains("<errorCode>501<"));
    let body = envelope_of("GetCommonLinkProperties", &[]).replace(WAN_IP_CONN, WAN_COMMON_IF);
    let r = control(
        Service::WanCommonInterfaceConfig,
        None,
        body.as_bytes(),
        &caller(),
        &m,
    );
    assert!(r.body.contains(&format!(
        "<u:GetCommonLinkPropertiesResponse xmlns:u=\"{WAN_COMMON_IF}\">\
         <NewWANAccessType>Ethernet</NewWANAccessType>\
         <NewLayer1UpstreamMaxBitRate>0</NewLayer1UpstreamMaxBitRate>\
         <NewLayer1DownstreamMaxBitRate>0</NewLayer1DownstreamMaxBitRate>\
         <NewPhysicalLinkStatus>Up</NewPhysicalLinkStatus>"
    )));
    let body = envelope_of("GetTotalBytesSent", &[]);
    let r = control(
        Service::WanCommonInterfaceConfig,
        None,
        body.as_bytes(),
        &caller(),
        &m,
    );
    assert!(r.body.contains("<NewTotalBytesSent>0</NewTotalBytesSent>"));
}

#[test]
fn long_descriptions_are_cut_and_the_fuzz_entry_holds() {
    let m = fake();
    let long = "é".repeat(300);
    let args: Vec<(&str, &str)> = ADD
        .iter()
        .map(|&(n, v)| {
            (
                n,
                if n == "NewPortMappingDescription" {
                    long.as_str()
                } else {
                    v
                },
            )
        })
        .collect();
    assert_eq!(ask(&m, "AddPortMapping", &args).status, 200);
    assert_eq!(
        m.maps.lock().unwrap()[0].description.chars().count(),
        MAX_DESCRIPTION
    );
    fuzz_soap(format!("{WAN_IP_CONN}#GetListOfPortMappings\n").as_bytes());
    fuzz_soap(b"\n<s:Envelope><s:Body><u:GetGenericPortMappingEntry><NewPortMappingIndex>1</NewPortMappingIndex></u:GetGenericPortMappingEntry></s:Body></s:Envelope>");
    fuzz_soap(b"\xff\n\xff");
}
