//! The UPnP device and service descriptions the IGD serves (UPnP Device Architecture 1.1
//! §2), and the names SSDP and SOAP share: device and service types, UDNs and URL paths.
//!
//! The device tree is InternetGatewayDevice:1 > WANDevice:1 (with
//! WANCommonInterfaceConfig:1) > WANConnectionDevice:1 (with WANIPConnection:1), the shape
//! Windows, Xbox and miniupnpc look for. No state variable is evented and every
//! `eventSubURL` is empty, as UDA 1.1 §2.3 asks of a service without eventing: the IGD
//! never makes a request to a URL a client names (CallStranger, CVE-2020-12695).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::xml::escape;

/// Device type of the root device.
pub const IGD: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// Device type of the WAN device.
pub const WAN_DEVICE: &str = "urn:schemas-upnp-org:device:WANDevice:1";
/// Device type of the WAN connection device.
pub const WAN_CONN_DEVICE: &str = "urn:schemas-upnp-org:device:WANConnectionDevice:1";
/// Service type of the port-mapping service.
pub const WAN_IP_CONN: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
/// Service type of the link-properties service.
pub const WAN_COMMON_IF: &str = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1";

/// Path of the root device description.
pub const ROOT_DESC_PATH: &str = "/rootDesc.xml";
/// Path of WANIPConnection's service description (SCPD).
pub const WAN_IP_SCPD_PATH: &str = "/WANIPCn.xml";
/// Path of WANCommonInterfaceConfig's service description (SCPD).
pub const WAN_COMMON_SCPD_PATH: &str = "/WANCfg.xml";
/// Control URL of WANIPConnection.
pub const WAN_IP_CONTROL_PATH: &str = "/ctl/IPConn";
/// Control URL of WANCommonInterfaceConfig.
pub const WAN_COMMON_CONTROL_PATH: &str = "/ctl/CmnIfCfg";

/// The unique device names of the three devices, `uuid:` included (UDA 1.1 §1.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udns {
    /// The InternetGatewayDevice.
    pub root: String,
    /// The WANDevice.
    pub wan_device: String,
    /// The WANConnectionDevice.
    pub wan_conn_device: String,
}

impl Udns {
    /// The UDNs derived from the LAN interface's MAC: stable across restarts, different
    /// per router.
    pub fn from_mac(mac: &[u8]) -> Udns {
        Udns {
            root: format!("uuid:{}", uuid_from(mac, b"igd")),
            wan_device: format!("uuid:{}", uuid_from(mac, b"wan-device")),
            wan_conn_device: format!("uuid:{}", uuid_from(mac, b"wan-connection-device")),
        }
    }
}

/// A name-based UUID (8-4-4-4-12 lowercase hex) from `bytes` and a `label`: two FNV-1a
/// 64-bit hashes with different offsets, marked as an RFC 9562 version 8 (custom) UUID
/// with the RFC 4122 variant. Pure: the same input gives the same UUID.
pub fn uuid_from(bytes: &[u8], label: &[u8]) -> String {
    fn fnv(seed: u64, parts: [&[u8]; 3]) -> u64 {
        let mut h = seed;
        for p in parts {
            for &b in p {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
    let parts: [&[u8]; 3] = [b"portcullis-upnp\0", label, bytes];
    let hi = fnv(0xcbf2_9ce4_8422_2325, parts);
    let lo = fnv(0x6c62_272e_07bb_0142, parts);
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&hi.to_be_bytes());
    u[8..].copy_from_slice(&lo.to_be_bytes());
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What the root description names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeInput<'a> {
    /// The devices' UDNs.
    pub udns: &'a Udns,
    /// The LAN address the description is fetched on (the web UI's address).
    pub lan_addr: Ipv4Addr,
    /// TCP port of the web UI, for `presentationURL`.
    pub web_port: u16,
    /// Firmware version, for `modelNumber`.
    pub version: &'a str,
}

fn service(out: &mut String, ty: &str, id: &str, scpd: &str, control: &str) {
    let _ = write!(
        out,
        "<serviceList><service><serviceType>{ty}</serviceType>\
         <serviceId>urn:upnp-org:serviceId:{id}</serviceId><SCPDURL>{scpd}</SCPDURL>\
         <controlURL>{control}</controlURL><eventSubURL></eventSubURL></service></serviceList>"
    );
}

fn device_head(out: &mut String, ty: &str, name: &str, udn: &str, version: &str) {
    let _ = write!(
        out,
        "<device><deviceType>{ty}</deviceType><friendlyName>{name}</friendlyName>\
         <manufacturer>Portcullis</manufacturer><modelDescription>{name}</modelDescription>\
         <modelName>Portcullis</modelName><modelNumber>{}</modelNumber><UDN>{udn}</UDN>",
        escape(version)
    );
}

/// The root device description (UDA 1.1 §2.3), served at [`ROOT_DESC_PATH`]. URLs are
/// relative to it (no URLBase, which UDA 1.1 deprecates).
pub fn root_description(d: &DescribeInput<'_>) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(
        "<?xml version=\"1.0\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\
         <specVersion><major>1</major><minor>1</minor></specVersion>",
    );
    device_head(&mut out, IGD, "Portcullis router", &d.udns.root, d.version);
    out.push_str("<deviceList>");
    device_head(
        &mut out,
        WAN_DEVICE,
        "WAN Device",
        &d.udns.wan_device,
        d.version,
    );
    service(
        &mut out,
        WAN_COMMON_IF,
        "WANCommonIFC1",
        WAN_COMMON_SCPD_PATH,
        WAN_COMMON_CONTROL_PATH,
    );
    out.push_str("<deviceList>");
    let conn = &d.udns.wan_conn_device;
    device_head(
        &mut out,
        WAN_CONN_DEVICE,
        "WAN Connection Device",
        conn,
        d.version,
    );
    service(
        &mut out,
        WAN_IP_CONN,
        "WANIPConn1",
        WAN_IP_SCPD_PATH,
        WAN_IP_CONTROL_PATH,
    );
    out.push_str("</device></deviceList></device></deviceList>");
    let _ = write!(
        out,
        "<presentationURL>http://{}:{}/</presentationURL></device></root>\r\n",
        d.lan_addr, d.web_port
    );
    out
}

/// An action of a service description: name, in-arguments and out-arguments, each an
/// (argument name, related state variable) pair.
pub(crate) struct ActionSpec {
    pub name: &'static str,
    pub ins: &'static [(&'static str, &'static str)],
    pub outs: &'static [(&'static str, &'static str)],
}

/// A state variable: name, data type, allowed values.
type VarSpec = (&'static str, &'static str, &'static [&'static str]);

const RH: (&str, &str) = ("NewRemoteHost", "RemoteHost");
const EP: (&str, &str) = ("NewExternalPort", "ExternalPort");
const PR: (&str, &str) = ("NewProtocol", "PortMappingProtocol");
const IP: (&str, &str) = ("NewInternalPort", "InternalPort");
const IC: (&str, &str) = ("NewInternalClient", "InternalClient");
const EN: (&str, &str) = ("NewEnabled", "PortMappingEnabled");
const DS: (&str, &str) = ("NewPortMappingDescription", "PortMappingDescription");
const LD: (&str, &str) = ("NewLeaseDuration", "PortMappingLeaseDuration");
const SP: (&str, &str) = ("NewStartPort", "ExternalPort");
const XP: (&str, &str) = ("NewEndPort", "ExternalPort");
const MG: (&str, &str) = ("NewManage", "A_ARG_TYPE_Manage");
const ADD_INS: &[(&str, &str)] = &[RH, EP, PR, IP, IC, EN, DS, LD];

/// The actions of WANIPConnection this IGD implements (WANIPConnection:1 and the IGDv2
/// additions AddAnyPortMapping, GetListOfPortMappings and DeletePortMappingRange).
pub(crate) const WAN_IP_ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "GetConnectionTypeInfo",
        ins: &[],
        outs: &[
            ("NewConnectionType", "ConnectionType"),
            ("NewPossibleConnectionTypes", "PossibleConnectionTypes"),
        ],
    },
    ActionSpec {
        name: "GetStatusInfo",
        ins: &[],
        outs: &[
            ("NewConnectionStatus", "ConnectionStatus"),
            ("NewLastConnectionError", "LastConnectionError"),
            ("NewUptime", "Uptime"),
        ],
    },
    ActionSpec {
        name: "GetNATRSIPStatus",
        ins: &[],
        outs: &[
            ("NewRSIPAvailable", "RSIPAvailable"),
            ("NewNATEnabled", "NATEnabled"),
        ],
    },
    ActionSpec {
        name: "GetExternalIPAddress",
        ins: &[],
        outs: &[("NewExternalIPAddress", "ExternalIPAddress")],
    },
    ActionSpec {
        name: "GetGenericPortMappingEntry",
        ins: &[("NewPortMappingIndex", "PortMappingNumberOfEntries")],
        outs: &[RH, EP, PR, IP, IC, EN, DS, LD],
    },
    ActionSpec {
        name: "GetSpecificPortMappingEntry",
        ins: &[RH, EP, PR],
        outs: &[IP, IC, EN, DS, LD],
    },
    ActionSpec {
        name: "AddPortMapping",
        ins: ADD_INS,
        outs: &[],
    },
    ActionSpec {
        name: "AddAnyPortMapping",
        ins: ADD_INS,
        outs: &[("NewReservedPort", "ExternalPort")],
    },
    ActionSpec {
        name: "DeletePortMapping",
        ins: &[RH, EP, PR],
        outs: &[],
    },
    ActionSpec {
        name: "DeletePortMappingRange",
        ins: &[SP, XP, PR, MG],
        outs: &[],
    },
    ActionSpec {
        name: "GetListOfPortMappings",
        ins: &[
            SP,
            XP,
            PR,
            MG,
            ("NewNumberOfPorts", "PortMappingNumberOfEntries"),
        ],
        outs: &[("NewPortListing", "A_ARG_TYPE_PortListing")],
    },
];

const WAN_IP_VARS: &[VarSpec] = &[
    ("ConnectionType", "string", &[]),
    (
        "PossibleConnectionTypes",
        "string",
        &["Unconfigured", "IP_Routed", "IP_Bridged"],
    ),
    (
        "ConnectionStatus",
        "string",
        &[
            "Unconfigured",
            "Connecting",
            "Connected",
            "PendingDisconnect",
            "Disconnecting",
            "Disconnected",
        ],
    ),
    ("Uptime", "ui4", &[]),
    ("LastConnectionError", "string", &["ERROR_NONE"]),
    ("RSIPAvailable", "boolean", &[]),
    ("NATEnabled", "boolean", &[]),
    ("ExternalIPAddress", "string", &[]),
    ("PortMappingNumberOfEntries", "ui2", &[]),
    ("PortMappingEnabled", "boolean", &[]),
    ("PortMappingLeaseDuration", "ui4", &[]),
    ("RemoteHost", "string", &[]),
    ("ExternalPort", "ui2", &[]),
    ("InternalPort", "ui2", &[]),
    ("PortMappingProtocol", "string", &["TCP", "UDP"]),
    ("InternalClient", "string", &[]),
    ("PortMappingDescription", "string", &[]),
    ("A_ARG_TYPE_Manage", "boolean", &[]),
    ("A_ARG_TYPE_PortListing", "string", &[]),
];

/// The actions of WANCommonInterfaceConfig this IGD implements.
pub(crate) const WAN_COMMON_ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "GetCommonLinkProperties",
        ins: &[],
        outs: &[
            ("NewWANAccessType", "WANAccessType"),
            ("NewLayer1UpstreamMaxBitRate", "Layer1UpstreamMaxBitRate"),
            (
                "NewLayer1DownstreamMaxBitRate",
                "Layer1DownstreamMaxBitRate",
            ),
            ("NewPhysicalLinkStatus", "PhysicalLinkStatus"),
        ],
    },
    ActionSpec {
        name: "GetTotalBytesSent",
        ins: &[],
        outs: &[("NewTotalBytesSent", "TotalBytesSent")],
    },
    ActionSpec {
        name: "GetTotalBytesReceived",
        ins: &[],
        outs: &[("NewTotalBytesReceived", "TotalBytesReceived")],
    },
    ActionSpec {
        name: "GetTotalPacketsSent",
        ins: &[],
        outs: &[("NewTotalPacketsSent", "TotalPacketsSent")],
    },
    ActionSpec {
        name: "GetTotalPacketsReceived",
        ins: &[],
        outs: &[("NewTotalPacketsReceived", "TotalPacketsReceived")],
    },
];

const WAN_COMMON_VARS: &[VarSpec] = &[
    (
        "WANAccessType",
        "string",
        &["DSL", "POTS", "Cable", "Ethernet"],
    ),
    ("Layer1UpstreamMaxBitRate", "ui4", &[]),
    ("Layer1DownstreamMaxBitRate", "ui4", &[]),
    ("PhysicalLinkStatus", "string", &["Up", "Down"]),
    ("TotalBytesSent", "ui4", &[]),
    ("TotalBytesReceived", "ui4", &[]),
    ("TotalPacketsSent", "ui4", &[]),
    ("TotalPacketsReceived", "ui4", &[]),
];

fn scpd(actions: &[ActionSpec], vars: &[VarSpec]) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str(
        "<?xml version=\"1.0\"?>\r\n<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\
         <specVersion><major>1</major><minor>1</minor></specVersion><actionList>",
    );
    for a in actions {
        let _ = write!(out, "<action><name>{}</name>", a.name);
        if !a.ins.is_empty() || !a.outs.is_empty() {
            out.push_str("<argumentList>");
            let args = a
                .ins
                .iter()
                .map(|x| (x, "in"))
                .chain(a.outs.iter().map(|x| (x, "out")));
            for ((name, var), dir) in args {
                let _ = write!(
                    out,
                    "<argument><name>{name}</name><direction>{dir}</direction>\
                     <relatedStateVariable>{var}</relatedStateVariable></argument>"
                );
            }
            out.push_str("</argumentList>");
        }
        out.push_str("</action>");
    }
    out.push_str("</actionList><serviceStateTable>");
    for (name, ty, allowed) in vars {
        let _ = write!(
            out,
            "<stateVariable sendEvents=\"no\"><name>{name}</name><dataType>{ty}</dataType>"
        );
        if !allowed.is_empty() {
            out.push_str("<allowedValueList>");
            for v in *allowed {
                let _ = write!(out, "<allowedValue>{v}</allowedValue>");
            }
            out.push_str("</allowedValueList>");
        }
        out.push_str("</stateVariable>");
    }
    out.push_str("</serviceStateTable></scpd>\r\n");
    out
}

/// WANIPConnection's service description (UDA 1.1 §2.5), served at [`WAN_IP_SCPD_PATH`].
pub fn wan_ip_scpd() -> String {
    scpd(WAN_IP_ACTIONS, WAN_IP_VARS)
}

/// WANCommonInterfaceConfig's service description, served at [`WAN_COMMON_SCPD_PATH`].
pub fn wan_common_scpd() -> String {
    scpd(WAN_COMMON_ACTIONS, WAN_COMMON_VARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portmap::xml;

    #[test]
    fn uuids_are_stable_well_formed_and_distinct() {
        let mac = [0x02, 0, 0, 0xaa, 0xbb, 0xcc];
        let u = Udns::from_mac(&mac);
        assert_eq!(u, Udns::from_mac(&mac));
        assert_eq!(u.root, "uuid:".to_string() + &uuid_from(&mac, b"igd"));
        for s in [&u.root, &u.wan_device, &u.wan_conn_device] {
            let hex = s.strip_prefix("uuid:").unwrap();
            let groups: Vec<usize> = hex.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12]);
            assert_eq!(&hex[14..15], "8");
            assert!(matches!(&hex[19..20], "8" | "9" | "a" | "b"));
        }
        assert_ne!(u.root, u.wan_device);
        assert_ne!(u.root, Udns::from_mac(&[0x02, 0, 0, 0xaa, 0xbb, 0xcd]).root);
    }

    #[test]
    fn descriptions_are_well_formed_and_name_every_service() {
        let udns = Udns::from_mac(&[1, 2, 3, 4, 5, 6]);
        let root = root_description(&DescribeInput {
            udns: &udns,
            lan_addr: Ipv4Addr::new(192, 168, 1, 1),
            web_port: 80,
            version: "0.1<",
        });
        let d = xml::parse(root.as_bytes()).unwrap();
        let texts = |name: &str| -> Vec<String> {
            d.elements
                .iter()
                .filter(|e| e.name == name)
                .map(|e| e.text.clone())
                .collect()
        };
        assert_eq!(texts("deviceType"), [IGD, WAN_DEVICE, WAN_CONN_DEVICE]);
        assert_eq!(texts("serviceType"), [WAN_COMMON_IF, WAN_IP_CONN]);
        assert_eq!(
            texts("controlURL"),
            [WAN_COMMON_CONTROL_PATH, WAN_IP_CONTROL_PATH]
        );
        assert_eq!(
            texts("UDN"),
            [
                udns.root.clone(),
                udns.wan_device.clone(),
                udns.wan_conn_device.clone()
            ]
        );
        assert_eq!(texts("presentationURL"), ["http://192.168.1.1:80/"]);
        assert_eq!(texts("modelNumber")[0], "0.1<");
        // The SCPDs exceed the SOAP reader's element cap, so check them by text.
        for (s, actions) in [
            (wan_ip_scpd(), WAN_IP_ACTIONS),
            (wan_common_scpd(), WAN_COMMON_ACTIONS),
        ] {
            assert_eq!(s.matches("<action>").count(), actions.len());
            for a in actions {
                for (_, var) in a.ins.iter().chain(a.outs) {
                    assert!(
                        s.contains(&format!("<name>{var}</name><dataType>")),
                        "{var}"
                    );
                }
            }
        }
    }
}
