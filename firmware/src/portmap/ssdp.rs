//! SSDP (UPnP Device Architecture 1.1 §1): M-SEARCH answers and NOTIFY messages over bytes.
