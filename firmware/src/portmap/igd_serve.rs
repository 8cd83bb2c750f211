//! The UPnP IGD servers: SSDP on the LAN interface and SOAP/HTTP on LAN addresses.
