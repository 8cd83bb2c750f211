//! NAT-PMP (RFC 6886) messages: parse and emit over bytes.
