//! Harness for Portcullis's end-to-end tests.
//!
//! A [`Topology`] builds three network namespaces (WAN host, router, LAN host) plus a
//! second LAN client, wires them with veth pairs and removes everything when dropped.
//! Servers on the hosts answer with a label so a test knows which service it reached
//! ([`servers`]); clients connect from a chosen source address with short timeouts
//! ([`clients`]); [`cli`] runs the `portcullis` binary inside the router namespace;
//! [`config`] writes config files; [`nft`] lists, loads and normalises rulesets;
//! [`scan`] runs nmap; [`json`] reads `status --json`; [`poll`] waits with deadlines;
//! [`upnp`], [`pcp_client`] and [`web`] speak to the port-mapping servers and the web API;
//! [`browser`] drives headless Chromium over WebDriver.
//!
//! Everything here needs root (network namespaces, nftables).

pub mod browser;
pub mod cli;
pub mod clients;
pub mod config;
pub mod dnsmasq;
pub mod flow;
pub mod json;
pub mod netns;
pub mod nft;
pub mod pcp_client;
pub mod poll;
pub mod scan;
pub mod servers;
pub mod time;
pub mod topology;
pub mod upnp;
pub mod web;

pub use clients::{Probe, ProbeError};
pub use config::{Config, Forward, Trigger};
pub use topology::{
    Topology, LAN_CLIENT, LAN_HOST, LAN_HOST_2, ROUTER_LAN, ROUTER_WAN, WAN_HOST, WAN_HOST_2,
};
