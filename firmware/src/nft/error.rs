//! Errors of the nf_tables layer.

use std::io;

/// Why talking to nf_tables failed. Each variant says which operation failed so that the
/// daemon's log line is actionable without a backtrace; the kernel's errno is kept as the
/// `source` so callers can still match on `io::ErrorKind`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// Without the socket nothing else can work; usually missing CAP_NET_ADMIN or a kernel
    /// built without nf_tables.
    #[error("opening the nf_tables netlink socket")]
    Open(#[source] io::Error),

    /// The batch never reached the kernel (e.g. larger than the socket buffer allowed).
    #[error("sending {what} to the kernel")]
    Send {
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// The answer could not be read, e.g. acknowledgements were dropped because the
    /// receive buffer overflowed (ENOBUFS). The kernel may or may not have committed.
    #[error("receiving the kernel's answer to {what}")]
    Receive {
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// The kernel refused one message, so it aborted the whole batch and the previous
    /// table is still in force. `object` names what that message created.
    #[error("kernel rejected {object}")]
    Rejected {
        object: String,
        #[source]
        source: io::Error,
    },

    /// Some messages were never acknowledged: we cannot tell whether the batch committed.
    #[error("kernel did not acknowledge {missing} messages of {what}, first: {first}")]
    MissingAck {
        what: &'static str,
        missing: usize,
        first: String,
    },

    /// A dump request failed (the errno says why, e.g. EPERM).
    #[error("reading {what} of table inet {table}")]
    Dump {
        what: &'static str,
        table: String,
        #[source]
        source: io::Error,
    },

    /// The kernel accepted the batch but what it holds afterwards differs from the
    /// ruleset; should never happen, and if it does the firewall is not what we planned.
    #[error("table inet {table} differs from the ruleset after apply: {detail}")]
    Verify {
        table: String,
        detail: String,
        #[source]
        source: io::Error,
    },

    /// An element operation named a set that the table does not have.
    #[error("set {set} of table inet {table} not found")]
    NoSuchSet {
        table: String,
        set: String,
        #[source]
        source: io::Error,
    },
}

impl NftError {
    /// The errno behind this error, if the kernel reported one.
    pub fn errno(&self) -> Option<i32> {
        use std::error::Error;
        self.source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error)
    }
}
