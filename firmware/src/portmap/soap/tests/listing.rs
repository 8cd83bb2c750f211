//! Listing, lookup and delete actions, and the descriptions' action list.

use super::*;

fn table_fake() -> Fake {
    Fake {
        table: vec![
            mapping(Proto::Tcp, 8080, [192, 168, 1, 10], "web <1>"),
            mapping(Proto::Udp, 3074, [192, 168, 1, 11], "xbox"),
        ],
        ..fake()
    }
}

#[test]
fn listing_entries_by_index_key_and_range() {
    let m = table_fake();
    let r = ask(
        &m,
        "GetGenericPortMappingEntry",
        &[("NewPortMappingIndex", "0")],
    );
    assert!(r.body.contains(
        "<NewRemoteHost></NewRemoteHost><NewExternalPort>8080</NewExternalPort>\
         <NewProtocol>TCP</NewProtocol><NewInternalPort>8081</NewInternalPort>\
         <NewInternalClient>192.168.1.10</NewInternalClient><NewEnabled>1</NewEnabled>\
         <NewPortMappingDescription>web &lt;1&gt;</NewPortMappingDescription>\
         <NewLeaseDuration>3000</NewLeaseDuration>"
    ));
    let r = ask(
        &m,
        "GetGenericPortMappingEntry",
        &[("NewPortMappingIndex", "2")],
    );
    assert_eq!(r.body, fault(713, "SpecifiedArrayIndexInvalid"));
    let key = |port: &'static str, proto: &'static str| {
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", port),
            ("NewProtocol", proto),
        ]
    };
    let r = ask(&m, "GetSpecificPortMappingEntry", &key("3074", "UDP"));
    assert!(r.body.contains("<NewInternalPort>3075</NewInternalPort>"));
    let r = ask(&m, "GetSpecificPortMappingEntry", &key("3074", "TCP"));
    assert_eq!(r.body, fault(714, "NoSuchEntryInArray"));
    let list = |start: &'static str, manage: &'static str| {
        [
            ("NewStartPort", start),
            ("NewEndPort", "65535"),
            ("NewProtocol", "TCP"),
            ("NewManage", manage),
            ("NewNumberOfPorts", "0"),
        ]
    };
    let r = ask(&m, "GetListOfPortMappings", &list("1", "1"));
    assert!(r.body.contains(
        "<NewPortListing><![CDATA[<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\""
    ));
    assert!(r.body.contains(
        "<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>8080\
         </p:NewExternalPort><p:NewProtocol>TCP</p:NewProtocol><p:NewInternalPort>8081\
         </p:NewInternalPort><p:NewInternalClient>192.168.1.10</p:NewInternalClient>\
         <p:NewEnabled>1</p:NewEnabled><p:NewDescription>web &lt;1&gt;</p:NewDescription>\
         <p:NewLeaseTime>3000</p:NewLeaseTime></p:PortMappingEntry></p:PortMappingList>]]>\
         </NewPortListing>"
    ));
    assert_eq!(
        ask(&m, "GetListOfPortMappings", &list("9000", "1")).body,
        fault(730, "PortMappingNotFound")
    );
    let r = ask(&m, "GetListOfPortMappings", &list("70000", "1"));
    assert!(r.body.contains("<errorCode>402<"));
}

#[test]
fn deletes_name_the_caller_and_map_not_found() {
    let m = fake();
    let key = [
        ("NewRemoteHost", ""),
        ("NewExternalPort", "8080"),
        ("NewProtocol", "UDP"),
    ];
    assert_eq!(ask(&m, "DeletePortMapping", &key).status, 200);
    let range = [
        ("NewStartPort", "1000"),
        ("NewEndPort", "2000"),
        ("NewProtocol", "TCP"),
        ("NewManage", "0"),
    ];
    assert_eq!(ask(&m, "DeletePortMappingRange", &range).status, 200);
    assert_eq!(
        *m.unmaps.lock().unwrap(),
        [
            Unmap::External {
                client: PEER,
                proto: Proto::Udp,
                external_port: 8080
            },
            Unmap::Range {
                client: PEER,
                proto: Proto::Tcp,
                first: 1000,
                last: 2000
            },
        ]
    );
    let reversed = [
        ("NewStartPort", "2000"),
        ("NewEndPort", "1000"),
        ("NewProtocol", "TCP"),
        ("NewManage", "0"),
    ];
    assert_eq!(
        ask(&m, "DeletePortMappingRange", &reversed).body,
        fault(733, "InconsistentParameter")
    );
    let gone = Fake {
        refuse: Some(Refusal::NotFound),
        ..fake()
    };
    assert!(ask(&gone, "DeletePortMapping", &key)
        .body
        .contains("<errorCode>714<"));
    assert!(ask(&gone, "DeletePortMappingRange", &range)
        .body
        .contains("<errorCode>730<"));
    let theirs = Fake {
        refuse: Some(Refusal::NotOwner),
        ..fake()
    };
    assert!(ask(&theirs, "DeletePortMapping", &key)
        .body
        .contains("<errorCode>606<"));
}

#[test]
fn every_action_the_descriptions_list_is_implemented() {
    use crate::portmap::describe::{WAN_COMMON_ACTIONS, WAN_IP_ACTIONS};
    let m = table_fake();
    for (service, actions) in [
        (Service::WanIpConnection, WAN_IP_ACTIONS),
        (Service::WanCommonInterfaceConfig, WAN_COMMON_ACTIONS),
    ] {
        for a in actions {
            // Every input present but empty: a 402 at worst, never 401 Invalid Action.
            let args: Vec<(&str, &str)> = a.ins.iter().map(|(n, _)| (*n, "")).collect();
            let body = envelope_of(a.name, &args);
            let r = control(service, None, body.as_bytes(), &caller(), &m);
            assert!(
                !r.body.contains("<errorCode>401<"),
                "{}: {}",
                a.name,
                r.body
            );
            if r.status == 200 {
                for (out, _) in a.outs {
                    assert!(r.body.contains(&format!("<{out}>")), "{}: {out}", a.name);
                }
            }
        }
    }
}
