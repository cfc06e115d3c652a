//! Request handlers, one module per resource.

pub mod accounts;
pub mod attachments;
pub mod backups;
pub mod channels;
pub mod keys;
pub mod kt;
pub mod links;
pub mod messages;
pub mod ops;
pub mod reports;
pub mod ws;
