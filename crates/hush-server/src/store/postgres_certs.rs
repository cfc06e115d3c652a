//! Reads of device certificates for sealing, shared: every send that seals
//! a header reads its recipients' certificates
//! ([`super::Store::device_certificates`]), and on a node that writes every
//! envelope (a cluster node) that was one query and one transaction per
//! send, as many as all the writes together. A few tasks with connections
//! of their own take every read waiting and answer them with one query
//! ([`super::postgres_batch`], as the writers do), so concurrent sends
//! share a round trip. Each read still sees the database as it is: no
//! certificate is kept between reads.

use std::collections::HashMap;

use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};

use super::postgres_batch::{Job, start_writers, submit};
use super::{DeviceKey, StoreError, StoreResult, backend};

/// Reader tasks, each with a connection: one reads while the other's
/// answer travels.
const READERS: usize = 2;
/// Most reads answered by one query.
const MAX_BATCH: usize = 256;
/// Reads waiting before more are refused as busy.
const MAX_WAITING: usize = super::postgres_writer::MAX_WAITING;

/// Each device's certificate, in the order asked; `None` for a device the
/// directory does not hold.
type Certificates = Vec<Option<Vec<u8>>>;

/// A read waiting for a reader task.
struct CertJob {
    devices: Vec<DeviceKey>,
    reply: oneshot::Sender<StoreResult<Certificates>>,
}

impl Job for CertJob {
    fn fail(self, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The readers' queue.
#[derive(Debug, Clone)]
pub(super) struct CertReader {
    queue: mpsc::Sender<CertJob>,
}

impl CertReader {
    /// Starts the reader tasks, connecting with `options`.
    pub(super) fn start(options: &PgConnectOptions) -> Self {
        let queue = start_writers(options, READERS, MAX_WAITING, MAX_BATCH, read_batch);
        Self { queue }
    }

    /// The certificate of each device, in the order given.
    pub(super) async fn read(&self, devices: &[DeviceKey]) -> StoreResult<Certificates> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let job = CertJob {
            devices: devices.to_vec(),
            reply,
        };
        submit(&self.queue, job)?;
        answer
            .await
            .map_err(|_| backend("the certificate reader has stopped"))?
    }
}

/// Answers every job of `batch` from one query; the connection back,
/// unless it failed.
async fn read_batch(mut conn: PgConnection, batch: Vec<CertJob>) -> Option<PgConnection> {
    let mut keys: Vec<(&str, i64)> = batch
        .iter()
        .flat_map(|j| &j.devices)
        .map(|d| (d.username.as_str(), i64::from(d.device_id)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (names, ids): (Vec<&str>, Vec<i64>) = keys.into_iter().unzip();
    let rows = sqlx::query(
        "SELECT d.username, d.device_id, d.certificate FROM devices d \
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS k(u, i) \
         ON d.username = k.u AND d.device_id = k.i",
    )
    .bind(&names)
    .bind(&ids)
    .fetch_all(&mut conn)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reading device certificates failed");
            for job in batch {
                job.fail(backend(e.to_string()));
            }
            return None;
        }
    };
    let found: HashMap<(String, i64), Vec<u8>> = rows
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    for job in batch {
        let certificates = job
            .devices
            .iter()
            .map(|d| {
                found
                    .get(&(d.username.clone(), i64::from(d.device_id)))
                    .cloned()
            })
            .collect();
        let _ = job.reply.send(Ok(certificates));
    }
    Some(conn)
}
