//! The NAT-PMP/PCP server: one UDP socket per LAN address on 5351.
