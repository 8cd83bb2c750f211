//! MAC addresses of LAN hosts, from the kernel's neighbour table.
