//! STUB
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Granted { port: u16 },
    Changed { old: u16, new: u16 },
    Refused { code: u16 },
    Silent,
    Lost { port: u16 },
    EpochReset,
}
