//! UPnP IGD SOAP control (WANIPConnection:1 and the IGDv2 additions) over bytes.
