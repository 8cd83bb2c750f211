//! The UPnP device and service descriptions the IGD serves.
