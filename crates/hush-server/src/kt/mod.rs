//! Key transparency: an akd directory of every account's keys, stored in the server's database.

pub mod storage;
