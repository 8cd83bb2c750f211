//! A bounded reader and escaper for the small XML of SOAP bodies.
