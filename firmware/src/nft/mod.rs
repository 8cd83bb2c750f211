//! nf_tables over netlink, in pure Rust (see docs/decisions.md).

mod batch;
mod expr;
mod lower;
mod text;
mod uapi;
mod values;
mod wire;

pub use batch::{encode_add_elements, encode_apply_batch, encode_delete_elements, Batch, Object};
pub use expr::{Expr, Reject};
#[doc(hidden)]
pub mod example;
#[cfg(test)]
mod golden;
