//! Portcullis: router firmware that opens a port only when the owner meant it.
//!
//! Data flow: [`config`] (what the owner wants) → [`plan`] (pure: config + host facts →
//! [`ruleset::Ruleset`]) → [`nft`] (the only module that speaks nf_tables netlink) → kernel.

pub mod config;
pub mod daemon;
pub mod delta;
pub mod devices;
pub mod dhcp;
pub mod engine;
pub mod facts;
pub mod names;
pub mod nft;
pub mod plan;
pub mod portmap;
pub mod readback;
pub mod render;
pub mod ruleset;
pub mod status;
pub mod store;
pub mod vpn;
pub mod web;
