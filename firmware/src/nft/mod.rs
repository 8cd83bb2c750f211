//! nf_tables over netlink, in pure Rust (see docs/decisions.md).

mod batch;
mod error;
mod expr;
mod lower;
mod socket;
mod state;
mod text;
mod uapi;
mod values;
mod wire;

pub use batch::{encode_add_elements, encode_apply_batch, encode_delete_elements, Batch, Object};
pub use error::NftError;
pub use expr::{Expr, Reject};
pub use socket::{ApplyReport, Nft};
pub use state::{ChainState, CounterState, ElementState, SetState, TableState};
#[doc(hidden)]
pub mod example;
#[cfg(test)]
mod golden;
