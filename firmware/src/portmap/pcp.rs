//! PCP (RFC 6887) MAP and ANNOUNCE messages for IPv4: parse and emit over bytes.
