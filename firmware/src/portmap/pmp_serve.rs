//! The NAT-PMP/PCP server: one UDP socket per LAN address on 5351.

#[cfg(test)]
#[path = "pmp_fake.rs"]
pub(crate) mod fake;
